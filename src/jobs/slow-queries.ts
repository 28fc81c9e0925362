/**
 * slow-queries (weekly): the runbook's "slow queries (pg_stat_statements)".
 * Reads pg_stat_statements for the target's own database only: the top
 * statements by mean and by total execution time, and a `slow_query` finding
 * for each statement slow on average over enough calls (PgHero's defaults:
 * 20 ms over 100 calls). Read-only. Without the extension the run is `ok`
 * with an info finding that says how to enable it.
 *
 * Query texts are pg_stat_statements' own normalised texts ($1, $2 for
 * constants). Utility statements (COMMENT, DO, SET, ALTER ROLE ... PASSWORD)
 * keep their literals there before PostgreSQL 16, so string literals left in
 * a text are redacted too, before it reaches a result, a log or a report.
 */
import { z } from 'zod';
import type { Client } from 'pg';
import { defineTask, type FindingCodes, type TaskOutcome } from '../contract/task';
import type { Finding } from '../contract/result';
import { formatDuration, formatPercent, oneLine } from '../util/format';

export const SQL = {
  /** Where the extension is, which column names its version has, whether the library is preloaded (null: not visible to us). */
  probe: `
    SELECT current_database() AS database,
           (SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries') AS preload,
           e.schema, e.version, e."execColumns", e."hasInfo"
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (
      SELECT n.nspname AS schema, x.extversion AS version,
             EXISTS (SELECT 1 FROM pg_attribute a
                     WHERE a.attrelid = to_regclass(format('%I.pg_stat_statements', n.nspname))
                       AND a.attname = 'total_exec_time' AND NOT a.attisdropped) AS "execColumns",
             to_regclass(format('%I.pg_stat_statements_info', n.nspname)) IS NOT NULL AS "hasInfo"
      FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace
      WHERE x.extname = 'pg_stat_statements'
    ) AS e ON true`,
} as const;

/** The entries of this database only: the server's other databases are other targets. */
const THIS_DATABASE = `dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`;

/** Column names: 1.8+ (PostgreSQL 13+) says total_exec_time, older versions total_time. */
const COLUMNS = {
  exec: { total: 'total_exec_time', max: 'max_exec_time' },
  legacy: { total: 'total_time', max: 'max_time' },
} as const;

/**
 * Entries we may not read (other roles' statements without pg_read_all_stats
 * have a NULL queryid and no text), and when the stats were last reset (1.9+).
 */
export function overviewSql(schema: string, hasInfo: boolean): string {
  const hidden = `(SELECT count(*) FILTER (WHERE queryid IS NULL)::int FROM ${schema}.pg_stat_statements WHERE ${THIS_DATABASE})`;
  return hasInfo
    ? `SELECT ${hidden} AS hidden, i.stats_reset AS "statsReset", i.dealloc::float8 AS dealloc FROM ${schema}.pg_stat_statements_info AS i`
    : `SELECT ${hidden} AS hidden, NULL::timestamptz AS "statsReset", NULL::float8 AS dealloc`;
}

/**
 * One row per statement (queryid, summed over roles) that is in the top $4
 * by mean or by total time, or among the first $5 slow ones (mean ≥ $2 ms
 * over ≥ $3 calls, costliest first); each row carries the whole database's
 * counts. Texts are cut to $1 characters on the server.
 */
export function statementsSql(schema: string, columns: { total: string; max: string }): string {
  return `
    WITH s AS (
      SELECT queryid, min(query) AS query,
             sum(calls)::float8 AS calls, sum(${columns.total})::float8 AS total_ms,
             sum(rows)::float8 AS rows, max(${columns.max})::float8 AS max_ms,
             array_agg(DISTINCT userid::regrole::text) AS users
      FROM ${schema}.pg_stat_statements
      WHERE ${THIS_DATABASE} AND queryid IS NOT NULL AND calls > 0
      GROUP BY queryid
    ), flagged AS (
      SELECT s.*, s.total_ms / s.calls AS mean_ms, (s.total_ms / s.calls >= $2 AND s.calls >= $3) AS slow FROM s
    ), numbered AS (
      SELECT f.*,
             row_number() OVER (ORDER BY mean_ms DESC, queryid) AS by_mean,
             row_number() OVER (ORDER BY total_ms DESC, queryid) AS by_total,
             row_number() OVER (PARTITION BY slow ORDER BY total_ms DESC, queryid) AS slow_rank,
             count(*) OVER () AS statements,
             count(*) FILTER (WHERE slow) OVER () AS slow_count,
             sum(total_ms) OVER () AS all_total_ms
      FROM flagged AS f
    )
    SELECT queryid::text AS queryid, left(query, $1) AS query, length(query) > $1 AS cut, calls, total_ms AS "totalMs",
           mean_ms AS "meanMs", max_ms AS "maxMs", rows, users, by_mean::int AS "byMean",
           by_total::int AS "byTotal", slow AND slow_rank <= $5 AS reported, statements::int, slow_count::int AS "slowCount",
           all_total_ms AS "allTotalMs"
    FROM numbered
    WHERE by_mean <= $4 OR by_total <= $4 OR (slow AND slow_rank <= $5)
    ORDER BY by_total`;
}

interface Probe {
  database: string;
  preload: string | null;
  schema: string | null;
  version: string | null;
  execColumns: boolean | null;
  hasInfo: boolean | null;
}

interface StatementRow {
  queryid: string;
  query: string;
  cut: boolean;
  calls: number;
  totalMs: number;
  meanMs: number;
  maxMs: number;
  rows: number;
  users: string[];
  byMean: number;
  byTotal: number;
  /** Slow and among the first maxSlowFindings: gets a finding. */
  reported: boolean;
  statements: number;
  slowCount: number;
  allTotalMs: number;
}

const codes = {
  slow_query: 'a statement whose mean time reaches `minMeanMs` over at least `minCalls` calls (at most `maxSlowFindings`)',
  top_statements: "the database's `top` statements by mean and by total time, from pg_stat_statements",
  pg_stat_statements_missing: 'pg_stat_statements is not installed, or created but not loaded: no query statistics to check',
  pg_stat_statements_hidden: 'statements of other roles the role may not see (it lacks pg_read_all_stats): left out',
} satisfies FindingCodes;
type Code = keyof typeof codes;

const params = z.strictObject({
  /** How many statements each top list (by mean, by total time) holds. */
  top: z.number().int().min(1).max(100).default(10),
  /** A statement is slow when its mean execution time reaches this (ms)... */
  minMeanMs: z.number().min(0).default(20),
  /** ...over at least this many calls. */
  minCalls: z.number().int().min(1).default(100),
  /** Query texts in results are cut to this many characters. */
  maxQueryLength: z.number().int().min(20).max(10_000).default(200),
  /** At most this many `slow_query` findings (the costliest by total time); the metric counts them all. */
  maxSlowFindings: z.number().int().min(1).max(1000).default(50),
});

const ENABLE_SUGGESTION =
  "Add pg_stat_statements to shared_preload_libraries (keep the libraries already listed), restart PostgreSQL, then run CREATE EXTENSION pg_stat_statements in this database";

export const slowQueries = defineTask({
  name: 'slow-queries',
  description: 'Slowest statements of the database by mean and total time, from pg_stat_statements; flags the slow ones',
  target: 'postgres',
  defaultSchedule: 'weekly',
  timeoutMs: 2 * 60_000,
  changesTarget: false,
  params,
  codes,
  async run(ctx, p) {
    const db = await ctx.clients.postgres();
    const probe = (await db.query<Probe>(SQL.probe)).rows[0]!;
    const preloaded = probe.preload === null ? null : isPreloaded(probe.preload);
    if (probe.schema === null) return missing(probe.database, false, preloaded);

    const schema = db.escapeIdentifier(probe.schema);
    let overview: { hidden: number; statsReset: Date | null; dealloc: number | null };
    let rows: StatementRow[];
    try {
      overview = (await db.query(overviewSql(schema, probe.hasInfo === true))).rows[0];
      const columns = probe.execColumns ? COLUMNS.exec : COLUMNS.legacy;
      rows = (await db.query<StatementRow>(statementsSql(schema, columns), [p.maxQueryLength, p.minMeanMs, p.minCalls, p.top, p.maxSlowFindings])).rows;
    } catch (err) {
      if (!notLoaded(err)) throw err;
      return missing(probe.database, true, false);
    }

    const tracked = rows[0]?.statements ?? 0;
    const slowCount = rows[0]?.slowCount ?? 0;
    const allTotalMs = rows[0]?.allTotalMs ?? 0;
    const statsReset = overview.statsReset ? overview.statsReset.toISOString() : null;
    const statsAgeSeconds = overview.statsReset ? Math.max(0, Math.round((Date.now() - overview.statsReset.getTime()) / 1000)) : null;
    const statement = (r: StatementRow) => ({
      queryid: r.queryid,
      query: displayText(r.query, r.cut),
      calls: r.calls,
      totalMs: r.totalMs,
      meanMs: r.meanMs,
      maxMs: r.maxMs,
      rows: r.rows,
      rowsPerCall: r.rows / r.calls,
      shareOfTotal: allTotalMs > 0 ? r.totalMs / allTotalMs : 0,
      users: r.users,
    });

    const findings: Finding<Code>[] = [];
    for (const r of rows.filter((row) => row.reported)) {
      const s = statement(r);
      findings.push({
        severity: 'warning',
        code: 'slow_query',
        subject: r.queryid,
        message: `mean ${ms(r.meanMs)} over ${r.calls} calls, total ${ms(r.totalMs)} (${pct(s.shareOfTotal)} of all statement time): ${oneLine(s.query, 80)}`,
        suggestion: 'EXPLAIN (ANALYZE, BUFFERS) it with typical values: look for sequential scans of large tables (index-audit), rows fetched then thrown away, or a result worth caching',
        details: { ...s, thresholds: { minMeanMs: p.minMeanMs, minCalls: p.minCalls } },
      });
    }
    const byMean = rows.filter((r) => r.byMean <= p.top).sort((a, b) => a.byMean - b.byMean);
    const byTotal = rows.filter((r) => r.byTotal <= p.top); // already in that order
    if (tracked > 0) {
      const [m, t] = [byMean[0]!, byTotal[0]!];
      findings.push({
        severity: 'info',
        code: 'top_statements',
        subject: probe.database,
        message: `costliest in total: queryid ${t.queryid} (${ms(t.totalMs)}, ${pct(statement(t).shareOfTotal)} of all); slowest on average: queryid ${m.queryid} (mean ${ms(m.meanMs)} over ${m.calls} calls)`,
        details: {
          database: probe.database,
          statementsTracked: tracked,
          totalMs: allTotalMs,
          statsReset,
          /** Entries evicted since the reset because pg_stat_statements.max was reached (1.9+). */
          dealloc: overview.dealloc,
          byMean: byMean.map(statement),
          byTotal: byTotal.map(statement),
        },
      });
    }
    if (overview.hidden > 0) {
      findings.push({
        severity: 'info',
        code: 'pg_stat_statements_hidden',
        subject: 'pg_stat_statements',
        message: `cannot see ${overview.hidden} statements of other roles in ${probe.database}: they are left out`,
        suggestion: 'GRANT pg_read_all_stats TO the role caretaker connects as',
        details: { hidden: overview.hidden },
      });
    }

    const since = statsReset ? `; stats since ${statsReset.slice(0, 16).replace('T', ' ')} UTC (${formatDuration(statsAgeSeconds! * 1000)})` : '';
    const slowest = tracked > 0 ? `; slowest mean ${ms(byMean[0]!.meanMs)} (queryid ${byMean[0]!.queryid})` : '';
    const metrics: Record<string, number> = {
      statements_tracked: tracked,
      slow_queries: slowCount,
      statements_hidden: overview.hidden,
    };
    if (tracked > 0) metrics.slowest_mean_ms = byMean[0]!.meanMs;
    if (statsAgeSeconds !== null) metrics.stats_age_seconds = statsAgeSeconds;
    ctx.log.info({ tracked, slow: slowCount, version: probe.version, dealloc: overview.dealloc }, 'read pg_stat_statements');
    return {
      summary: `${slowCount} slow statements (mean ≥ ${p.minMeanMs} ms over ≥ ${p.minCalls} calls) of ${tracked} tracked in ${probe.database}${slowest}${since}`,
      findings,
      metrics,
    };
  },
});

/** An `ok` outcome that says how to enable the extension: not an error. */
function missing(database: string, created: boolean, preloaded: boolean | null): TaskOutcome<Code> {
  const state = created ? 'is created but not loaded (shared_preload_libraries)' : 'is not installed';
  return {
    summary: `pg_stat_statements ${state} in ${database}: no query statistics to check`,
    findings: [
      {
        severity: 'info' as const,
        code: 'pg_stat_statements_missing',
        subject: 'pg_stat_statements',
        message: `pg_stat_statements ${state} in database ${database}`,
        suggestion: created
          ? 'Add pg_stat_statements to shared_preload_libraries (keep the libraries already listed) and restart PostgreSQL'
          : preloaded
            ? 'It is preloaded already: run CREATE EXTENSION pg_stat_statements in this database'
            : ENABLE_SUGGESTION,
        details: { database, created, preloaded },
      },
    ],
  };
}

/** `shared_preload_libraries` lists it (by name, `.so` or `$libdir/` path). */
function isPreloaded(setting: string): boolean {
  return setting
    .split(',')
    .map((lib) => lib.trim().replace(/^"|"$/g, '').split('/').pop()!.replace(/\.so$/, ''))
    .includes('pg_stat_statements');
}

/** "pg_stat_statements must be loaded via shared_preload_libraries" (object_not_in_prerequisite_state). */
function notLoaded(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e.code === '55000' && /shared_preload_libraries/.test(e.message ?? '');
}

/**
 * Redacts what normalisation left: quoted strings (E'..' too) and dollar-quoted
 * bodies, including one the cut left unterminated; then one line, cut marked.
 */
export function displayText(query: string, cut: boolean): string {
  const redacted = query
    .replace(/(?<![\w$])\$([A-Za-z_][A-Za-z0-9_]*)?\$[\s\S]*?(?:\$\1\$|$)/g, () => '$$…$$')
    // A backslash escapes in E'...' strings; taking it as one everywhere only redacts more.
    .replace(/'(?:[^'\\]|\\[\s\S]|'')*(?:'|$)/g, "'…'");
  return redacted.replace(/\s+/g, ' ').trim() + (cut ? '…' : '');
}

/** 0.42 ms, 34.2 ms, 340 ms, then formatDuration (4 s, 1 min 31 s). */
function ms(n: number): string {
  if (n < 1) return `${n.toFixed(n < 0.1 ? 3 : 2)} ms`;
  if (n < 100) return `${n.toFixed(1)} ms`;
  return formatDuration(n);
}

const pct = (ratio: number) => formatPercent(ratio, 1);
