import { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import type { TaskResult } from '../../src/contract/result';
import { createQueue, type JobData } from '../../src/queue/queue';
import { migrate } from '../../src/results/migrate';
import { ResultStore } from '../../src/results/store';
import {
  catchUpJobId,
  defaultGraceMs,
  findMissedRuns,
  recordMissedRuns,
  startMissedRunWatch,
  type RecordedMissedRun,
  type WatchedEntry,
} from '../../src/schedules/missed-runs';
import { lastFireAtOrBefore } from '../../src/schedules/cron';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { TEST_REDIS_URL } from '../support/env';
import { eventually } from '../support/jobs';
import { testLogger } from '../support/logger';
import { deleteKeys, randomPrefix } from '../support/redis';

let db: TestDatabase;
let store: ResultStore;
let redis: Redis;
let queue: Queue<JobData>;
const prefix = randomPrefix('missed');

beforeAll(async () => {
  db = await createTestDatabase('missed_runs');
  await migrate(db.pool);
  store = new ResultStore(db.pool);
  redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  queue = createQueue(redis, prefix);
});
afterAll(async () => {
  await queue.close();
  redis.disconnect();
  await deleteKeys(prefix);
  await db.drop();
});
beforeEach(async () => {
  await db.pool.query('TRUNCATE caretaker.runs, caretaker.missed_runs CASCADE');
  await queue.obliterate({ force: true });
});

let n = 0;
function entry(cron: string, task = 'connections', target = `t${++n}`, schedule = 'fast'): WatchedEntry {
  return { id: `${schedule}:${task}:${target}`, schedule, task, target, cron, timezone: 'UTC' };
}

function run(e: WatchedEntry, finishedAt: Date, extra: Partial<TaskResult> = {}): TaskResult {
  return {
    task: e.task,
    target: e.target,
    status: 'ok',
    startedAt: new Date(finishedAt.getTime() - 1000).toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationMs: 1000,
    dryRun: false,
    summary: 'ok',
    findings: [],
    actions: [],
    metrics: {},
    ...extra,
  };
}

const at = (iso: string) => new Date(iso);

describe('fire times and grace', () => {
  it('finds the last fire time at or before an instant, as BullMQ fires it', () => {
    expect(lastFireAtOrBefore('*/2 * * * * *', 'UTC', at('2026-01-01T00:00:04.000Z'))!.toISOString()).toBe('2026-01-01T00:00:04.000Z');
    expect(lastFireAtOrBefore('*/2 * * * * *', 'UTC', at('2026-01-01T00:00:05.999Z'))!.toISOString()).toBe('2026-01-01T00:00:04.000Z');
    expect(lastFireAtOrBefore('0 3 * * *', 'UTC', at('2026-01-02T02:59:59Z'))!.toISOString()).toBe('2026-01-01T03:00:00.000Z');
    // 2027-03-28 02:30 Berlin does not exist: BullMQ fires at 03:30 CEST (01:30Z); cron-parser's prev() alone says the day before.
    expect(lastFireAtOrBefore('30 2 * * *', 'Europe/Berlin', at('2027-03-28T12:00:00Z'))!.toISOString()).toBe('2027-03-28T01:30:00.000Z');
  });

  it('defaults the grace to 1 h for daily or rarer schedules, else 10 % of the period (at least 1 s)', () => {
    const now = at('2026-05-05T12:00:00Z');
    expect(defaultGraceMs({ cron: '0 3 * * *', timezone: 'UTC' }, now)).toBe(3_600_000);
    expect(defaultGraceMs({ cron: '0 5 1 * *', timezone: 'UTC' }, now)).toBe(3_600_000);
    expect(defaultGraceMs({ cron: '0 * * * *', timezone: 'UTC' }, now)).toBe(360_000);
    expect(defaultGraceMs({ cron: '*/2 * * * * *', timezone: 'UTC' }, now)).toBe(1000);
  });
});

describe('findMissedRuns', () => {
  const now = at('2026-05-05T12:00:00Z');

  it('reports a due time with no run after it once the grace has passed', async () => {
    const e = entry('0 11 * * *');
    // 11:00 due, grace 1 h: at 12:00 exactly it is due-plus-grace.
    const missed = await findMissedRuns({ entries: [e], state: db.pool, now });
    expect(missed).toEqual([{ entryId: e.id, schedule: 'fast', task: 'connections', target: e.target, dueAt: at('2026-05-05T11:00:00Z'), graceMs: 3_600_000 }]);
    // One second earlier, 11:00 is still within its grace: the due time checked is yesterday's... which no run followed either.
    const earlier = await findMissedRuns({ entries: [e], state: db.pool, now: new Date(now.getTime() - 1000) });
    expect(earlier.map((m) => m.dueAt.toISOString())).toEqual(['2026-05-04T11:00:00.000Z']);
  });

  it('does not report a due time followed by a run, whatever its status; skipped and dry runs do not count', async () => {
    const [ok, failed, skipped, dry] = [entry('0 11 * * *'), entry('0 11 * * *'), entry('0 11 * * *'), entry('0 11 * * *')];
    await store.save(run(ok, at('2026-05-05T11:00:05Z')));
    await store.save(run(failed, at('2026-05-05T11:00:05Z'), { status: 'error' }));
    await store.save(run(skipped, at('2026-05-05T11:00:05Z'), { skipped: true }));
    await store.save(run(dry, at('2026-05-05T11:00:05Z'), { dryRun: true }));
    const missed = await findMissedRuns({ entries: [ok, failed, skipped, dry], state: db.pool, now });
    expect(missed.map((m) => m.target).sort()).toEqual([skipped.target, dry.target].sort());
  });

  it('a run before the due time does not cover it', async () => {
    const e = entry('0 11 * * *');
    await store.save(run(e, at('2026-05-05T10:59:59Z')));
    expect((await findMissedRuns({ entries: [e], state: db.pool, now })).map((m) => m.target)).toEqual([e.target]);
  });

  it('honours a grace override', async () => {
    const e = entry('0 11 * * *');
    const missed = await findMissedRuns({ entries: [e], state: db.pool, now, graceFor: () => 2 * 3_600_000 });
    expect(missed[0]!.dueAt.toISOString()).toBe('2026-05-04T11:00:00.000Z');
    expect(missed[0]!.graceMs).toBe(7_200_000);
  });

  it('scheduler down across a fire time: a task that used to run is missed on the first check; a new one is not', async () => {
    const used = entry('0 3 * * *');
    const fresh = entry('0 3 * * *');
    // It ran every night until the 3rd; the scheduler was down over the 4th and 5th.
    await store.save(run(used, at('2026-05-03T03:00:07Z')));
    const watchingSince = now; // the scheduler just started
    const missed = await findMissedRuns({ entries: [used, fresh], state: db.pool, now, watchingSince });
    expect(missed).toEqual([expect.objectContaining({ target: used.target, dueAt: at('2026-05-05T03:00:00Z') })]);
  });
});

describe('recordMissedRuns', () => {
  it('records each miss once, even from two replicas', async () => {
    const e = entry('0 11 * * *');
    const missed = await findMissedRuns({ entries: [e], state: db.pool, now: at('2026-05-05T12:00:00Z') });
    const [a, b] = await Promise.all([recordMissedRuns(db.pool, missed), recordMissedRuns(db.pool, missed)]);
    expect(a.length + b.length).toBe(1);
    expect(await recordMissedRuns(db.pool, missed)).toEqual([]);
    const { rows } = await db.pool.query('SELECT schedule, task, target, due_at, caught_up FROM caretaker.missed_runs');
    expect(rows).toEqual([{ schedule: 'fast', task: 'connections', target: e.target, due_at: at('2026-05-05T11:00:00Z'), caught_up: false }]);
  });
});

describe('startMissedRunWatch', () => {
  it('on a fixed clock: records a miss once, calls onMissed once, enqueues the catch-up run when the schedule says so', async () => {
    const late = entry('*/2 * * * * *', 'connections', 'late');
    const noCatchUp = entry('*/2 * * * * *', 'pg-health', 'late');
    const fine = entry('*/2 * * * * *', 'connections', 'fine');
    const start = at('2026-05-05T12:00:00.500Z');
    let clock = start;
    const calls: RecordedMissedRun[][] = [];
    const watch = startMissedRunWatch({
      entries: [late, noCatchUp, fine],
      state: db.pool,
      queue,
      jobOpts: {},
      log: testLogger,
      intervalMs: 3_600_000,
      catchUpFor: (e) => e.task === 'connections',
      onMissed: (m) => void calls.push(m),
      now: () => clock,
    });
    // At start: the due times are before the watch and nothing ever ran: nothing was due yet.
    expect(await watch.initial).toEqual([]);
    // 12:00:02 fires; grace 1 s; at 12:00:03.2 it is missed, except where a run followed it.
    await store.save(run(fine, at('2026-05-05T12:00:02.300Z')));
    clock = at('2026-05-05T12:00:03.200Z');
    const first = await watch.check();
    expect(first.map((m) => [m.entryId, m.dueAt.toISOString(), m.caughtUp])).toEqual([
      ['fast:connections:late', '2026-05-05T12:00:02.000Z', true],
      ['fast:pg-health:late', '2026-05-05T12:00:02.000Z', false],
    ]);
    // Same clock again: nothing new, onMissed not called again.
    expect(await watch.check()).toEqual([]);
    await watch.close();
    expect(calls).toHaveLength(1);
    expect(calls[0]).toEqual(first);

    const jobs = await queue.getJobs(['waiting', 'delayed', 'prioritized']);
    expect(jobs.map((j) => [j.id, j.name, j.data])).toEqual([
      [catchUpJobId(first[0]!), 'connections', { task: 'connections', target: 'late', schedule: 'fast' }],
    ]);
    const { rows } = await db.pool.query('SELECT task, target, caught_up FROM caretaker.missed_runs ORDER BY task');
    expect(rows).toEqual([
      { task: 'connections', target: 'late', caught_up: true },
      { task: 'pg-health', target: 'late', caught_up: false },
    ]);
  });

  it('on the real clock with no worker: a second-level schedule is missed after the grace and caught up', async () => {
    const e = entry('*/2 * * * * *', 'connections', 'realtime');
    const seen: RecordedMissedRun[] = [];
    const watch = startMissedRunWatch({
      entries: [e],
      state: db.pool,
      queue,
      jobOpts: {},
      log: testLogger,
      intervalMs: 250,
      catchUpFor: () => true,
      onMissed: (m) => void seen.push(...m),
    });
    try {
      await eventually(async () => (seen.length > 0 ? true : undefined), 15_000, 'a missed run');
    } finally {
      await watch.close();
    }
    // Each due time raised once; each one has its catch-up job.
    const dues = seen.map((m) => m.dueAt.getTime());
    expect(new Set(dues).size).toBe(dues.length);
    const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM caretaker.missed_runs WHERE target = $1', ['realtime']);
    expect(rows[0]!.n).toBe(seen.length);
    const jobs = await queue.getJobs(['waiting', 'delayed', 'prioritized']);
    expect(jobs.map((j) => j.id).sort()).toEqual(seen.map((m) => catchUpJobId(m)).sort());
    expect(seen.every((m) => m.caughtUp)).toBe(true);
  });
});
