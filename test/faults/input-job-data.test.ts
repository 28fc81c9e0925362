/**
 * Job data that is not JSON (issue 12): written straight into Redis, it made
 * BullMQ throw while fetching the job, before the processor ran, and the job
 * stayed active forever with a worker error at each stalled check. Now it
 * fails once with the reason, an error row in the history, and the worker
 * serves on. A job hash with fields missing ends cleanly too.
 */
import { Redis } from 'ioredis';
import type { Job, Queue } from 'bullmq';
import { z } from 'zod';
import { TASKS } from '../../src/jobs';
import { defineTask, type Task } from '../../src/contract/task';
import { createQueue, jobOptions, QUEUE_NAME, type JobData } from '../../src/queue/queue';
import { ResultStore } from '../../src/results/store';
import { migrate } from '../../src/results/migrate';
import { startWorker, type WorkerRole } from '../../src/worker/worker';
import type { Config } from '../../src/config/schema';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { deleteKeys, randomPrefix } from '../support/redis';
import { testConfig } from '../support/config';
import { testLogger } from '../support/logger';
import { TEST_REDIS_URL } from '../support/env';
import { waitForJob } from '../support/jobs';

/** Runs long enough that a job added meanwhile is what the worker fetches as it finishes this one. */
const slow: Task = defineTask({
  name: 'slow',
  description: 'test task slow',
  target: 'postgres',
  defaultSchedule: 'daily',
  timeoutMs: 10_000,
  changesTarget: false,
  params: z.strictObject({}),
  codes: {},
  run: async () => {
    await new Promise((r) => setTimeout(r, 500));
    return { summary: 'slow done', findings: [] };
  },
});
const registry = new Map<string, Task>([...TASKS, [slow.name, slow]]);

const prefix = randomPrefix('input-job-data');
let db: TestDatabase;
let redis: Redis;
let queue: Queue<JobData>;
let config: Config;
let role: WorkerRole;
/** Every 'error' the worker emits: BullMQ's only sign of a job it could not read. */
const workerErrors: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase('input_job_data');
  await migrate(db.pool);
  redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  queue = createQueue(redis, prefix);
  // attempts 3: a rejected job must not use them. Concurrency 1: a job added while
  // another runs is fetched by that one's completion (BullMQ's fetch-next), not by a
  // separate fetch. A short lock: without the fix, the stuck job comes back every 5 s.
  config = testConfig({
    dbUrl: db.url,
    prefix,
    worker: { concurrency: 1, attempts: 3, backoffMs: 50, shutdownGraceMs: 5_000, lockDurationMs: 5_000, stalledIntervalMs: 1_000 },
  });
  role = startWorker({ config, registry, store: new ResultStore(db.pool), state: db.pool, redis, connection: redis, log: testLogger });
  role.worker.on('error', (err) => workerErrors.push(err.message));
});

afterAll(async () => {
  await role?.close(5_000);
  await queue?.close();
  redis?.disconnect();
  await db?.drop();
  await deleteKeys(prefix);
});

beforeEach(() => {
  workerErrors.length = 0;
});

/**
 * A job added as usual but delayed, so no worker takes it yet; `edit` then
 * changes its hash (`<prefix>:caretaker:<id>`) straight in Redis, and the job
 * is promoted to waiting.
 */
async function planted(edit: (key: string) => Promise<unknown>, name = 'connections'): Promise<Job<JobData>> {
  const job = await queue.add(name, { task: name, target: 'main' }, { ...jobOptions(config.worker), delay: 3_600_000 });
  await edit(`${prefix}:${QUEUE_NAME}:${job.id}`);
  await job.promote();
  return job;
}

const runRow = async (jobId: string) => (await db.pool.query('SELECT task, target, status, summary FROM caretaker.runs WHERE job_id = $1', [jobId])).rows;

const serveNext = async () => {
  const next = await waitForJob(queue, (await queue.add('connections', { task: 'connections', target: 'main' }, jobOptions(config.worker))).id!);
  expect(await next.getState()).toBe('completed');
};

describe('job data that is not JSON', () => {
  it.each<[string, string, RegExp]>([
    ['plain text', 'not json', /^job data is not JSON: Unexpected token 'o', "not json" is not valid JSON$/],
    ['JSON cut short', '{"task": "connections", "target": "main"', /^job data is not JSON: Expected ',' or '}' after property value in JSON at position \d+/],
    ['text with line breaks', 'line one\nline two\r\n\tthree', /^job data is not JSON: Unexpected token 'l', "line one l"\.\.\. is not valid JSON$/],
    ['a huge value', `{"task": "connections", "params": ${'x'.repeat(200_000)}}`, /^job data is not JSON: Unexpected token 'x'/],
  ])('%s: a failed job with the reason, one error row, no retry, and the worker serves on', async (_name, data, reason) => {
    const job = await planted((key) => redis.hset(key, 'data', data));
    const done = await waitForJob(queue, job.id!);
    expect(await done.getState()).toBe('failed');
    expect(done.attemptsMade).toBe(1);
    expect(done.failedReason).toMatch(reason);
    expect(done.failedReason).not.toMatch(/[\r\n]/);
    expect(done.failedReason.length).toBeLessThanOrEqual(1_001);
    // The text stays, stored as a JSON string, so BullMQ (and Bull Board) can read the job again.
    expect(done.data).toBe(data);
    // Bull Board shows the stacktrace: the reason on one line, no frames.
    expect(done.stacktrace).toEqual([done.failedReason]);
    // The job's name stands in for the task; nothing is left to name the target.
    expect(await runRow(job.id!)).toEqual([{ task: 'connections', target: '?', status: 'error', summary: done.failedReason }]);
    // BullMQ never got to throw: no worker error, and nothing is left active.
    expect(workerErrors).toEqual([]);
    expect(await queue.getActiveCount()).toBe(0);
    await serveNext();
  });

  it('fetched as the next job when the one before it finishes: the same', async () => {
    const first = await queue.add('slow', { task: 'slow', target: 'main' }, jobOptions(config.worker));
    await new Promise((r) => setTimeout(r, 100));
    const bad = await planted((key) => redis.hset(key, 'data', 'not json'));
    const [a, b] = await Promise.all([waitForJob(queue, first.id!), waitForJob(queue, bad.id!)]);
    expect(await a.getState()).toBe('completed');
    expect(await b.getState()).toBe('failed');
    expect(b.attemptsMade).toBe(1);
    expect(b.failedReason).toBe('job data is not JSON: Unexpected token \'o\', "not json" is not valid JSON');
    expect(b.data).toBe('not json');
    expect(await runRow(bad.id!)).toEqual([{ task: 'connections', target: '?', status: 'error', summary: b.failedReason }]);
    expect(workerErrors).toEqual([]);
    await serveNext();
  });
});

describe('a job hash with fields missing', () => {
  it.each<[string, (key: string) => Promise<unknown>, 'completed' | RegExp]>([
    ['no data', (key) => redis.hdel(key, 'data'), /^invalid job data: task: .*expected string/],
    ['no hash at all', (key) => redis.del(key), /^invalid job data: task: .*expected string/],
    ['no name', (key) => redis.hdel(key, 'name'), 'completed'],
    ['no opts', (key) => redis.hdel(key, 'opts'), 'completed'],
    ['no timestamp', (key) => redis.hdel(key, 'timestamp'), 'completed'],
  ])('%s: the job ends, and the worker serves on', async (_name, edit, outcome) => {
    const job = await planted(edit);
    const done = await waitForJob(queue, job.id!);
    if (outcome === 'completed') {
      expect(await done.getState()).toBe('completed');
    } else {
      expect(await done.getState()).toBe('failed');
      expect(done.attemptsMade).toBe(1);
      expect(done.failedReason).toMatch(outcome);
      expect(await runRow(job.id!)).toEqual([expect.objectContaining({ status: 'error', summary: done.failedReason })]);
    }
    expect(workerErrors).toEqual([]);
    await serveNext();
  });
});
