import { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import { TASKS } from '../../src/jobs';
import { createQueue, jobOptions, type JobData } from '../../src/queue/queue';
import { expandSchedulers, resolveSchedules } from '../../src/schedules/resolve';
import { syncSchedulers } from '../../src/schedules/sync';
import { testConfig } from '../support/config';
import { TEST_REDIS_URL } from '../support/env';
import { deleteKeys, randomPrefix } from '../support/redis';
import { testLogger } from '../support/logger';

const prefix = randomPrefix('sched');
let redis: Redis;
let queue: Queue<JobData>;

beforeAll(() => {
  redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  queue = createQueue(redis, prefix);
});
afterAll(async () => {
  await queue.close();
  redis.disconnect();
  await deleteKeys(prefix);
});

const twoTargets = () =>
  testConfig({
    dbUrl: 'postgres://localhost/a',
    prefix,
    targets: { postgres: [{ name: 'a', url: 'postgres://localhost/a' }, { name: 'b', url: 'postgres://localhost/b' }] },
  });

describe('resolveSchedules', () => {
  it('puts every registered task in its default schedule', () => {
    const { schedules, problems } = resolveSchedules(twoTargets(), TASKS);
    expect(problems).toEqual([]);
    const daily = schedules.find((s) => s.id === 'daily')!;
    expect(daily).toMatchObject({ cron: '0 3 * * *', timezone: 'UTC', enabled: true });
    expect(daily.tasks).toEqual(expect.arrayContaining(['connections', 'history-prune']));
    // Every runbook task exists now; one missing from a build is known but not scheduled.
    expect(schedules.every((s) => s.unavailable.length === 0)).toBe(true);
    const without = new Map([...TASKS].filter(([name]) => name !== 'weekly-report'));
    const partial = resolveSchedules(twoTargets(), without).schedules.find((s) => s.id === 'report')!;
    expect(partial).toMatchObject({ tasks: [], unavailable: ['weekly-report'] });
  });

  it('lets the config override cron, timezone and enabled, and add schedules', () => {
    const config = testConfig({
      dbUrl: 'postgres://localhost/a',
      prefix,
      timezone: 'Europe/Paris',
      schedules: { daily: { enabled: false }, fast: { cron: '*/10 * * * * *', tasks: ['connections'], timezone: 'Asia/Tokyo' } },
    });
    const { schedules } = resolveSchedules(config, TASKS);
    expect(schedules.find((s) => s.id === 'daily')).toMatchObject({ enabled: false, timezone: 'Europe/Paris' });
    expect(schedules.find((s) => s.id === 'fast')).toMatchObject({ cron: '*/10 * * * * *', timezone: 'Asia/Tokyo', tasks: ['connections'] });
  });

  it('expands one scheduler per (schedule, task, target) with a stable id', () => {
    const config = twoTargets();
    const entries = expandSchedulers(resolveSchedules(config, TASKS).schedules, config, TASKS);
    const ids = entries.map((e) => e.id);
    expect(ids).toEqual(expect.arrayContaining(['daily:connections:a', 'daily:connections:b', 'daily:history-prune:caretaker']));
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('syncSchedulers (real Redis)', () => {
  it('upserts the declared schedulers, is idempotent, and removes undeclared ones', async () => {
    const config = twoTargets();
    const entries = expandSchedulers(resolveSchedules(config, TASKS).schedules, config, TASKS);
    const opts = jobOptions(config.worker);

    await syncSchedulers(queue, entries, opts, testLogger);
    await syncSchedulers(queue, entries, opts, testLogger); // a second replica, same config
    const first = await queue.getJobSchedulers(0, -1);
    expect(first.map((s) => s.key).sort()).toEqual(entries.map((e) => e.id).sort());
    const a = first.find((s) => s.key === 'daily:connections:a')!;
    expect(a).toMatchObject({ pattern: '0 3 * * *', tz: 'UTC', name: 'connections' });
    expect(a.template?.data).toEqual({ task: 'connections', target: 'a', schedule: 'daily' });
    // One delayed job per scheduler, not one per upsert.
    expect(await queue.getDelayedCount()).toBe(entries.length);

    // Target b removed from the config: its schedulers go.
    const onlyA = entries.filter((e) => e.target !== 'b');
    const outcome = await syncSchedulers(queue, onlyA, opts, testLogger);
    expect(outcome.removed.sort()).toEqual(entries.filter((e) => e.target === 'b').map((e) => e.id).sort());
    expect((await queue.getJobSchedulers(0, -1)).map((s) => s.key).sort()).toEqual(onlyA.map((e) => e.id).sort());
    expect(await queue.getDelayedCount()).toBe(onlyA.length);
  });
});
