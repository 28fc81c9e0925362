/**
 * What every web test file needs: its own database (migrated), its own
 * BullMQ prefix and queue, caretaker's Redis client, and a cleanup that
 * leaves no handle open.
 */
import { Worker, type Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { createRedis } from '../../src/clients/redis';
import type { Config, RawConfigInput } from '../../src/config/schema';
import type { TaskResult } from '../../src/contract/result';
import { createQueue, type JobData } from '../../src/queue/queue';
import { migrate } from '../../src/results/migrate';
import { ResultStore } from '../../src/results/store';
import type { WebDeps } from '../../src/web/server';
import { testConfig } from '../support/config';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { TEST_REDIS_URL } from '../support/env';
import { testLogger } from '../support/logger';
import { deleteKeys, randomPrefix } from '../support/redis';

/** The credentials the web tests configure, as `user:password`. */
export const ADMIN = { user: 'admin', password: 'admin-secret' };
export const VIEWER = { user: 'viewer', password: 'viewer-secret' };
export const WITH_AUTH: Partial<RawConfigInput> = {
  web: { auth: { admin: `${ADMIN.user}:${ADMIN.password}`, viewer: `${VIEWER.user}:${VIEWER.password}` } },
};

export interface WebFixture {
  db: TestDatabase;
  prefix: string;
  config: Config;
  redis: Redis;
  queue: Queue<JobData>;
  store: ResultStore;
  deps: WebDeps;
  close(): Promise<void>;
}

export async function webFixture(label: string, overrides: Partial<RawConfigInput> = WITH_AUTH, log: Logger = testLogger): Promise<WebFixture> {
  const db = await createTestDatabase(label);
  await migrate(db.pool);
  const prefix = randomPrefix(label);
  const config = testConfig({ dbUrl: db.url, prefix, ...overrides });
  const redis = createRedis(TEST_REDIS_URL, testLogger);
  // Ready before any test asks /health.
  await redis.ping();
  const queue = createQueue(redis, prefix);
  const store = new ResultStore(db.pool);
  return {
    db,
    prefix,
    config,
    redis,
    queue,
    store,
    deps: { config, queue, redis, state: db.pool, store, log },
    async close() {
      await queue.close();
      redis.disconnect();
      await db.drop();
      await deleteKeys(prefix);
    },
  };
}

/** A TaskResult that finished at `finishedAt` after `durationMs`. */
export function result(partial: Partial<TaskResult> & Pick<TaskResult, 'task' | 'status' | 'finishedAt'>): TaskResult {
  const durationMs = partial.durationMs ?? 1_000;
  return {
    target: 'main',
    startedAt: new Date(Date.parse(partial.finishedAt) - durationMs).toISOString(),
    durationMs,
    dryRun: false,
    summary: `${partial.task} ${partial.status}`,
    findings: [],
    actions: [],
    metrics: {},
    ...partial,
  };
}

/**
 * Runs one failing job (`boom`) and one succeeding job (`connections`) to
 * the end with a real worker on the fixture's queue, then stops it: the
 * board then has a failed job to retry and a completed one to show.
 */
export async function runOneFailedOneCompleted(fx: WebFixture): Promise<{ failedId: string; completedId: string; states: Map<string, string> }> {
  const connection = createRedis(TEST_REDIS_URL, testLogger);
  const worker = new Worker<JobData>(
    fx.queue.name,
    async (job: Job<JobData>) => {
      if (job.data.task === 'boom') throw new Error('boom');
      return { status: 'ok' };
    },
    { connection, prefix: fx.prefix, autorun: false },
  );
  try {
    const states = new Map<string, string>();
    const bothDone = new Promise<void>((resolve) => {
      const note = (job: Job | undefined, state: string) => {
        if (job?.id) states.set(job.id, state);
        if (states.size === 2) resolve();
      };
      worker.on('failed', (job) => note(job, 'failed'));
      worker.on('completed', (job) => note(job, 'completed'));
    });
    const failed = await fx.queue.add('boom', { task: 'boom', target: 'main' }, { attempts: 1 });
    const completed = await fx.queue.add('connections', { task: 'connections', target: 'main' }, { attempts: 1 });
    void worker.run();
    await bothDone;
    return { failedId: failed.id!, completedId: completed.id!, states };
  } finally {
    await worker.close();
    connection.disconnect();
  }
}
