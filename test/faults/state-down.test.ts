/**
 * Fault 5: the state database is down when a run finishes. The result is not
 * lost: it stays on the job (Bull Board), waits in Redis, and is written once
 * the database answers again — once, however often it is flushed.
 */
import { Redis } from 'ioredis';
import { Pool } from 'pg';
import type { Queue } from 'bullmq';
import { TASKS } from '../../src/jobs';
import { createQueue, jobOptions, type JobData } from '../../src/queue/queue';
import { ResultStore } from '../../src/results/store';
import { ResultOutbox } from '../../src/results/outbox';
import { migrate } from '../../src/results/migrate';
import { startWorker, type WorkerRole } from '../../src/worker/worker';
import type { TaskResult } from '../../src/contract/result';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { deleteKeys, randomPrefix } from '../support/redis';
import { testConfig } from '../support/config';
import { testLogger } from '../support/logger';
import { TEST_REDIS_URL } from '../support/env';
import { waitForJob } from '../support/jobs';

const prefix = randomPrefix('statedown');
let db: TestDatabase;
let redis: Redis;
let queue: Queue<JobData>;
let deadPool: Pool;
let role: WorkerRole;

beforeAll(async () => {
  db = await createTestDatabase('statedown');
  await migrate(db.pool);
  redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  queue = createQueue(redis, prefix);
  // The state database as the worker sees it: nothing listens there.
  deadPool = new Pool({ connectionString: 'postgres://postgres@127.0.0.1:1/nowhere', connectionTimeoutMillis: 1_000 });
  deadPool.on('error', () => undefined);
});

afterAll(async () => {
  await role?.close(5_000);
  await queue.close();
  redis.disconnect();
  await deadPool.end();
  await db.drop();
  await deleteKeys(prefix);
});

describe('the state database is down when a run finishes', () => {
  it('keeps the result on the job and in the outbox, and writes it once when the database is back', async () => {
    const config = testConfig({ dbUrl: db.url, prefix, worker: { concurrency: 1, attempts: 1, backoffMs: 100, shutdownGraceMs: 5_000 } });
    role = startWorker({ config, registry: TASKS, store: new ResultStore(deadPool), state: db.pool, redis, connection: redis, log: testLogger });

    const job = await queue.add('connections', { task: 'connections', target: 'main' }, jobOptions(config.worker));
    const done = await waitForJob(queue, job.id!);
    expect(await done.getState()).toBe('completed');
    const result = done.returnvalue as TaskResult;
    expect(result.task).toBe('connections');

    const outbox = new ResultOutbox(redis, prefix);
    expect(await outbox.size()).toBe(1);
    expect((await db.pool.query('SELECT count(*)::int AS n FROM caretaker.runs')).rows[0].n).toBe(0);

    // The database answers again: the next flush writes it, with its job id; flushing again changes nothing.
    const store = new ResultStore(db.pool);
    expect(await outbox.flush(store)).toBe(1);
    expect(await outbox.flush(store)).toBe(0);
    expect(await outbox.size()).toBe(0);
    const { rows } = await db.pool.query('SELECT job_id, status, result FROM caretaker.runs');
    expect(rows).toEqual([{ job_id: job.id, status: result.status, result }]);
  });

  it('leaves the outbox alone while the database is still away', async () => {
    const outbox = new ResultOutbox(redis, `${prefix}-x`);
    const result: TaskResult = { task: 't', target: 'x', status: 'ok', startedAt: new Date().toISOString(), finishedAt: new Date().toISOString(), durationMs: 1, dryRun: false, summary: 's', findings: [], actions: [], metrics: {} };
    await outbox.push(result, { jobId: 'j1' });
    await expect(outbox.flush(new ResultStore(deadPool))).rejects.toThrow();
    expect(await outbox.size()).toBe(1);
    await deleteKeys(`${prefix}-x`);
  });
});
