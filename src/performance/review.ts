/**
 * The monthly performance review as data, from caretaker's own history
 * only (read-only, nothing on the targets):
 *
 * - statements: slow-queries keeps each database's top statements
 *   (pg_stat_statements, cumulative since its last reset) in its
 *   `top_statements` finding. The newest run of this month and of last
 *   month give this month's own mean per statement (the difference of
 *   their totals over the difference of their calls); last month's is the
 *   same difference against the month before it, or, without that run, the
 *   mean since the reset. A reset between two runs makes the difference
 *   meaningless: the review says so instead of comparing.
 * - series: api-health's p95, error-log lines, queue backlogs, connection
 *   peaks and metrics-review's breached queries, this month's peak and
 *   median against last month's, per target.
 */
import type { Pool } from 'pg';
import { didItsWork } from '../results/store';
import { monthsBefore, type ReportMonth } from '../reports/month';

export const REVIEW_SQL = {
  /** The newest run of slow-queries per target in each of the months, with its top_statements details (runs_task_target_finished_at_idx). */
  statementSnapshots: `
    SELECT DISTINCT ON (r.target, m.idx) r.target, m.idx, r.finished_at, f.details
    FROM unnest($1::timestamptz[], $2::timestamptz[], $3::int[]) AS m(start_at, end_at, idx)
    JOIN caretaker.runs r ON r.task = 'slow-queries' AND r.finished_at >= m.start_at AND r.finished_at < m.end_at AND ${didItsWork('r')}
    JOIN caretaker.findings f ON f.run_id = r.id AND f.code = 'top_statements'
    ORDER BY r.target, m.idx, r.finished_at DESC, r.id DESC`,
  /** Each run's value of the series' metrics in [$1, $2), with which month it falls in. */
  seriesValues: `
    SELECT r.task, r.target, r.finished_at >= $3 AS this_month, (r.result->'metrics'->>m.metric)::float8 AS value, m.metric
    FROM caretaker.runs r
    JOIN unnest($4::text[], $5::text[]) AS m(task, metric) ON m.task = r.task
    WHERE r.finished_at >= $1 AND r.finished_at < $2 AND ${didItsWork('r')}
      AND jsonb_typeof(r.result->'metrics'->m.metric) = 'number'`,
} as const;

/** The series the review compares: which task's metric, and what it is called. */
export const REVIEW_SERIES = [
  { series: 'api_p95_ms', task: 'api-health', metric: 'latency_p95_ms', title: 'API p95 latency', unit: 'ms' },
  { series: 'error_log_lines', task: 'error-logs', metric: 'error_lines', title: 'Error log lines per run', unit: 'lines' },
  { series: 'queue_backlog', task: 'queue-health', metric: 'queue_waiting_total', title: 'Queue backlog', unit: 'jobs' },
  { series: 'connections_peak', task: 'connections', metric: 'connections_used', title: 'Connections in use', unit: 'connections' },
  { series: 'metric_breaches', task: 'metrics-review', metric: 'queries_breached', title: 'Metrics past their threshold', unit: 'queries' },
] as const;

export interface StatementFigures {
  queryid: string;
  query?: string;
  calls: number;
  totalMs: number;
  meanMs: number;
}

interface Snapshot {
  at: Date;
  statsReset: string | null;
  statements: Map<string, StatementFigures>;
}

/** One statement's mean this month against last month's. */
export interface StatementChange {
  target: string;
  queryid: string;
  query?: string;
  /** Last month's mean (ms). */
  before: number;
  /** This month's mean (ms). */
  now: number;
  /** (now - before) / before, in %. */
  risePercent: number;
  /** Calls this month. */
  calls: number;
}

export interface SeriesFigures {
  peak: number;
  median: number;
  /** Runs with a value. */
  points: number;
}

export interface SeriesTrend {
  series: string;
  title: string;
  unit: string;
  target: string;
  now?: SeriesFigures;
  before?: SeriesFigures;
  /** The peak's move: `up`/`down` past TREND_BAND, else `flat`; `new` without last month, `gone` without this one. */
  trend: 'up' | 'down' | 'flat' | 'new' | 'gone';
}

export interface MonthlyReview {
  title: string;
  month: ReportMonth;
  previous: ReportMonth;
  generatedAt: string;
  regressionPercent: number;
  /** Statements whose mean rose past regressionPercent, the largest rise first. */
  regressions: StatementChange[];
  /** Every statement compared (regressed or not), per target. */
  compared: number;
  /** This month's top statements by total time, per target (from its newest slow-queries run). */
  topStatements: { target: string; at: string; statements: StatementFigures[] }[];
  /** Why a target's statements were not compared (a reset, no run in one of the months). */
  notCompared: { target: string; reason: string }[];
  series: SeriesTrend[];
}

export interface ReviewOptions {
  month: ReportMonth;
  title: string;
  regressionPercent: number;
  /** Statements with fewer calls this month are not judged: a mean of three calls says little. */
  minCalls: number;
  /** How many top statements per target the review lists. */
  top: number;
  now?: Date;
}

/** A peak moving less than this (10 %) is flat. */
export const TREND_BAND = 0.1;

export async function buildMonthlyReview(pool: Pool, opts: ReviewOptions): Promise<MonthlyReview> {
  const month = opts.month;
  const previous = monthsBefore(month, 1);
  const before = monthsBefore(month, 2);
  const windows = [month, previous, before];
  const [snapshots, values] = await Promise.all([
    pool.query<{ target: string; idx: number; finished_at: Date; details: Record<string, unknown> | null }>(REVIEW_SQL.statementSnapshots, [
      windows.map((w) => w.start),
      windows.map((w) => w.end),
      windows.map((_, i) => i),
    ]),
    pool.query<{ task: string; target: string; this_month: boolean; value: number; metric: string }>(REVIEW_SQL.seriesValues, [
      previous.start,
      month.end,
      month.start,
      REVIEW_SERIES.map((s) => s.task),
      REVIEW_SERIES.map((s) => s.metric),
    ]),
  ]);

  const byTarget = new Map<string, Snapshot[]>();
  for (const r of snapshots.rows) {
    const list = byTarget.get(r.target) ?? [];
    list[r.idx] = snapshotOf(r.finished_at, r.details);
    byTarget.set(r.target, list);
  }
  const regressions: StatementChange[] = [];
  const notCompared: MonthlyReview['notCompared'] = [];
  const topStatements: MonthlyReview['topStatements'] = [];
  let compared = 0;
  for (const [target, [current, last, older]] of [...byTarget].sort(([a], [b]) => a.localeCompare(b))) {
    if (current) topStatements.push({ target, at: current.at.toISOString(), statements: [...current.statements.values()].sort((a, b) => b.totalMs - a.totalMs).slice(0, opts.top) });
    if (!current || !last) {
      notCompared.push({ target, reason: `no slow-queries run in ${current ? previous.id : month.id}` });
      continue;
    }
    if (current.statsReset !== last.statsReset) {
      notCompared.push({ target, reason: `pg_stat_statements was reset${current.statsReset ? ` at ${current.statsReset}` : ''}, between the runs of ${previous.id} and ${month.id}: the months cannot be compared` });
      continue;
    }
    const sameReset = older && older.statsReset === last.statsReset ? older : undefined;
    for (const [queryid, s] of current.statements) {
      const l = last.statements.get(queryid);
      if (!l) continue;
      const calls = s.calls - l.calls;
      if (calls < Math.max(1, opts.minCalls)) continue;
      const meanNow = (s.totalMs - l.totalMs) / calls;
      const o = sameReset?.statements.get(queryid);
      const meanBefore = o && l.calls > o.calls ? (l.totalMs - o.totalMs) / (l.calls - o.calls) : l.meanMs;
      if (!(meanBefore > 0)) continue;
      compared += 1;
      const risePercent = ((meanNow - meanBefore) / meanBefore) * 100;
      if (risePercent > opts.regressionPercent) {
        regressions.push({ target, queryid, ...(s.query ? { query: s.query } : {}), before: meanBefore, now: meanNow, risePercent, calls });
      }
    }
  }
  regressions.sort((a, b) => b.risePercent - a.risePercent);

  return {
    title: opts.title,
    month,
    previous,
    generatedAt: (opts.now ?? new Date()).toISOString(),
    regressionPercent: opts.regressionPercent,
    regressions,
    compared,
    topStatements,
    notCompared,
    series: seriesTrends(values.rows),
  };
}

function snapshotOf(at: Date, details: Record<string, unknown> | null): Snapshot {
  const statements = new Map<string, StatementFigures>();
  // Both lists: a statement slow on average may not be among the costliest in total, and the other way round.
  for (const list of [details?.byTotal, details?.byMean]) {
    if (!Array.isArray(list)) continue;
    for (const raw of list as Record<string, unknown>[]) {
      const queryid = raw.queryid === undefined || raw.queryid === null ? undefined : String(raw.queryid);
      const calls = Number(raw.calls);
      const totalMs = Number(raw.totalMs);
      if (!queryid || !(calls > 0) || !Number.isFinite(totalMs)) continue;
      statements.set(queryid, { queryid, ...(typeof raw.query === 'string' ? { query: raw.query } : {}), calls, totalMs, meanMs: totalMs / calls });
    }
  }
  const statsReset = typeof details?.statsReset === 'string' ? details.statsReset : null;
  return { at, statsReset, statements };
}

function figures(values: number[]): SeriesFigures | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { peak: sorted.at(-1)!, median, points: sorted.length };
}

function seriesTrends(rows: { task: string; target: string; this_month: boolean; value: number; metric: string }[]): SeriesTrend[] {
  const out: SeriesTrend[] = [];
  for (const spec of REVIEW_SERIES) {
    const targets = [...new Set(rows.filter((r) => r.task === spec.task && r.metric === spec.metric).map((r) => r.target))].sort();
    for (const target of targets) {
      const mine = rows.filter((r) => r.task === spec.task && r.metric === spec.metric && r.target === target);
      const now = figures(mine.filter((r) => r.this_month).map((r) => Number(r.value)));
      const before = figures(mine.filter((r) => !r.this_month).map((r) => Number(r.value)));
      const trend: SeriesTrend['trend'] = !now ? 'gone' : !before ? 'new' : movement(before.peak, now.peak);
      out.push({ series: spec.series, title: spec.title, unit: spec.unit, target, ...(now ? { now } : {}), ...(before ? { before } : {}), trend });
    }
  }
  return out;
}

function movement(before: number, now: number): 'up' | 'down' | 'flat' {
  if (before === 0) return now === 0 ? 'flat' : 'up';
  const change = (now - before) / Math.abs(before);
  return change > TREND_BAND ? 'up' : change < -TREND_BAND ? 'down' : 'flat';
}
