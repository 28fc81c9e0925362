/**
 * The background loops' outcomes: what a round records (when, why on one
 * line with URL passwords redacted, failures in a row, cleared by the next
 * round that works), and each real loop reporting through the function its
 * composer hands it, on a short interval of the test's choosing: the test
 * waits for the report, not for a clock.
 */
import { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import { BackgroundLoops, LOOP_OK, failureReason } from '../../src/liveness/background';
import { Liveness } from '../../src/liveness/liveness';
import { startAlertSweep } from '../../src/alerts/sweep-loop';
import { createQueue, jobOptions, type JobData } from '../../src/queue/queue';
import { startScheduler } from '../../src/schedules/scheduler';
import { testConfig } from '../support/config';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { TEST_REDIS_URL } from '../support/env';
import { testLogger } from '../support/logger';
import { nextReport } from '../support/loops';
import { deleteKeys, randomPrefix } from '../support/redis';

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describe('a loop\'s state', () => {
  it('records each failure (when, why, how many in a row) and a success clears the failing state, keeping when it last failed', () => {
    let t = Date.parse('2026-03-02T10:00:00Z');
    const loops = new BackgroundLoops(() => t);
    loops.watch('outbox flush');
    expect(loops.snapshot()).toEqual({ 'outbox flush': { status: 'ok', consecutiveFailures: 0 } });

    loops.report('outbox flush', { ok: false, error: new Error('connect to postgres://caretaker:s3cret@db:5432/state\n  refused') });
    t += 15_000;
    loops.report('outbox flush', { ok: false, error: new Error('connection terminated') });
    expect(loops.failing()).toEqual(['outbox flush']);
    expect(loops.snapshot()['outbox flush']).toEqual({ status: 'failing', lastFailureAt: '2026-03-02T10:00:15.000Z', lastError: 'connection terminated', consecutiveFailures: 2 });

    t += 15_000;
    loops.report('outbox flush', LOOP_OK);
    expect(loops.failing()).toEqual([]);
    expect(loops.snapshot()['outbox flush']).toEqual({
      status: 'ok',
      lastSuccessAt: '2026-03-02T10:00:30.000Z',
      lastFailureAt: '2026-03-02T10:00:15.000Z',
      lastError: 'connection terminated',
      consecutiveFailures: 0,
    });
  });

  it('gives the reason on one line, URL passwords redacted, an AggregateError through its first cause, a long one cut', () => {
    expect(failureReason(new Error('connect to postgres://caretaker:s3cret@db:5432/state\n  ECONNREFUSED'))).toBe('connect to postgres://caretaker:***@db:5432/state ECONNREFUSED');
    expect(failureReason(new AggregateError([new Error('connect ECONNREFUSED 127.0.0.1:1')], ''))).toBe('connect ECONNREFUSED 127.0.0.1:1');
    expect(failureReason('a thrown string')).toBe('a thrown string');
    const long = failureReason(new Error('x'.repeat(2_000)));
    expect(long).toHaveLength(500);
    expect(long.endsWith('…')).toBe(true);
  });

  it('beats the liveness of the loop at each report, failing or not', () => {
    let t = 0;
    const liveness = new Liveness(() => t);
    const report = liveness.loop('alert sweep', 1_000);
    t = 900;
    report({ ok: false, error: new Error('down') });
    t = 1_800;
    expect(liveness.check()).toEqual({ live: true, stuck: [] });
    expect(liveness.background.failing()).toEqual(['alert sweep']);
  });
});

describe('the loops report their rounds', () => {
  let db: TestDatabase;
  let redis: Redis;
  let queue: Queue<JobData>;
  const prefix = randomPrefix('bgloops');

  beforeAll(async () => {
    db = await createTestDatabase('bgloops');
    redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
    queue = createQueue(redis, prefix);
  });

  afterAll(async () => {
    await queue?.close();
    redis?.disconnect();
    await db?.drop();
    await deleteKeys(prefix);
  });

  it('the scheduler\'s re-sync, every resyncMs it is given', async () => {
    const config = testConfig({ dbUrl: db.url, prefix });
    const liveness = new Liveness();
    const synced = nextReport(liveness.background, 'job scheduler re-sync', (s) => s.lastSuccessAt !== undefined);
    const scheduler = await startScheduler({
      queue,
      connection: redis,
      entries: config.schedulers,
      jobOpts: jobOptions(config.worker),
      log: testLogger,
      resyncMs: 100,
      onSynced: liveness.loop('job scheduler re-sync', 60_000),
    });
    try {
      expect(await synced).toEqual({ status: 'ok', lastSuccessAt: expect.stringMatching(ISO), consecutiveFailures: 0 });
    } finally {
      await scheduler.close();
    }
  });

  it('the alert sweep, on the interval its composer gives rather than the alerter\'s; a sweep that rejects is a failed round and the loop goes on', async () => {
    const liveness = new Liveness();
    let fail = true;
    const alerter = {
      sweepIntervalMs: 3_600_000,
      sweep: async () => {
        if (fail) throw new Error('held alerts unreadable: connection to postgres://u:pw@db/state lost');
      },
    };
    const failed = nextReport(liveness.background, 'alert sweep', (s) => s.status === 'failing');
    const loop = startAlertSweep(alerter, { intervalMs: 20, onSwept: liveness.loop('alert sweep', 60_000) });
    try {
      expect(await failed).toEqual({ status: 'failing', lastFailureAt: expect.stringMatching(ISO), lastError: 'held alerts unreadable: connection to postgres://u:***@db/state lost', consecutiveFailures: 1 });
      const recovered = nextReport(liveness.background, 'alert sweep', (s) => s.status === 'ok');
      fail = false;
      expect(await recovered).toMatchObject({ status: 'ok', consecutiveFailures: 0, lastSuccessAt: expect.stringMatching(ISO) });
    } finally {
      await loop.close();
    }
  });
});
