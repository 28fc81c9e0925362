/**
 * The scheduler role: syncs the job schedulers at start, again whenever
 * Redis comes back (a restarted Redis may have lost them), and every few
 * minutes. The loop logs and keeps going; it never dies silently.
 */
import type { JobsOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { JobData } from '../queue/queue';
import type { SchedulerEntry } from './resolve';
import { syncSchedulers, type SyncOutcome } from './sync';
import { coerceError } from '../errors';

/** Re-sync interval: repairs schedulers removed by hand or lost with Redis. */
export const RESYNC_INTERVAL_MS = 5 * 60_000;

export interface SchedulerRole {
  /** The first sync's outcome. */
  initial: SyncOutcome;
  close(): Promise<void>;
}

export async function startScheduler(deps: {
  queue: Queue<JobData>;
  /** The connection the queue uses: its 'ready' event triggers a re-sync. */
  connection: Redis;
  entries: readonly SchedulerEntry[];
  jobOpts: JobsOptions;
  log: Logger;
  resyncMs?: number;
}): Promise<SchedulerRole> {
  const { queue, entries, jobOpts, log } = deps;
  const initial = await syncSchedulers(queue, entries, jobOpts, log);
  log.info({ schedulers: initial.upserted.length, removed: initial.removed.length }, 'job schedulers in place');

  let syncing: Promise<unknown> = Promise.resolve();
  const resync = (why: string) => {
    syncing = syncing
      .then(() => syncSchedulers(queue, entries, jobOpts, log))
      .then(() => log.debug({ why }, 'job schedulers re-synced'))
      .catch((err) => log.error({ why, err: coerceError(err).message }, 'could not re-sync job schedulers; will retry'));
  };
  const onReady = () => resync('redis reconnected');
  deps.connection.on('ready', onReady);
  const timer = setInterval(() => resync('periodic'), deps.resyncMs ?? RESYNC_INTERVAL_MS);
  timer.unref();

  return {
    initial,
    async close() {
      clearInterval(timer);
      deps.connection.off('ready', onReady);
      await syncing;
    },
  };
}
