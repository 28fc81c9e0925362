/**
 * metrics-review (daily): the runbook's "Check Grafana dashboards" and
 * "Review performance metrics". Runs each configured PromQL as an instant
 * query against the Prometheus HTTP API (`GET /api/v1/query`) and checks
 * every series of the answer against the query's bounds. Read-only.
 *
 * The default queries are the runbook's "Key Metrics to Watch", written
 * against common exporters and looking back over the day the review covers.
 */
import { z } from 'zod';
import { defineTask, type FindingCodes } from '../contract/task';
import type { Finding } from '../contract/result';
import type { InstantAnswer } from '../contract/prometheus';
import { coerceError } from '../errors';
import { formatBytes } from '../util/format';

/** Metric names the task emits itself; no query may be named like them. */
const RESERVED_METRICS = ['queries_total', 'queries_breached', 'queries_no_data', 'queries_failed'];

const querySchema = z
  .strictObject({
    /** Names the query in findings and its metric (sanitised to snake_case). */
    name: z.string().min(1).max(100).regex(/[A-Za-z0-9]/, 'must contain a letter or digit'),
    /** PromQL, evaluated as an instant query: an instant vector or a scalar. */
    query: z.string().min(1).max(8_000),
    /** A value above this is a breach... */
    max: z.number().optional(),
    /** ...and one below this. */
    min: z.number().optional(),
    severity: z.enum(['warning', 'critical']).default('warning'),
    /** How messages show values: 'ms', '%', 'ratio' (shown as %), 'bytes', 'jobs'... */
    unit: z.string().min(1).max(16).optional(),
    description: z.string().max(500).optional(),
    /** What an operator can do about a breach. */
    suggestion: z.string().max(500).optional(),
  })
  .refine((q) => q.max !== undefined || q.min !== undefined, { error: 'a query needs a bound: max, min or both' })
  .refine((q) => q.max === undefined || q.min === undefined || q.min <= q.max, { error: 'min must not be above max' });

export type MetricQuery = z.output<typeof querySchema>;

/**
 * The runbook's key metrics. Latency and errors are the day's aggregate;
 * the levels (CPU, memory, connections, queue) are the day's peak, so a
 * review at 3 a.m. still sees the afternoon. Narrow them with label
 * matchers per deployment (examples/auditron.yaml).
 */
export const DEFAULT_QUERIES: MetricQuery[] = [
  {
    name: 'http_latency_p95_ms',
    query: 'histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[1d]))) * 1000',
    max: 200,
    severity: 'warning',
    unit: 'ms',
    description: 'p95 request latency over the last 24 h (runbook: p95 < 200 ms)',
    suggestion: 'Find the slow routes on the latency dashboard; run slow-queries on the database',
  },
  {
    name: 'http_error_ratio',
    // `or vector(0)`: an app that never answered 5xx has no such series, which is a rate of 0, not "no data".
    query: '(sum(rate(http_requests_total{status=~"5.."}[1d])) or vector(0)) / sum(rate(http_requests_total[1d]))',
    max: 0.001,
    severity: 'warning',
    unit: 'ratio',
    description: 'share of requests answered 5xx over the last 24 h (runbook: error rate < 0.1 %)',
    suggestion: 'Run error-logs to see the failing signatures; check the routes answering 5xx on the dashboard',
  },
  {
    name: 'cpu_limit_ratio',
    query:
      'max_over_time((sum by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{container!="", container!="POD"}[5m]))' +
      ' / sum by (namespace, pod, container) (kube_pod_container_resource_limits{resource="cpu"}))[1d:5m])',
    max: 0.7,
    severity: 'warning',
    unit: 'ratio',
    description: "each container's peak 5-minute CPU over the last 24 h as a share of its limit (cAdvisor + kube-state-metrics; runbook: CPU < 70 %)",
    suggestion: 'Scale out (raise the HPA maximum) or raise the CPU limit; a container at its limit is throttled',
  },
  {
    name: 'memory_limit_ratio',
    query:
      'max by (namespace, pod, container) (max_over_time(container_memory_working_set_bytes{container!="", container!="POD"}[1d]))' +
      ' / max by (namespace, pod, container) (kube_pod_container_resource_limits{resource="memory"})',
    max: 0.8,
    severity: 'warning',
    unit: 'ratio',
    description: "each container's peak working-set memory over the last 24 h as a share of its limit (runbook: memory < 80 %)",
    suggestion: 'Raise the memory limit before the container is OOM-killed, or look for a leak (k8s-health reports oom_killed)',
  },
  {
    name: 'db_connections_ratio',
    query: 'max_over_time((sum by (instance) (pg_stat_activity_count) / max by (instance) (pg_settings_max_connections))[1d:5m])',
    max: 0.8,
    severity: 'warning',
    unit: 'ratio',
    description: "each PostgreSQL server's peak connections over the last 24 h as a share of max_connections (postgres_exporter; runbook: < 80 %)",
    suggestion: 'Run the connections task; put PgBouncer in front or lower the pool sizes before raising max_connections',
  },
  {
    name: 'queue_waiting_jobs',
    query: 'max by (queue) (max_over_time(bullmq_job_count{state="waiting"}[1d]))',
    max: 100,
    severity: 'warning',
    unit: 'jobs',
    description: "each BullMQ queue's peak of waiting jobs over the last 24 h (BullMQ's exportPrometheusMetrics; runbook: queue length < 100)",
    suggestion: 'Run queue-health; add workers or find the job type that backs up',
  },
];

const params = z
  .strictObject({
    queries: z.array(querySchema).min(1).max(50).default(DEFAULT_QUERIES),
    /** Bound on each request to Prometheus (connect, query, answer). */
    timeoutMs: z.number().int().min(100).max(120_000).default(15_000),
    /** Breached series of one query that become findings (worst first); the metric sees them all. */
    maxSeries: z.number().int().min(1).max(1_000).default(50),
  })
  .refine(
    (p) => {
      const names = p.queries.map((q) => metricName(q.name));
      return new Set(names).size === names.length && !names.some((n) => RESERVED_METRICS.includes(n));
    },
    { error: `query names must be distinct once made snake_case, and not one of ${RESERVED_METRICS.join(', ')}`, path: ['queries'] },
  );

const codes = {
  metric_breach: 'a series of a query above its `max` or below its `min`, named by its labels',
  metric_no_data: 'a query returned nothing or NaN: wrong labels, or the target is not scraped',
  metric_query_failed: 'Prometheus rejected the PromQL (syntax, execution, its timeout) or the answer was too large',
} satisfies FindingCodes;
type Code = keyof typeof codes;

export const metricsReview = defineTask({
  name: 'metrics-review',
  description: "Prometheus queries for the runbook's key metrics (p95 latency, error rate, CPU, memory, DB connections, queue length) against bounds",
  target: 'prometheus',
  defaultSchedule: 'daily',
  timeoutMs: 5 * 60_000,
  changesTarget: false,
  params,
  codes,
  async run(ctx, p) {
    const prometheus = ctx.clients.prometheus();
    const findings: Finding<Code>[] = [];
    const metrics: Record<string, number> = {};
    const breachedNames: string[] = [];
    let noData = 0;
    let failed = 0;

    for (const [i, q] of p.queries.entries()) {
      if (ctx.signal.aborted) throw coerceError(ctx.signal.reason);
      const answer = await prometheus.instantQuery(q.query, { timeoutMs: p.timeoutMs, name: q.name });
      const review = evaluate(q, answer, p.maxSeries);
      findings.push(...review.findings);
      if (review.value !== undefined && Number.isFinite(review.value)) metrics[metricName(q.name)] = review.value;
      if (review.state === 'breached') breachedNames.push(`${q.name} ${formatValue(review.value!, q.unit)}`);
      if (review.state === 'no_data') noData++;
      if (review.state === 'failed') failed++;
      ctx.log.debug({ query: q.name, state: review.state, series: answer.kind === 'samples' ? answer.samples.length : 0 }, 'query reviewed');
      await ctx.progress(((i + 1) / p.queries.length) * 100);
    }

    const parts = [`${p.queries.length} queries`, `${breachedNames.length} breached`, `${noData} without data`, `${failed} failed`];
    const shown = breachedNames.slice(0, 3).join(', ') + (breachedNames.length > 3 ? ', ...' : '');
    return {
      summary: `${parts.join(', ')}${shown ? `: ${shown}` : ''}`,
      findings,
      metrics: {
        ...metrics,
        queries_total: p.queries.length,
        queries_breached: breachedNames.length,
        queries_no_data: noData,
        queries_failed: failed,
      },
    };
  },
});

interface Review {
  state: 'ok' | 'breached' | 'no_data' | 'failed';
  /** The worst value over the series: the highest when the query has a max, else the lowest. */
  value?: number;
  findings: Finding<Code>[];
}

/** Checks one query's answer against its bounds. */
function evaluate(q: MetricQuery, answer: InstantAnswer, maxSeries: number): Review {
  const base = { query: q.name, promql: q.query };
  if (answer.kind === 'failed') {
    return {
      state: 'failed',
      findings: [
        {
          severity: 'warning',
          code: 'metric_query_failed',
          subject: q.name,
          message: `query ${q.name} failed: ${answer.error}`,
          suggestion: 'Fix the PromQL under tasks.metrics-review.queries (try it in the Prometheus UI first)',
          details: { ...base, httpStatus: answer.httpStatus, errorType: answer.errorType, error: answer.error },
        },
      ],
    };
  }
  const valid = answer.samples.filter((s) => !Number.isNaN(s.value));
  if (valid.length === 0) {
    const nan = answer.samples.length;
    return {
      state: 'no_data',
      findings: [
        {
          severity: 'info',
          code: 'metric_no_data',
          subject: q.name,
          message:
            nan === 0
              ? `query ${q.name} returned no series`
              : `query ${q.name} returned NaN for ${nan} series: nothing to compute from in its window (no requests?)`,
          suggestion: 'Check the PromQL and its label names against the exporter, and that Prometheus scrapes the target (Status > Targets)',
          details: { ...base, series: nan },
        },
      ],
    };
  }

  const values = valid.map((s) => s.value);
  const value = q.max !== undefined ? Math.max(...values) : Math.min(...values);
  const beyond = (v: number) => (q.max !== undefined && v > q.max ? v - q.max : q.min !== undefined && v < q.min ? q.min - v : 0);
  const breaches = valid.filter((s) => beyond(s.value) > 0).sort((a, b) => beyond(b.value) - beyond(a.value));
  const findings = breaches.slice(0, maxSeries).map((s): Finding<Code> => {
    const above = q.max !== undefined && s.value > q.max;
    const bound = above ? q.max! : q.min!;
    const subject = seriesName(q.name, s.labels);
    return {
      severity: q.severity,
      code: 'metric_breach',
      subject,
      message: `${subject} is ${formatValue(s.value, q.unit)}, ${above ? 'above the maximum' : 'below the minimum'} ${formatValue(bound, q.unit)}`,
      suggestion: q.suggestion,
      details: {
        ...base,
        value: jsonNumber(s.value),
        [above ? 'max' : 'min']: bound,
        unit: q.unit,
        labels: s.labels,
        description: q.description,
        seriesTotal: answer.samples.length,
        breachedSeries: breaches.length,
      },
    };
  });
  return { state: breaches.length > 0 ? 'breached' : 'ok', value, findings };
}

/** A query's name as a metric: `P95 latency (ms)` → `p95_latency_ms`. */
export function metricName(name: string): string {
  const snake = name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
  return /^[a-z]/.test(snake) ? snake : `q_${snake}`;
}

/** `name{label="value",...}`, or the name alone for a series without labels. */
function seriesName(name: string, labels: Record<string, string>): string {
  const pairs = Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return pairs.length ? `${name}{${pairs.join(',')}}` : name;
}

/** 0.002 with unit 'ratio' → "0.2 %", 150 'jobs' → "150 jobs", 250.0000001 'ms' → "250 ms". */
export function formatValue(v: number, unit?: string): string {
  if (!Number.isFinite(v)) return Number.isNaN(v) ? 'NaN' : v > 0 ? '+Inf' : '-Inf';
  const num = (x: number) => (Number.isInteger(x) ? String(x) : String(Number(x.toPrecision(4))));
  if (unit === undefined) return num(v);
  if (unit === 'ratio') return `${num(v * 100)} %`;
  if (unit === '%') return `${num(v)} %`;
  if (unit === 'bytes') return formatBytes(v);
  return `${num(v)} ${unit}`;
}

/** JSON has no Infinity: keep those values as Prometheus wrote them. */
function jsonNumber(v: number): number | string {
  return Number.isFinite(v) ? v : formatValue(v);
}
