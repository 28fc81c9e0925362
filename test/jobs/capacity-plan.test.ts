import type { TaskResult } from '../../src/contract/result';
import { capacityPlan, dailyPeaks, projectExhaustion } from '../../src/jobs/capacity-plan';
import { migrate } from '../../src/results/migrate';
import { ResultStore } from '../../src/results/store';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { TEST_REDIS_URL } from '../support/env';
import { runOn, type TargetsInput } from '../support/run-on';

const DAY = 86_400_000;
const GiB = 1024 ** 3;

let db: TestDatabase;
let store: ResultStore;

beforeAll(async () => {
  db = await createTestDatabase('capacity_plan');
  await migrate(db.pool);
  store = new ResultStore(db.pool);
});
afterAll(async () => {
  await db.drop();
});
beforeEach(async () => {
  await db.pool.query('TRUNCATE caretaker.runs CASCADE');
});

function result(task: string, target: string, at: Date, metrics: Record<string, number>, extra: Partial<TaskResult> = {}): TaskResult {
  return {
    task,
    target,
    status: 'ok',
    startedAt: new Date(at.getTime() - 1000).toISOString(),
    finishedAt: at.toISOString(),
    durationMs: 1000,
    dryRun: false,
    summary: 'ok',
    findings: [],
    actions: [],
    metrics,
    ...extra,
  };
}

/** Stores one run every `stepDays` over `spanDays`, the last one `lastAgoMs` before now. */
async function history(task: string, target: string, spanDays: number, stepDays: number, metricsAt: (daysFromFirst: number) => Record<string, number>, lastAgoMs = 3_600_000): Promise<Date> {
  const last = new Date(Date.now() - lastAgoMs);
  for (let d = 0; d <= spanDays; d += stepDays) {
    const at = new Date(last.getTime() - (spanDays - d) * DAY);
    await store.save(result(task, target, at, metricsAt(d)));
  }
  return last;
}

const url = () => db.url;
const targets = (): TargetsInput => ({
  postgres: [{ name: 'main', url: url() }],
  redis: [{ name: 'cache', url: TEST_REDIS_URL }],
  queues: [{ name: 'jobs', redis: 'cache', queues: ['a'] }],
});
const run = (params: Record<string, unknown> = {}, t: TargetsInput = targets()) => runOn(capacityPlan, 'caretaker', t, params, false, { state: db.pool });
const codes = (r: TaskResult) => r.findings.map((f) => `${f.code} ${f.subject}`).sort();

describe('projectExhaustion (the fit)', () => {
  const t0 = Date.parse('2026-01-01T00:00:00Z');
  const pts = (values: number[], step = 1) => values.map((value, i) => ({ at: new Date(t0 + i * step * DAY), value }));

  it('fits an exact line and projects where it meets the limit', () => {
    const p = projectExhaustion(pts([10, 12, 14, 16, 18]), 30)!;
    expect(p.slopePerDay).toBeCloseTo(2, 10);
    expect(p.fittedLast).toBeCloseTo(18, 10);
    expect(p.points).toBe(5);
    expect(p.spanDays).toBe(4);
    // 18 at day 4, +2 a day, 30 at day 10.
    expect(p.projectedAt!.toISOString()).toBe('2026-01-11T00:00:00.000Z');
  });

  it('fits the least-squares line through noisy points', () => {
    // y = 1 + x with residuals +1, -1, -1, +1: slope and intercept stay exact.
    const p = projectExhaustion(pts([2, 1, 2, 5]), 11)!;
    expect(p.slopePerDay).toBeCloseTo(1, 10);
    expect(p.projectedAt!.toISOString()).toBe('2026-01-11T00:00:00.000Z');
  });

  it('projects nothing for a flat or falling series, or a single time', () => {
    expect(projectExhaustion(pts([5, 5, 5, 5]), 10)!.projectedAt).toBeUndefined();
    expect(projectExhaustion(pts([9, 8, 7, 6]), 10)!.projectedAt).toBeUndefined();
    expect(projectExhaustion(pts([5]), 10)).toBeUndefined();
  });

  it('keeps each UTC day\'s peak', () => {
    const at = (iso: string, value: number) => ({ at: new Date(iso), value });
    expect(dailyPeaks([at('2026-01-01T01:00:00Z', 3), at('2026-01-01T13:00:00Z', 7), at('2026-01-01T20:00:00Z', 5), at('2026-01-02T03:00:00Z', 1)])).toEqual([
      at('2026-01-01T13:00:00Z', 7),
      at('2026-01-02T03:00:00Z', 1),
    ]);
  });
});

describe('capacity-plan', () => {
  it('predicts when a database growing 1 GiB a day fills its disk, within a day', async () => {
    // 40 GiB sixty days ago, +1 GiB a day: 100 GiB at the last point; a 160 GiB disk is full 60 days after it.
    // Other data on the disk: 10 GiB, so the disk itself is full 10 days earlier.
    const last = await history('disk-check', 'main', 60, 2, (d) => ({
      database_size_bytes: (40 + d) * GiB,
      disk_total_bytes: 160 * GiB,
      disk_used_ratio: (50 + d) / 160,
    }));
    // Flat connections (several runs a day, the peak counts), a falling Redis, a short queue history.
    await history('connections', 'main', 60, 0.5, (d) => ({ connections_used: d % 1 === 0 ? 50 : 20, connections_max: 100 }));
    await history('redis-health', 'cache', 30, 1, (d) => ({ redis_used_memory_bytes: (900 - d) * 1024 ** 2, redis_maxmemory_bytes: GiB }));
    await history('queue-health', 'jobs', 4, 2, (d) => ({ queue_waiting_total: 10 * d }));

    const r = await run();
    expect(r.status).toBe('warning');
    expect(codes(r)).toEqual([
      'capacity_exhausted_soon main/database_size',
      'capacity_exhausted_soon main/disk_used',
      'capacity_insufficient_history jobs/queue_backlog',
    ]);
    const size = r.findings.find((f) => f.subject === 'main/database_size')!;
    expect(size.severity).toBe('warning');
    const projected = Date.parse(size.details!.projectedAt as string);
    expect(Math.abs(projected - (last.getTime() + 60 * DAY))).toBeLessThan(DAY);
    expect(size.details!.slopePerDay as number).toBeCloseTo(GiB, 0);
    expect(size.details!.limit).toBe(160 * GiB);
    expect(size.message).toContain(`around ${new Date(last.getTime() + 60 * DAY).toISOString().slice(0, 10)}`);

    const disk = r.findings.find((f) => f.subject === 'main/disk_used')!;
    expect(Math.abs(Date.parse(disk.details!.projectedAt as string) - (last.getTime() + 50 * DAY))).toBeLessThan(DAY);

    const queue = r.findings.find((f) => f.subject === 'jobs/queue_backlog')!;
    expect(queue.severity).toBe('info');
    expect(queue.details).toMatchObject({ points: 3, spanDays: 4, morePoints: 1, moreDays: 10 });

    // Days from now: the last point was an hour ago.
    expect(r.metrics.days_to_exhaustion_database_size_main).toBeCloseTo(60 - 1 / 24, 1);
    expect(r.metrics.days_to_exhaustion_disk_used_main).toBeCloseTo(50 - 1 / 24, 1);
    expect(r.metrics.days_to_exhaustion_min).toBeCloseTo(50 - 1 / 24, 1);
    expect(r.metrics.days_to_exhaustion_redis_memory_cache).toBeUndefined();
    expect(r.metrics.capacity_series_checked).toBe(5);
  });

  it('is critical under criticalDays, and the thresholds are params', async () => {
    // 8 GiB a day from 20 GiB towards 200 GiB: 180 GiB at day 20... full 2.5 days after the last point.
    await history('disk-check', 'main', 20, 1, (d) => ({ database_size_bytes: (20 + 8 * d) * GiB, disk_total_bytes: 200 * GiB }));
    const r = await run({}, { postgres: [{ name: 'main', url: url() }] });
    const f = r.findings.find((x) => x.code === 'capacity_exhausted_soon')!;
    expect(f).toMatchObject({ severity: 'critical', subject: 'main/database_size' });
    expect(r.status).toBe('critical');
    // With critical under 1 day it is a warning; with warning under 2 days, nothing.
    expect((await run({ criticalDays: 1 }, { postgres: [{ name: 'main', url: url() }] })).findings.find((x) => x.code === 'capacity_exhausted_soon')!.severity).toBe('warning');
    expect((await run({ criticalDays: 1, warningDays: 2 }, { postgres: [{ name: 'main', url: url() }] })).findings.filter((x) => x.code === 'capacity_exhausted_soon')).toEqual([]);
  });

  it('says how much more history it needs instead of guessing', async () => {
    // Steep growth, but only 3 points over 5 days.
    await history('disk-check', 'main', 5, 2.5, (d) => ({ database_size_bytes: (50 + 20 * d) * GiB, disk_total_bytes: 200 * GiB, disk_used_ratio: 0.5 + d / 10 }));
    const r = await run({}, { postgres: [{ name: 'main', url: url() }] });
    expect(codes(r)).toEqual([
      'capacity_insufficient_history main/connections',
      'capacity_insufficient_history main/database_size',
      'capacity_insufficient_history main/disk_used',
    ]);
    expect(r.status).toBe('ok');
    const f = r.findings.find((x) => x.subject === 'main/database_size')!;
    expect(f.details).toMatchObject({ points: 3, spanDays: 5, morePoints: 1, moreDays: 9 });
    expect(f.message).toContain('1 more daily disk-check runs and about 9 more days');
    // No connections history at all: it says which task to schedule.
    expect(r.findings.find((x) => x.subject === 'main/connections')!.suggestion).toContain('Schedule connections on main');
    expect(r.metrics.days_to_exhaustion_min).toBeUndefined();
  });

  it('gives no finding for flat or falling history, and ignores errors, skipped runs and history outside the window', async () => {
    await history('disk-check', 'main', 60, 3, (d) => ({ database_size_bytes: (80 - d / 2) * GiB, disk_total_bytes: 100 * GiB, disk_used_ratio: 0.8 }));
    await history('connections', 'main', 60, 3, () => ({ connections_used: 70, connections_max: 100 }));
    // Would be alarming if counted: a skipped and an errored run with huge values, and old history steeply rising.
    const recent = new Date(Date.now() - 2 * 3_600_000);
    await store.save(result('connections', 'main', recent, { connections_used: 99, connections_max: 100 }, { skipped: true }));
    await store.save(result('disk-check', 'main', recent, { database_size_bytes: 99 * GiB, disk_total_bytes: 100 * GiB, disk_used_ratio: 0.99 }, { status: 'error' }));
    await history('connections', 'main', 20, 1, (d) => ({ connections_used: 5 * d, connections_max: 100 }), 100 * DAY);
    const r = await run({}, { postgres: [{ name: 'main', url: url() }] });
    expect(r.findings).toEqual([]);
    expect(r.status).toBe('ok');
    expect(r.summary).toBe('3 series over 90 days, none reaches its limit within 90 days, 3 flat or falling');
  });

  it('skips a series whose limit is unknown (Redis without maxmemory)', async () => {
    await history('redis-health', 'cache', 30, 1, (d) => ({ redis_used_memory_bytes: (100 + 10 * d) * 1024 ** 2, redis_maxmemory_bytes: 0 }));
    const r = await run({}, { redis: [{ name: 'cache', url: TEST_REDIS_URL }] });
    expect(r.findings).toEqual([]);
    expect(r.summary).toContain('1 without a known limit');
  });
});
