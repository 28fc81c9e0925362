/**
 * The scheduler role: syncs the job schedulers at start, again whenever
 * Redis comes back (a restarted Redis may have lost them), and every few
 * minutes. The loop logs and keeps going, and reports each round's outcome
 * (`onSynced`: /livez's heartbeat, /health's loop state); it never dies
 * silently.
 *
 * During a rollout only the newest config writes (src/schedules/generation.ts):
 * an older replica stops syncing, says so once, and its missed-run watch
 * stands down (`isCurrent`), since it would judge schedules the new config
 * no longer has.
 */
import type { JobsOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { JobData } from '../queue/queue';
import type { SchedulerEntry } from './resolve';
import { syncSchedulers, type SyncOutcome } from './sync';
import { claimGeneration, generationKey, redisNowMs, schedulesDigest, type ConfigGeneration } from './generation';
import { coerceError } from '../errors';
import { outcomeOf, type LoopOutcome } from '../liveness/background';

export interface SchedulerRole {
  /** The first sync's outcome. */
  initial: SyncOutcome;
  /** False while a replica started later with a different config owns the schedulers. */
  isCurrent(): boolean;
  close(): Promise<void>;
}

export async function startScheduler(deps: {
  queue: Queue<JobData>;
  /** The connection the queue uses: its 'ready' event triggers a re-sync. */
  connection: Redis;
  entries: readonly SchedulerEntry[];
  jobOpts: JobsOptions;
  log: Logger;
  /** How often to re-sync (`scheduler.resyncSeconds` in ms): repairs schedulers removed by hand or lost with Redis. */
  resyncMs: number;
  /** Called each time a re-sync came round, with whether it worked (the liveness probe's heartbeat, /health's loop state). */
  onSynced?: (outcome: LoopOutcome) => void;
}): Promise<SchedulerRole> {
  const { queue, entries, jobOpts, log, connection } = deps;
  const mine: ConfigGeneration = { digest: schedulesDigest(entries, jobOpts), startedAt: await redisNowMs(connection) };
  const key = generationKey(queue.qualifiedName);
  let current = true;
  const mayWrite = async (): Promise<boolean> => {
    const now = await claimGeneration(connection, key, mine);
    if (now !== current) {
      current = now;
      if (now) log.info({ digest: mine.digest.slice(0, 12) }, 'this replica\'s config owns the job schedulers again');
      else log.warn({ digest: mine.digest.slice(0, 12) }, 'a replica started later with a different config owns the job schedulers; this one leaves them alone until it is replaced');
    }
    return now;
  };

  const initial = await syncSchedulers(queue, entries, jobOpts, log, mayWrite);
  log.info(
    { schedulers: initial.upserted.length + initial.unchanged.length, written: initial.upserted.length, removed: initial.removed.length, superseded: initial.superseded },
    'job schedulers in place',
  );

  let syncing: Promise<unknown> = Promise.resolve();
  const resync = (why: string) => {
    const round = syncing
      .then(() => syncSchedulers(queue, entries, jobOpts, log, mayWrite))
      .then((outcome) => log.debug({ why, superseded: outcome.superseded }, 'job schedulers re-synced'))
      .catch((err: unknown) => {
        log.error({ why, err: coerceError(err).message }, 'could not re-sync job schedulers; will retry');
        throw err;
      });
    syncing = outcomeOf(round)
      .then((outcome) => deps.onSynced?.(outcome))
      // The chain must stay resolved, or every later re-sync would be skipped.
      .catch((err) => log.error({ err: coerceError(err).message }, 'could not report the re-sync'));
  };
  const onReady = () => resync('redis reconnected');
  connection.on('ready', onReady);
  const timer = setInterval(() => resync('periodic'), deps.resyncMs);
  timer.unref();

  return {
    initial,
    isCurrent: () => current,
    async close() {
      clearInterval(timer);
      connection.off('ready', onReady);
      await syncing;
    },
  };
}
