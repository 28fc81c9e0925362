/**
 * The fleet's status from a planted history (test/support/status-fleet.ts)
 * and real job schedulers in Redis: each row's state, open findings and
 * since when, next due times, filters, the exit code, and a constant
 * number of statements whatever the fleet's size.
 */
import type { Pool } from 'pg';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { createRedis } from '../../src/clients/redis';
import type { Config } from '../../src/config/schema';
import { createQueue, jobOptions, type JobData } from '../../src/queue/queue';
import { migrate } from '../../src/results/migrate';
import { syncSchedulers } from '../../src/schedules/sync';
import { SilenceStore } from '../../src/alerts/suppress/silences';
import { WaiverStore } from '../../src/alerts/suppress/waivers';
import { buildStatus, statusExitCode, type CheckRow, type StatusReport } from '../../src/status/status';
import { testConfig } from '../support/config';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { TEST_REDIS_URL } from '../support/env';
import { testLogger } from '../support/logger';
import { deleteKeys, randomPrefix } from '../support/redis';
import { FINDINGS, plantFleet, type PlantedFleet } from '../support/status-fleet';

let db: TestDatabase;
let config: Config;
let redis: Redis;
let queue: Queue<JobData>;
let prefix: string;
let fleet: PlantedFleet;

beforeAll(async () => {
  db = await createTestDatabase('status');
  await migrate(db.pool);
  prefix = randomPrefix('status');
  config = testConfig({ dbUrl: db.url, prefix });
  redis = createRedis(TEST_REDIS_URL, testLogger);
  queue = createQueue(redis, prefix);
  fleet = await plantFleet(db.pool, config);
});

afterAll(async () => {
  await queue?.close();
  redis?.disconnect();
  await db?.drop();
  await deleteKeys(prefix);
});

const row = (report: StatusReport, task: string): CheckRow => {
  const found = report.checks.find((c) => c.task === task && c.target === 'main');
  if (!found) throw new Error(`no row for ${task}`);
  return found;
};

describe('buildStatus', () => {
  let report: StatusReport;
  beforeAll(async () => {
    report = await buildStatus({ state: db.pool, entries: config.schedulers, now: fleet.now });
  });

  it('gives each scheduled (task, target) its state', () => {
    const states = Object.fromEntries(report.checks.filter((c) => c.target === 'main').map((c) => [c.task, c.state]));
    expect(states).toEqual({
      connections: 'ok',
      'pg-health': 'late',
      'vacuum-analyze': 'missed',
      'index-audit': 'critical',
      'disk-check': 'error',
      'slow-queries': 'never_ran',
    });
  });

  it('says which due time a late or missed check has no run for, and keeps the last run', () => {
    expect(row(report, 'pg-health')).toMatchObject({ dueAt: fleet.dailyDue.toISOString(), lastRun: { status: 'warning' } });
    expect(row(report, 'vacuum-analyze')).toMatchObject({ dueAt: fleet.dailyDue.toISOString() });
    expect(row(report, 'vacuum-analyze').lastRun).toBeUndefined();
    expect(row(report, 'connections').dueAt).toBeUndefined();
  });

  it('groups rows by target, the worst target and the worst row first', () => {
    const main = report.checks.filter((c) => c.target === 'main').map((c) => c.task);
    expect(main).toEqual(['index-audit', 'vacuum-analyze', 'pg-health', 'disk-check', 'slow-queries', 'connections']);
    // main has a critical row; the caretaker target's rows only never ran: main comes first.
    expect(report.checks[0]!.target).toBe('main');
    const targets = report.checks.map((c) => c.target);
    expect(targets.lastIndexOf('main')).toBeLessThan(targets.indexOf('caretaker'));
  });

  it('keeps the findings of the last run that did its work open when the latest run errored', () => {
    expect(row(report, 'disk-check').open).toEqual({ critical: 0, warning: 1 });
    const disk = report.findings.find((f) => f.code === 'disk_usage_high')!;
    expect(disk).toMatchObject({ severity: 'warning', target: 'main', task: 'disk-check', suggestion: FINDINGS.diskHigh.suggestion });
    expect(disk.firstSeen).toBe(fleet.diskWarningSince.toISOString());
  });

  it('lists every open warning and critical, worst first, each with its run', async () => {
    expect(report.findings.map((f) => [f.severity, f.code])).toEqual([
      ['critical', 'invalid_index'],
      ['warning', 'disk_usage_high'],
      ['warning', 'long_transaction'],
    ]);
    const critical = report.findings[0]!;
    const stored = await db.pool.query('SELECT task FROM caretaker.runs WHERE id = $1', [critical.runId]);
    expect(stored.rows).toEqual([{ task: 'index-audit' }]);
  });

  it('filters by task, target and severity', async () => {
    const critical = await buildStatus({ state: db.pool, entries: config.schedulers, now: fleet.now, filter: { severity: 'critical' } });
    expect(critical.findings.map((f) => f.code)).toEqual(['invalid_index']);
    // Severity filters findings only: the grid still has every row.
    expect(critical.checks).toHaveLength(report.checks.length);
    const disk = await buildStatus({ state: db.pool, entries: config.schedulers, now: fleet.now, filter: { task: 'disk-check' } });
    expect(disk.checks.map((c) => c.id)).toEqual(['weekly:disk-check:main']);
    expect(disk.findings.map((f) => f.code)).toEqual(['disk_usage_high']);
    const caretaker = await buildStatus({ state: db.pool, entries: config.schedulers, now: fleet.now, filter: { target: 'caretaker' } });
    expect(new Set(caretaker.checks.map((c) => c.target))).toEqual(new Set(['caretaker']));
    expect(caretaker.findings).toEqual([]);
  });

  it('says next due times are unknown without Redis', () => {
    expect(report.schedulersRead).toBe(false);
    expect(report.checks.every((c) => c.nextDue === undefined)).toBe(true);
  });
});

describe('next due, from the job schedulers in Redis', () => {
  // Every scheduler but slow-queries' in Redis, for each test of this block (each must pass alone).
  beforeAll(async () => {
    await syncSchedulers(queue, config.schedulers.filter((e) => e.task !== 'slow-queries'), jobOptions(config.worker), testLogger);
  });

  it('takes each row\'s next fire time from its job scheduler; a row Redis does not hold has none', async () => {
    const report = await buildStatus({ state: db.pool, queue, entries: config.schedulers, now: fleet.now });
    expect(report.schedulersRead).toBe(true);
    const inRedis = new Map((await queue.getJobSchedulers(0, -1)).map((s) => [s.key, s.next]));
    const connections = row(report, 'connections');
    expect(connections.nextDue).toBe(new Date(inRedis.get(connections.id)!).toISOString());
    expect(Date.parse(connections.nextDue!)).toBeGreaterThan(Date.now());
    expect(row(report, 'slow-queries').nextDue).toBeUndefined();
  });

  it('reads the few schedulers of a filtered view one by one, with the same answer', async () => {
    const one = await buildStatus({ state: db.pool, queue, entries: config.schedulers, now: fleet.now, filter: { task: 'connections' } });
    expect(one.schedulersRead).toBe(true);
    expect(one.checks.map((c) => c.id)).toEqual(['daily:connections:main']);
    expect(one.checks[0]!.nextDue).toBe(new Date((await queue.getJobScheduler('daily:connections:main'))!.next!).toISOString());
    const missing = await buildStatus({ state: db.pool, queue, entries: config.schedulers, now: fleet.now, filter: { task: 'slow-queries' } });
    expect(missing.schedulersRead).toBe(true);
    expect(missing.checks[0]!.nextDue).toBeUndefined();
  });

  it('renders without next due times when Redis does not answer, and says why', async () => {
    const dead = createRedis('redis://127.0.0.1:1', testLogger);
    const deadQueue = createQueue(dead, prefix);
    deadQueue.on('error', () => undefined);
    try {
      const report = await buildStatus({ state: db.pool, queue: deadQueue, entries: config.schedulers, now: fleet.now });
      expect(report.schedulersRead).toBe(false);
      expect(report.schedulersError).toMatch(/timed out|ECONNREFUSED|closed/);
      expect(row(report, 'index-audit').state).toBe('critical');
    } finally {
      await deadQueue.close().catch(() => undefined);
      dead.disconnect();
    }
  });
});

describe('waivers and silences', () => {
  let silences: SilenceStore;
  let waivers: WaiverStore;
  let silenceId: string;
  let waiverId: string;
  beforeAll(async () => {
    silences = new SilenceStore(db.pool);
    waivers = new WaiverStore(db.pool);
    const waiver = await waivers.add({ task: 'index-audit', target: 'main', code: 'invalid_index', subject: FINDINGS.invalidIndex.subject, severity: 'critical', reason: 'rebuilt on Sunday', createdBy: 'alice' });
    waiverId = waiver.id;
    const silence = await silences.add({ matchers: { task: 'disk-*' }, startsAt: new Date(fleet.now.getTime() - 60_000), endsAt: new Date(fleet.now.getTime() + 3_600_000), reason: 'resizing the volume', createdBy: 'bob' });
    silenceId = silence.id;
  });
  afterAll(async () => {
    await db.pool.query('DELETE FROM caretaker.silences WHERE id = $1', [silenceId]);
    await db.pool.query('DELETE FROM caretaker.waivers WHERE id = $1', [waiverId]);
  });

  it('sets a waived finding apart: out of the open list, the counts and the state, listed with its waiver', async () => {
    const report = await buildStatus({ state: db.pool, entries: config.schedulers, now: fleet.now });
    expect(report.findings.map((f) => f.code)).not.toContain('invalid_index');
    expect(report.waived).toEqual([
      expect.objectContaining({ code: 'invalid_index', task: 'index-audit', waiver: expect.objectContaining({ id: waiverId, by: 'alice', reason: 'rebuilt on Sunday', source: 'state' }) }),
    ]);
    expect(row(report, 'index-audit')).toMatchObject({ state: 'ok', open: { critical: 0, warning: 0 }, waived: 1 });
    // The fleet's worst is now the late and missed checks, still critical; the waived finding no longer counts.
    expect(report.checks.reduce((n, c) => n + c.open.critical, 0)).toBe(0);
  });

  it('keeps a silenced finding open, marked with who, why and until when', async () => {
    const report = await buildStatus({ state: db.pool, entries: config.schedulers, now: fleet.now });
    const disk = report.findings.find((f) => f.code === 'disk_usage_high')!;
    expect(disk.silenced).toMatchObject({ kind: 'silence', id: silenceId, by: 'bob', reason: 'resizing the volume', until: new Date(fleet.now.getTime() + 3_600_000).toISOString() });
    expect(row(report, 'disk-check')).toMatchObject({ open: { critical: 0, warning: 1 }, silenced: 1 });
    expect(report.findings.find((f) => f.code === 'long_transaction')!.silenced).toBeUndefined();
  });

  it('opens a finding again when it is worse than its waiver accepts', async () => {
    const warningOnly = await waivers.add({ task: 'pg-health', target: 'main', code: 'long_transaction', subject: '*', severity: 'info', reason: 'batch job', createdBy: 'carol' });
    try {
      const report = await buildStatus({ state: db.pool, entries: config.schedulers, now: fleet.now });
      expect(report.findings.map((f) => f.code)).toContain('long_transaction');
      expect(report.waived.map((f) => f.code)).toEqual(['invalid_index']);
    } finally {
      await db.pool.query('DELETE FROM caretaker.waivers WHERE id = $1', [warningOnly.id]);
    }
  });

  it('applies the config\'s waivers and maintenance windows', async () => {
    const suppress = {
      timezone: 'UTC',
      waivers: [{ task: 'pg-health', target: 'main', code: 'long_transaction', subject: '*', severity: 'warning' as const, reason: 'the nightly export' }],
      maintenance: [{ name: 'patching', cron: '* * * * *', duration: 600, target: 'main', pauseChanges: false }],
    };
    const report = await buildStatus({ state: db.pool, entries: config.schedulers, now: fleet.now, suppress });
    expect(report.waived.map((f) => [f.code, f.waiver.id, f.waiver.by])).toEqual([
      ['invalid_index', waiverId, 'alice'],
      ['long_transaction', 'config-1', 'config'],
    ]);
    // The silence ends after the window: it is the one shown.
    expect(report.findings.find((f) => f.code === 'disk_usage_high')!.silenced).toMatchObject({ kind: 'silence' });
    expect(row(report, 'pg-health').state).toBe('late');
  });
});

describe('the statements it costs', () => {
  /** Counts the statements sent through `pool` while `work` runs. */
  async function statementsOf(pool: Pool, work: () => Promise<unknown>): Promise<number> {
    const original = pool.query.bind(pool);
    let count = 0;
    (pool as unknown as { query: unknown }).query = (...args: unknown[]) => {
      count += 1;
      return (original as (...a: unknown[]) => unknown)(...args);
    };
    try {
      await work();
    } finally {
      (pool as unknown as { query: unknown }).query = original;
    }
    return count;
  }

  it('is the same number of statements for 1 target or 300', async () => {
    const many = testConfig({ dbUrl: db.url, prefix, targets: { postgres: Array.from({ length: 300 }, (_, i) => ({ name: `db${i}`, url: db.url })) } });
    const one = await statementsOf(db.pool, () => buildStatus({ state: db.pool, entries: config.schedulers, now: fleet.now }));
    const fleetOf300 = await statementsOf(db.pool, () => buildStatus({ state: db.pool, entries: many.schedulers, now: fleet.now }));
    expect(many.schedulers.length).toBeGreaterThan(1_800);
    expect(fleetOf300).toBe(one);
    // Four for runs, findings and due probes; two for the silences and waivers.
    expect(one).toBe(6);
  });
});

describe('statusExitCode', () => {
  const check = (state: CheckRow['state'], open = { critical: 0, warning: 0 }): CheckRow => ({
    id: `x:${state}`,
    schedule: 'x',
    task: state,
    target: 't',
    targetKind: 'postgres',
    state,
    open,
  });

  it.each([
    ['ok and never ran', 0, [check('ok'), check('never_ran')]],
    ['an open warning', 1, [check('ok'), check('warning', { critical: 0, warning: 1 })]],
    ['a run that errored, nothing worse', 3, [check('error'), check('ok')]],
    ['a warning outranks an error (check_multi)', 1, [check('error'), check('warning', { critical: 0, warning: 2 })]],
    ['a late check', 2, [check('late'), check('error')]],
    ['a missed check', 2, [check('missed')]],
    ['a critical finding still open under an error', 2, [check('error', { critical: 1, warning: 0 })]],
  ] as const)('%s → exit %d', (_label, code, checks) => {
    expect(statusExitCode({ checks: [...checks] })).toBe(code);
  });
});
