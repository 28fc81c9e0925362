/**
 * Alerts and the dead man's switch through the running system: a scheduled
 * run that ends critical reaches the webhook once (not once per tick), and a
 * schedule nobody works on raises missed_run, also through the webhook.
 */
import { startCaretaker, type Caretaker } from '../src/main';
import { createTestDatabase, type TestDatabase } from './support/db';
import { deleteKeys, randomPrefix } from './support/redis';
import { testConfig } from './support/config';
import { testLogger } from './support/logger';
import { eventually } from './support/jobs';
import { startWebhookReceiver, type WebhookReceiver } from './support/webhook';

interface Hook {
  text: string;
  kind: string;
  task: string;
  alerts?: { code: string }[];
}

let db: TestDatabase;
let receiver: WebhookReceiver<Hook>;
let hookUrl: string;
let received: Hook[];
const prefixes: string[] = [];
let running: Caretaker | undefined;

beforeAll(async () => {
  db = await createTestDatabase('e2e_alerts');
  receiver = await startWebhookReceiver<Hook>();
  ({ url: hookUrl, received } = receiver);
});

afterEach(async () => {
  await running?.stop();
  running = undefined;
});

afterAll(async () => {
  await receiver.close();
  await db.drop();
  for (const p of prefixes) await deleteKeys(p);
});

function config(schedules: Record<string, unknown>, tasks: Record<string, Record<string, unknown>> = {}) {
  const prefix = randomPrefix('e2ealert');
  prefixes.push(prefix);
  return testConfig({
    dbUrl: db.url,
    prefix,
    notifications: { webhook: { url: hookUrl } },
    schedules: { daily: { enabled: false }, weekly: { enabled: false }, monthly: { enabled: false }, report: { enabled: false }, ...schedules },
    tasks,
  } as never);
}

describe('alerts end to end', () => {
  it('a critical scheduled run alerts the webhook once, however many ticks repeat it', async () => {
    received.length = 0;
    running = await startCaretaker({
      config: config({ tick: { cron: '* * * * * *', tasks: ['connections'] } }, { connections: { warning: 0.0001, critical: 0.0002 } }),
      roles: ['scheduler', 'worker'],
      log: testLogger,
    });
    // Several critical runs complete...
    await eventually(async () => ((await running!.store.list({ task: 'connections', status: 'critical' })).length >= 3 ? true : undefined), 20_000, 'three critical runs');
    await running.stop();
    running = undefined;
    // ...and the webhook heard of connections_high exactly once.
    const alerts = received.filter((h) => h.kind === 'alert' && h.task === 'connections');
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.alerts!.map((a) => a.code)).toEqual(['connections_high']);
    expect(alerts[0]!.text).toMatch(/connections_high/);
  });

  it('a schedule nobody works on raises missed_run; its due run waiting in the queue is the catch-up, no second one is added', async () => {
    received.length = 0;
    running = await startCaretaker({
      config: config({ lonely: { cron: '*/2 * * * * *', tasks: ['pg-health'], graceSeconds: 1, catchUp: true } }),
      roles: ['scheduler'], // no worker: nothing runs
      log: testLogger,
      missedRunIntervalMs: 500,
    });
    const hook = await eventually(async () => received.find((h) => h.kind === 'alert' && h.task === 'pg-health'), 20_000, 'a missed_run alert');
    expect(hook.alerts!.map((a) => a.code)).toEqual(['missed_run']);
    const { rows } = await db.pool.query(`SELECT schedule, task, target, caught_up FROM caretaker.missed_runs WHERE task = 'pg-health'`);
    expect(rows[0]).toMatchObject({ schedule: 'lonely', task: 'pg-health', target: 'main', caught_up: true });
    const queued = await running.queue.getJobs(['waiting', 'delayed']);
    expect(queued.filter((j) => String(j.id).startsWith('catchup-'))).toEqual([]);
    const due = queued.filter((j) => String(j.id).startsWith('repeat:lonely:pg-health:main:') && j.timestamp + j.delay <= Date.now());
    expect(due).toHaveLength(1);
  });
});
