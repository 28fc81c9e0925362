/**
 * A real Prometheus for tests (Debian's `prometheus` package; `.ci/run`
 * installs it): started on a free port with a temp config and TSDB,
 * scraping exporters the test serves twice a second, stopped and removed after.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './ports';
import { stopChild } from './child-process';

/** Prometheus 2.x applies scrape targets on a fixed 5 s tick: the first scrape comes ~5 s after start. */
const READY_TIMEOUT_MS = 30_000;
const POLL_MS = 100;
const STOP_GRACE_MS = 5_000;

export { freePort };

export interface TestServer {
  port: number;
  url: string;
  close(): Promise<void>;
}

/** A local HTTP server; `handle` answers every request. */
export async function startServer(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestServer> {
  const server: Server = createServer(handle);
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface TestExporter extends TestServer {
  /** How many times it was scraped. */
  scrapes(): number;
}

/** Serves `render(n)` (Prometheus text format) on every path; n is the scrape number, from 1. */
export async function startExporter(render: (scrape: number) => string): Promise<TestExporter> {
  let n = 0;
  const server = await startServer((_req, res) => {
    n++;
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
    res.end(render(n));
  });
  return { ...server, scrapes: () => n };
}

export interface TestPrometheus {
  url: string;
  /** An instant query's vector, as [labels, value] pairs. */
  query(promql: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  /** Waits (bounded) until Prometheus holds at least `n` scrapes of `job`: rate() needs two. */
  waitForScrapes(job: string, n: number): Promise<void>;
  stop(): Promise<void>;
}

function findBinary(): string {
  const dirs = ['/usr/bin', ...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean)];
  for (const dir of dirs) {
    const candidate = path.join(dir, 'prometheus');
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(
    'these tests need a real Prometheus: no `prometheus` binary in /usr/bin or on PATH. `.ci/run` installs it (apt-get install prometheus, Debian\'s package)',
  );
}

/**
 * Starts Prometheus scraping each job's exporter (by port) every
 * `scrapeIntervalMs` (default 500) and waits until every job is up.
 */
export async function startPrometheus(opts: { jobs: Record<string, number>; scrapeIntervalMs?: number }): Promise<TestPrometheus> {
  const binary = findBinary();
  const dir = await mkdtemp(path.join(tmpdir(), 'caretaker-prom-'));
  const interval = `${opts.scrapeIntervalMs ?? 500}ms`;
  const config = {
    global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
    scrape_configs: Object.entries(opts.jobs).map(([job, port]) => ({ job_name: job, static_configs: [{ targets: [`127.0.0.1:${port}`] }] })),
  };
  // YAML is a superset of JSON.
  await writeFile(path.join(dir, 'prometheus.yml'), JSON.stringify(config, null, 2));

  let lastError: Error | undefined;
  // Another process may take the free port between our check and Prometheus binding it: try again.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const child = spawn(
      binary,
      [
        `--config.file=${path.join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4_000);
    });
    const prom = handle(`http://127.0.0.1:${port}`, child, dir);
    try {
      await waitUntil(async () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`prometheus exited (${child.exitCode ?? child.signalCode}): ${stderr.trim()}`);
        for (const job of Object.keys(opts.jobs)) {
          const up = await prom.query(`up{job=${JSON.stringify(job)}}`).catch(() => []);
          if (up[0]?.value[1] !== '1') return false;
        }
        return true;
      }, `prometheus to scrape ${Object.keys(opts.jobs).join(', ')}`);
      return prom;
    } catch (err) {
      lastError = err as Error;
      await stopChild(child, STOP_GRACE_MS);
      if (!/address already in use/.test(stderr)) break;
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError ?? new Error('prometheus did not start');
}

function handle(url: string, child: ChildProcess, dir: string): TestPrometheus {
  const query = async (promql: string) => {
    const res = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: promql })}`, { signal: AbortSignal.timeout(5_000) });
    const body = (await res.json()) as { status: string; error?: string; data?: { result: { metric: Record<string, string>; value: [number, string] }[] } };
    if (body.status !== 'success') throw new Error(`query ${promql}: ${body.error}`);
    return body.data!.result;
  };
  return {
    url,
    query,
    async waitForScrapes(job, n) {
      await waitUntil(async () => {
        const r = await query(`count_over_time(up{job=${JSON.stringify(job)}}[5m])`);
        return Number(r[0]?.value[1] ?? 0) >= n;
      }, `${n} scrapes of ${job}`);
    },
    async stop() {
      await stopChild(child, STOP_GRACE_MS);
      await rm(dir, { recursive: true, force: true });
    },
  };
}


async function waitUntil(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`gave up after ${READY_TIMEOUT_MS} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
