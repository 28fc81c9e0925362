/**
 * A redis-server of a test file's own, with a password: for figures the
 * shared instance cannot give (its stats are global) and for the
 * authenticated case. Nothing on disk; stopped and removed by stop().
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './ports';
import { eventually } from './jobs';

export interface OwnRedis {
  port: number;
  /** redis://:password@127.0.0.1:port */
  url: string;
  password: string;
  /** An authenticated client (errors swallowed: the tests look at results). */
  admin: Redis;
  stop(): Promise<void>;
}

export async function startRedisServer(opts: { password: string; extraArgs?: string[] }): Promise<OwnRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'ct-redis-'));
  const server = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--requirepass', opts.password, '--save', '', '--appendonly', 'no', '--dir', dir, ...(opts.extraArgs ?? [])],
    { stdio: 'ignore' },
  );
  const url = `redis://:${opts.password}@127.0.0.1:${port}`;
  const admin = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true, retryStrategy: () => 100 });
  admin.on('error', () => undefined);
  await eventually(async () => ((await admin.ping().catch(() => undefined)) === 'PONG' ? true : undefined), 10_000, 'redis-server to start');
  return {
    port,
    url,
    password: opts.password,
    admin,
    async stop() {
      admin.disconnect();
      if (server.exitCode === null) {
        const exited = new Promise((r) => server.once('exit', r));
        server.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
