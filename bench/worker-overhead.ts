/**
 * What caretaker's processor costs per job on top of BullMQ: job-data and
 * params validation, the per-target lock (SET NX + release), the result
 * row in PostgreSQL. Baseline: a bare BullMQ worker, same queue settings,
 * same Redis, same number of jobs, measured in the same run.
 */
import { randomBytes } from 'node:crypto';
import { Client, Pool } from 'pg';
import { Redis } from 'ioredis';
import { Queue, Worker } from 'bullmq';
import pino from 'pino';
import { z } from 'zod';
import { defineTask, type Task } from '../src/contract/task';
import { validateConfig } from '../src/config/load';
import { TASKS } from '../src/jobs';
import { createQueue, type JobData } from '../src/queue/queue';
import { ResultStore } from '../src/results/store';
import { migrate } from '../src/results/migrate';
import { startWorker } from '../src/worker/worker';

export interface BenchEnv {
  pgAdminUrl: string;
  redisUrl: string;
  jobs: number;
  concurrency: number;
  /** The state pool's size (default concurrency + 2): the state-pool bench compares the old fixed 5 with the sized one. */
  poolMax?: number;
}

/** A task that does nothing: the measurement is the machinery around it. */
const noop: Task = defineTask({
  name: 'noop',
  description: 'does nothing (benchmark)',
  target: 'postgres',
  defaultSchedule: 'daily',
  timeoutMs: 10_000,
  changesTarget: false,
  params: z.strictObject({}),
  codes: {},
  run: async () => ({ summary: 'nothing', findings: [] }),
});

async function drain(queue: Queue, jobs: number, targets: number, start: () => Promise<{ close(): Promise<void> }>): Promise<number> {
  // Spread over targets: one target would make every concurrent job a lock conflict (a skip).
  await queue.addBulk(Array.from({ length: jobs }, (_, i) => ({ name: 'noop', data: { task: 'noop', target: `t${i % targets}` } as JobData, opts: { removeOnComplete: true } })));
  const started = process.hrtime.bigint();
  const worker = await start();
  for (;;) {
    const counts = await queue.getJobCounts('wait', 'active', 'delayed');
    if (counts.wait + counts.active + counts.delayed === 0) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await worker.close();
  return jobs / seconds;
}

export async function benchWorkerOverhead(env: BenchEnv): Promise<{ baseline: number; caretaker: number }> {
  const dbName = `ct_bench_${randomBytes(4).toString('hex')}`;
  const admin = new Client({ connectionString: env.pgAdminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(dbName)}`);
  const dbUrl = Object.assign(new URL(env.pgAdminUrl), { pathname: `/${dbName}` }).toString();
  const pool = new Pool({ connectionString: dbUrl, max: env.poolMax ?? env.concurrency + 2 });
  // pool.end() resolves before every session has closed; the DROP ... WITH (FORCE) below ends those.
  pool.on('error', () => undefined);
  const redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
  const prefix = `ct-bench-${randomBytes(4).toString('hex')}`;
  const targets = env.concurrency * 4;
  try {
    await migrate(pool);
    const config = validateConfig(
      {
        redis: { url: env.redisUrl, prefix },
        targets: { postgres: Array.from({ length: targets }, (_, i) => ({ name: `t${i}`, url: dbUrl })) },
        worker: { concurrency: env.concurrency, attempts: 1 },
      },
      'bench',
      TASKS,
    );
    const log = pino({ level: 'silent' });

    const bareQueue = new Queue('bare', { connection: redis, prefix });
    const baseline = await drain(bareQueue, env.jobs, targets, async () => {
      const w = new Worker('bare', async () => ({ ok: true }), { connection: redis, prefix, concurrency: env.concurrency });
      return { close: () => w.close() };
    });
    await bareQueue.obliterate({ force: true });
    await bareQueue.close();

    const queue = createQueue(redis, prefix);
    const registry = new Map([[noop.name, noop]]);
    const caretaker = await drain(queue, env.jobs, targets, async () => {
      const role = startWorker({ config, registry, store: new ResultStore(pool), state: pool, redis, connection: redis, log });
      return { close: () => role.close(10_000) };
    });
    // Every job must have become exactly one stored run, or the figure means nothing.
    const stored = (await pool.query(`SELECT count(*)::int AS n FROM caretaker.runs`)).rows[0];
    if (stored.n !== env.jobs) throw new Error(`expected ${env.jobs} stored runs, found ${stored.n}`);
    await queue.obliterate({ force: true });
    await queue.close();
    return { baseline, caretaker };
  } finally {
    redis.disconnect();
    await pool.end();
    await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(dbName)} WITH (FORCE)`);
    await admin.end();
  }
}
