/**
 * `/metrics` in Prometheus text format. Every value is read from the state
 * database at scrape time, so any web replica reports the whole fleet,
 * whichever worker ran the task, and a restart loses nothing.
 */
import type { RequestHandler } from 'express';
import type { Pool } from 'pg';
import { Registry, type Metric } from 'prom-client';
import type { Severity } from '../contract/result';
import { didItsWork } from '../results/store';

/** Upper bounds of the run-duration histogram, in seconds: from a quick check to an hour-long restore test. */
export const DURATION_BUCKETS_SECONDS: readonly number[] = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600];

/** Always reported, at 0 when there are none, so alert rules never see a missing series. */
const SEVERITIES: readonly Severity[] = ['info', 'warning', 'critical'];

/* The findings and last-success gauges read runs that did their work (didItsWork): they know the target's state. */
export const METRICS_SQL = {
  /** The runs table is small (a row per run, pruned by retention): one aggregate pass. */
  runsTotal: `
    SELECT task, status, count(*)::int AS n
    FROM caretaker.runs
    GROUP BY task, status
    ORDER BY task, status`,
  /**
   * The latest run that did its work per (task, target), walked on
   * runs_task_target_finished_at_idx; only those runs' findings are read,
   * through findings_run_id_idx, however large the findings table grows.
   */
  latestFindings: `
    WITH latest AS (
      SELECT DISTINCT ON (task, target) id
      FROM caretaker.runs
      WHERE ${didItsWork()}
      ORDER BY task, target, finished_at DESC, id DESC
    )
    SELECT f.severity, count(*)::int AS n
    FROM latest JOIN caretaker.findings f ON f.run_id = latest.id
    GROUP BY f.severity`,
  lastSuccess: `
    SELECT task, target, extract(epoch FROM max(finished_at))::float8 AS ts
    FROM caretaker.runs
    WHERE ${didItsWork()}
    GROUP BY task, target
    ORDER BY task, target`,
} as const;

/**
 * One pass over runs: bucket i counts the durations <= bound i. The bounds
 * are parameters; only their placeholders are generated.
 */
export function durationHistogramQuery(bucketsSeconds: readonly number[]): { text: string; values: number[] } {
  const buckets = bucketsSeconds.map((_, i) => `count(*) FILTER (WHERE duration_ms <= $${i + 1}::float8)`).join(',\n        ');
  return {
    text: `
    SELECT task, count(*)::int AS count, coalesce(sum(duration_ms), 0)::float8 / 1000 AS sum_seconds,
      ARRAY[
        ${buckets}
      ]::int[] AS buckets
    FROM caretaker.runs
    WHERE NOT skipped
    GROUP BY task
    ORDER BY task`,
    values: bucketsSeconds.map((s) => s * 1000),
  };
}

interface Sample {
  labels: Record<string, string | number>;
  value: number;
  /** For a histogram's `_bucket`, `_sum` and `_count` lines. */
  metricName?: string;
}

interface DbMetric {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  collect(): Promise<Sample[]>;
}

/*
 * prom-client's Counter/Gauge keep values in the process and a Histogram
 * can only observe(): neither fits numbers that already sit in a database.
 * Its registry accepts any object with a name and an async get() returning
 * the samples (its types only list its own classes, hence the cast). No
 * state is kept between scrapes, so concurrent scrapes cannot mix.
 */
function register(registry: Registry, metric: DbMetric): void {
  const { name, help, type } = metric;
  const custom = {
    name,
    help,
    type,
    aggregator: 'sum',
    get: async () => ({ name, help, type, aggregator: 'sum', values: await metric.collect() }),
    reset: () => undefined,
  };
  registry.registerMetric(custom as unknown as Metric);
}

/** The histogram's cumulative `_bucket` lines, then `_sum` and `_count`, per task. */
function histogramSamples(name: string, rows: { task: string; count: number; sum_seconds: number; buckets: number[] }[]): Sample[] {
  const samples: Sample[] = [];
  for (const row of rows) {
    DURATION_BUCKETS_SECONDS.forEach((le, i) => {
      samples.push({ metricName: `${name}_bucket`, labels: { task: row.task, le }, value: row.buckets[i] ?? 0 });
    });
    samples.push({ metricName: `${name}_bucket`, labels: { task: row.task, le: '+Inf' }, value: row.count });
    samples.push({ metricName: `${name}_sum`, labels: { task: row.task }, value: row.sum_seconds });
    samples.push({ metricName: `${name}_count`, labels: { task: row.task }, value: row.count });
  }
  return samples;
}

/** A registry of its own (never prom-client's global one) whose metrics query `state` when scraped. */
export function createMetricsRegistry(state: Pool): Registry {
  const registry = new Registry();
  register(registry, {
    name: 'caretaker_runs_total',
    help: 'Runs stored in the state database, by task and status.',
    type: 'counter',
    async collect() {
      const { rows } = await state.query<{ task: string; status: string; n: number }>(METRICS_SQL.runsTotal);
      return rows.map((r) => ({ labels: { task: r.task, status: r.status }, value: r.n }));
    },
  });
  const durationName = 'caretaker_run_duration_seconds';
  const durationQuery = durationHistogramQuery(DURATION_BUCKETS_SECONDS);
  register(registry, {
    name: durationName,
    help: 'Duration of stored runs (skipped runs excluded), by task.',
    type: 'histogram',
    async collect() {
      const { rows } = await state.query<{ task: string; count: number; sum_seconds: number; buckets: number[] }>(durationQuery);
      return histogramSamples(durationName, rows);
    },
  });
  register(registry, {
    name: 'caretaker_findings',
    help: 'Findings of the latest run that did its work, over every (task, target), by severity.',
    type: 'gauge',
    async collect() {
      const { rows } = await state.query<{ severity: Severity; n: number }>(METRICS_SQL.latestFindings);
      const counts = new Map(rows.map((r) => [r.severity, r.n]));
      return SEVERITIES.map((severity) => ({ labels: { severity }, value: counts.get(severity) ?? 0 }));
    },
  });
  register(registry, {
    name: 'caretaker_last_success_timestamp_seconds',
    help: 'When the task last did its work on the target (status ok, warning or critical), as a Unix time.',
    type: 'gauge',
    async collect() {
      const { rows } = await state.query<{ task: string; target: string; ts: number }>(METRICS_SQL.lastSuccess);
      return rows.map((r) => ({ labels: { task: r.task, target: r.target }, value: r.ts }));
    },
  });
  return registry;
}

/** Answers a scrape; a failing query becomes a 500 through the app's error handler. */
export function metricsHandler(registry: Registry): RequestHandler {
  return async (_req, res) => {
    const text = await registry.metrics();
    res.set('Content-Type', registry.contentType).set('Cache-Control', 'no-store').send(text);
  };
}
