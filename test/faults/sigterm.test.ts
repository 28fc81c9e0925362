/**
 * Fault 6: SIGTERM while a task runs. Within the grace period the task
 * finishes and is stored, then the process exits 0; past it, the process
 * still exits 0 and the job is handed back (not completed, not lost).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import { createQueue, jobOptions, type JobData } from '../../src/queue/queue';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { deleteKeys, randomPrefix } from '../support/redis';
import { TEST_REDIS_URL } from '../support/env';
import { eventually } from '../support/jobs';
import { spawnCaretaker, startStallingProxyToPostgres, type CaretakerProcess, type StallingProxy } from '../support/processes';

const prefix = randomPrefix('sigterm');
let db: TestDatabase;
let dir: string;
let redis: Redis;
let queue: Queue<JobData>;
let proxy: StallingProxy;
const procs: CaretakerProcess[] = [];
const WORKER = { concurrency: 1, attempts: 1, backoffMs: 100, shutdownGraceMs: 3000, stalledIntervalMs: 60_000, lockDurationMs: 60_000 };

beforeAll(async () => {
  db = await createTestDatabase('sigterm');
  dir = mkdtempSync(join(tmpdir(), 'ct-sigterm-'));
  redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  queue = createQueue(redis, prefix);
  proxy = await startStallingProxyToPostgres();
});

afterAll(async () => {
  for (const p of procs) await p.stop(2_000).catch(() => undefined);
  proxy.release();
  await proxy.close();
  await queue.close();
  redis.disconnect();
  await db.drop();
  await deleteKeys(prefix);
  rmSync(dir, { recursive: true, force: true });
});

async function workerWithRunningJob(): Promise<{ proc: CaretakerProcess; jobId: string }> {
  const target = new URL(db.url);
  target.port = String(proxy.port);
  const config = join(dir, `caretaker-${procs.length}.yaml`);
  writeFileSync(
    config,
    [
      `redis: { url: "${TEST_REDIS_URL}", prefix: ${prefix} }`,
      `state: { url: "${db.url}" }`,
      `targets: { postgres: [{ name: main, url: "${target.toString()}" }] }`,
      `worker: ${JSON.stringify(WORKER)}`,
      '',
    ].join('\n'),
  );
  const proc = spawnCaretaker(['start', '--role', 'worker', '--config', config]);
  procs.push(proc);
  await proc.waitForLog('caretaker started');
  proxy.hold();
  const heldBefore = proxy.held();
  const job = await queue.add('connections', { task: 'connections', target: 'main' }, jobOptions({ ...WORKER }));
  await eventually(async () => (proxy.held() > heldBefore && (await queue.getJobState(job.id!)) === 'active' ? true : undefined), 20_000, 'the task to be mid-run');
  return { proc, jobId: job.id! };
}

describe('SIGTERM under load', () => {
  it('lets the running task finish within the grace period, stores it, exits 0', async () => {
    const { proc, jobId } = await workerWithRunningJob();
    proc.child.kill('SIGTERM');
    await proc.waitForLog('stopping: no new jobs, waiting for running ones');
    proxy.release();
    expect(await proc.exited).toEqual({ code: 0, signal: null });
    expect(await queue.getJobState(jobId)).toBe('completed');
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM caretaker.runs WHERE job_id = $1', [jobId]);
    expect(rows[0].n).toBe(1);
  });

  it('past the grace period, exits 0 and hands the job back instead of finishing it half-way', async () => {
    const { proc, jobId } = await workerWithRunningJob();
    proc.child.kill('SIGTERM');
    // The task stays held past the 3 s grace.
    expect(await proc.exited).toEqual({ code: 0, signal: null });
    expect(proc.logs().map((l) => l.msg)).toContain('grace period over: handing running jobs back to the queue');
    // Not completed, not failed: still active until its lock lapses, then another worker takes it.
    expect(await queue.getJobState(jobId)).toBe('active');
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM caretaker.runs WHERE job_id = $1', [jobId]);
    expect(rows[0].n).toBe(0);
    proxy.release();
  });
});
