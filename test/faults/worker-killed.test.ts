/**
 * Fault 2: a worker is killed (SIGKILL) in the middle of a run. Another
 * worker picks the job up once the killed one's BullMQ lock has lapsed and
 * the stalled check has run, takes over the job's own target lock, runs it
 * to the end once, and the state database holds exactly one result for the
 * job id; the target lock is gone afterwards.
 *
 * Real processes (`caretaker start --role worker`), the shared Redis under a
 * random prefix, the test's own database. The run is made to hang mid-task
 * by a TCP proxy in front of PostgreSQL that holds the task's first query.
 *
 * Duration: BullMQ's job lock must lapse before any stalled check can hand
 * the job on; with worker.lockDurationMs at 5 s and stalledIntervalMs at
 * 1 s the hand-over comes 3-6 s after the kill.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import { createQueue, type JobData } from '../../src/queue/queue';
import { lockKey } from '../../src/worker/target-lock';
import type { TaskResult } from '../../src/contract/result';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { deleteKeys, randomPrefix } from '../support/redis';
import { TEST_REDIS_URL } from '../support/env';
import { eventually, waitForJob } from '../support/jobs';
import { spawnCaretaker, startStallingProxy, type CaretakerProcess, type StallingProxy } from '../support/processes';

const prefix = randomPrefix('wkill');
let db: TestDatabase;
let dir: string;
let proxy: StallingProxy;
let redis: Redis;
let queue: Queue<JobData>;
const procs: CaretakerProcess[] = [];

beforeAll(async () => {
  db = await createTestDatabase('wkill');
  dir = mkdtempSync(join(tmpdir(), 'caretaker-wkill-'));
  const pg = new URL(db.url);
  proxy = await startStallingProxy(Number(pg.port || 5432), pg.hostname);
  redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  queue = createQueue(redis, prefix);
});

afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop(10_000)));
  await queue?.close();
  redis?.disconnect();
  await proxy?.close();
  await db?.drop();
  await deleteKeys(prefix);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Lines of a process's log about this job's finished run (runTask logs the status with the summary). */
const runLines = (p: CaretakerProcess, jobId: string) => p.logs().filter((l) => l.jobId === jobId && typeof l.status === 'string');

describe('a worker killed mid-run', () => {
  it('hands the job to the other worker, which finishes it once; one stored result; the target lock is released', async () => {
    // The target goes through the proxy; the state database does not.
    const target = new URL(db.url);
    target.port = String(proxy.port);
    const config = join(dir, 'caretaker.yaml');
    writeFileSync(
      config,
      [
        `redis: { url: "${TEST_REDIS_URL}", prefix: ${prefix} }`,
        `state: { url: "${db.url}" }`,
        `targets: { postgres: [{ name: main, url: "${target.toString()}" }] }`,
        'worker: { concurrency: 1, attempts: 1, backoffMs: 100, shutdownGraceMs: 2000, stalledIntervalMs: 1000, lockDurationMs: 5000 }',
        '',
      ].join('\n'),
    );

    // Worker A alone: the job can only go to it.
    const a = spawnCaretaker(['start', '--role', 'worker', '--config', config]);
    procs.push(a);
    await a.waitForLog('caretaker started');

    proxy.hold();
    const job = await queue.add('connections', { task: 'connections', target: 'main' }, { attempts: 1 });
    const jobId = job.id!;
    // A is mid-run: connected to the target, its first query held by the proxy.
    await eventually(async () => (proxy.held() === 1 ? true : undefined), 30_000, 'worker A to send its first query');
    expect(await queue.getJobState(jobId)).toBe('active');
    const key = lockKey(prefix, 'connections', 'main');
    expect(await redis.get(key)).toMatch(new RegExp(`^job ${jobId}\\|`));

    // Worker B joins; then A dies without a chance to clean up.
    const b = spawnCaretaker(['start', '--role', 'worker', '--config', config]);
    procs.push(b);
    await b.waitForLog('caretaker started');
    a.child.kill('SIGKILL');
    expect(await a.exited).toEqual({ code: null, signal: 'SIGKILL' });
    const killedAt = Date.now();

    // B picks the job up (its lock lapsed, the stalled check moved it back) and
    // reaches the same point: connected, first query sent, held.
    await eventually(async () => (proxy.queried === 2 && proxy.held() === 1 ? true : undefined), 90_000, 'worker B to run the stalled job');
    expect(await queue.getJobState(jobId)).toBe('active');
    proxy.release();

    const done = await waitForJob(queue, jobId, 60_000);
    expect(await done.getState()).toBe('completed');
    // Delivered twice: once to A (killed), once to B after one stall.
    expect(done.stalledCounter).toBe(1);
    const result = done.returnvalue as TaskResult;
    expect(result).toMatchObject({ task: 'connections', target: 'main' });
    expect(result.skipped).toBeUndefined();
    expect(result.status).not.toBe('error');

    // Exactly one stored result for the job, from B's run (started after A died).
    const { rows } = await db.pool.query<{ job_id: string; status: string; skipped: boolean; started_at: Date; result: TaskResult }>(
      'SELECT job_id, status, skipped, started_at, result FROM caretaker.runs',
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ job_id: jobId, status: result.status, skipped: false, result });
    expect(rows[0]!.started_at.getTime()).toBeGreaterThanOrEqual(killedAt);

    // Finished once: B logged one finished run of it, A none; no third session reached the target.
    expect(runLines(b, jobId)).toHaveLength(1);
    expect(runLines(a, jobId)).toHaveLength(0);
    expect(proxy.queried).toBe(2);

    // B took over the job's own lock and released it at the end.
    expect(await redis.exists(key)).toBe(0);
    expect(b.alive()).toBe(true);
  }, 150_000);
});
