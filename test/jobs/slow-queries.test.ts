import { slowQueries } from '../../src/jobs/slow-queries';
import type { Finding, TaskResult } from '../../src/contract/result';
import { createTestDatabase, dropRoles, randomRoleName, urlFor, type TestDatabase } from '../support/db';
import { runOnPostgres } from '../support/run-task';

/**
 * pg_stat_statements is preloaded on the test server and counts every
 * database's statements; each database here is new, so its entries are only
 * what this file runs in it.
 */
let db: TestDatabase;
let other: TestDatabase;
const role = randomRoleName('ssq');

/** Lowered thresholds, so ~30 calls of a few ms make a slow statement. */
const LOW = { minMeanMs: 2, minCalls: 20 };
/** Everything is "slow": the slow_query findings then list every statement of one snapshot. */
const ALL = { minMeanMs: 0, minCalls: 1, maxSlowFindings: 1000 };

interface Statement {
  queryid: string;
  query: string;
  calls: number;
  totalMs: number;
  meanMs: number;
  rows: number;
}

/** Runs a statement n times, literals inline (simple protocol), as an application would. */
async function repeat(target: TestDatabase, sql: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await target.pool.query(sql);
}

function run(params: Record<string, unknown>, on: TestDatabase = db, user?: string): Promise<TaskResult> {
  return runOnPostgres(slowQueries, { url: urlFor(on.name, user), state: db.pool, params });
}

const slowFindings = (r: TaskResult) => r.findings.filter((f) => f.code === 'slow_query');
const withText = (r: TaskResult, marker: string) => slowFindings(r).filter((f) => String(f.details!.query).includes(marker));
const top = (r: TaskResult) => r.findings.find((f) => f.code === 'top_statements')!.details as { byMean: Statement[]; byTotal: Statement[]; statsReset: string | null };

beforeAll(async () => {
  db = await createTestDatabase('slowq');
  other = await createTestDatabase('slowq_other');
  await db.pool.query('CREATE EXTENSION pg_stat_statements');
  // Slow on average and called often enough (with LOW): pg_sleep's argument is a lower bound.
  await repeat(db, 'SELECT pg_sleep(0.003) AS slow_marker, 424242 AS n', 30);
  // Slower still, but too rare to be flagged.
  await repeat(db, 'SELECT pg_sleep(0.02) AS rare_marker', 3);
  // Fast and frequent.
  await repeat(db, 'SELECT 17 + 25 AS fast_marker', 150);
  // Utility statements keep their literals in pg_stat_statements (PostgreSQL 15).
  await db.pool.query('CREATE TABLE planted (id int)');
  await db.pool.query(`COMMENT ON TABLE planted IS 'ct secret 424244'`);
  await db.pool.query('DO $$BEGIN PERFORM 424243; END$$');
  // The same slow statement in another database (which has no extension).
  await repeat(other, 'SELECT pg_sleep(0.003) AS other_db_marker', 30);
  await db.pool.query(`CREATE ROLE ${role} LOGIN`);
});

afterAll(async () => {
  await db.drop();
  await other.drop();
  await dropRoles(role);
});

describe('slow-queries', () => {
  it('flags the slow statement with its calls, mean and normalised text, nothing else', async () => {
    const result = await run({ ...LOW });
    expect(result.status).toBe('warning');
    const slow = slowFindings(result);
    expect(slow).toHaveLength(1);
    const f = slow[0]!;
    expect(f).toMatchObject({ severity: 'warning', code: 'slow_query' });
    expect(f.details).toMatchObject({ query: 'SELECT pg_sleep($1) AS slow_marker, $2 AS n', calls: 30, rows: 30, rowsPerCall: 1 });
    expect(f.details!.meanMs as number).toBeGreaterThanOrEqual(3);
    expect(f.details!.totalMs as number).toBeGreaterThanOrEqual(90);
    expect(JSON.stringify(f)).not.toMatch(/424242|0\.003/);
    // Subject: the statement's queryid, as pg_stat_statements has it.
    const { rows } = await db.pool.query(`SELECT queryid::text FROM pg_stat_statements WHERE query LIKE '%slow_marker%' AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`);
    expect(rows).toHaveLength(1);
    expect(f.subject).toBe(rows[0].queryid);
    expect(f.message).toMatch(/^mean \d+(\.\d)? ms over 30 calls, total [^(]+ \(\d+(\.\d)? % of all statement time\): SELECT pg_sleep\(\$1\) AS slow_marker/);
    expect(result.metrics.slow_queries).toBe(1);
    expect(result.summary).toMatch(/^1 slow statements \(mean ≥ 2 ms over ≥ 20 calls\) of \d+ tracked in ct_slowq_/);
  });

  it('does not flag the fast frequent statement nor the slow rare one', async () => {
    const result = await run({ ...LOW, top: 100 });
    const all = [...top(result).byMean];
    const fast = all.find((s) => s.query.includes('fast_marker'))!;
    const rare = all.find((s) => s.query.includes('rare_marker'))!;
    // The task sees them: 150 calls fast, 3 calls rare with a mean above the threshold.
    expect(fast).toMatchObject({ query: 'SELECT $1 + $2 AS fast_marker', calls: 150 });
    expect(rare).toMatchObject({ calls: 3 });
    expect(rare.meanMs).toBeGreaterThanOrEqual(20);
    expect(withText(result, 'fast_marker')).toEqual([]);
    expect(withText(result, 'rare_marker')).toEqual([]);
  });

  it('gives no false positive at the default thresholds (20 ms over 100 calls)', async () => {
    const result = await run({});
    expect(slowFindings(result)).toEqual([]);
    expect(result.status).toBe('ok');
    expect(result.metrics.slow_queries).toBe(0);
    expect(result.metrics.statements_tracked).toBeGreaterThanOrEqual(7);
    // The top lists are there all the same, as an info finding.
    expect(result.findings.map((f) => [f.code, f.severity])).toEqual([['top_statements', 'info']]);
  });

  it('leaves out the statements of the server\'s other databases', async () => {
    // They are there in pg_stat_statements (so this test can fail)...
    const { rows } = await db.pool.query<{ calls: string }>(
      `SELECT calls FROM pg_stat_statements WHERE query = 'SELECT pg_sleep($1) AS other_db_marker' AND dbid = (SELECT oid FROM pg_database WHERE datname = $1)`,
      [other.name],
    );
    expect(rows.map((r) => Number(r.calls))).toEqual([30]);
    // ...and slow enough to be flagged, were they of this database.
    const result = await run({ ...ALL, top: 100 });
    const texts = [...slowFindings(result).map((f) => String(f.details!.query)), ...top(result).byMean.map((s) => s.query)];
    expect(texts.some((t) => t.includes('slow_marker'))).toBe(true);
    expect(texts.filter((t) => t.includes('other_db_marker'))).toEqual([]);
  });

  it('orders the top lists by mean and by total time, bounded to N', async () => {
    // One run: the slow_query findings (every statement, with ALL) and the top lists come from one snapshot.
    const result = await run({ ...ALL, top: 3 });
    const every = slowFindings(result).map((f) => f.details as unknown as Statement);
    expect(every.length).toBe(result.metrics.statements_tracked);
    expect(every.length).toBeGreaterThan(3);
    const ids = (list: Statement[]) => list.map((s) => s.queryid);
    // Descending by the figure; ties by queryid, as the SQL does.
    const by = (key: 'meanMs' | 'totalMs') => (a: Statement, b: Statement) => b[key] - a[key] || (BigInt(a.queryid) < BigInt(b.queryid) ? -1 : 1);
    const { byMean, byTotal } = top(result);
    expect(ids(byMean)).toEqual(ids([...every].sort(by('meanMs')).slice(0, 3)));
    expect(ids(byTotal)).toEqual(ids([...every].sort(by('totalMs')).slice(0, 3)));
    // slow_query findings come costliest first.
    expect(ids(every)).toEqual(ids([...every].sort(by('totalMs'))));
    expect(result.metrics.slowest_mean_ms).toBe(byMean[0]!.meanMs);
    // The planted statements where they must be relative to each other.
    const rank = (list: Statement[], marker: string) => list.findIndex((s) => s.query.includes(marker));
    const full = top(await run({ ...LOW, top: 100 }));
    expect(rank(full.byMean, 'rare_marker')).toBeLessThan(rank(full.byMean, 'slow_marker'));
    expect(rank(full.byMean, 'slow_marker')).toBeLessThan(rank(full.byMean, 'fast_marker'));
    expect(rank(full.byTotal, 'slow_marker')).toBeLessThan(rank(full.byTotal, 'fast_marker'));
  });

  it('caps the slow_query findings, keeping the costliest, while the metric counts them all', async () => {
    const result = await run({ ...ALL, maxSlowFindings: 2 });
    expect(slowFindings(result).map((f) => f.subject)).toEqual(top(result).byTotal.slice(0, 2).map((s) => s.queryid));
    expect(result.metrics.slow_queries).toBe(result.metrics.statements_tracked);
    expect(result.metrics.slow_queries).toBeGreaterThan(2);
  });

  it('redacts the literals utility statements keep, and cuts long texts', async () => {
    // pg_stat_statements itself holds the literals (so this test can fail).
    const { rows } = await db.pool.query<{ query: string }>(`SELECT query FROM pg_stat_statements WHERE query LIKE '%42424_%' AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`);
    expect(rows.map((r) => r.query).sort()).toEqual([`COMMENT ON TABLE planted IS 'ct secret 424244'`, 'DO $$BEGIN PERFORM 424243; END$$']);
    const result = await run({ ...ALL, top: 100 });
    const texts = slowFindings(result).map((f) => String(f.details!.query));
    expect(texts).toContain(`COMMENT ON TABLE planted IS '…'`);
    expect(texts).toContain('DO $$…$$');
    // Every text a result carries: details (slow_query, both top lists) and messages.
    const { byMean, byTotal } = top(result);
    const shown = [...texts, ...byMean.map((s) => s.query), ...byTotal.map((s) => s.query), ...result.findings.map((f) => f.message), result.summary];
    expect(shown.filter((t) => /42424\d|ct secret/.test(t))).toEqual([]);

    const cut = await run({ ...LOW, maxQueryLength: 20 });
    expect(slowFindings(cut)[0]!.details!.query).toBe('SELECT pg_sleep($1)…');
  });

  it('reports when the statistics were last reset', async () => {
    const result = await run({});
    const { rows } = await db.pool.query<{ reset: Date }>('SELECT stats_reset AS reset FROM pg_stat_statements_info');
    expect(top(result).statsReset).toBe(rows[0]!.reset.toISOString());
    expect(result.summary).toContain(`stats since ${rows[0]!.reset.toISOString().slice(0, 16).replace('T', ' ')} UTC`);
    expect(result.metrics.stats_age_seconds).toBeGreaterThanOrEqual(0);
  });

  it('without the extension in the database: ok, with how to enable it', async () => {
    const result = await run({}, other);
    expect(result.status).toBe('ok');
    expect(result.findings).toEqual<Finding[]>([
      {
        severity: 'info',
        code: 'pg_stat_statements_missing',
        subject: 'pg_stat_statements',
        message: `pg_stat_statements is not installed in database ${other.name}`,
        // This server preloads it: only CREATE EXTENSION is missing.
        suggestion: 'It is preloaded already: run CREATE EXTENSION pg_stat_statements in this database',
        details: { database: other.name, created: false, preloaded: true },
      },
    ]);
    expect(result.summary).toBe(`pg_stat_statements is not installed in ${other.name}: no query statistics to check`);
    expect(result.metrics).toEqual({});
  });

  it('reads an older extension (1.7: total_time, no pg_stat_statements_info) in a schema of its own', async () => {
    const old = await createTestDatabase('slowq_old');
    try {
      await old.pool.query('CREATE SCHEMA "Stats"');
      await old.pool.query(`CREATE EXTENSION pg_stat_statements SCHEMA "Stats" VERSION '1.7'`);
      await repeat(old, 'SELECT pg_sleep(0.003) AS old_marker', 25);
      const result = await run({ ...LOW }, old);
      expect(slowFindings(result).map((f) => [f.details!.query, f.details!.calls])).toEqual([['SELECT pg_sleep($1) AS old_marker', 25]]);
      expect(slowFindings(result)[0]!.details!.meanMs as number).toBeGreaterThanOrEqual(3);
      expect(top(result).statsReset).toBeNull();
      expect(result.metrics.stats_age_seconds).toBeUndefined();
      expect(result.summary).not.toMatch(/stats since/);
    } finally {
      await old.drop();
    }
  });

  it('as a role without pg_read_all_stats: says what it cannot see', async () => {
    const result = await run({ ...LOW }, db, role);
    expect(result.status).toBe('ok');
    const hidden = result.findings.find((f) => f.code === 'pg_stat_statements_hidden')!;
    expect(hidden).toMatchObject({ severity: 'info', subject: 'pg_stat_statements', suggestion: 'GRANT pg_read_all_stats TO the role caretaker connects as' });
    expect(hidden.details!.hidden as number).toBeGreaterThanOrEqual(7);
    expect(result.metrics.statements_hidden).toBe(hidden.details!.hidden);
    expect(slowFindings(result)).toEqual([]);
  });
});
