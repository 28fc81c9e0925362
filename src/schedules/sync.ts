/**
 * Makes the queue's job schedulers match the config: upserts one per entry
 * (idempotent, safe from every replica) and removes those the config no
 * longer declares.
 */
import type { JobsOptions, Queue } from 'bullmq';
import type { Logger } from 'pino';
import type { JobData } from '../queue/queue';
import type { SchedulerEntry } from './resolve';

export interface SyncOutcome {
  upserted: string[];
  removed: string[];
}

export async function syncSchedulers(
  queue: Queue<JobData>,
  entries: readonly SchedulerEntry[],
  jobOpts: JobsOptions,
  log: Logger,
): Promise<SyncOutcome> {
  for (const e of entries) {
    await queue.upsertJobScheduler(
      e.id,
      { pattern: e.cron, tz: e.timezone },
      { name: e.task, data: { task: e.task, target: e.target, schedule: e.schedule }, opts: jobOpts },
    );
  }
  const declared = new Set(entries.map((e) => e.id));
  const existing = await queue.getJobSchedulers(0, -1);
  const removed: string[] = [];
  for (const s of existing) {
    const id = s.key;
    if (!declared.has(id)) {
      await queue.removeJobScheduler(id);
      removed.push(id);
    }
  }
  if (removed.length > 0) log.info({ removed }, 'removed job schedulers no longer in the config');
  return { upserted: entries.map((e) => e.id), removed };
}
