/**
 * The alerter end to end on event channels: a real Alertmanager (Debian's
 * prometheus-alertmanager, started on a free port) and a local PagerDuty
 * Events v2 receiver, routed from the config. The real clock: Alertmanager
 * judges startsAt/endsAt against its own.
 */
import { createAlerter } from '../../src/alerts/alerter';
import type { RetryPolicy } from '../../src/alerts/notifier';
import type { Finding, TaskResult } from '../../src/contract/result';
import { migrate } from '../../src/results/migrate';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { testConfig } from '../support/config';
import { captureLog } from '../support/log-capture';
import { startAlertmanager, waitUntil, type TestAlertmanager } from '../support/alertmanager';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook';

const ROUTING_KEY = 'R0UTING-key-never-shown-0123456789';
const PUBLIC_URL = 'https://caretaker.example.com';
const RETRY: RetryPolicy = { attempts: 1, backoffMs: [10], attemptTimeoutMs: 3_000 };

let db: TestDatabase;
let am: TestAlertmanager;
let pd: WebhookReceiver<Record<string, unknown>>;

beforeAll(async () => {
  db = await createTestDatabase('alerter_am');
  await migrate(db.pool);
  am = await startAlertmanager();
  pd = await startWebhookReceiver({ path: '/v2/enqueue', status: () => 202 });
});

afterAll(async () => {
  await am?.stop();
  await pd?.close();
  await db?.drop();
});

const CRIT: Finding = { severity: 'critical', code: 'replication_lag', subject: 'replica-1', message: 'replica 120 s behind', suggestion: 'check the replica' };

function result(findings: Finding[]): TaskResult {
  const now = new Date().toISOString();
  return { task: 'pg-health', target: 'main', status: findings.length ? 'critical' : 'ok', startedAt: now, finishedAt: now, durationMs: 1, dryRun: false, summary: `${findings.length} findings`, findings, actions: [], metrics: {} };
}

it('a routed critical appears in Alertmanager with its labels and annotations and in PagerDuty as a trigger; both resolve when it clears; no routing key anywhere', async () => {
  const logs = captureLog();
  const config = testConfig({
    dbUrl: db.url,
    prefix: 'alerter-am',
    web: { publicUrl: PUBLIC_URL },
    notifications: {
      channels: { am: { kind: 'alertmanager', url: am.url }, pd: { kind: 'pagerduty', routingKey: ROUTING_KEY, url: pd.url } },
      routes: [{ match: { severity: 'critical' }, channels: ['am', 'pd'] }],
    },
  });
  const alerter = createAlerter({ config, state: db.pool, log: logs.log, retry: RETRY });
  expect(alerter.sweepIntervalMs).toBe(30_000);

  await alerter.onResult(result([CRIT]), '41');
  await waitUntil(async () => (await am.alerts({ filter: 'alertname="replication_lag"' })).length === 1, 'the alert in Alertmanager');
  const [alert] = await am.alerts({ filter: 'alertname="replication_lag"' });
  expect(alert!.labels).toEqual({ alertname: 'replication_lag', severity: 'critical', task: 'pg-health', target: 'main', subject: 'replica-1' });
  expect(alert!.annotations).toMatchObject({
    summary: 'pg-health on main: [replication_lag] replica-1: replica 120 s behind',
    description: 'replica 120 s behind',
    suggestion: 'check the replica',
    runbook_url: `${PUBLIC_URL}/runs/job/41`,
  });
  expect(alert!.generatorURL).toBe(`${PUBLIC_URL}/checks/pg-health/main`);

  expect(pd.received).toHaveLength(1);
  const trigger = pd.received[0]!;
  expect(trigger).toMatchObject({ event_action: 'trigger', payload: { severity: 'critical', source: 'main', component: 'replica-1', group: 'pg-health', class: 'replication_lag' } });

  // The sweep re-posts the open alert (Alertmanager would forget it otherwise).
  await alerter.sweep();
  expect((await am.alerts({ filter: 'alertname="replication_lag"' })).length).toBe(1);

  await alerter.onResult(result([]), '42');
  await waitUntil(async () => (await am.alerts({ filter: 'alertname="replication_lag"' })).length === 0, 'the alert resolved in Alertmanager');
  expect(pd.received).toHaveLength(2);
  expect(pd.received[1]).toEqual({ routing_key: ROUTING_KEY, event_action: 'resolve', dedup_key: trigger.dedup_key });

  const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM caretaker.notifier_failures");
  expect(rows[0].n).toBe(0);
  expect(logs.text()).not.toContain(ROUTING_KEY);
  expect(JSON.stringify((await db.pool.query('SELECT * FROM caretaker.alerts')).rows)).not.toContain(ROUTING_KEY);
});
