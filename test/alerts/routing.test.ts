/**
 * Routing, silences, maintenance windows and waivers, on a real state
 * database, a real SMTP server and a local webhook receiver. The clock is
 * injected: windows open and close and waivers lapse without waiting.
 */
import { createAlerter, type Alerter } from '../../src/alerts/alerter';
import type { RetryPolicy } from '../../src/alerts/notifier';
import { routingNotes } from '../../src/alerts/routing';
import { SilenceStore } from '../../src/alerts/suppress/silences';
import { WaiverStore } from '../../src/alerts/suppress/waivers';
import type { Finding, TaskResult } from '../../src/contract/result';
import type { RawConfigInput } from '../../src/config/schema';
import { ConfigError } from '../../src/errors';
import { TASKS } from '../../src/jobs';
import { pausedByWindow } from '../../src/worker/run-task';
import { migrate } from '../../src/results/migrate';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { testConfig } from '../support/config';
import { testLogger } from '../support/logger';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook';
import { startSmtpSink, type ReceivedMail, type SmtpSink } from '../support/smtp';

const RETRY: RetryPolicy = { attempts: 1, backoffMs: [10], attemptTimeoutMs: 2_000 };

let db: TestDatabase;
let smtp: SmtpSink;
let team: WebhookReceiver<Record<string, unknown>>;
let dba: WebhookReceiver<Record<string, unknown>>;
let mails: ReceivedMail[];
let clock: Date;

beforeAll(async () => {
  db = await createTestDatabase('alert_routing');
  await migrate(db.pool);
  smtp = await startSmtpSink();
  ({ mails } = smtp);
  team = await startWebhookReceiver({ path: '/team' });
  dba = await startWebhookReceiver({ path: '/dba' });
});

afterAll(async () => {
  await smtp.close();
  await team.close();
  await dba.close();
  await db.drop();
});

beforeEach(async () => {
  await db.pool.query('TRUNCATE caretaker.alerts, caretaker.notifier_failures, caretaker.silences, caretaker.waivers');
  team.received.length = 0;
  dba.received.length = 0;
  mails.length = 0;
  clock = new Date('2026-03-02T10:00:00.000Z');
});

const later = (seconds: number) => {
  clock = new Date(clock.getTime() + seconds * 1000);
};

const email = () => ({ smtp: { host: '127.0.0.1', port: smtp.port, secure: false }, from: 'caretaker@example.com', to: ['ops@example.com'], onCall: ['oncall@example.com'] });

function alerter(extra: Partial<RawConfigInput> = {}, notifications: RawConfigInput['notifications'] = { email: email(), webhook: { url: team.url } }): Alerter {
  const config = testConfig({ dbUrl: db.url, prefix: 'routing-test', notifications, ...extra });
  return createAlerter({ config, state: db.pool, log: testLogger, now: () => clock, retry: RETRY });
}

const CRIT: Finding = { severity: 'critical', code: 'connections_high', subject: 'main', message: '95 of 100 connections in use' };
const WARN: Finding = { severity: 'warning', code: 'idle_in_transaction', subject: 'pid 4242', message: '1 session idle in transaction for 10 min' };
const INFO: Finding = { severity: 'info', code: 'unused_index', subject: 'public.orders_note_idx', message: 'never scanned' };

function result(findings: Finding[], overrides: Partial<TaskResult> = {}): TaskResult {
  const worst = findings.some((f) => f.severity === 'critical') ? 'critical' : findings.some((f) => f.severity === 'warning') ? 'warning' : 'ok';
  return { task: 'connections', target: 'main', status: worst, startedAt: clock.toISOString(), finishedAt: clock.toISOString(), durationMs: 1, dryRun: false, summary: `${findings.length} findings`, findings, actions: [], metrics: {}, ...overrides };
}

const codesIn = (body: Record<string, unknown>) => ((body.alerts as { code: string }[]) ?? []).map((a) => a.code).sort();

describe('default routes (the runbook: critical pages, warning to the team, info to the report)', () => {
  it('a warning reaches the team webhook and not the on-call email; info reaches nobody', async () => {
    const a = alerter();
    await a.onResult(result([WARN, INFO]), '1');
    expect(team.received).toHaveLength(1);
    expect(codesIn(team.received[0]!)).toEqual(['idle_in_transaction']);
    expect(team.received[0]!.title).toBe('[caretaker] WARNING connections on main: 2 findings');
    expect(mails).toHaveLength(0);
    const { rows } = await db.pool.query('SELECT code FROM caretaker.alerts');
    expect(rows).toEqual([{ code: 'idle_in_transaction' }]);
  });

  it('a critical pages every channel; each channel gets one message with what is routed to it', async () => {
    const a = alerter();
    await a.onResult(result([CRIT, WARN]), '1');
    expect(mails).toHaveLength(1);
    expect((mails[0]!.to as { text: string }).text).toBe('oncall@example.com');
    expect(mails[0]!.text).toContain('[connections_high] main');
    expect(team.received).toHaveLength(1);
    expect(codesIn(team.received[0]!)).toEqual(['connections_high', 'idle_in_transaction']);
  });

  it('an open warning is not sent again within a day; a warning that becomes critical alerts at once', async () => {
    const a = alerter();
    await a.onResult(result([WARN]), '1');
    later(23 * 3600);
    await a.onResult(result([WARN]), '2');
    expect(team.received).toHaveLength(1);
    later(3600);
    await a.onResult(result([WARN]), '3');
    expect(team.received).toHaveLength(2);

    later(60);
    await a.onResult(result([{ ...WARN, severity: 'critical' }]), '4');
    expect(team.received).toHaveLength(3);
    expect(mails).toHaveLength(1);
    expect(mails[0]!.subject).toContain('CRITICAL');
  });
});

describe('configured routes', () => {
  const channels = () => ({
    'oncall-mail': { kind: 'email' as const, smtp: { host: '127.0.0.1', port: smtp.port, secure: false }, from: 'caretaker@example.com', to: ['oncall@example.com'] },
    'team-hook': { kind: 'webhook' as const, url: team.url },
    'dba-hook': { kind: 'webhook' as const, url: dba.url },
  });

  it('first match wins: a task routed to the DBAs goes there only; repeatSeconds per route', async () => {
    const a = alerter({}, {
      channels: channels(),
      routes: [
        { match: { task: 'index-*' }, channels: ['dba-hook'], repeatSeconds: 3600 },
        { match: { severity: 'critical' }, channels: ['oncall-mail', 'team-hook'] },
        { match: { severity: ['warning', 'info'] }, channels: ['team-hook'] },
      ],
    });
    await a.onResult(result([CRIT], { task: 'index-audit' }), '1');
    expect(dba.received).toHaveLength(1);
    expect(team.received).toHaveLength(0);
    expect(mails).toHaveLength(0);
    later(1800);
    await a.onResult(result([CRIT], { task: 'index-audit' }), '2');
    expect(dba.received).toHaveLength(1);
    later(1800);
    await a.onResult(result([CRIT], { task: 'index-audit' }), '3');
    expect(dba.received).toHaveLength(2);

    await a.onResult(result([INFO]), '4');
    expect(team.received).toHaveLength(1);
    expect(codesIn(team.received[0]!)).toEqual(['unused_index']);
  });

  it('a route naming no channel is a config error; check-config notes a route that never matches and a channel no route uses', () => {
    expect(() => alerter({}, { channels: channels(), routes: [{ match: {}, channels: ['pager'] }] })).toThrow(ConfigError);
    expect(() => alerter({}, { channels: channels(), routes: [{ match: {}, channels: ['pager'] }] })).toThrow(/notifications\.routes\[0\]\.channels\[0\]: no channel named "pager"/);
    expect(() => alerter({}, { webhook: { url: team.url }, channels: { webhook: { kind: 'webhook', url: dba.url } } })).toThrow(/notifications\.channels\.webhook: the name is taken/);

    const config = testConfig({
      dbUrl: db.url,
      prefix: 'routing-test',
      notifications: {
        channels: channels(),
        routes: [
          { match: { severity: 'critical' }, channels: ['oncall-mail'] },
          { match: { severity: 'critical', task: 'connections' }, channels: ['team-hook'] },
          { match: { task: 'no-such-task' }, channels: ['team-hook'] },
          { match: { target: 'nowhere' }, channels: ['team-hook'] },
        ],
      },
    });
    const notes = routingNotes(config, ['connections', 'index-audit'], ['main', 'caretaker']);
    expect(notes).toEqual([
      expect.stringMatching(/^notifications\.routes\[1\] \(severity=critical task=connections\) can never match: notifications\.routes\[0\]/),
      'notifications.routes[2] (task=no-such-task) can never match: no task "no-such-task"',
      'notifications.routes[3] (target=nowhere) can never match: no target "nowhere"',
      'channel dba-hook is in no route: it is never sent anything',
    ]);
  });
});

describe('silences and maintenance windows', () => {
  it('a silence holds a problem back (still stored, as held); expiring it sends the problem at the next sweep, once', async () => {
    const a = alerter();
    const silences = new SilenceStore(db.pool);
    const s = await silences.add({ matchers: { task: 'connections', code: 'connections_*' }, startsAt: clock, endsAt: new Date(clock.getTime() + 2 * 3600_000), reason: 'migration', createdBy: 'alice' });
    await a.onResult(result([CRIT]), '1');
    await a.sweep();
    expect(mails).toHaveLength(0);
    expect(team.received).toHaveLength(0);
    const { rows } = await db.pool.query('SELECT held_by, last_sent_at FROM caretaker.alerts');
    expect(rows).toEqual([{ held_by: expect.stringContaining('silenced by alice until 2026-03-02T12:00:00.000Z: migration'), last_sent_at: null }]);

    later(600);
    expect(await silences.expire(s.id, 'bob', clock)).toMatchObject({ expiredBy: 'bob' });
    await a.sweep();
    expect(mails).toHaveLength(1);
    expect(mails[0]!.subject).toContain('still open after its silence');
    expect(team.received).toHaveLength(1);
    await a.sweep();
    expect(mails).toHaveLength(1);
    // The next run is within the repeat interval: nothing more.
    await a.onResult(result([CRIT]), '2');
    expect(mails).toHaveLength(1);
  });

  it('a silence that ends on its own re-alerts a problem that is still open; one that cleared meanwhile says nothing', async () => {
    const a = alerter();
    await new SilenceStore(db.pool).add({ matchers: { target: 'main' }, startsAt: clock, endsAt: new Date(clock.getTime() + 3600_000), reason: 'failover test', createdBy: 'alice' });
    await a.onResult(result([CRIT, WARN]), '1');
    later(1800);
    await a.onResult(result([CRIT]), '2');
    expect(team.received).toHaveLength(0);
    later(1800);
    await a.sweep();
    expect(team.received).toHaveLength(1);
    expect(codesIn(team.received[0]!)).toEqual(['connections_high']);
  });

  it('a maintenance window from the config holds alerts while open (the clock moved), and they go out when it closes', async () => {
    // Sundays 02:00 in Berlin for 2 h: 2026-03-01 is a Sunday, 02:00 CET = 01:00 UTC.
    const a = alerter({ maintenance: [{ name: 'sunday upgrades', cron: '0 2 * * 0', duration: '2h', timezone: 'Europe/Berlin', target: 'main', reason: 'OS patches' }] });
    clock = new Date('2026-03-01T01:30:00.000Z');
    await a.onResult(result([CRIT]), '1');
    expect(mails).toHaveLength(0);
    const { rows } = await db.pool.query('SELECT held_by FROM caretaker.alerts');
    expect(rows[0].held_by).toBe('maintenance window sunday upgrades until 2026-03-01T03:00:00.000Z: OS patches');
    later(1200);
    await a.sweep();
    expect(mails).toHaveLength(0);
    clock = new Date('2026-03-01T03:00:00.000Z');
    await a.sweep();
    expect(mails).toHaveLength(1);

    // Outside any window a new problem alerts at once.
    await a.onResult(result([CRIT], { target: 'other' }), '2');
    expect(mails).toHaveLength(2);
  });
});

describe('pauseChanges', () => {
  it('a task that changes its target skips it while a pausing window is open on it; checks, dry runs and other targets run', () => {
    const config = testConfig({ dbUrl: db.url, prefix: 'routing-test', maintenance: [{ cron: '0 2 * * *', duration: '90m', target: 'main', pauseChanges: true, reason: 'upgrade' }] });
    const vacuum = TASKS.get('vacuum-analyze')!;
    const pgHealth = TASKS.get('pg-health')!;
    const inside = new Date('2026-03-02T03:00:00Z');
    const paused = pausedByWindow(config, vacuum, 'main', false, inside);
    expect(paused).toMatchObject({ skipped: true, status: 'ok', task: 'vacuum-analyze', target: 'main' });
    expect(paused!.summary).toBe('skipped: changes are paused during maintenance window maintenance[0] (0 2 * * *, 1h 30m) until 2026-03-02T03:30:00.000Z: upgrade');
    expect(pausedByWindow(config, vacuum, 'main', true, inside)).toBeUndefined();
    expect(pgHealth.changesTarget).toBe(false);
    expect(pausedByWindow(config, pgHealth, 'main', false, inside)).toBeUndefined();
    expect(pausedByWindow(config, vacuum, 'other', false, inside)).toBeUndefined();
    expect(pausedByWindow(config, vacuum, 'main', false, new Date('2026-03-02T03:30:00Z'))).toBeUndefined();
  });
});

describe('waivers', () => {
  it('a waived finding leaves alerts (an open alert on it resolves, saying why), comes back when the waiver lapses or the finding gets worse', async () => {
    const a = alerter();
    await a.onResult(result([WARN]), '1');
    expect(team.received).toHaveLength(1);

    const waivers = new WaiverStore(db.pool);
    await waivers.add({ task: 'connections', target: 'main', code: 'idle_in_transaction', subject: 'pid 4242', severity: 'warning', reason: 'batch job, expected', createdBy: 'alice', expiresAt: new Date('2026-03-05T00:00:00Z') });
    later(60);
    await a.onResult(result([WARN]), '2');
    expect(team.received).toHaveLength(2);
    expect(team.received[1]).toMatchObject({ kind: 'resolved' });
    expect(team.received[1]!.text).toContain('waived: batch job, expected (by alice)');

    later(86_400);
    await a.onResult(result([WARN]), '3');
    expect(team.received).toHaveLength(2);

    // Worse than accepted: it alerts again.
    await a.onResult(result([{ ...WARN, severity: 'critical' }]), '4');
    expect(team.received).toHaveLength(3);
    expect(mails).toHaveLength(1);

    // Back to a warning, then the waiver lapses.
    later(60);
    await a.onResult(result([WARN]), '5');
    clock = new Date('2026-03-05T00:00:01Z');
    await a.onResult(result([WARN]), '6');
    const kinds = team.received.map((b) => b.kind);
    expect(kinds.slice(3)).toEqual(['resolved', 'alert']);
  });

  it('a waiver in the config works the same; its expiry is a date', async () => {
    const a = alerter({ waivers: [{ task: 'connections', target: '*', code: 'connections_high', subject: 'main', reason: 'load test week', until: '2026-03-03', severity: 'critical' }] });
    await a.onResult(result([CRIT]), '1');
    expect(mails).toHaveLength(0);
    expect(team.received).toHaveLength(0);
    clock = new Date('2026-03-03T00:00:00Z');
    await a.onResult(result([CRIT]), '2');
    expect(mails).toHaveLength(1);
  });
});
