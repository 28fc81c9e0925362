/**
 * Alerts end to end against a real state database, a real SMTP server
 * (test/support/smtp.ts) and a local webhook receiver.
 * The alerter's clock is injected: the repeat interval passes without waiting.
 */
import { Pool } from 'pg';
import { createAlerter, type Alerter } from '../../src/alerts/alerter';
import type { RetryPolicy } from '../../src/alerts/notifier';
import { AlertState } from '../../src/alerts/alert-state';
import type { Finding, TaskResult } from '../../src/contract/result';
import type { RawConfigInput } from '../../src/config/schema';
import { migrate } from '../../src/results/migrate';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { testConfig } from '../support/config';
import { freePort } from '../support/ports';
import { testLogger } from '../support/logger';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook';
import { startSmtpSink, type ReceivedMail, type SmtpSink } from '../support/smtp';

const SMTP_PASSWORD = 'smtp-Pa55word-never-shown';
const HOOK_TOKEN = 'T0KEN-in-the-webhook-path';
const PUBLIC_URL = 'https://caretaker.example.com';
const REPEAT_SECONDS = 60;
/** Fast retries for tests; the bound is the same shape as the default. */
const RETRY: RetryPolicy = { attempts: 3, backoffMs: [10, 20], attemptTimeoutMs: 2_000 };

let db: TestDatabase;
let smtp: SmtpSink;
let hook: WebhookReceiver<Record<string, unknown>>;
let hookUrl: string;
/** What the receiver answers; every request is recorded, whatever the status. */
let hookStatus = 200;
let hookRequests: Record<string, unknown>[];
let mails: ReceivedMail[];
let clock: Date;

beforeAll(async () => {
  db = await createTestDatabase('alerts');
  await migrate(db.pool);

  smtp = await startSmtpSink();
  ({ mails } = smtp);

  hook = await startWebhookReceiver({ path: `/services/${HOOK_TOKEN}`, status: () => hookStatus });
  ({ url: hookUrl, received: hookRequests } = hook);
});

afterAll(async () => {
  await smtp.close();
  await hook.close();
  await db.drop();
});

beforeEach(async () => {
  await db.pool.query('TRUNCATE caretaker.alerts, caretaker.notifier_failures');
  hookStatus = 200;
  hookRequests.length = 0;
  mails.length = 0;
  clock = new Date('2026-03-02T10:00:00.000Z');
});

/**
 * These tests are about the mechanics (once per problem, repeat, resolve,
 * failures, concurrency): critical problems only, to every channel, as
 * before routes existed. Routing itself is test/alerts/routing.test.ts.
 */
function notifications(channels: { email?: boolean; webhook?: boolean; smtpPort?: number } = { email: true, webhook: true }): RawConfigInput['notifications'] {
  return {
    repeatAlertSeconds: REPEAT_SECONDS,
    routes: [{ match: { severity: 'critical' }, channels: [...(channels.email ? ['email'] : []), ...(channels.webhook ? ['webhook'] : [])] }],
    ...(channels.email
      ? {
          email: {
            smtp: { host: '127.0.0.1', port: channels.smtpPort ?? smtp.port, secure: false, user: 'caretaker', password: SMTP_PASSWORD },
            from: 'caretaker@example.com',
            to: ['ops@example.com'],
            onCall: ['oncall@example.com'],
          },
        }
      : {}),
    ...(channels.webhook ? { webhook: { url: hookUrl } } : {}),
  };
}

function alerter(channels?: Parameters<typeof notifications>[0], pool: Pool = db.pool): Alerter {
  const config = testConfig({ dbUrl: db.url, prefix: 'alerts-test', notifications: notifications(channels), web: { publicUrl: PUBLIC_URL } });
  return createAlerter({ config, state: pool, log: testLogger, now: () => clock, retry: RETRY });
}

const TOO_MANY: Finding = {
  severity: 'critical',
  code: 'connections_high',
  subject: 'main',
  message: '95 of 100 connections in use (95%)',
  suggestion: 'raise max_connections or pool harder',
  details: { used: 95, max: 100 },
};
const IDLE: Finding = { severity: 'warning', code: 'idle_in_transaction', subject: 'pid 4242', message: '1 session idle in transaction for 10 min' };
const WRAP: Finding = { severity: 'critical', code: 'sequence_exhaustion', subject: 'public.orders_id_seq', message: '97% of the sequence used' };

function result(status: TaskResult['status'], findings: Finding[], overrides: Partial<TaskResult> = {}): TaskResult {
  return {
    task: 'connections',
    target: 'main',
    status,
    startedAt: clock.toISOString(),
    finishedAt: clock.toISOString(),
    durationMs: 5,
    dryRun: false,
    summary: `${findings.length} findings`,
    findings,
    actions: [],
    metrics: {},
    ...overrides,
  };
}

const later = (seconds: number) => {
  clock = new Date(clock.getTime() + seconds * 1000);
};

async function alertRow(code: string, subject: string) {
  const { rows } = await db.pool.query('SELECT last_sent_at, resolved_at, last_job_id FROM caretaker.alerts WHERE code = $1 AND subject = $2', [code, subject]);
  return rows[0] as { last_sent_at: Date | null; resolved_at: Date | null; last_job_id: string | null } | undefined;
}

describe('alerts', () => {
  it('sends one alert per problem: three identical critical results give one webhook call and one email', async () => {
    const a = alerter();
    for (const jobId of ['101', '102', '103']) {
      await a.onResult(result('critical', [TOO_MANY, IDLE]), jobId);
      later(1);
    }
    expect(hookRequests).toHaveLength(1);
    expect(mails).toHaveLength(1);

    const body = hookRequests[0]!;
    expect(body).toMatchObject({
      kind: 'alert',
      task: 'connections',
      target: 'main',
      status: 'critical',
      jobId: '101',
      jobUrl: `${PUBLIC_URL}/admin/queues/queue/caretaker/101`,
      alerts: [{ code: 'connections_high', subject: 'main', severity: 'critical', message: TOO_MANY.message }],
      findings: [
        { severity: 'critical', code: 'connections_high', subject: 'main' },
        { severity: 'warning', code: 'idle_in_transaction', subject: 'pid 4242' },
      ],
    });
    expect(typeof body.text).toBe('string');
    expect(body.text).toContain('95 of 100 connections in use (95%)');

    const mail = mails[0]!;
    expect(mail.subject).toBe('[caretaker] CRITICAL connections on main: 2 findings');
    expect((mail.to as { text: string }).text).toBe('oncall@example.com');
    expect(mail.text).toContain('[connections_high] main: 95 of 100 connections in use (95%)');
    expect(mail.text).toContain('Suggestion: raise max_connections or pool harder');
    expect(mail.text).toContain('[idle_in_transaction] pid 4242: 1 session idle in transaction for 10 min');
    expect(mail.text).toContain(`Job: ${PUBLIC_URL}/admin/queues/queue/caretaker/101`);

    for (const text of [JSON.stringify(hookRequests), mail.text ?? '', mail.subject ?? '']) {
      expect(text).not.toContain(SMTP_PASSWORD);
      expect(text).not.toContain(HOOK_TOKEN);
    }
    expect(await alertRow('connections_high', 'main')).toMatchObject({ resolved_at: null, last_job_id: '101' });
  });

  it('drain() waits for alerts started without awaiting them (the worker fires onResult and moves on)', async () => {
    const a = alerter({ webhook: true });
    void a.onResult(result('critical', [TOO_MANY]), '1');
    await a.drain();
    expect(hookRequests).toHaveLength(1);
  });

  it('sends nothing for ok and warning results with no open alert, nor for a warning-only problem', async () => {
    const a = alerter();
    await a.onResult(result('ok', []), '1');
    await a.onResult(result('warning', [IDLE]), '2');
    expect(hookRequests).toHaveLength(0);
    expect(mails).toHaveLength(0);
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM caretaker.alerts');
    expect(rows[0].n).toBe(0);
  });

  it('sends a resolved message once when the problem clears, and only for the problem that cleared', async () => {
    const a = alerter();
    await a.onResult(result('critical', [TOO_MANY, WRAP]), '1');
    expect(hookRequests).toHaveLength(1);

    later(10);
    await a.onResult(result('critical', [TOO_MANY]), '2');
    expect(hookRequests).toHaveLength(2);
    expect(hookRequests[1]).toMatchObject({ kind: 'resolved', resolved: [{ code: 'sequence_exhaustion', subject: 'public.orders_id_seq' }] });
    expect(mails[1]!.subject).toBe('[caretaker] RESOLVED connections on main: sequence_exhaustion public.orders_id_seq');

    later(10);
    await a.onResult(result('warning', [IDLE]), '3');
    expect(hookRequests).toHaveLength(3);
    expect(hookRequests[2]).toMatchObject({ kind: 'resolved', status: 'warning', resolved: [{ code: 'connections_high', subject: 'main' }] });
    expect(mails).toHaveLength(3);
    expect(mails[2]!.text).toContain('No longer present:');
    expect(mails[2]!.text).toContain('[connections_high] main');

    later(10);
    await a.onResult(result('ok', []), '4');
    expect(hookRequests).toHaveLength(3);

    // The same problem coming back alerts again at once (not held back by the repeat interval).
    later(10);
    await a.onResult(result('critical', [TOO_MANY]), '5');
    expect(hookRequests).toHaveLength(4);
    expect(hookRequests[3]).toMatchObject({ kind: 'alert', jobId: '5' });
  });

  it('sends nothing during the repeat interval and alerts again after it', async () => {
    const a = alerter();
    await a.onResult(result('critical', [TOO_MANY]), '1');
    later(REPEAT_SECONDS - 1);
    await a.onResult(result('critical', [TOO_MANY]), '2');
    expect(hookRequests).toHaveLength(1);
    expect(mails).toHaveLength(1);

    later(1);
    await a.onResult(result('critical', [TOO_MANY]), '3');
    expect(hookRequests).toHaveLength(2);
    expect(mails).toHaveLength(2);
    expect(hookRequests[1]).toMatchObject({ kind: 'alert', jobId: '3' });

    later(REPEAT_SECONDS / 2);
    await a.onResult(result('critical', [TOO_MANY]), '4');
    expect(hookRequests).toHaveLength(2);
  });

  it('alerts on an error result with its summary (secrets redacted), once, and resolves it when a run succeeds', async () => {
    const a = alerter();
    const failed = result('error', [], { task: 'backup-verify', target: 'nightly', summary: 'cannot connect to postgres://backup:hunter2@db.internal/auditron: ECONNREFUSED' });
    await a.onResult(failed, '7');
    later(5);
    await a.onResult(failed, '8');
    expect(hookRequests).toHaveLength(1);
    expect(mails).toHaveLength(1);
    expect(hookRequests[0]).toMatchObject({
      kind: 'alert',
      status: 'error',
      alerts: [{ code: 'run_error', subject: 'nightly', message: 'cannot connect to postgres://backup:***@db.internal/auditron: ECONNREFUSED' }],
    });
    expect(mails[0]!.subject).toBe('[caretaker] ERROR backup-verify on nightly: cannot connect to postgres://backup:***@db.internal/auditron: ECONNREFUSED');
    expect(mails[0]!.text).toContain('The task could not do its work: cannot connect to postgres://backup:***@db.internal/auditron');
    expect(JSON.stringify(hookRequests) + (mails[0]!.text ?? '')).not.toContain('hunter2');

    later(5);
    await a.onResult(result('ok', [], { task: 'backup-verify', target: 'nightly', summary: 'newest backup 3 h old' }), '9');
    expect(hookRequests).toHaveLength(2);
    expect(hookRequests[1]).toMatchObject({ kind: 'resolved', resolved: [{ code: 'run_error', subject: 'nightly' }] });
    expect(mails[1]!.subject).toBe('[caretaker] RESOLVED backup-verify on nightly: run error');
  });

  it('does not resolve findings on an error run (the run said nothing about them)', async () => {
    const a = alerter({ webhook: true });
    await a.onResult(result('critical', [TOO_MANY]), '1');
    later(5);
    await a.onResult(result('error', [], { summary: 'statement timeout' }), '2');
    expect(hookRequests.map((b) => b.kind)).toEqual(['alert', 'alert']);
    expect(await alertRow('connections_high', 'main')).toMatchObject({ resolved_at: null });
  });

  it('retries a webhook that answers 500, records the failure, does not throw, and retries on the next run', async () => {
    const a = alerter({ webhook: true });
    hookStatus = 500;
    await expect(a.onResult(result('critical', [TOO_MANY]), '1')).resolves.toBeUndefined();
    expect(hookRequests).toHaveLength(RETRY.attempts);

    const { rows } = await db.pool.query('SELECT channel, error FROM caretaker.notifier_failures');
    expect(rows).toHaveLength(1);
    expect(rows[0].channel).toBe('webhook');
    expect(rows[0].error).toContain('HTTP 500');
    expect(rows[0].error).not.toContain(HOOK_TOKEN);
    const health = a.health();
    expect(health.lastFailure?.webhook).toEqual({ at: clock.toISOString(), error: rows[0].error });
    expect(await alertRow('connections_high', 'main')).toMatchObject({ last_sent_at: null, resolved_at: null });

    // Nothing was delivered: the next run sends it, although within the repeat interval.
    hookStatus = 200;
    hookRequests.length = 0;
    later(5);
    await a.onResult(result('critical', [TOO_MANY]), '2');
    expect(hookRequests).toHaveLength(1);
    expect(hookRequests[0]).toMatchObject({ kind: 'alert', jobId: '2' });
  });

  it('survives an SMTP server that is down: retried, recorded, shown in health(), no throw', async () => {
    const closed = await freePort();
    const a = alerter({ email: true, smtpPort: closed });
    expect(a.health()).toEqual({});
    await expect(a.onResult(result('critical', [TOO_MANY]), '1')).resolves.toBeUndefined();

    const { rows } = await db.pool.query('SELECT channel, error FROM caretaker.notifier_failures');
    expect(rows).toEqual([{ channel: 'email', error: expect.stringContaining(`smtp 127.0.0.1:${closed}`) }]);
    expect(rows[0].error).toContain(`${RETRY.attempts} attempts`);
    expect(rows[0].error).not.toContain(SMTP_PASSWORD);
    expect(a.health().lastFailure?.email?.error).toBe(rows[0].error);
    // What a web replica that sent nothing reads for /health.
    expect(await new AlertState(db.pool).lastFailures()).toEqual({ email: { at: clock.toISOString(), error: rows[0].error } });
    expect(await alertRow('connections_high', 'main')).toMatchObject({ last_sent_at: null });
  });

  it('keeps the alert delivered when one of two channels fails (no email storm from a dead webhook)', async () => {
    const a = alerter();
    hookStatus = 500;
    await a.onResult(result('critical', [TOO_MANY]), '1');
    expect(mails).toHaveLength(1);
    later(5);
    await a.onResult(result('critical', [TOO_MANY]), '2');
    expect(mails).toHaveLength(1);
    expect(a.health().lastFailure).toEqual({ webhook: expect.objectContaining({ error: expect.stringContaining('HTTP 500') }) });
  });

  it('sends exactly one alert and one resolved message when two workers handle the same result at once', async () => {
    const other = new Pool({ connectionString: db.url, max: 2 });
    try {
      const [a, b] = [alerter(), alerter(undefined, other)];
      await Promise.all([a.onResult(result('critical', [TOO_MANY, WRAP]), '1'), b.onResult(result('critical', [TOO_MANY, WRAP]), '1')]);
      expect(hookRequests).toHaveLength(1);
      expect(mails).toHaveLength(1);
      // One of the two claimed both problems in one statement; the other got nothing.
      const announced = (hookRequests[0]!.alerts as { code: string }[]).map((x) => x.code).sort();
      expect(announced).toEqual(['connections_high', 'sequence_exhaustion']);

      later(5);
      await Promise.all([a.onResult(result('ok', []), '2'), b.onResult(result('ok', []), '2')]);
      expect(hookRequests).toHaveLength(2);
      expect(hookRequests[1]).toMatchObject({ kind: 'resolved' });
      expect((hookRequests[1]!.resolved as unknown[]).length).toBe(2);
    } finally {
      await other.end();
    }
  });
});
