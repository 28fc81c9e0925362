/**
 * The Prometheus client against Debian's real Prometheus (what an answer
 * reads as), and against a node:http server answering the API's JSON for
 * what a healthy Prometheus does not do: an execution error quoting the
 * token, an answer too large, a redirect, a proxy's 401, a 5xx, silence.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createPrometheusClient } from '../../src/clients/prometheus';
import type { PrometheusTarget } from '../../src/config/schema';
import { closedPort } from '../support/https-server';
import { eventually } from '../support/jobs';
import { startExporter, startPrometheus, startServer, type TestExporter, type TestPrometheus, type TestServer } from '../support/prometheus';

const TOKEN = 'prom-token-8d1e77';

let exporter: TestExporter;
let prometheus: TestPrometheus;
const servers: TestServer[] = [];

beforeAll(async () => {
  exporter = await startExporter(() => ['# TYPE queue_waiting gauge', 'queue_waiting{queue="emails"} 150', 'queue_waiting{queue="reports"} 3', ''].join('\n'));
  prometheus = await startPrometheus({ jobs: { app: exporter.port } });
}, 60_000);

afterAll(async () => {
  await prometheus?.stop();
  await exporter?.close();
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function client(url: string, opts: { token?: string; signal?: AbortSignal } = {}) {
  const target: PrometheusTarget = { name: 'prom', url, tasks: {}, ...(opts.token ? { token: opts.token } : {}) };
  return createPrometheusClient(target, opts.signal ?? new AbortController().signal);
}

/** A server answering every request with `handle`, and the requests it got (URL and Authorization header). */
async function apiServer(handle: (req: IncomingMessage, res: ServerResponse) => void) {
  const requests: { url: string; authorization?: string }[] = [];
  const server = await startServer((req, res) => {
    requests.push({ url: req.url ?? '', authorization: req.headers.authorization });
    handle(req, res);
  });
  servers.push(server);
  return { ...server, requests };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const q = { timeoutMs: 5_000, name: 'waiting' };

describe('against a real Prometheus', () => {
  it("reads a vector's samples with their labels, without __name__", async () => {
    const answer = await client(prometheus.url).instantQuery('queue_waiting', q);
    expect(answer.kind).toBe('samples');
    const samples = answer.kind === 'samples' ? answer.samples : [];
    expect(samples.sort((a, b) => a.value - b.value)).toEqual([
      { labels: { instance: `127.0.0.1:${exporter.port}`, job: 'app', queue: 'reports' }, value: 3 },
      { labels: { instance: `127.0.0.1:${exporter.port}`, job: 'app', queue: 'emails' }, value: 150 },
    ]);
  });

  it('reads a scalar as one sample without labels, and +Inf, -Inf and NaN as numbers', async () => {
    const c = client(prometheus.url);
    expect(await c.instantQuery('scalar(sum(queue_waiting))', q)).toEqual({ kind: 'samples', samples: [{ labels: {}, value: 153 }] });
    expect(await c.instantQuery('1/0', q)).toEqual({ kind: 'samples', samples: [{ labels: {}, value: Infinity }] });
    expect(await c.instantQuery('-1/0', q)).toEqual({ kind: 'samples', samples: [{ labels: {}, value: -Infinity }] });
    const nan = await c.instantQuery('0/0', q);
    expect(nan.kind === 'samples' && Number.isNaN(nan.samples[0]!.value)).toBe(true);
  });

  it('gives bad PromQL as the query\'s failure, with Prometheus\'s own words', async () => {
    const answer = await client(prometheus.url).instantQuery('sum(queue_waiting', q);
    expect(answer).toMatchObject({ kind: 'failed', httpStatus: 400, errorType: 'bad_data' });
    expect(answer.kind === 'failed' && answer.error).toMatch(/parse error/);
  });

  it('refuses a range vector or a string as the query\'s failure, saying what to do', async () => {
    const c = client(prometheus.url);
    expect(await c.instantQuery('queue_waiting[1m]', q)).toEqual({
      kind: 'failed',
      httpStatus: 200,
      errorType: 'unsupported_result',
      error: 'the query returns a range vector: wrap it in a function such as max_over_time(...)',
    });
    expect(await c.instantQuery('"text"', q)).toMatchObject({ kind: 'failed', errorType: 'unsupported_result', error: 'the query returns a string, not a number per series' });
  });

  it('names the server without credentials, query string or trailing slash', () => {
    expect(client(`http://reader:pa55word@127.0.0.1:9090/prom/?key=abcd#x`).display).toBe('http://127.0.0.1:9090/prom');
    expect(client(prometheus.url).display).toBe(prometheus.url);
  });
});

describe('against a server answering the API JSON', () => {
  it('queries under the base path with the token and a server timeout a second short of its own', async () => {
    const s = await apiServer((_req, res) => json(res, 200, { status: 'success', data: { resultType: 'vector', result: [] } }));
    expect(await client(`${s.url}/prometheus`, { token: TOKEN }).instantQuery('up == 0', { timeoutMs: 15_000, name: 'down' })).toEqual({ kind: 'samples', samples: [] });
    const sent = new URL(s.requests[0]!.url, s.url);
    expect(sent.pathname).toBe('/prometheus/api/v1/query');
    expect(Object.fromEntries(sent.searchParams)).toEqual({ query: 'up == 0', timeout: '14000ms' });
    expect(s.requests[0]!.authorization).toBe(`Bearer ${TOKEN}`);
  });

  it("sends a URL's credentials as basic auth, and scrubs them from what the server says back", async () => {
    const basic = `Basic ${Buffer.from('reader:pa55word').toString('base64')}`;
    const s = await apiServer((req, res) => json(res, 422, { status: 'error', errorType: 'execution', error: `query by ${req.headers.authorization} failed (pa55word)` }));
    const url = `http://reader:pa55word@127.0.0.1:${s.port}`;
    const answer = await client(url).instantQuery('up', q);
    expect(s.requests[0]!.authorization).toBe(basic);
    expect(answer).toEqual({ kind: 'failed', httpStatus: 422, errorType: 'execution', error: 'query by Basic *** failed (***)' });
  });

  it('scrubs the token from an execution error and keeps it to one line of 300 characters', async () => {
    const s = await apiServer((req, res) => json(res, 422, { status: 'error', errorType: 'execution', error: `token ${req.headers.authorization}\nexpanding series: ${'x'.repeat(400)}` }));
    const answer = await client(s.url, { token: TOKEN }).instantQuery('up', q);
    expect(answer).toMatchObject({ kind: 'failed', httpStatus: 422, errorType: 'execution' });
    const error = answer.kind === 'failed' ? answer.error : '';
    expect(error.startsWith('token Bearer *** expanding series: xxx')).toBe(true);
    expect(error).not.toContain(TOKEN);
    expect(error).not.toContain('\n');
    expect(error.length).toBeLessThanOrEqual(300);
  });

  it("takes a 503 timeout as the query's failure, but another 503 as the server's", async () => {
    let errorType = 'timeout';
    const s = await apiServer((_req, res) => json(res, 503, { status: 'error', errorType, error: 'query timed out in expression evaluation' }));
    expect(await client(s.url).instantQuery('up', q)).toEqual({ kind: 'failed', httpStatus: 503, errorType: 'timeout', error: 'query timed out in expression evaluation' });
    errorType = 'unavailable';
    await expect(client(s.url).instantQuery('up', q)).rejects.toThrow(`Prometheus ${s.url} (query waiting) answered HTTP 503: query timed out in expression evaluation`);
  });

  it("refuses an answer larger than 8 MiB as the query's failure", async () => {
    const s = await apiServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`{"status":"success","data":{"resultType":"vector","result":[${'{"metric":{},"value":[1,"1"]},'.repeat(300_000)}]}}`);
    });
    expect(await client(s.url).instantQuery('up', q)).toEqual({ kind: 'failed', httpStatus: 0, errorType: 'too_large', error: 'the answer is larger than 8 MB: aggregate the query (sum by, topk)' });
  });

  it('does not follow a redirect: the token stays with the configured server', async () => {
    const elsewhere = await apiServer((_req, res) => json(res, 200, { status: 'success', data: { resultType: 'vector', result: [] } }));
    const s = await apiServer((_req, res) => {
      res.writeHead(302, { location: `${elsewhere.url}/api/v1/query?query=up` });
      res.end();
    });
    await expect(client(s.url, { token: TOKEN }).instantQuery('up', q)).rejects.toThrow(`Prometheus ${s.url} (query waiting) answered HTTP 302 (a redirect, e.g. to a login page: not followed)`);
    expect(elsewhere.requests).toEqual([]);
  });

  it("says a 401 is the token's, quoting the proxy without the token", async () => {
    const s = await apiServer((req, res) => json(res, 401, { error: `bad credentials: ${req.headers.authorization}` }));
    await expect(client(s.url, { token: TOKEN }).instantQuery('up', q)).rejects.toThrow(`Prometheus ${s.url} (query waiting) answered HTTP 401: bad credentials: Bearer *** (check the target token)`);
  });

  it('says a 200 that is not the API is likely the wrong base URL', async () => {
    const s = await apiServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>Grafana</html>');
    });
    await expect(client(s.url).instantQuery('up', q)).rejects.toThrow(`Prometheus ${s.url} (query waiting) answered 200 but not with the Prometheus API's JSON: is the target url the server's base URL?`);
  });

  it('throws when the server is unreachable or silent, naming it and the query', async () => {
    const port = await closedPort();
    await expect(client(`http://127.0.0.1:${port}`).instantQuery('up', q)).rejects.toThrow(`Prometheus http://127.0.0.1:${port} (query waiting) is unreachable: ECONNREFUSED`);
    const silent = await apiServer(() => undefined);
    await expect(client(silent.url).instantQuery('up', { timeoutMs: 300, name: 'slow' })).rejects.toThrow(`Prometheus ${silent.url} (query slow) did not answer within 300 ms`);
  });

  it("rejects with the run's abort reason once the run is aborted", async () => {
    const silent = await apiServer(() => undefined);
    const run = new AbortController();
    const pending = client(silent.url, { signal: run.signal }).instantQuery('up', { timeoutMs: 20_000, name: 'up' });
    const reason = new Error('timed out after 300000 ms');
    await eventually(async () => (silent.requests.length > 0 ? true : undefined), 5_000, 'the query to arrive');
    run.abort(reason);
    await expect(pending).rejects.toBe(reason);
  });
});
