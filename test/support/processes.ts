/**
 * Real processes for the fault suite: caretaker as an operator runs it
 * (`bin/caretaker.js`, compiled to dist/ by `npm test`'s build step), a
 * redis-server of the test's own that can be stopped and started again on
 * the same port, and a TCP proxy in front of PostgreSQL that can stall a
 * run's queries. Every wait is bounded; nothing here assumes a fast machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './ports';
import { TEST_PG_ADMIN_URL } from './env';
import { eventually } from './jobs';

/** bin/caretaker.js at the project root, from test/support (jest) or from dist/test/support (a bench compiled by tsc). */
const BIN = [join(__dirname, '../../bin/caretaker.js'), join(__dirname, '../../../bin/caretaker.js')].find((p) => existsSync(p))!;

export type LogLine = Record<string, unknown> & { msg?: string; level?: number };

/** pino lines from a process's stderr, parsed (anything else skipped). */
export function logLines(text: string): LogLine[] {
  const lines: LogLine[] = [];
  for (const l of text.split('\n')) {
    if (!l.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(l) as LogLine);
    } catch {
      // A line cut in the middle (still being written): the next read has it whole.
    }
  }
  return lines;
}

export interface CaretakerProcess {
  child: ChildProcess;
  pid: number;
  /** Everything written to stderr so far. */
  stderr(): string;
  logs(): LogLine[];
  /** Waits (bounded) for a log line with this message; returns it. */
  waitForLog(msg: string, timeoutMs?: number, match?: (l: LogLine) => boolean): Promise<LogLine>;
  /** Resolves with the exit code and signal once the process is gone. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive(): boolean;
  /** SIGTERM, then SIGKILL if it is still there after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

/** `node bin/caretaker.js ARGS` with only PATH (and `env`) in its environment. */
export function spawnCaretaker(args: string[], env: Record<string, string> = {}): CaretakerProcess {
  const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout!.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    child,
    pid: child.pid!,
    stderr: () => err,
    logs: () => logLines(err),
    waitForLog: (msg, timeoutMs = 30_000, match = () => true) =>
      eventually(
        async () => {
          const found = logLines(err).find((l) => l.msg === msg && match(l));
          if (!found && !alive()) throw new Error(`caretaker exited before logging "${msg}":\n${err.slice(-4_000)}`);
          return found;
        },
        timeoutMs,
        `caretaker to log "${msg}"`,
      ),
    exited,
    alive,
    async stop(graceMs = 15_000) {
      if (!alive()) return;
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), graceMs)));
      const outcome = await Promise.race([exited, late]);
      clearTimeout(timer);
      if (outcome === 'late' && alive()) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** GET a URL; the status and the parsed JSON body (undefined when not JSON), or undefined when nothing answers. */
export async function getJson(url: string, timeoutMs = 5_000): Promise<{ status: number; body: unknown } | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: res.status, body };
  } catch {
    return undefined;
  }
}

export interface OwnRedisServer {
  port: number;
  /** redis://127.0.0.1:port (no password: only this test knows the port). */
  url: string;
  /** A client of the test's (reconnects on its own; errors swallowed). */
  admin: Redis;
  running(): boolean;
  /** SIGTERM and wait for the exit. With `--save ''` nothing survives. */
  stop(): Promise<void>;
  /** Starts it again on the same port; resolves when it answers PING. */
  start(): Promise<void>;
  /** Stops it for good and removes its directory. */
  close(): Promise<void>;
}

/** A redis-server of the test's own on a free port, no persistence: stopping it loses every key. */
export async function startOwnRedis(): Promise<OwnRedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'ct-fault-redis-'));
  const url = `redis://127.0.0.1:${port}`;
  const admin = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true, retryStrategy: () => 100 });
  admin.on('error', () => undefined);
  let server: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const start = async () => {
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
    server = proc;
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    await eventually(
      async () => {
        if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode} (port ${port} taken?)`);
        return (await admin.ping().catch(() => undefined)) === 'PONG' ? true : undefined;
      },
      15_000,
      `redis-server on port ${port} to answer`,
    );
  };
  const running = () => server !== undefined && server.exitCode === null && server.signalCode === null;
  const stop = async () => {
    if (running()) {
      server!.kill('SIGTERM');
      await exited;
    }
  };
  await start();
  return {
    port,
    url,
    admin,
    running,
    stop,
    start,
    async close() {
      admin.disconnect();
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A TCP proxy in front of PostgreSQL. Connections pass through untouched,
 * except that while the proxy holds, what a client sends after its session
 * is ready (the first ReadyForQuery from the server) is kept back: the
 * session connects, sends its first query, and waits for an answer that
 * does not come until release(). A run through it hangs mid-task,
 * deterministically, without any timeout firing on the server.
 * refuse() plays the database going down: open sessions are cut and new
 * ones closed at once, until accept().
 */
export interface StallingProxy {
  port: number;
  /** Sessions that got as far as sending something after they were ready (a query). */
  readonly queried: number;
  /** Sessions with a query held back right now. */
  held(): number;
  hold(): void;
  /** Lets held queries through, and everything after. */
  release(): void;
  /** Cuts every open session and closes new connections at once: the database is "down". */
  refuse(): void;
  /** Passes connections again. */
  accept(): void;
  close(): Promise<void>;
}

interface ProxiedSession {
  client: Socket;
  upstream: Socket;
  ready: boolean;
  queried: boolean;
  pending: Buffer[];
}

/** A stalling proxy in front of the tests' PostgreSQL server (TEST_PG_URL's host and port). */
export function startStallingProxyToPostgres(): Promise<StallingProxy> {
  const server = new URL(TEST_PG_ADMIN_URL);
  return startStallingProxy(Number(server.port || 5432), server.hostname);
}

export async function startStallingProxy(upstreamPort: number, upstreamHost = '127.0.0.1'): Promise<StallingProxy> {
  let holding = false;
  let refusing = false;
  let queried = 0;
  const sessions = new Set<ProxiedSession>();

  const server: Server = createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = createConnection({ port: upstreamPort, host: upstreamHost });
    const s: ProxiedSession = { client, upstream, ready: false, queried: false, pending: [] };
    sessions.add(s);
    const end = () => {
      sessions.delete(s);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);

    // Server → client: passed on; parsed (type byte, int32 length) only until the first ReadyForQuery ('Z').
    let head = Buffer.alloc(0);
    upstream.on('data', (chunk: Buffer) => {
      client.write(chunk);
      if (s.ready) return;
      head = Buffer.concat([head, chunk]);
      while (head.length >= 5) {
        const type = String.fromCharCode(head[0]!);
        const length = head.readInt32BE(1);
        if (head.length < 1 + length) break;
        head = head.subarray(1 + length);
        if (type === 'Z') {
          s.ready = true;
          break;
        }
      }
    });
    // Client → server: held back after the session is ready, while holding.
    client.on('data', (chunk: Buffer) => {
      if (s.ready && !s.queried) {
        s.queried = true;
        queried++;
      }
      if (s.ready && (holding || s.pending.length > 0)) s.pending.push(chunk);
      else upstream.write(chunk);
      if (!holding) flush(s);
    });
  });
  const flush = (s: ProxiedSession) => {
    while (s.pending.length > 0) s.upstream.write(s.pending.shift()!);
  };
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    port,
    get queried() {
      return queried;
    },
    held: () => [...sessions].filter((s) => s.pending.length > 0).length,
    hold() {
      holding = true;
    },
    release() {
      holding = false;
      for (const s of sessions) flush(s);
    },
    refuse() {
      refusing = true;
      for (const s of sessions) {
        s.client.destroy();
        s.upstream.destroy();
      }
    },
    accept() {
      refusing = false;
    },
    async close() {
      for (const s of sessions) {
        s.client.destroy();
        s.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
