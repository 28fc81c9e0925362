/**
 * A real Alertmanager for tests (Debian's `prometheus-alertmanager`;
 * `.ci/run` installs it): started on a free port with a temp config and
 * storage, gossip off (`--cluster.listen-address=`), one receiver that
 * notifies nobody, stopped and removed after.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { GettableAlert, GettableSilence } from '../../src/clients/alertmanager';
import { freePort } from './ports';
import { stopChild } from './child-process';

const READY_TIMEOUT_MS = 30_000;
const POLL_MS = 100;
const STOP_GRACE_MS = 5_000;
const REQUEST_TIMEOUT_MS = 5_000;

export interface TestAlertmanager {
  /** http://127.0.0.1:port */
  url: string;
  port: number;
  /** GET /api/v2/alerts (only unresolved alerts; `query` as in the API: active, silenced, filter...). */
  alerts(query?: Record<string, string | string[]>): Promise<GettableAlert[]>;
  /** GET /api/v2/silences, expired ones included. */
  silences(): Promise<GettableSilence[]>;
  stop(): Promise<void>;
}

function findBinary(): string {
  const dirs = ['/usr/bin', ...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean)];
  for (const dir of dirs) {
    const candidate = path.join(dir, 'prometheus-alertmanager');
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(
    'these tests need a real Alertmanager: no `prometheus-alertmanager` binary in /usr/bin or on PATH. `.ci/run` installs it (apt-get install prometheus-alertmanager, Debian\'s package)',
  );
}

/** Starts Alertmanager with `resolve_timeout` (default its own 5m) and waits until it is ready. */
export async function startAlertmanager(opts: { resolveTimeout?: string } = {}): Promise<TestAlertmanager> {
  const binary = findBinary();
  const dir = await mkdtemp(path.join(tmpdir(), 'caretaker-am-'));
  const config = {
    global: { resolve_timeout: opts.resolveTimeout ?? '5m' },
    route: { receiver: 'none', group_wait: '1s' },
    receivers: [{ name: 'none' }],
  };
  // YAML is a superset of JSON.
  await writeFile(path.join(dir, 'alertmanager.yml'), JSON.stringify(config, null, 2));

  let lastError: Error | undefined;
  // Another process may take the free port between our check and Alertmanager binding it: try again.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const child = spawn(
      binary,
      [
        `--config.file=${path.join(dir, 'alertmanager.yml')}`,
        `--storage.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--cluster.listen-address=',
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4_000);
    });
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitUntil(async () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`alertmanager exited (${child.exitCode ?? child.signalCode}): ${stderr.trim()}`);
        const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) }).catch(() => undefined);
        await res?.arrayBuffer().catch(() => undefined);
        return res?.status === 200;
      }, 'alertmanager to be ready');
      return handle(url, port, child, dir);
    } catch (err) {
      lastError = err as Error;
      await stopChild(child, STOP_GRACE_MS);
      if (!/address already in use/.test(stderr)) break;
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError ?? new Error('alertmanager did not start');
}

function handle(url: string, port: number, child: ChildProcess, dir: string): TestAlertmanager {
  const get = async <T>(p: string): Promise<T> => {
    const res = await fetch(`${url}${p}`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    if (!res.ok) throw new Error(`GET ${p}: HTTP ${res.status}: ${await res.text()}`);
    return (await res.json()) as T;
  };
  return {
    url,
    port,
    alerts(query = {}) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) for (const one of [v].flat()) params.append(k, one);
      return get<GettableAlert[]>(`/api/v2/alerts${params.size ? `?${params}` : ''}`);
    },
    silences: () => get<GettableSilence[]>('/api/v2/silences'),
    async stop() {
      await stopChild(child, STOP_GRACE_MS);
      await rm(dir, { recursive: true, force: true });
    },
  };
}


/** Polls `check` until it holds, for at most READY_TIMEOUT_MS. */
export async function waitUntil(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`gave up after ${READY_TIMEOUT_MS} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
