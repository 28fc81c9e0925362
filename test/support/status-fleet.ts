/**
 * A history planted so every state of the console's grid shows on target
 * `main` of testConfig (its daily and weekly catalog schedules), relative
 * to the schedules' real due times at `now`:
 * - connections: ok, run after today's due time;
 * - pg-health: late (it ran before the due time, not since), an open warning;
 * - vacuum-analyze: missed (never ran; the missed-run watch recorded the miss);
 * - index-audit: critical (an invalid index);
 * - disk-check: error now, with the warning of the runs before still open since two weeks;
 * - slow-queries: never ran.
 */
import type { Pool } from 'pg';
import type { Config } from '../../src/config/schema';
import type { Finding, TaskResult } from '../../src/contract/result';
import { ResultStore } from '../../src/results/store';
import { graceOf } from '../../src/schedules/missed-runs';
import { lastFireAtOrBefore } from '../../src/schedules/cron';

const MINUTE = 60_000;
const DAY = 86_400_000;

export interface PlantedFleet {
  now: Date;
  /** The due fire times of the daily and weekly schedules at `now` (after grace). */
  dailyDue: Date;
  weeklyDue: Date;
  /** When the disk-check warning was first seen. */
  diskWarningSince: Date;
}

export const FINDINGS = {
  longTransaction: { severity: 'warning', code: 'long_transaction', subject: 'pid 4242', message: 'transaction open for 20 min', suggestion: 'Find who holds it' },
  invalidIndex: { severity: 'critical', code: 'invalid_index', subject: 'public.orders_idx', message: 'index is invalid (a failed CREATE INDEX CONCURRENTLY)', suggestion: 'DROP INDEX CONCURRENTLY public.orders_idx' },
  diskHigh: { severity: 'warning', code: 'disk_usage_high', subject: '/var/lib/postgresql', message: 'disk 85 % used', suggestion: 'Grow the volume' },
} satisfies Record<string, Finding>;

function run(task: string, status: TaskResult['status'], finishedAt: Date, findings: Finding[] = [], summary = `${task} ${status}`): TaskResult {
  return {
    task,
    target: 'main',
    status,
    startedAt: new Date(finishedAt.getTime() - 2_000).toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationMs: 2_000,
    dryRun: false,
    summary,
    findings,
    actions: [],
    metrics: {},
  };
}

/** The due time of schedule `id` for `main` at `now`, as the console's rule computes it. */
function dueOf(config: Config, id: string, now: Date): Date {
  const entry = config.schedulers.find((e) => e.schedule === id && e.target === 'main');
  if (!entry) throw new Error(`testConfig has no ${id} schedule for main`);
  const due = lastFireAtOrBefore(entry.cron, entry.timezone, new Date(now.getTime() - graceOf(now)(entry)));
  if (!due) throw new Error(`${id} has no due time`);
  return due;
}

export async function plantFleet(state: Pool, config: Config, now = new Date()): Promise<PlantedFleet> {
  const store = new ResultStore(state);
  const dailyDue = dueOf(config, 'daily', now);
  const weeklyDue = dueOf(config, 'weekly', now);
  const diskWarningSince = new Date(weeklyDue.getTime() - 14 * DAY + MINUTE);

  await store.save(run('connections', 'ok', new Date(dailyDue.getTime() + MINUTE), [], '4/100 connections (4 %)'));
  await store.save(run('pg-health', 'warning', new Date(dailyDue.getTime() - DAY + MINUTE), [FINDINGS.longTransaction]));
  await state.query(`INSERT INTO caretaker.missed_runs (schedule, task, target, due_at) VALUES ('daily', 'vacuum-analyze', 'main', $1)`, [dailyDue]);
  await store.save(run('index-audit', 'critical', new Date(weeklyDue.getTime() + MINUTE), [FINDINGS.invalidIndex], '1 invalid index'), { jobId: 'planted-1', jobKey: 'planted-1@0' });
  await store.save(run('disk-check', 'warning', diskWarningSince, [FINDINGS.diskHigh]));
  await store.save(run('disk-check', 'warning', new Date(weeklyDue.getTime() - 7 * DAY + MINUTE), [FINDINGS.diskHigh]));
  await store.save(run('disk-check', 'error', new Date(weeklyDue.getTime() + MINUTE), [], 'could not connect: connection refused'));
  return { now, dailyDue, weeklyDue, diskWarningSince };
}
