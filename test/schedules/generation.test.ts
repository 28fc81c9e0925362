/**
 * Re-syncs that leave a healthy scheduler alone, and the config generation
 * that lets only the newest config write during a rollout. The end-to-end
 * proof with real processes is test/faults/replicas.test.ts.
 */
import { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import { createQueue, jobOptions, type JobData } from '../../src/queue/queue';
import type { SchedulerEntry } from '../../src/schedules/resolve';
import { syncSchedulers } from '../../src/schedules/sync';
import { startScheduler, type SchedulerRole } from '../../src/schedules/scheduler';
import { claimGeneration, generationKey, schedulesDigest } from '../../src/schedules/generation';
import { testConfig } from '../support/config';
import { TEST_REDIS_URL } from '../support/env';
import { deleteKeys, randomPrefix } from '../support/redis';
import { testLogger } from '../support/logger';

const prefix = randomPrefix('generation');
const opts = jobOptions(testConfig({ dbUrl: 'postgres://localhost/x', prefix }).worker);
let redis: Redis;
const queues: Queue<JobData>[] = [];

/** A queue of its own per test, so tests never see each other's schedulers. */
function freshQueue(name: string): Queue<JobData> {
  const q = createQueue(redis, `${prefix}-${name}`);
  queues.push(q);
  return q;
}

const entry = (schedule: string, cron: string, task = 'connections', target = 'main'): SchedulerEntry => ({
  id: `${schedule}:${task}:${target}`,
  schedule,
  task,
  target,
  targetKind: 'postgres',
  cron,
  timezone: 'UTC',
  catchUp: false,
});

beforeAll(() => {
  redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
});
afterAll(async () => {
  for (const q of queues) await q.close();
  redis.disconnect();
  await deleteKeys(prefix);
});

describe('syncSchedulers leaves healthy schedulers alone', () => {
  it('writes nothing the second time, rewrites only what changed, and repairs a scheduler whose next run is gone', async () => {
    const queue = freshQueue('sync');
    const nightly = entry('nightly', '0 3 * * *');
    const weekly = entry('weekly', '0 4 * * 1', 'pg-health');
    const first = await syncSchedulers(queue, [nightly, weekly], opts, testLogger);
    expect(first).toMatchObject({ upserted: [nightly.id, weekly.id], unchanged: [], removed: [], superseded: false });
    const [before] = await queue.getDelayed();

    const again = await syncSchedulers(queue, [nightly, weekly], opts, testLogger);
    expect(again).toMatchObject({ upserted: [], unchanged: [nightly.id, weekly.id] });
    // The pending runs are the very same jobs: an upsert would have replaced them.
    expect((await queue.getDelayed()).map((j) => `${j.id}@${j.timestamp}`)).toContain(`${before!.id}@${before!.timestamp}`);

    const changed = { ...nightly, cron: '30 3 * * *' };
    expect(await syncSchedulers(queue, [changed, weekly], opts, testLogger)).toMatchObject({ upserted: [nightly.id], unchanged: [weekly.id] });
    expect((await queue.getJobScheduler(nightly.id))!.pattern).toBe('30 3 * * *');

    // Other job options (a new attempts setting) are a change too.
    expect(await syncSchedulers(queue, [changed, weekly], { ...opts, attempts: 5 }, testLogger)).toMatchObject({ upserted: [nightly.id, weekly.id] });

    // The weekly's pending run is gone (an eviction, a hand edit in Redis): the chain of runs is broken, so it is re-upserted.
    const lost = `repeat:${weekly.id}:${(await queue.getJobScheduler(weekly.id))!.next!}`;
    await redis.zrem(`${queue.qualifiedName}:delayed`, lost);
    await redis.del(`${queue.qualifiedName}:${lost}`);
    expect(await queue.getJobState(lost)).toBe('unknown');
    expect(await syncSchedulers(queue, [changed, weekly], { ...opts, attempts: 5 }, testLogger)).toMatchObject({ upserted: [weekly.id], unchanged: [nightly.id] });
    expect(await queue.getJobState(`repeat:${weekly.id}:${(await queue.getJobScheduler(weekly.id))!.next!}`)).toBe('delayed');
  });
});

describe('the config generation', () => {
  const key = `${prefix}:claims:config-generation`;

  it('goes to the newest start; the same config from an older replica still writes; a different older one does not', async () => {
    expect(await claimGeneration(redis, key, { digest: 'v1', startedAt: 1_000 })).toBe(true);
    expect(await claimGeneration(redis, key, { digest: 'v1', startedAt: 900 })).toBe(true);
    expect(await claimGeneration(redis, key, { digest: 'v2', startedAt: 2_000 })).toBe(true);
    expect(await claimGeneration(redis, key, { digest: 'v1', startedAt: 1_000 })).toBe(false);
    expect(await claimGeneration(redis, key, { digest: 'v2', startedAt: 1_500 })).toBe(true);
    // A rollback is a newer start with the older config: it wins.
    expect(await claimGeneration(redis, key, { digest: 'v1', startedAt: 3_000 })).toBe(true);
    expect(await claimGeneration(redis, key, { digest: 'v2', startedAt: 2_000 })).toBe(false);
    expect(await redis.hgetall(key)).toEqual({ digest: 'v1', startedAt: '3000' });
  });

  it('digests what a sync writes, whatever the entries\' order', () => {
    const a = entry('nightly', '0 3 * * *');
    const b = entry('weekly', '0 4 * * 1', 'pg-health');
    expect(schedulesDigest([a, b], opts)).toBe(schedulesDigest([b, a], opts));
    expect(schedulesDigest([a, b], opts)).not.toBe(schedulesDigest([a, { ...b, cron: '0 5 * * 1' }], opts));
    expect(schedulesDigest([a, b], opts)).not.toBe(schedulesDigest([a, b], { ...opts, attempts: 9 }));
  });

  it('an old replica re-syncing during a rollout writes nothing and stands down; the new config stays', async () => {
    const queue = freshQueue('rollout');
    const keep = entry('keep', '0 3 * * *');
    const gone = entry('gone', '0 4 * * *', 'pg-health');
    const roles: SchedulerRole[] = [];
    try {
      const old = await startScheduler({ queue, connection: redis, entries: [keep, gone], jobOpts: opts, log: testLogger, resyncMs: 3_600_000 });
      roles.push(old);
      const replacement = await startScheduler({ queue, connection: redis, entries: [keep], jobOpts: opts, log: testLogger, resyncMs: 3_600_000 });
      roles.push(replacement);
      expect(replacement.initial).toMatchObject({ removed: [gone.id], superseded: false });
      expect(replacement.isCurrent()).toBe(true);

      // The old replica's next re-sync (its Redis connection came back): it must not put `gone` back.
      redis.emit('ready');
      await old.close();
      expect(old.isCurrent()).toBe(false);
      expect((await queue.getJobSchedulers(0, -1)).map((s) => s.key)).toEqual([keep.id]);
      expect(await redis.hget(generationKey(queue.qualifiedName), 'digest')).toBe(schedulesDigest([keep], opts));
    } finally {
      for (const r of roles) await r.close();
    }
  });
});
