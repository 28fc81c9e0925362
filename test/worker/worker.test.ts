import { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import { z } from 'zod';
import { defineTask, type Task, type TaskDefinition } from '../../src/contract/task';
import { connections } from '../../src/jobs/connections';
import { createQueue, jobOptions, type JobData } from '../../src/queue/queue';
import { ResultStore } from '../../src/results/store';
import { migrate } from '../../src/results/migrate';
import { startWorker, type WorkerRole } from '../../src/worker/worker';
import type { TaskResult } from '../../src/contract/result';
import type { Config } from '../../src/config/schema';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { deleteKeys, randomPrefix } from '../support/redis';
import { testConfig } from '../support/config';
import { testLogger } from '../support/logger';
import { TEST_REDIS_URL } from '../support/env';
import { waitForJob } from '../support/jobs';

/** Counts calls per test task, to see retries. */
const calls = new Map<string, number>();
const count = (name: string) => {
  const n = (calls.get(name) ?? 0) + 1;
  calls.set(name, n);
  return n;
};

const testParams = z.strictObject({ n: z.number().default(1) });
const testTask = (name: string, run: TaskDefinition<'postgres', typeof testParams, 'slow_thing'>['run'], timeoutMs = 10_000): Task =>
  defineTask({
    name,
    description: `test task ${name}`,
    target: 'postgres',
    defaultSchedule: 'daily',
    timeoutMs,
    changesTarget: false,
    params: testParams,
    codes: { slow_thing: 'the slow task took its time' },
    run,
  });

const registry = new Map<string, Task>(
  [
    connections,
    testTask('boom', async () => {
      count('boom');
      throw new Error('disk on fire');
    }),
    testTask('flaky', async () => {
      if (count('flaky') === 1) throw new Error('first try fails');
      return { summary: 'second try worked', findings: [] };
    }),
    testTask('slow', async (ctx) => {
      await ctx.progress(50);
      await ctx.jobLog('halfway');
      await new Promise((r) => setTimeout(r, 800));
      return { summary: 'slow done', findings: [{ severity: 'warning', code: 'slow_thing', subject: 'x', message: 'slow' }] };
    }),
    testTask(
      'hang',
      (ctx) =>
        new Promise((_, reject) => {
          ctx.signal.addEventListener('abort', () => reject(new Error('aborted by signal')));
        }),
      300,
    ),
  ].map((t) => [t.name, t]),
);

const prefix = randomPrefix('worker');
let db: TestDatabase;
let redis: Redis;
let queue: Queue<JobData>;
let store: ResultStore;
let config: Config;
let role: WorkerRole;

beforeAll(async () => {
  db = await createTestDatabase('worker');
  await migrate(db.pool);
  redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  queue = createQueue(redis, prefix);
  store = new ResultStore(db.pool);
  config = testConfig({ dbUrl: db.url, prefix, worker: { concurrency: 3, attempts: 3, backoffMs: 50, shutdownGraceMs: 5_000 } });
  role = startWorker({ config, registry, store, state: db.pool, redis, connection: redis, log: testLogger });
});

afterAll(async () => {
  await role.close(5_000);
  await queue.close();
  redis.disconnect();
  await db.drop();
  await deleteKeys(prefix);
});

const add = (data: Record<string, unknown>, name = String(data.task ?? 'x')) => queue.add(name, data as JobData, jobOptions(config.worker));

describe('worker', () => {
  it('runs a real task and returns the TaskResult as the job\'s return value, stored once', async () => {
    const job = await add({ task: 'connections', target: 'main' });
    const done = await waitForJob(queue, job.id!);
    const result = done.returnvalue as TaskResult;
    expect(result).toMatchObject({ task: 'connections', target: 'main', dryRun: false });
    expect(['ok', 'warning', 'critical']).toContain(result.status);
    expect(result.metrics.connections_max).toBeGreaterThan(0);
    const stored = await store.list({ task: 'connections' });
    expect(stored.filter((r) => r.jobId === job.id)).toHaveLength(1);
    expect(stored[0]!.result).toEqual(result);
  });

  it('retries a throwing task with backoff, then stores one error result with the reason', async () => {
    const job = await add({ task: 'boom', target: 'main' });
    const done = await waitForJob(queue, job.id!);
    expect(await done.getState()).toBe('failed');
    expect(done.attemptsMade).toBe(3);
    expect(calls.get('boom')).toBe(3);
    expect(done.opts.backoff).toEqual({ type: 'exponential', delay: 50 });
    expect(done.failedReason).toMatch(/boom failed on main: disk on fire/);
    // A target's own failure keeps its stack, frames and all, for whoever debugs it.
    expect(done.stacktrace?.at(-1)).toMatch(/^UnrecoverableError: boom failed on main: disk on fire\n {4}at /);
    const stored = (await store.list({ task: 'boom' })).filter((r) => r.jobId === job.id);
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({ status: 'error', summary: 'boom failed on main: disk on fire' });
  });

  it('stores only the final outcome when a retry succeeds', async () => {
    const job = await add({ task: 'flaky', target: 'main' });
    const done = await waitForJob(queue, job.id!);
    expect(await done.getState()).toBe('completed');
    expect((done.returnvalue as TaskResult).summary).toBe('second try worked');
    const stored = (await store.list({ task: 'flaky' })).filter((r) => r.jobId === job.id);
    expect(stored).toHaveLength(1);
    expect(stored[0]!.status).toBe('ok');
  });

  it('never runs the same task on the same target twice at once: the second is skipped', async () => {
    const first = await add({ task: 'slow', target: 'main' });
    await new Promise((r) => setTimeout(r, 200));
    const second = await add({ task: 'slow', target: 'main' });
    const [a, b] = await Promise.all([waitForJob(queue, first.id!), waitForJob(queue, second.id!)]);
    const ra = a.returnvalue as TaskResult;
    const rb = b.returnvalue as TaskResult;
    expect(ra).toMatchObject({ status: 'warning', summary: 'slow done' });
    expect(rb).toMatchObject({ status: 'ok', skipped: true });
    expect(rb.summary).toMatch(new RegExp(`in progress \\(job ${first.id}\\)`));
    // Progress and log lines reach the Bull Board job.
    expect(a.progress).toBe(50);
    expect((await queue.getJobLogs(first.id!)).logs).toContain('halfway');
  });

  it('times out a hanging task through its abort signal', async () => {
    const job = await queue.add('hang', { task: 'hang', target: 'main' }, { ...jobOptions(config.worker), attempts: 1 });
    const done = await waitForJob(queue, job.id!);
    expect(done.failedReason).toBe('hang failed on main: timed out after 300 ms');
  });

  it.each([
    ['bad job data', { target: 'main' }, /^invalid job data: task: /],
    ['an unknown task', { task: 'defrag', target: 'main' }, /^unknown task "defrag"$/],
    ['an unknown target', { task: 'connections', target: 'nope' }, /^unknown postgres target "nope" \(known: main\)$/],
    ['invalid params', { task: 'connections', target: 'main', params: { warning: 'high' } }, /^invalid params: job data params warning: /],
  ])('turns %s into an error result without retrying or crashing', async (_name, data, reason) => {
    const job = await add(data, 'by-hand');
    const done = await waitForJob(queue, job.id!);
    expect(await done.getState()).toBe('failed');
    expect(done.attemptsMade).toBe(1);
    expect(done.failedReason).toMatch(reason);
    // Bull Board shows the job's stacktrace: a user mistake is its reason on one line, no frames.
    const trace = done.stacktrace ?? [];
    expect(trace).toEqual([done.failedReason]);
    expect(trace[0]).not.toContain('\n');
    expect(trace[0]).not.toContain('    at ');
    const stored = await db.pool.query('SELECT status, summary FROM caretaker.runs WHERE job_id = $1', [job.id]);
    expect(stored.rows).toEqual([{ status: 'error', summary: expect.stringMatching(reason) }]);
    // The worker is still up and serves the next job.
    const next = await waitForJob(queue, (await add({ task: 'flaky', target: 'main' })).id!);
    expect(await next.getState()).toBe('completed');
  });

  it('on close, lets a running task finish within the grace period', async () => {
    const job = await add({ task: 'slow', target: 'main' });
    await new Promise((r) => setTimeout(r, 200));
    await role.close(5_000);
    expect(await queue.getJobState(job.id!)).toBe('completed');
    expect((await store.list({ task: 'slow' })).some((r) => r.jobId === job.id)).toBe(true);
  });
});
