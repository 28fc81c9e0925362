import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { queueHealth, sanitise } from '../../src/jobs/queue-health';
import { migrate } from '../../src/results/migrate';
import { ResultStore } from '../../src/results/store';
import type { TaskResult } from '../../src/contract/result';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { TEST_REDIS_URL } from '../support/env';
import { eventually } from '../support/jobs';
import { deleteKeys, randomPrefix } from '../support/redis';
import { runOn } from '../support/run-on';

/*
 * The monitored application's queues, filled by real BullMQ producers and
 * workers under this file's own prefix, one queue per situation.
 */
const prefix = randomPrefix('qh');
const connection = { url: TEST_REDIS_URL, maxRetriesPerRequest: null };
let db: TestDatabase;
let redis: Redis;
const queues = new Map<string, Queue>();
const workers: Worker[] = [];
let releaseSlow: () => void = () => undefined;

function queue(name: string): Queue {
  let q = queues.get(name);
  if (!q) {
    q = new Queue(name, { connection, prefix, defaultJobOptions: { attempts: 1 } });
    queues.set(name, q);
  }
  return q;
}

/** A worker that fails jobs whose data says so, with that reason. */
function worker(name: string, processor: (job: Job) => Promise<unknown> = async (job) => {
  if (job.data.fail) throw new Error(job.data.fail);
  return 'done';
}): Worker {
  const w = new Worker(name, processor, { connection, prefix, concurrency: 5 });
  w.on('error', () => undefined);
  workers.push(w);
  return w;
}

async function counts(name: string): Promise<Record<string, number>> {
  return queue(name).getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed');
}

/** Waits (bounded) until the queue has these counts. */
async function settle(name: string, expected: Record<string, number>): Promise<void> {
  await eventually(async () => {
    const c = await counts(name);
    return Object.entries(expected).every(([k, v]) => c[k] === v) ? true : undefined;
  }, 15_000, `${name} to reach ${JSON.stringify(expected)}`);
}

/** Makes a finished job look finished `secondsAgo`: the set's score and the job's finishedOn. */
async function age(name: string, state: 'completed' | 'failed', id: string, secondsAgo: number): Promise<void> {
  const at = Date.now() - secondsAgo * 1000;
  await redis.zadd(`${prefix}:${name}:${state}`, 'XX', at, id);
  await redis.hset(`${prefix}:${name}:${id}`, 'finishedOn', at);
}

/** Every key matching a pattern (a full SCAN: one call returns only a slice of the keyspace). */
async function keysOf(pattern: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return keys;
}

interface TargetOpts {
  name?: string;
  deadLetterQueues?: string[];
  clean?: boolean;
  url?: string;
}

function run(names: string[], opts: TargetOpts = {}, params: Record<string, unknown> = {}, dryRun = false): Promise<TaskResult> {
  return runOn(
    queueHealth,
    'queues',
    {
      redis: [{ name: 'app-redis', url: opts.url ?? TEST_REDIS_URL }],
      queues: [{ name: opts.name ?? 'app', redis: 'app-redis', queues: names, prefix, deadLetterQueues: opts.deadLetterQueues ?? [], allow: { clean: opts.clean ?? false } }],
    },
    params,
    dryRun,
    { state: db.pool },
  );
}

const find = (r: TaskResult, code: string, subject?: string) => r.findings.find((f) => f.code === code && (subject === undefined || f.subject === subject));
const serious = (r: TaskResult) => r.findings.filter((f) => f.severity !== 'info');

beforeAll(async () => {
  db = await createTestDatabase('queue_health');
  await migrate(db.pool);
  redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });

  // healthy: 2 completed, then 2 waiting with no worker; its dead-letter queue exists and is empty.
  worker('healthy');
  await queue('healthy').addBulk([{ name: 'ok', data: {} }, { name: 'ok', data: {} }]);
  await settle('healthy', { completed: 2 });
  await Promise.all(workers.splice(0).map((w) => w.close()));
  await queue('healthy').addBulk([{ name: 'ok', data: {} }, { name: 'ok', data: {} }]);
  const gone = await queue('healthy-dlq').add('dead', {});
  await gone.remove();

  // busy: 5 waiting, nobody working.
  await queue('busy').addBulk(Array.from({ length: 5 }, () => ({ name: 'job', data: {} })));

  // flaky: 3 fail with one reason, 2 with another, 1 completes.
  worker('flaky');
  await queue('flaky').addBulk([
    ...Array.from({ length: 3 }, () => ({ name: 'sync', data: { fail: 'db timeout\n    at query (db.js:1)' } })),
    ...Array.from({ length: 2 }, () => ({ name: 'sync', data: { fail: 'bad payload' } })),
    { name: 'sync', data: {} },
  ]);
  await settle('flaky', { failed: 5, completed: 1 });

  // slow: one job its worker never finishes until the end of the file.
  const gate = new Promise<void>((resolve) => (releaseSlow = resolve));
  worker('slow', () => gate);
  await queue('slow').add('long', {});
  await settle('slow', { active: 1 });

  // held: paused with a job waiting.
  await queue('held').add('job', {});
  await queue('held').pause();

  // dead: a dead-letter queue with two jobs.
  await queue('dead').addBulk([{ name: 'letter', data: { n: 1 } }, { name: 'letter', data: { n: 2 } }]);

  // old: finished jobs of different ages (moved back in time below).
  worker('old');
  await queue('old').addBulk([
    ...Array.from({ length: 3 }, (_, i) => ({ name: 'done', data: {}, opts: { jobId: `c${i}` } })),
    ...Array.from({ length: 2 }, (_, i) => ({ name: 'broke', data: { fail: 'old failure' }, opts: { jobId: `f${i}` } })),
  ]);
  await settle('old', { completed: 3, failed: 2 });
  await age('old', 'completed', 'c0', 2 * 86_400);
  await age('old', 'completed', 'c1', 2 * 86_400);
  await age('old', 'failed', 'f0', 8 * 86_400);
  await age('old', 'failed', 'f1', 2 * 86_400);

  // "stuck" needs the slow job active for longer than stuckSeconds (1 s in these tests).
  await new Promise((r) => setTimeout(r, 1_100));
});

afterAll(async () => {
  releaseSlow();
  await Promise.all(workers.map((w) => w.close()));
  await Promise.all([...queues.values()].map((q) => q.close()));
  await deleteKeys(prefix);
  redis?.disconnect();
  await db?.drop();
});

describe('queue-health: a healthy queue set', () => {
  it('gives no warning or critical, with exact counts as metrics', async () => {
    const result = await run(['healthy'], { deadLetterQueues: ['healthy-dlq'] }, { stuckSeconds: 1 });
    expect(result.status).toBe('ok');
    expect(serious(result)).toEqual([]);
    expect(result.metrics).toMatchObject({
      queue_healthy_waiting: 2,
      queue_healthy_active: 0,
      queue_healthy_failed: 0,
      queue_healthy_delayed: 0,
      queue_waiting_total: 2,
      queue_failed_since_last_run: 0,
      queue_stuck_jobs: 0,
      queue_paused: 0,
      queue_dead_letter_jobs: 0,
      queue_healthy_dlq_waiting: 0,
    });
    expect(result.actions).toEqual([]);
    expect(result.summary).toBe('2 queues: 2 waiting, 0 active, 0 failed in the last 24 h, 0 stuck, 0 paused, 0 dead letters');
  });

  it('a queue without keys is an info finding, and looking creates none', async () => {
    // BullMQ's Queue writes its meta hash on creation unless told not to (skipMetasUpdate).
    const result = await run(['nope', 'healthy', 'busy']);
    expect(result.status).toBe('ok');
    expect(find(result, 'queue_missing')).toMatchObject({ severity: 'info', subject: 'nope', details: { queue: 'nope', prefix } });
    expect(result.metrics.queue_missing).toBe(1);
    expect(await keysOf(`${prefix}:nope:*`)).toEqual([]);
  });

  it('an unreachable Redis is an error result with the reason', async () => {
    const result = await run(['healthy'], { url: 'redis://127.0.0.1:1' });
    expect(result.status).toBe('error');
    expect(result.summary).toMatch(/cannot reach redis at 127\.0\.0\.1:1: .*ECONNREFUSED/);
  });
});

describe('queue-health: backlog', () => {
  it('raises queue_backlog above the bound', async () => {
    const result = await run(['busy'], {}, { backlog: 3 });
    expect(find(result, 'queue_backlog', 'busy')).toMatchObject({ severity: 'warning', details: { waiting: 5, threshold: 3, active: 0 } });
    expect(result.metrics.queue_busy_waiting).toBe(5);
  });

  it('as critical above backlogCritical, and not at the bound itself', async () => {
    expect(find(await run(['busy'], {}, { backlog: 3, backlogCritical: 4 }), 'queue_backlog')?.severity).toBe('critical');
    expect(find(await run(['busy'], {}, { backlog: 5 }), 'queue_backlog')).toBeUndefined();
    // The runbook's default: queue length < 100.
    expect(find(await run(['busy']), 'queue_backlog')).toBeUndefined();
  });
});

describe('queue-health: failed jobs', () => {
  it('raises failed_jobs with the top reasons grouped and counted', async () => {
    const result = await run(['flaky'], { name: 'flaky-first' });
    const finding = find(result, 'failed_jobs', 'flaky')!;
    expect(finding).toMatchObject({
      severity: 'warning',
      details: {
        failed: 5,
        failedTotal: 5,
        window: 'window',
        scanned: 5,
        distinctReasons: 2,
        topReasons: [
          { reason: 'db timeout', count: 3, sampleJobName: 'sync' },
          { reason: 'bad payload', count: 2, sampleJobName: 'sync' },
        ],
      },
    });
    expect(finding.message).toMatch(/5 jobs failed in flaky in the last 24 h.*top reason \(3×\): db timeout/);
    expect(result.metrics).toMatchObject({ queue_failed_since_last_run: 5, queue_flaky_failed: 5 });
  });

  it('counts exactly but reads at most failedScanLimit jobs for the reasons', async () => {
    const finding = find(await run(['flaky'], {}, { failedScanLimit: 2 }), 'failed_jobs')!;
    expect(finding.details).toMatchObject({ failed: 5, scanned: 2 });
    expect((finding.details!.topReasons as { count: number }[]).reduce((n, r) => n + r.count, 0)).toBe(2);
  });

  it('counts only the jobs failed since the previous run', async () => {
    const name = 'flaky-since';
    const at = new Date().toISOString();
    await new ResultStore(db.pool).save({
      task: 'queue-health', target: name, status: 'warning', startedAt: at, finishedAt: at, durationMs: 0,
      dryRun: false, summary: 'previous', findings: [], actions: [], metrics: {},
    });
    const quiet = await run(['flaky'], { name });
    expect(find(quiet, 'failed_jobs')).toBeUndefined();
    expect(quiet.metrics.queue_failed_since_last_run).toBe(0);
    expect(quiet.summary).toMatch(/0 failed since the last run/);

    await queue('flaky').add('sync', { fail: 'new failure' });
    await settle('flaky', { failed: 6 });
    const after = await run(['flaky'], { name });
    expect(find(after, 'failed_jobs')?.details).toMatchObject({
      failed: 1,
      failedTotal: 6,
      window: 'since_last_run',
      since: at,
      topReasons: [{ reason: 'new failure', count: 1 }],
    });
  });
});

describe('queue-health: failed jobs still kept', () => {
  it('reports failed jobs still in the queue on every run, apart from the new ones since the last run', async () => {
    // Its own queue and target: the history (the "last run") is per target.
    const name = 'stale';
    const target = 'stale-twice';
    worker(name, async (job) => {
      throw new Error(job.data.reason);
    });
    await queue(name).addBulk([
      ...Array.from({ length: 3 }, () => ({ name: 'charge', data: { reason: 'card declined\n    at charge (pay.js:9)' } })),
      ...Array.from({ length: 2 }, () => ({ name: 'charge', data: { reason: 'gateway down' } })),
    ]);
    await settle(name, { failed: 5 });
    const failedAt = (await queue(name).getFailed()).map((j) => j.finishedOn!);
    expect(failedAt).toHaveLength(5);

    const first = await run([name], { name: target });
    expect(find(first, 'failed_jobs', name)?.details).toMatchObject({ failed: 5, window: 'window' });
    expect(find(first, 'failed_jobs_retained')).toBeUndefined();
    // What the worker records after each run: the next run's "since the last run".
    await new ResultStore(db.pool).save(first);

    const second = await run([name], { name: target });
    expect(find(second, 'failed_jobs')).toBeUndefined();
    expect(second.metrics).toMatchObject({ queue_failed_since_last_run: 0, queue_failed_retained: 5, queue_stale_failed: 5 });
    expect(second.summary).toMatch(/0 failed since the last run \(5 older still failed\)/);
    const retained = find(second, 'failed_jobs_retained', name)!;
    expect(retained).toMatchObject({
      severity: 'info',
      details: {
        retained: 5,
        failedTotal: 5,
        window: 'since_last_run',
        before: first.finishedAt,
        oldestFailedAt: new Date(Math.min(...failedAt)).toISOString(),
        scanned: 5,
        distinctReasons: 2,
        topReasons: [
          { reason: 'card declined', count: 3, sampleJobName: 'charge' },
          { reason: 'gateway down', count: 2, sampleJobName: 'charge' },
        ],
      },
    });
    // Reasons are read from the oldest end, at most failedScanLimit; the count stays exact.
    expect(find(await run([name], { name: target }, { failedScanLimit: 2 }), 'failed_jobs_retained')?.details).toMatchObject({
      retained: 5,
      scanned: 2,
      oldestFailedAt: new Date(Math.min(...failedAt)).toISOString(),
    });
    expect(retained.message).toMatch(/^5 failed jobs from before the last run are still in stale \(oldest failed .* ago\); top reason \(3×\): card declined$/);
    // Info unless asked: kept failures must not hold the queue at warning until they are cleaned.
    expect(second.status).toBe('ok');
    expect(find(await run([name], { name: target }, { failedRetainedWarning: 5 }), 'failed_jobs_retained')?.severity).toBe('warning');
  });
});

describe('queue-health: stuck, paused, dead letters', () => {
  it('raises stuck_jobs for a job active longer than stuckSeconds', async () => {
    const result = await run(['slow'], {}, { stuckSeconds: 1 });
    const finding = find(result, 'stuck_jobs', 'slow')!;
    expect(finding).toMatchObject({ severity: 'warning', details: { count: 1, thresholdSeconds: 1 } });
    const [job] = finding.details!.jobs as { name: string; activeSeconds: number; attemptsMade: number }[];
    expect(job).toMatchObject({ name: 'long' });
    expect(job!.activeSeconds).toBeGreaterThanOrEqual(1);
    expect(result.metrics).toMatchObject({ queue_stuck_jobs: 1, queue_slow_active: 1, queue_active_total: 1 });
    // An active job younger than the bound is not stuck.
    expect(find(await run(['slow']), 'stuck_jobs')).toBeUndefined();
  });

  it('raises queue_paused for a paused queue', async () => {
    const result = await run(['held', 'healthy']);
    expect(find(result, 'queue_paused')).toMatchObject({ severity: 'warning', subject: 'held', details: { waiting: 1 } });
    expect(result.findings.filter((f) => f.code === 'queue_paused')).toHaveLength(1);
    expect(result.metrics).toMatchObject({ queue_paused: 1, queue_held_waiting: 1 });
  });

  it('raises dead_letter_jobs for a dead-letter queue with jobs in it', async () => {
    const result = await run(['healthy'], { deadLetterQueues: ['dead'] });
    const finding = find(result, 'dead_letter_jobs')!;
    expect(finding).toMatchObject({ severity: 'warning', subject: 'dead', details: { jobs: 2, waiting: 2, failed: 0 } });
    expect((finding.details!.sample as { name: string }[]).map((j) => j.name)).toEqual(['letter', 'letter']);
    expect(result.metrics).toMatchObject({ queue_dead_letter_jobs: 2, queue_dead_waiting: 2 });
    // Dead letters are not the monitored queues' backlog.
    expect(result.metrics.queue_waiting_total).toBe(2);
  });
});

describe('queue-health: clean old jobs', () => {
  // completed c0, c1 finished 2 days ago, c2 now; failed f0 8 days ago, f1 2 days ago.
  const ids = async () => ({
    completed: (await queue('old').getCompleted()).map((j) => j.id).sort(),
    failed: (await queue('old').getFailed()).map((j) => j.id).sort(),
  });
  const all = { completed: ['c0', 'c1', 'c2'], failed: ['f0', 'f1'] };

  it('without allow.clean, cleans nothing', async () => {
    const result = await run(['old']);
    expect(result.actions).toEqual([]);
    expect(result.summary).not.toMatch(/clean/);
    expect(await ids()).toEqual(all);
  });

  it('with --dry-run, counts what it would clean and deletes nothing', async () => {
    const result = await run(['old'], { clean: true }, {}, true);
    expect(result.actions).toEqual([
      { kind: 'queue_clean', subject: 'old:completed', applied: false, details: { queue: 'old', state: 'completed', olderThanSeconds: 86_400, limit: 1_000, jobs: 2 } },
      { kind: 'queue_clean', subject: 'old:failed', applied: false, details: { queue: 'old', state: 'failed', olderThanSeconds: 7 * 86_400, limit: 1_000, jobs: 1 } },
    ]);
    expect(result.summary).toMatch(/would clean 3 old jobs/);
    expect(result.metrics.queue_cleaned_jobs).toBe(0);
    expect(await ids()).toEqual(all);
  });

  it('when allowed, removes completed and failed jobs older than their ages, and only those', async () => {
    const result = await run(['old'], { clean: true });
    expect(result.actions.map((a) => [a.subject, a.applied, a.details!.jobs])).toEqual([
      ['old:completed', true, 2],
      ['old:failed', true, 1],
    ]);
    expect(result.metrics.queue_cleaned_jobs).toBe(3);
    expect(result.summary).toMatch(/cleaned 3 old jobs/);
    expect(await ids()).toEqual({ completed: ['c2'], failed: ['f1'] });
    expect(await queue('old').getJob('c0')).toBeUndefined();
    // Nothing older is left: a second run has nothing to do.
    expect((await run(['old'], { clean: true })).actions).toEqual([]);
  });
});

describe('queue-health: metric names', () => {
  it('sanitises queue names into metric names', () => {
    expect(sanitise('emails')).toBe('emails');
    expect(sanitise('Emails.v2')).toBe('emails_v2');
    expect(sanitise('--a::b--')).toBe('a_b');
    expect(sanitise('..')).toBe('unnamed');
  });
});
