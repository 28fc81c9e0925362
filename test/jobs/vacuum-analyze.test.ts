import { Client } from 'pg';
import { vacuumAnalyze, vacuumStatement } from '../../src/jobs/vacuum-analyze';
import type { Finding, TaskResult } from '../../src/contract/result';
import { createTestDatabase, dropRoles, randomRoleName, urlFor, withClient, type TestDatabase } from '../support/db';
import { runOnPostgres } from '../support/run-task';
import { eventually } from '../support/jobs';

const databases: TestDatabase[] = [];
const role = randomRoleName('vac');

/** Every test plants its problem in a database of its own. */
async function fresh(): Promise<TestDatabase> {
  const db = await createTestDatabase('vacuum');
  databases.push(db);
  return db;
}

afterAll(async () => {
  await Promise.all(databases.map((db) => db.drop()));
  await dropRoles(role);
});

interface TableState {
  deadTuples: number;
  modsSinceAnalyze: number;
  vacuumCount: number;
  analyzeCount: number;
  lastVacuum: Date | null;
  lastAnalyze: Date | null;
  filenode: number;
}

async function state(db: TestDatabase, schema: string, table: string): Promise<TableState | undefined> {
  const { rows } = await db.pool.query<TableState>(
    `SELECT n_dead_tup::int AS "deadTuples", n_mod_since_analyze::int AS "modsSinceAnalyze",
            vacuum_count::int AS "vacuumCount", analyze_count::int AS "analyzeCount",
            last_vacuum AS "lastVacuum", last_analyze AS "lastAnalyze",
            pg_relation_filenode(relid)::int AS filenode
     FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = $2`,
    [schema, table],
  );
  return rows[0];
}

/**
 * A table with autovacuum off (so nothing but the task touches it), `rows`
 * inserted and the first `deleted` of them deleted, in a session of its own
 * whose exit flushes its statistics; waits (bounded) until they show.
 */
async function plant(db: TestDatabase, schema: string, table: string, rows: number, deleted: number): Promise<void> {
  await withClient(db.url, async (c) => {
    const name = `${c.escapeIdentifier(schema)}.${c.escapeIdentifier(table)}`;
    if (schema !== 'public') await c.query(`CREATE SCHEMA IF NOT EXISTS ${c.escapeIdentifier(schema)}`);
    await c.query(`CREATE TABLE ${name} (id int PRIMARY KEY, note text) WITH (autovacuum_enabled = false)`);
    await c.query(`INSERT INTO ${name} SELECT g, 'row ' || g FROM generate_series(1, $1::int) g`, [rows]);
    if (deleted > 0) await c.query(`DELETE FROM ${name} WHERE id <= $1`, [deleted]);
    await c.query('SELECT pg_stat_force_next_flush()');
  });
  await eventually(
    async () => {
      const s = await state(db, schema, table);
      return s && s.deadTuples === deleted && s.modsSinceAnalyze === rows + deleted ? s : undefined;
    },
    15_000,
    `statistics of ${schema}.${table}`,
  );
}

/** A table with rows that a VACUUM ANALYZE has just cleaned: it needs nothing. */
async function plantClean(db: TestDatabase, schema: string, table: string, rows = 100): Promise<void> {
  await plant(db, schema, table, rows, 0);
  await db.pool.query(`VACUUM ANALYZE ${quote.escapeIdentifier(schema)}.${quote.escapeIdentifier(table)}`);
  await eventually(async () => ((await state(db, schema, table))?.modsSinceAnalyze === 0 ? true : undefined), 15_000, 'clean statistics');
}

async function run(
  db: TestDatabase,
  opts: { allow?: boolean; params?: Record<string, unknown>; dryRun?: boolean; url?: string; lockTimeoutMs?: number; statementTimeoutMs?: number } = {},
): Promise<TaskResult> {
  return runOnPostgres(vacuumAnalyze, {
    url: opts.url ?? db.url,
    state: db.pool,
    target: {
      allow: { vacuum: opts.allow ?? true, terminateIdle: false },
      ...(opts.lockTimeoutMs ? { lockTimeoutMs: opts.lockTimeoutMs } : {}),
      ...(opts.statementTimeoutMs ? { statementTimeoutMs: opts.statementTimeoutMs } : {}),
    },
    params: opts.params,
    dryRun: opts.dryRun,
  });
}

/** A client used only to quote identifiers (never connected). */
const quote = new Client();

const byCode = (r: TaskResult, code: string): Finding[] => r.findings.filter((f) => f.code === code);

describe('vacuum-analyze', () => {
  it('builds VACUUM (ANALYZE, SKIP_LOCKED) with schema and table quoted separately, never FULL', () => {
    expect(vacuumStatement(quote, 'Sch"ema', 'We"ird Table; DROP TABLE x')).toBe(
      'VACUUM (ANALYZE, SKIP_LOCKED) "Sch""ema"."We""ird Table; DROP TABLE x"',
    );
  });

  it('vacuums the table with dead tuples, leaves the clean one alone, and says so', async () => {
    const db = await fresh();
    await plant(db, 'public', 'busy', 1000, 600);
    await plantClean(db, 'public', 'clean');
    const busyBefore = (await state(db, 'public', 'busy'))!;
    const cleanBefore = (await state(db, 'public', 'clean'))!;
    expect(busyBefore.lastVacuum).toBeNull();

    const result = await run(db);

    expect(result.summary).toMatch(/^vacuumed 1 of 2 tables, dead tuples 600 → 0$/);
    expect(result.actions).toHaveLength(1);
    const action = result.actions[0]!;
    expect(action).toMatchObject({ kind: 'vacuum_analyze', subject: 'public.busy', applied: true });
    expect(action.details).toMatchObject({ deadTuplesBefore: 600, deadTuplesAfter: 0, modsSinceAnalyzeBefore: 1600, modsSinceAnalyzeAfter: 0 });
    expect(action.details!.reasons).toEqual(['dead_tuples', 'modified', 'analyze_stale']);
    expect(action.details!.reason).toBe(
      '600 dead tuples > 50 (50 + 0.2 × 0 rows); 1,600 rows modified since the last analyze > 50 (50 + 0.1 × 0 rows); never analyzed',
    );
    expect(typeof action.durationMs).toBe('number');
    expect(result.metrics).toEqual({
      tables_total: 2,
      tables_needing_vacuum: 1,
      tables_vacuumed: 1,
      tables_skipped_locked: 0,
      tables_failed: 0,
      tables_deferred: 0,
      dead_tuples_before: 600,
      dead_tuples_after: 0,
      max_xid_age: expect.any(Number),
      vacuum_cost_delay_ms: expect.any(Number),
      vacuum_cost_limit: expect.any(Number),
    });

    const busy = (await state(db, 'public', 'busy'))!;
    expect(busy.lastVacuum).toBeInstanceOf(Date);
    expect(busy.lastAnalyze).toBeInstanceOf(Date);
    expect([busy.deadTuples, busy.vacuumCount, busy.analyzeCount]).toEqual([0, 1, 1]);
    // VACUUM FULL would have rewritten the table into a new file.
    expect(busy.filenode).toBe(busyBefore.filenode);
    expect(await state(db, 'public', 'clean')).toEqual(cleanBefore);
  });

  it('vacuums a table whose schema and name need quoting, and touches nothing else', async () => {
    const db = await fresh();
    const schema = 'Sch"ema; DROP SCHEMA public CASCADE; --';
    const table = 'We"ird Table; DROP TABLE x';
    await plant(db, schema, table, 200, 150);
    // Decoys: the names an unquoted statement would hit, empty so that the task has no reason to touch them.
    await db.pool.query('CREATE TABLE public.x (id int)');
    await db.pool.query(`CREATE TABLE public.${quote.escapeIdentifier(table)} (id int)`);
    await db.pool.query('CREATE TABLE public."Table" (id int)');

    const result = await run(db);

    expect(result.actions.map((a) => [a.subject, a.applied])).toEqual([[`${schema}.${table}`, true]]);
    expect(result.actions[0]!.details).toMatchObject({ deadTuplesBefore: 150, deadTuplesAfter: 0 });
    expect(result.summary).toMatch(/^vacuumed 1 of 4 tables/);
    const { rows } = await db.pool.query<{ schema: string; table: string; vacuums: number }>(
      `SELECT schemaname AS schema, relname AS table, vacuum_count::int AS vacuums FROM pg_stat_user_tables`,
    );
    const key = (r: { schema: string; table: string }) => `${r.schema}.${r.table}`;
    const sorted = <T extends { schema: string; table: string }>(list: T[]) => [...list].sort((a, b) => key(a).localeCompare(key(b)));
    // Every table is still there, and only the planted one was vacuumed.
    expect(sorted(rows)).toEqual(
      sorted([
        { schema, table, vacuums: 1 },
        { schema: 'public', table: 'Table', vacuums: 0 },
        { schema: 'public', table, vacuums: 0 },
        { schema: 'public', table: 'x', vacuums: 0 },
      ]),
    );
  });

  it('skips a table another session holds locked, without waiting, and vacuums the others', async () => {
    const db = await fresh();
    await plant(db, 'public', 'held', 300, 200);
    await plant(db, 'public', 'free', 300, 100);
    const holder = new Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE public.held IN ACCESS EXCLUSIVE MODE');
      const holderPid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;

      // A lock_timeout of 10 minutes: had the task waited on the lock, this test would time out.
      const result = await run(db, { lockTimeoutMs: 600_000 });

      expect(result.actions.map((a) => [a.subject, a.applied])).toEqual([
        ['public.held', false],
        ['public.free', true],
      ]);
      expect(result.actions[0]!.details).toMatchObject({ skipped: 'locked', errorCode: '55P03', deadTuplesBefore: 200 });
      const skipped = byCode(result, 'vacuum_skipped_locked');
      expect(skipped).toHaveLength(1);
      expect(skipped[0]).toMatchObject({ severity: 'warning', subject: 'public.held' });
      expect(skipped[0]!.message).toMatch(/200 dead tuples left/);
      expect(result.metrics).toMatchObject({ tables_vacuumed: 1, tables_skipped_locked: 1, dead_tuples_before: 300, dead_tuples_after: 200 });
      expect(result.summary).toBe('vacuumed 1 of 2 tables, 1 skipped (locked), dead tuples 300 → 200');
      expect(result.status).toBe('warning');
      // The task finished while the lock was still held.
      const { rows } = await db.pool.query('SELECT state FROM pg_stat_activity WHERE pid = $1', [holderPid]);
      expect(rows).toEqual([{ state: 'idle in transaction' }]);
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
    expect((await state(db, 'public', 'held'))!.vacuumCount).toBe(0);
    expect((await state(db, 'public', 'free'))!.vacuumCount).toBe(1);
  }, 20_000);

  it('raises wraparound_risk with the severity of the threshold reached', async () => {
    const db = await fresh();
    await db.pool.query('CREATE TABLE public.aging (id int)');
    const age0 = (await db.pool.query<{ age: number }>(`SELECT age(relfrozenxid) AS age FROM pg_class WHERE oid = 'public.aging'::regclass`)).rows[0]!.age;
    expect(age0).toBeGreaterThanOrEqual(1);
    // Not allowed to vacuum, so the table's xid age only grows between the runs.
    const warning = await run(db, { allow: false, params: { wraparoundWarning: age0, wraparoundCritical: age0 + 1_000_000_000 } });
    const w = byCode(warning, 'wraparound_risk');
    expect(w).toHaveLength(1);
    expect(w[0]).toMatchObject({ severity: 'warning', subject: 'public.aging' });
    expect(w[0]!.details).toMatchObject({ warning: age0, critical: age0 + 1_000_000_000 });
    expect(w[0]!.details!.xidAge).toBeGreaterThanOrEqual(age0);
    expect(warning.metrics.max_xid_age).toBe(w[0]!.details!.xidAge);
    expect(warning.status).toBe('warning');
    // A table near wraparound is on the list to vacuum, first.
    expect(warning.actions.map((a) => [a.subject, a.applied, (a.details!.reasons as string[])[0]])).toEqual([['public.aging', false, 'wraparound']]);

    const critical = await run(db, { allow: false, params: { wraparoundWarning: 1, wraparoundCritical: age0 } });
    expect(byCode(critical, 'wraparound_risk').map((f) => [f.severity, f.subject])).toEqual([['critical', 'public.aging']]);
    expect(critical.status).toBe('critical');

    const below = await run(db, { allow: false, params: { wraparoundWarning: age0 + 1_000_000_000, wraparoundCritical: age0 + 1_000_000_000 } });
    expect(byCode(below, 'wraparound_risk')).toEqual([]);
  });

  it('raises autovacuum_stale for a table past the threshold that autovacuum never reached, not for one below it', async () => {
    const db = await fresh();
    await plant(db, 'public', 'neglected', 500, 300);
    await plant(db, 'public', 'tidy', 500, 40); // 40 dead tuples: below 50 + 0.2 × 0
    const result = await run(db, { allow: false, params: { autovacuumMaxAgeHours: 0.001 } });
    const stale = byCode(result, 'autovacuum_stale');
    expect(stale.map((f) => [f.severity, f.subject])).toEqual([['warning', 'public.neglected']]);
    expect(stale[0]!.message).toBe('never autovacuumed with 300 dead tuples (threshold 50) (autovacuum_enabled = false on the table)');
    expect(stale[0]!.suggestion).toMatch(/RESET \(autovacuum_enabled\)/);
    expect(stale[0]!.details).toMatchObject({ deadTuples: 300, threshold: 50, lastAutovacuum: null, autovacuumEnabledOnTable: false });
  });

  it('finds nothing wrong and changes nothing in a clean database with the default thresholds', async () => {
    const db = await fresh();
    await plantClean(db, 'public', 'accounts');
    await plantClean(db, 'public', 'orders', 1000);
    await db.pool.query('CREATE TABLE public.empty (id int)');
    const before = await Promise.all(['accounts', 'orders', 'empty'].map((t) => state(db, 'public', t)));

    const result = await run(db);

    expect(result.findings).toEqual([]);
    expect(result.actions).toEqual([]);
    expect(result.status).toBe('ok');
    expect(result.summary).toBe('vacuumed 0 of 3 tables');
    expect(result.metrics).toMatchObject({ tables_total: 3, tables_needing_vacuum: 0, tables_vacuumed: 0, dead_tuples_before: 0, dead_tuples_after: 0 });
    expect(await Promise.all(['accounts', 'orders', 'empty'].map((t) => state(db, 'public', t)))).toEqual(before);
  });

  it('with --dry-run, lists what it would vacuum and why, and vacuums nothing', async () => {
    const db = await fresh();
    await plant(db, 'public', 'busy', 400, 300);
    const result = await run(db, { dryRun: true });
    expect(result.dryRun).toBe(true);
    expect(result.summary).toBe('dry run: would vacuum 1 of 1 tables');
    expect(result.actions).toHaveLength(1);
    expect(result.actions[0]).toMatchObject({ kind: 'vacuum_analyze', subject: 'public.busy', applied: false });
    expect(result.actions[0]!.details!.reason).toMatch(/^300 dead tuples > 50 /);
    expect(result.metrics).toMatchObject({ tables_needing_vacuum: 1, tables_vacuumed: 0, dead_tuples_before: 300, dead_tuples_after: 300 });
    expect(byCode(result, 'vacuum_not_allowed')).toEqual([]);
    const after = (await state(db, 'public', 'busy'))!;
    expect([after.lastVacuum, after.lastAnalyze, after.vacuumCount, after.deadTuples]).toEqual([null, null, 0, 300]);
  });

  it('without allow.vacuum, vacuums nothing, reports what it would do and how to allow it', async () => {
    const db = await fresh();
    await plant(db, 'public', 'busy', 400, 300);
    const result = await run(db, { allow: false });
    expect(result.summary).toBe('vacuum not allowed on this target (allow.vacuum): would vacuum 1 of 1 tables');
    expect(result.actions.map((a) => [a.subject, a.applied])).toEqual([['public.busy', false]]);
    const refused = byCode(result, 'vacuum_not_allowed');
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ severity: 'info', subject: 'main' });
    expect(refused[0]!.suggestion).toMatch(/allow: \{ vacuum: true \}/);
    const after = (await state(db, 'public', 'busy'))!;
    expect([after.lastVacuum, after.vacuumCount, after.deadTuples]).toEqual([null, 0, 300]);
  });

  it('vacuums at most maxTables tables, worst first, and leaves the rest for the next run', async () => {
    const db = await fresh();
    await plant(db, 'public', 'some', 400, 100);
    await plant(db, 'public', 'most', 400, 300);
    await plant(db, 'public', 'more', 400, 200);
    const result = await run(db, { params: { maxTables: 2 } });
    expect(result.actions.map((a) => [a.subject, a.applied])).toEqual([
      ['public.most', true],
      ['public.more', true],
    ]);
    expect(result.summary).toBe('vacuumed 2 of 3 tables, dead tuples 500 → 0, 1 more left for the next run (maxTables 2)');
    expect(result.metrics).toMatchObject({ tables_needing_vacuum: 3, tables_vacuumed: 2, tables_deferred: 1 });
    expect((await state(db, 'public', 'some'))!.vacuumCount).toBe(0);
  });

  it('aborted between tables (a worker shutting down): an error result that still lists the tables it vacuumed', async () => {
    const db = await fresh();
    await plant(db, 'public', 'some', 400, 100);
    await plant(db, 'public', 'most', 400, 300);
    await plant(db, 'public', 'more', 400, 200);
    const shutdown = new AbortController();
    // The first table's log line is written once it is vacuumed: the shutdown comes right then.
    const jobLog = async () => shutdown.abort(new Error('worker shutting down'));
    const result = await runOnPostgres(vacuumAnalyze, { url: db.url, state: db.pool, target: { allow: { vacuum: true, terminateIdle: false } }, signal: shutdown.signal, jobLog });
    expect(result.status).toBe('error');
    expect(result.summary).toBe('vacuum-analyze failed on main: worker shutting down (after 1 change: see actions)');
    expect(result.actions.map((a) => [a.kind, a.subject, a.applied])).toEqual([['vacuum_analyze', 'public.most', true]]);
    // The task stopped between tables: the others were left for the next run.
    await eventually(async () => ((await state(db, 'public', 'most'))!.vacuumCount === 1 ? true : undefined), 10_000, 'the vacuum of public.most to show');
    expect((await state(db, 'public', 'more'))!.vacuumCount).toBe(0);
    expect((await state(db, 'public', 'some'))!.vacuumCount).toBe(0);
  });

  it('runs each VACUUM under vacuumTimeoutMs instead of the session\'s statement timeout', async () => {
    const db = await fresh();
    // ANALYZE evaluates an expression index on every sampled row: here 5 rows × 0.3 s of sleep, so at least 1.5 s.
    await db.pool.query(`CREATE FUNCTION public.slow_key(x int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.3); RETURN x; END $$`);
    await db.pool.query('CREATE TABLE public.slow (id int) WITH (autovacuum_enabled = false)');
    await db.pool.query('CREATE INDEX slow_key ON public.slow (public.slow_key(id))');
    // Inserted by a session that exits, which flushes its statistics at once.
    await withClient(db.url, (c) => c.query('INSERT INTO public.slow SELECT generate_series(1, 5)'));
    await eventually(async () => ((await state(db, 'public', 'slow'))?.modsSinceAnalyze === 5 ? true : undefined), 15_000, 'statistics');

    // 1 s is too short for it: the VACUUM ANALYZE is cancelled and reported, the run goes on.
    const short = await run(db, { params: { vacuumTimeoutMs: 1_000 } });
    expect(short.actions.map((a) => [a.subject, a.applied, a.details!.errorCode])).toEqual([['public.slow', false, '57014']]);
    const failed = byCode(short, 'vacuum_failed');
    expect(failed.map((f) => [f.severity, f.subject])).toEqual([['warning', 'public.slow']]);
    expect(failed[0]!.message).toMatch(/canceling statement due to statement timeout/);
    expect(failed[0]!.suggestion).toMatch(/vacuumTimeoutMs/);
    expect((await state(db, 'public', 'slow'))!.analyzeCount).toBe(0);

    // The session's own statement timeout (250 ms) would cancel it too; the VACUUM's own (60 s) lets it finish.
    const long = await run(db, { statementTimeoutMs: 250, params: { vacuumTimeoutMs: 60_000 } });
    expect(long.findings).toEqual([]);
    expect(long.actions.map((a) => [a.subject, a.applied])).toEqual([['public.slow', true]]);
    expect(long.summary).toBe('vacuumed 1 of 1 tables, dead tuples 0 → 0');
    expect((await state(db, 'public', 'slow'))!.analyzeCount).toBe(1);
  });

  it("paces its VACUUMs as autovacuum does (a manual VACUUM is unthrottled), or as the params say, and the server confirms it", async () => {
    const db = await fresh();
    await plant(db, 'public', 'paced', 300, 100);
    const server = (await db.pool.query<{ delay: number; limit: number; vacuumLimit: number }>(
      `SELECT (SELECT setting::float8 FROM pg_settings WHERE name = 'autovacuum_vacuum_cost_delay') AS delay,
              (SELECT setting::int FROM pg_settings WHERE name = 'autovacuum_vacuum_cost_limit') AS "limit",
              (SELECT setting::int FROM pg_settings WHERE name = 'vacuum_cost_limit') AS "vacuumLimit"`,
    )).rows[0]!;
    const byDefault = await run(db);
    expect(byDefault.metrics.tables_vacuumed).toBe(1);
    // The figures are what set_config answered in the VACUUMs' own session, not what was asked.
    expect(byDefault.metrics).toMatchObject({ vacuum_cost_delay_ms: server.delay, vacuum_cost_limit: server.limit > 0 ? server.limit : server.vacuumLimit });
    expect(byDefault.metrics.vacuum_cost_delay_ms).toBeGreaterThan(0);

    await plant(db, 'public', 'paced_again', 300, 100);
    const tuned = await run(db, { params: { costDelayMs: 0.5, costLimit: 1000 } });
    expect(tuned.metrics).toMatchObject({ vacuum_cost_delay_ms: 0.5, vacuum_cost_limit: 1000 });

    await plant(db, 'public', 'unthrottled', 300, 100);
    expect((await run(db, { params: { costDelayMs: 0 } })).metrics).toMatchObject({ vacuum_cost_delay_ms: 0 });
    // Nothing to vacuum: no session was paced, no figure is made up.
    expect((await run(db)).metrics.vacuum_cost_delay_ms).toBeUndefined();
  });

  it('sends one statement per table beyond a fixed few: the VACUUM timeout is set once per run, not around each table', async () => {
    const one = await fresh();
    await plant(one, 'public', 't1', 300, 100);
    const three = await fresh();
    for (const t of ['t1', 't2', 't3']) await plant(three, 'public', t, 300, 100);
    const spy = jest.spyOn(Client.prototype, 'query');
    try {
      spy.mockClear();
      const forOne = await run(one);
      const queriesForOne = spy.mock.calls.length;
      spy.mockClear();
      const forThree = await run(three);
      const queriesForThree = spy.mock.calls.length;
      expect([forOne.metrics.tables_vacuumed, forThree.metrics.tables_vacuumed]).toEqual([1, 3]);
      expect(queriesForThree - queriesForOne).toBe(2);
    } finally {
      spy.mockRestore();
    }
  });

  it('reports vacuum_failed when the role it connects as may not vacuum the table', async () => {
    const db = await fresh();
    await plant(db, 'public', 'owned', 300, 200);
    await db.pool.query(`CREATE ROLE ${role} LOGIN`);
    const result = await run(db, { url: urlFor(db.name, role) });
    expect(result.actions.map((a) => [a.subject, a.applied])).toEqual([['public.owned', false]]);
    expect(result.actions[0]!.details).toMatchObject({ skipped: 'failed' });
    const failed = byCode(result, 'vacuum_failed');
    expect(failed.map((f) => [f.severity, f.subject])).toEqual([['warning', 'public.owned']]);
    expect(failed[0]!.message).toMatch(/only table or database owner can vacuum it/);
    expect(failed[0]!.suggestion).toMatch(/table owner/);
    expect(result.metrics).toMatchObject({ tables_vacuumed: 0, tables_failed: 1 });
    expect(result.summary).toBe('vacuumed 0 of 1 tables, 1 failed');
    expect((await state(db, 'public', 'owned'))!.vacuumCount).toBe(0);
  });
});
