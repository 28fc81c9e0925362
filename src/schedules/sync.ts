/**
 * Makes the queue's job schedulers match the config: upserts one per entry
 * (idempotent, safe from every replica) and removes those the config no
 * longer declares.
 *
 * A scheduler already as declared, with its next run pending, is left
 * alone: BullMQ's upsert replaces the pending job with one computed from
 * now, so re-upserting at the moment a tick is due but not yet started
 * drops that tick (the replica fault test caught one every few runs with
 * three replicas re-syncing every second).
 *
 * With `mayWrite`, each write first asks whether this replica's config
 * still owns the schedulers (src/schedules/generation.ts), so a replica
 * superseded mid-sync stops at once instead of undoing part of the newer
 * config.
 */
import { isDeepStrictEqual } from 'node:util';
import type { JobSchedulerJson, JobsOptions, Queue } from 'bullmq';
import type { Logger } from 'pino';
import type { JobData } from '../queue/queue';
import type { SchedulerEntry } from './resolve';

export interface SyncOutcome {
  /** Written now: new, changed, or repaired (its next run was missing). */
  upserted: string[];
  /** Already as declared, with a next run pending. */
  unchanged: string[];
  removed: string[];
  /** True when a newer replica's config owns the schedulers: this sync stopped before writing more. */
  superseded: boolean;
}

export async function syncSchedulers(
  queue: Queue<JobData>,
  entries: readonly SchedulerEntry[],
  jobOpts: JobsOptions,
  log: Logger,
  mayWrite: () => Promise<boolean> = async () => true,
): Promise<SyncOutcome> {
  const upserted: string[] = [];
  const unchanged: string[] = [];
  const removed: string[] = [];
  const outcome = (superseded: boolean): SyncOutcome => ({ upserted, unchanged, removed, superseded });

  const existing = new Map((await queue.getJobSchedulers(0, -1)).map((s) => [s.key, s]));
  for (const e of entries) {
    const current = existing.get(e.id);
    if (current && asDeclared(current, e, jobOpts) && (await nextRunPending(queue, current))) {
      unchanged.push(e.id);
      continue;
    }
    if (!(await mayWrite())) return outcome(true);
    await queue.upsertJobScheduler(
      e.id,
      { pattern: e.cron, tz: e.timezone },
      { name: e.task, data: { task: e.task, target: e.target, schedule: e.schedule }, opts: jobOpts },
    );
    upserted.push(e.id);
  }
  const declared = new Set(entries.map((e) => e.id));
  for (const id of existing.keys()) {
    if (declared.has(id)) continue;
    if (!(await mayWrite())) return outcome(true);
    await queue.removeJobScheduler(id);
    removed.push(id);
  }
  if (removed.length > 0) log.info({ removed }, 'removed job schedulers no longer in the config');
  return outcome(false);
}

/** The scheduler in Redis fires what the entry declares, with the same job data and options. */
function asDeclared(s: JobSchedulerJson, e: SchedulerEntry, jobOpts: JobsOptions): boolean {
  return (
    s.pattern === e.cron &&
    s.tz === e.timezone &&
    s.name === e.task &&
    isDeepStrictEqual(s.template?.data, { task: e.task, target: e.target, schedule: e.schedule }) &&
    isDeepStrictEqual(s.template?.opts ?? {}, jobOpts)
  );
}

/** States of a job that will still run. Anything else (gone, finished) means the chain of runs broke. */
const PENDING = new Set(['delayed', 'waiting', 'prioritized', 'active', 'waiting-children']);

/** True when the scheduler's next job exists and has yet to run: the chain of runs is intact. */
async function nextRunPending(queue: Queue<JobData>, s: JobSchedulerJson): Promise<boolean> {
  if (s.next === undefined || s.next === null) return false;
  return PENDING.has(await queue.getJobState(`repeat:${s.key}:${s.next}`));
}

/** The fire time (ms) of the scheduler's next run when that run is pending in the queue; undefined otherwise. */
export async function pendingNextRun(queue: Queue<JobData>, schedulerId: string): Promise<number | undefined> {
  const s = await queue.getJobScheduler(schedulerId);
  return s && (await nextRunPending(queue, s)) ? s.next! : undefined;
}
