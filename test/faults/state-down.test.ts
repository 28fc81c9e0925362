/**
 * Fault 5: the state database is down when a run finishes. The result is not
 * lost: it stays on the job (Bull Board), waits in Redis, and is written once
 * the database answers again — once, however often it is flushed — and the
 * weekly report counts it. In-process first (the outbox's contract), then
 * with a real worker process whose state database goes away behind a proxy.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
import { eventually, waitForJob } from '../support/jobs';
import { runCli } from '../support/cli';
import { weekContaining } from '../../src/reports/week';
import { spawnCaretaker, startStallingProxyToPostgres } from '../support/processes';

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

  it('a real worker whose state database goes away: the run completes, its result waits, is written when the database is back, and the report counts it', async () => {
    const ownPrefix = `${prefix}-proc`;
    const proxy = await startStallingProxyToPostgres();
    const dir = mkdtempSync(join(tmpdir(), 'ct-statedown-'));
    const stateUrl = new URL(db.url);
    stateUrl.port = String(proxy.port);
    const configPath = join(dir, 'caretaker.yaml');
    writeFileSync(
      configPath,
      [
        `redis: { url: "${TEST_REDIS_URL}", prefix: ${ownPrefix} }`,
        `state: { url: "${stateUrl.toString()}" }`,
        // The target is reached directly: only caretaker's own database is down.
        `targets: { postgres: [{ name: main, url: "${db.url}" }] }`,
        // Flushed every second: the test waits for the flush, not for the default 15 s.
        'worker: { concurrency: 1, attempts: 1, backoffMs: 100, shutdownGraceMs: 2000, outboxFlushSeconds: 1 }',
        '',
      ].join('\n'),
    );
    const worker = spawnCaretaker(['start', '--role', 'worker', '--config', configPath]);
    const procQueue = createQueue(redis, ownPrefix);
    // An id of its own: the in-process case above stored a job '1' in this database.
    const jobId = 'run-while-state-down';
    const stored = async () => (await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM caretaker.runs WHERE job_id = $1`, [jobId])).rows[0]!.n;
    try {
      await worker.waitForLog('caretaker started');
      proxy.refuse();
      await procQueue.add('connections', { task: 'connections', target: 'main' }, { attempts: 1, jobId });
      const done = await waitForJob(procQueue, jobId, 30_000);
      expect(await done.getState()).toBe('completed');
      expect((done.returnvalue as TaskResult).task).toBe('connections');
      expect(await new ResultOutbox(redis, ownPrefix).size()).toBe(1);
      expect(await stored()).toBe(0);

      proxy.accept();
      // The worker's next outbox flush writes it; the process never restarted.
      await worker.waitForLog('results from the outbox written to the state database', 20_000);
      expect(await stored()).toBe(1);
      expect(await new ResultOutbox(redis, ownPrefix).size()).toBe(0);
      expect(worker.alive()).toBe(true);

      // The week this run finished in; the in-process run above is counted too when it fell in the same week.
      const { finishedAt } = done.returnvalue as TaskResult;
      const week = weekContaining(new Date(finishedAt), 'UTC');
      const { rows } = await db.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM caretaker.runs WHERE task = 'connections' AND target = 'main' AND finished_at >= $1 AND finished_at < $2`,
        [new Date(week.start), new Date(week.end)],
      );
      expect(rows[0]!.n).toBeGreaterThanOrEqual(1);
      const report = await runCli(['report', 'weekly', '--week', week.id, '--config', configPath]);
      expect(report.code).toBe(0);
      expect(report.stdout).toContain(`connections on main: ${rows[0]!.n} run${rows[0]!.n === 1 ? '' : 's'}, 0 failed`);
    } finally {
      proxy.accept();
      await worker.stop(10_000);
      await procQueue.close();
      await proxy.close();
      await deleteKeys(ownPrefix);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
