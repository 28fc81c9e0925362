import { ResultStore } from '../../src/results/store';
import { migrate } from '../../src/results/migrate';
import { MIGRATIONS } from '../../src/results/migrations';
import type { TaskResult } from '../../src/contract/result';
import { historyPrune } from '../../src/jobs/history-prune';
import { targetsOf } from '../../src/config/targets';
import { testConfig } from '../support/config';
import { runTask } from '../../src/worker/run-task';
import { preparedRun } from '../support/run-task';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { testLogger } from '../support/logger';

let db: TestDatabase;
let store: ResultStore;

beforeAll(async () => {
  db = await createTestDatabase('store');
  store = new ResultStore(db.pool);
});
afterAll(() => db.drop());

function result(overrides: Partial<TaskResult> = {}): TaskResult {
  const finishedAt = overrides.finishedAt ?? new Date().toISOString();
  return {
    task: 'connections',
    target: 'main',
    status: 'warning',
    startedAt: finishedAt,
    finishedAt,
    durationMs: 12,
    dryRun: false,
    summary: 'two findings',
    findings: [
      { severity: 'warning', code: 'idle_in_transaction', subject: 'main', message: '1 session', details: { count: 1 } },
      { severity: 'info', code: 'idle_connections', subject: 'main', message: '2 sessions', suggestion: 'pool less' },
    ],
    actions: [],
    metrics: { connections_used: 7 },
    ...overrides,
  };
}

describe('migrations', () => {
  it('applies each migration once, also when replicas race', async () => {
    const applied = await Promise.all([migrate(db.pool), migrate(db.pool), migrate(db.pool)]);
    expect(applied.map((a) => a.length).sort()).toEqual([0, 0, MIGRATIONS.length]);
    const { rows } = await db.pool.query('SELECT version FROM caretaker.schema_migrations ORDER BY version');
    expect(rows.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
  });
});

describe('ResultStore', () => {
  // Alone, a test here still finds the schema (migrate is idempotent after the migrations test).
  beforeAll(() => migrate(db.pool));

  it('stores a run and one row per finding', async () => {
    expect(await store.save(result(), { jobId: 'job-1', schedule: 'daily' })).toBe(true);
    const { rows } = await db.pool.query(
      `SELECT f.severity, f.code, f.suggestion, f.details FROM caretaker.findings f JOIN caretaker.runs r ON r.id = f.run_id WHERE r.job_id = 'job-1' ORDER BY f.code`,
    );
    expect(rows).toEqual([
      { severity: 'info', code: 'idle_connections', suggestion: 'pool less', details: null },
      { severity: 'warning', code: 'idle_in_transaction', suggestion: null, details: { count: 1 } },
    ]);
  });

  it('stores a job once, however often it is saved', async () => {
    expect(await store.save(result(), { jobId: 'job-2' })).toBe(true);
    expect(await store.save(result(), { jobId: 'job-2' })).toBe(false);
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM caretaker.findings f JOIN caretaker.runs r ON r.id = f.run_id WHERE r.job_id = 'job-2'`);
    expect(rows[0].n).toBe(2);
  });

  it('lists runs filtered by task, status and time, newest first', async () => {
    // The two connections runs the tests above store (a job is stored once: saved again here, alone, it is the same run).
    await store.save(result({ finishedAt: new Date(Date.now() - 120_000).toISOString() }), { jobId: 'job-1' });
    await store.save(result({ finishedAt: new Date(Date.now() - 60_000).toISOString() }), { jobId: 'job-2' });
    await store.save(result({ task: 'other', status: 'ok', findings: [] }), { jobId: 'job-3' });
    await store.save(result({ finishedAt: '2020-01-01T00:00:00.000Z' }), { jobId: 'job-old' });
    expect((await store.list({ task: 'other' })).map((r) => r.jobId)).toEqual(['job-3']);
    expect((await store.list({ status: 'ok' })).map((r) => r.jobId)).toEqual(['job-3']);
    const recent = await store.list({ task: 'connections', since: new Date(Date.now() - 3600_000) });
    expect(recent.map((r) => r.jobId)).toEqual(['job-2', 'job-1']);
    expect(recent[0]!.result.metrics).toEqual({ connections_used: 7 });
  });

  it('history-prune deletes runs and findings past the retention', async () => {
    // The one run past the retention (a job is stored once: after the listing test, this is its run).
    await store.save(result({ finishedAt: '2020-01-01T00:00:00.000Z' }), { jobId: 'job-old' });
    await db.pool.query(`INSERT INTO caretaker.notifier_failures (channel, error, failed_at) VALUES ('webhook', 'old', now() - interval '31 days'), ('webhook', 'new', now())`);
    await db.pool.query(`INSERT INTO caretaker.missed_runs (schedule, task, target, due_at, detected_at) VALUES ('daily', 'x', 'y', now() - interval '40 days', now() - interval '40 days')`);
    const before = await db.pool.query(`SELECT count(*)::int AS n FROM caretaker.runs`);
    const run = await runTask({ run: preparedRun(historyPrune, testConfig({ dbUrl: db.url, prefix: 'unused', state: { url: db.url, retentionDays: 30 } }), 'caretaker'), dryRun: false, log: testLogger, state: db.pool });
    expect(run).toMatchObject({ status: 'ok', summary: 'deleted 1 runs older than 30 days', metrics: { history_runs_deleted: 1 } });
    const after = await db.pool.query(`SELECT count(*)::int AS n FROM caretaker.runs`);
    expect(after.rows[0].n).toBe(before.rows[0].n - 1);
    expect((await db.pool.query(`SELECT error FROM caretaker.notifier_failures`)).rows).toEqual([{ error: 'new' }]);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM caretaker.missed_runs`)).rows[0].n).toBe(0);
    const orphans = await db.pool.query(`SELECT count(*)::int AS n FROM caretaker.findings f LEFT JOIN caretaker.runs r ON r.id = f.run_id WHERE r.id IS NULL`);
    expect(orphans.rows[0].n).toBe(0);
    expect(await store.list({ since: new Date('2019-01-01') })).not.toContainEqual(expect.objectContaining({ jobId: 'job-old' }));
  });
});
