import { Pool } from 'pg';
import { DEFAULT_QUERIES, formatValue, metricName, metricsReview, type MetricQuery } from '../../src/jobs/metrics-review';
import { runTask } from '../../src/worker/run-task';
import { preparedRun } from '../support/run-task';
import { resolveParams } from '../../src/config/params';
import type { TaskResult } from '../../src/contract/result';
import { testConfig } from '../support/config';
import { testLogger } from '../support/logger';
import { TEST_PG_ADMIN_URL } from '../support/env';
import { freePort, startExporter, startPrometheus, startServer, type TestExporter, type TestPrometheus, type TestServer } from '../support/prometheus';

const MiB = 1024 * 1024;
const API = { namespace: 'auditron', pod: 'auditron-api-7d9f8-x2x4q', container: 'api' };
const WORKER = { namespace: 'auditron', pod: 'auditron-worker-5c8b6-kq7nd', container: 'worker' };

function labels(l: Record<string, string>): string {
  return `{${Object.entries(l).map(([k, v]) => `${k}="${v}"`).join(',')}}`;
}

/**
 * What the monitored application's exporters would serve, with known values.
 * Counters grow by the same batch at every scrape, so the ratios rate()
 * yields (p95, error rate) are exact whatever the scrape timing.
 */
function exposition(n: number): string {
  const buckets: [string, number][] = [['0.05', 30], ['0.1', 50], ['0.25', 95], ['0.5', 99], ['1', 100], ['+Inf', 100]];
  return [
    '# TYPE http_request_duration_seconds histogram',
    ...buckets.map(([le, c]) => `http_request_duration_seconds_bucket{le="${le}"} ${c * n}`),
    `http_request_duration_seconds_sum ${12 * n}`,
    `http_request_duration_seconds_count ${100 * n}`,
    '# TYPE http_requests_total counter',
    `http_requests_total{status="200"} ${998 * n}`,
    `http_requests_total{status="500"} ${2 * n}`,
    '# TYPE container_memory_working_set_bytes gauge',
    `container_memory_working_set_bytes${labels(API)} ${400 * MiB}`,
    `container_memory_working_set_bytes${labels(WORKER)} ${450 * MiB}`,
    '# TYPE container_cpu_usage_seconds_total counter',
    `container_cpu_usage_seconds_total${labels(API)} ${0.1 * n}`,
    `container_cpu_usage_seconds_total${labels(WORKER)} ${0.2 * n}`,
    '# TYPE kube_pod_container_resource_limits gauge',
    `kube_pod_container_resource_limits${labels({ ...API, resource: 'memory', unit: 'byte' })} ${512 * MiB}`,
    `kube_pod_container_resource_limits${labels({ ...WORKER, resource: 'memory', unit: 'byte' })} ${512 * MiB}`,
    `kube_pod_container_resource_limits${labels({ ...API, resource: 'cpu', unit: 'core' })} 0.5`,
    `kube_pod_container_resource_limits${labels({ ...WORKER, resource: 'cpu', unit: 'core' })} 0.5`,
    '# TYPE pg_stat_activity_count gauge',
    'pg_stat_activity_count{datname="auditron",state="active"} 10',
    'pg_stat_activity_count{datname="auditron",state="idle"} 30',
    'pg_stat_activity_count{datname="postgres",state="idle"} 45',
    '# TYPE pg_settings_max_connections gauge',
    'pg_settings_max_connections 100',
    '# TYPE bullmq_job_count gauge',
    'bullmq_job_count{queue="emails",state="waiting"} 150',
    'bullmq_job_count{queue="emails",state="active"} 2',
    'bullmq_job_count{queue="webhooks",state="waiting"} 3',
    '',
  ].join('\n');
}

let exporter: TestExporter;
let prometheus: TestPrometheus;
// runTask needs a state pool; metrics-review never touches it, so it never connects.
const state = new Pool({ connectionString: TEST_PG_ADMIN_URL, max: 1 });
const servers: TestServer[] = [];

beforeAll(async () => {
  exporter = await startExporter(exposition);
  prometheus = await startPrometheus({ jobs: { app: exporter.port } });
  // rate() needs two samples (and the 100 ms subquery steps below a step after the second): three scrapes, 1 s.
  await prometheus.waitForScrapes('app', 3);
});

afterAll(async () => {
  await prometheus?.stop();
  await exporter?.close();
  await Promise.all(servers.map((s) => s.close()));
  await state.end();
});

async function run(opts: { url?: string; token?: string; params?: Record<string, unknown> } = {}): Promise<TaskResult> {
  const target = { name: 'prom', url: opts.url ?? prometheus.url, ...(opts.token ? { token: opts.token } : {}) };
  const config = testConfig({ dbUrl: TEST_PG_ADMIN_URL, prefix: 'unused', targets: { prometheus: [target] } });
  const resolved = preparedRun(metricsReview, config, config.targets.prometheus[0]!.name, opts.params ?? {});
  return runTask({ run: resolved, dryRun: false, log: testLogger, state });
}

function q(query: Partial<MetricQuery> & Pick<MetricQuery, 'name' | 'query'>): Record<string, unknown> {
  return { ...query };
}

const byCode = (r: TaskResult, code: string) => r.findings.filter((f) => f.code === code);

describe('metrics-review against a real Prometheus', () => {
  it('a gauge above its max is a metric_breach with the exact value, the bound and the series labels', async () => {
    const result = await run({ params: { queries: [q({ name: 'waiting', query: 'bullmq_job_count{state="waiting"}', max: 100, unit: 'jobs' })] } });
    const breaches = byCode(result, 'metric_breach');
    expect(breaches).toHaveLength(1);
    expect(breaches[0]).toMatchObject({
      severity: 'warning',
      subject: `waiting{instance="127.0.0.1:${exporter.port}",job="app",queue="emails",state="waiting"}`,
      message: expect.stringContaining('is 150 jobs, above the maximum 100 jobs'),
      details: { query: 'waiting', value: 150, max: 100, labels: { queue: 'emails', state: 'waiting', job: 'app', instance: `127.0.0.1:${exporter.port}` }, seriesTotal: 2, breachedSeries: 1 },
    });
    expect(result.status).toBe('warning');
    // Several series: the metric is the worst (here the highest) of them.
    expect(result.metrics).toEqual({ waiting: 150, queries_total: 1, queries_breached: 1, queries_no_data: 0, queries_failed: 0 });
    expect(result.summary).toBe('1 queries, 1 breached, 0 without data, 0 failed: waiting 150 jobs');
  });

  it('a healthy bound gives no finding; a min bound breaches below it, with the query severity', async () => {
    const healthy = await run({ params: { queries: [q({ name: 'waiting', query: 'bullmq_job_count{state="waiting"}', max: 200 })] } });
    expect(healthy.findings).toEqual([]);
    expect(healthy.status).toBe('ok');
    expect(healthy.metrics.waiting).toBe(150);

    const low = await run({ params: { queries: [q({ name: 'max conns', query: 'pg_settings_max_connections', min: 200, severity: 'critical' })] } });
    expect(low.status).toBe('critical');
    expect(byCode(low, 'metric_breach')[0]).toMatchObject({ severity: 'critical', details: { value: 100, min: 200 }, message: expect.stringContaining('below the minimum 200') });
    expect(low.metrics.max_conns).toBe(100);
  });

  it("a scalar answer is checked like a series, named by the query's name", async () => {
    const result = await run({ params: { queries: [q({ name: 'Total waiting', query: 'scalar(sum(bullmq_job_count{state="waiting"}))', max: 100 })] } });
    expect(byCode(result, 'metric_breach')).toEqual([expect.objectContaining({ subject: 'Total waiting', details: expect.objectContaining({ value: 153, labels: {} }) })]);
    expect(result.metrics.total_waiting).toBe(153);
  });

  it('histogram_quantile over the served histogram gives its p95 bucket bound', async () => {
    const result = await run({
      params: { queries: [q({ name: 'p95', query: 'histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[1m]))) * 1000', max: 300, unit: 'ms' })] },
    });
    expect(result.findings).toEqual([]);
    expect(result.metrics.p95).toBeCloseTo(250, 6);
  });

  it("the runbook's default queries: exact values where the exporters allow, a breach for each bound crossed", async () => {
    const result = await run();
    expect(byCode(result, 'metric_query_failed')).toEqual([]);
    // The day's peaks use subqueries, whose steps align to 5-minute marks: a Prometheus seconds old
    // usually has no step with data yet, so those two are checked in the next test.
    const peaks = (s: string) => s.startsWith('cpu_limit_ratio') || s.startsWith('db_connections_ratio');
    const subjects = byCode(result, 'metric_breach').map((f) => f.subject).filter((s) => !peaks(s)).sort();
    expect(subjects).toEqual([
      'http_error_ratio',
      'http_latency_p95_ms',
      `memory_limit_ratio{container="worker",namespace="auditron",pod="${WORKER.pod}"}`,
      'queue_waiting_jobs{queue="emails"}',
    ]);
    expect(result.metrics.http_latency_p95_ms).toBeCloseTo(250, 6);
    expect(result.metrics.http_error_ratio).toBeCloseTo(0.002, 12);
    expect(result.metrics.memory_limit_ratio).toBe(450 / 512); // the worst of the two containers
    expect(result.metrics.queue_waiting_jobs).toBe(150);
    expect(result.metrics.queries_total).toBe(6);
    expect(result.status).toBe('warning');
  });

  it('the subquery defaults compute per container and per server (run with a step fine enough for seconds of data)', async () => {
    const queries = DEFAULT_QUERIES.filter((d) => d.query.includes('[1d:5m]')).map((d) => ({ ...d, query: d.query.replace('[1d:5m]', '[1m:100ms]') }));
    expect(queries.map((d) => d.name)).toEqual(['cpu_limit_ratio', 'db_connections_ratio']);
    const result = await run({ params: { queries } });
    expect(byCode(result, 'metric_query_failed')).toEqual([]);
    const db = byCode(result, 'metric_breach').find((f) => f.details?.query === 'db_connections_ratio');
    expect(db).toMatchObject({ subject: `db_connections_ratio{instance="127.0.0.1:${exporter.port}"}`, details: { value: 0.85, max: 0.8 }, message: expect.stringContaining('is 85 %, above the maximum 80 %') });
    // CPU is far below its limit (0.1 and 0.2 core-seconds per scrape, averaged over 5 minutes): one value per container, no breach.
    expect(byCode(result, 'metric_breach').filter((f) => f.details?.query === 'cpu_limit_ratio')).toEqual([]);
    expect(result.metrics.cpu_limit_ratio).toBeGreaterThan(0);
    expect(result.metrics.cpu_limit_ratio).toBeLessThan(0.7);
  });

  it('the error rate is 0, not "no data", when no request ever failed', async () => {
    const errorRatio = DEFAULT_QUERIES.find((d) => d.name === 'http_error_ratio')!;
    const result = await run({ params: { queries: [{ ...errorRatio, query: errorRatio.query.replace('5..', '4..') }] } });
    expect(result.findings).toEqual([]);
    expect(result.metrics.http_error_ratio).toBe(0);
  });

  it('a query without data is metric_no_data (info), and so is one that is NaN for every series', async () => {
    const result = await run({
      params: {
        queries: [
          q({ name: 'missing', query: 'http_requests_total{status="999"}', max: 1 }),
          q({ name: 'zero by zero', query: 'sum(rate(http_requests_total{status="999"}[1m]) or vector(0)) / 0', max: 1 }),
        ],
      },
    });
    expect(byCode(result, 'metric_no_data')).toEqual([
      expect.objectContaining({ severity: 'info', subject: 'missing', message: 'query missing returned no series', details: expect.objectContaining({ series: 0 }) }),
      expect.objectContaining({ severity: 'info', subject: 'zero by zero', message: expect.stringContaining('returned NaN for 1 series') }),
    ]);
    expect(result.status).toBe('ok');
    expect(result.metrics).toEqual({ queries_total: 2, queries_breached: 0, queries_no_data: 2, queries_failed: 0 });
  });

  it("bad PromQL is metric_query_failed with Prometheus's error; the other queries still run", async () => {
    const result = await run({
      params: {
        queries: [
          q({ name: 'broken', query: 'sum(http_requests_total', max: 1 }),
          q({ name: 'range', query: 'http_requests_total[1m]', max: 1 }),
          q({ name: 'waiting', query: 'bullmq_job_count{state="waiting"}', max: 100 }),
        ],
      },
    });
    const failed = byCode(result, 'metric_query_failed');
    expect(failed[0]).toMatchObject({
      severity: 'warning',
      subject: 'broken',
      message: expect.stringContaining('parse error: unclosed left parenthesis'),
      details: { httpStatus: 400, errorType: 'bad_data', promql: 'sum(http_requests_total' },
    });
    expect(failed[1]).toMatchObject({ subject: 'range', details: { errorType: 'unsupported_result' }, message: expect.stringContaining('range vector') });
    expect(byCode(result, 'metric_breach')).toHaveLength(1);
    expect(result.metrics.queries_failed).toBe(2);
  });

  it('caps the breached series reported per query, worst first, and says how many there were', async () => {
    const result = await run({ params: { maxSeries: 1, queries: [q({ name: 'jobs', query: 'bullmq_job_count', max: 1 })] } });
    const breaches = byCode(result, 'metric_breach');
    expect(breaches).toHaveLength(1);
    expect(breaches[0]!.details).toMatchObject({ value: 150, seriesTotal: 3, breachedSeries: 3 });
  });
});

describe('metrics-review when Prometheus cannot answer', () => {
  it('a port nothing listens on is an error result with the reason', async () => {
    const port = await freePort();
    const result = await run({ url: `http://127.0.0.1:${port}` });
    expect(result.status).toBe('error');
    expect(result.summary).toContain(`Prometheus http://127.0.0.1:${port} (query http_latency_p95_ms) is unreachable`);
    expect(result.summary).toContain('ECONNREFUSED');
    expect(result.findings).toEqual([]);
  });

  it('a 5xx, a 401 and a server that does not answer in time are errors; a query timeout is that query\'s failure', async () => {
    const answers = await startServer((req, res) => {
      if (req.url?.startsWith('/slow/')) return; // never answers
      if (req.url?.startsWith('/echo/')) {
        // A proxy's 401 that quotes the credentials it was sent.
        res.writeHead(401, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ status: 'error', errorType: 'unauthorized', error: `invalid credentials: ${req.headers.authorization}` }));
      }
      if (req.url?.startsWith('/heavy/')) {
        // What Prometheus itself answers when a query runs past its `timeout`.
        res.writeHead(503, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ status: 'error', errorType: 'timeout', error: 'query timed out in expression evaluation' }));
      }
      res.writeHead(req.url?.startsWith('/down/') ? 502 : 401, { 'content-type': 'text/html' });
      res.end('<html>no</html>');
    });
    servers.push(answers);
    const down = await run({ url: `${answers.url}/down` });
    expect(down).toMatchObject({ status: 'error', summary: expect.stringContaining('answered HTTP 502') });
    const denied = await run({ url: `${answers.url}/denied`, token: 'wrong-token-5b1f' });
    expect(denied).toMatchObject({ status: 'error', summary: expect.stringContaining('answered HTTP 401 (check the target token)') });
    expect(JSON.stringify(denied)).not.toContain('wrong-token-5b1f');
    // A server that quotes the token back: its words are shown, the token is not.
    const echoed = await run({ url: `${answers.url}/echo`, token: 'wrong-token-5b1f' });
    expect(echoed.summary).toContain('answered HTTP 401: invalid credentials: Bearer *** (check the target token)');
    expect(JSON.stringify(echoed)).not.toContain('wrong-token-5b1f');
    // A query Prometheus gave up on is that query's failure, not an unreachable server.
    const heavy = await run({ url: `${answers.url}/heavy`, params: { queries: [q({ name: 'heavy', query: 'up', max: 1 })] } });
    expect(heavy.status).toBe('warning');
    expect(byCode(heavy, 'metric_query_failed')[0]).toMatchObject({ message: 'query heavy failed: query timed out in expression evaluation', details: { httpStatus: 503, errorType: 'timeout' } });
    const slow = await run({ url: `${answers.url}/slow`, params: { timeoutMs: 300 } });
    expect(slow).toMatchObject({ status: 'error', summary: expect.stringContaining('did not answer within 300 ms') });
  });
});

describe('metrics-review with a token', () => {
  it('sends it as a Bearer token to the API under the base path, and never shows it', async () => {
    const token = `tok-${Math.random().toString(36).slice(2)}`;
    const seen: { url?: string; authorization?: string }[] = [];
    const canned = await startServer((req, res) => {
      seen.push({ url: req.url, authorization: req.headers.authorization });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [{ metric: { __name__: 'x', queue: 'emails' }, value: [1700000000, '250'] }] } }));
    });
    servers.push(canned);
    const result = await run({ url: `${canned.url}/prometheus/`, token, params: { queries: [q({ name: 'x', query: 'x', max: 100 })] } });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.authorization).toBe(`Bearer ${token}`);
    const sent = new URL(seen[0]!.url!, canned.url);
    expect(sent.pathname).toBe('/prometheus/api/v1/query');
    expect(sent.searchParams.get('query')).toBe('x');
    expect(byCode(result, 'metric_breach')[0]).toMatchObject({ subject: 'x{queue="emails"}', details: { value: 250 } });
    expect(JSON.stringify(result)).not.toContain(token);
  });
});

describe('metrics-review params', () => {
  const problems = (params: Record<string, unknown>) => {
    const config = testConfig({ dbUrl: TEST_PG_ADMIN_URL, prefix: 'unused', targets: { prometheus: [{ name: 'prom', url: 'http://127.0.0.1:9090' }] } });
    const r = resolveParams(metricsReview, config, config.targets.prometheus[0]!, params);
    return r.ok ? [] : r.problems;
  };

  it('defaults to the runbook queries, each with a bound, and accepts them', () => {
    expect(problems({})).toEqual([]);
    expect(DEFAULT_QUERIES.map((d) => [d.name, d.max])).toEqual([
      ['http_latency_p95_ms', 200],
      ['http_error_ratio', 0.001],
      ['cpu_limit_ratio', 0.7],
      ['memory_limit_ratio', 0.8],
      ['db_connections_ratio', 0.8],
      ['queue_waiting_jobs', 100],
    ]);
  });

  it('rejects a query without a bound, min above max, and names that collide', () => {
    expect(problems({ queries: [{ name: 'a', query: 'up' }] })).toEqual(['--param queries: a query needs a bound: max, min or both']);
    expect(problems({ queries: [{ name: 'a', query: 'up', min: 2, max: 1 }] })).toEqual(['--param queries: min must not be above max']);
    expect(problems({ queries: [{ name: 'CPU %', query: 'up', max: 1 }, { name: 'cpu', query: 'up', max: 1 }] })[0]).toContain('distinct');
    expect(problems({ queries: [{ name: 'queries total', query: 'up', max: 1 }] })[0]).toContain('distinct');
  });

  it('names metrics in snake_case and formats values with their unit', () => {
    expect(metricName('P95 latency (ms)')).toBe('p95_latency_ms');
    expect(metricName('dbConnections')).toBe('db_connections');
    expect(metricName('5xx rate')).toBe('q_5xx_rate');
    expect(formatValue(0.002, 'ratio')).toBe('0.2 %');
    expect(formatValue(250.00000001, 'ms')).toBe('250 ms');
    expect(formatValue(Infinity, 'ms')).toBe('+Inf');
  });
});
