/**
 * The worker role: a BullMQ Worker on caretaker's queue. Closing it stops
 * taking jobs and waits for running ones; past the grace period they are
 * handed back (their lock lapses and another worker picks them up).
 */
import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { QUEUE_NAME, type JobData } from '../queue/queue';
import type { TaskResult } from '../contract/result';
import { createProcessor, type ProcessorDeps } from './processor';
import { ResultOutbox } from '../results/outbox';

export interface WorkerRole {
  worker: Worker<JobData, TaskResult>;
  /** Waits up to `graceMs` for running tasks, then forces the close. */
  close(graceMs: number): Promise<void>;
}

/** How long a forced close may take before the worker lets go anyway. */
const FORCED_CLOSE_MS = 2_000;

/** How often the worker writes results that waited for the state database. */
export const OUTBOX_FLUSH_MS = 15_000;

export function startWorker(deps: ProcessorDeps & { connection: Redis; log: Logger }): WorkerRole {
  const { config, log } = deps;
  const outbox = deps.outbox ?? new ResultOutbox(deps.redis, config.redis.prefix);
  deps = { ...deps, outbox };
  const worker = new Worker<JobData, TaskResult>(QUEUE_NAME, createProcessor(deps), {
    connection: deps.connection,
    prefix: config.redis.prefix,
    concurrency: config.worker.concurrency,
    // A killed worker's job is picked up again once its lock lapsed, at the next stalled check.
    lockDuration: config.worker.lockDurationMs,
    stalledInterval: config.worker.stalledIntervalMs,
    maxStalledCount: 2,
  });
  worker.on('failed', (job, err) => log.warn({ jobId: job?.id, task: job?.name, reason: err.message }, 'job failed'));
  worker.on('error', (err) => log.error({ err: err.message }, 'worker error'));
  log.info({ queue: QUEUE_NAME, concurrency: config.worker.concurrency }, 'worker started');

  // Results kept while the state database was down: written as soon as it answers again.
  let flushing = false;
  const flush = async () => {
    if (flushing) return;
    flushing = true;
    try {
      const written = await outbox.flush(deps.store);
      if (written > 0) log.info({ written }, 'results from the outbox written to the state database');
    } catch (err) {
      log.debug({ err: (err as Error).message }, 'outbox not flushed yet: the state database is still away');
    } finally {
      flushing = false;
    }
  };
  void flush();
  const flusher = setInterval(() => void flush(), OUTBOX_FLUSH_MS);
  flusher.unref();

  return {
    worker,
    async close(graceMs: number) {
      clearInterval(flusher);
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), graceMs);
      });
      const outcome = await Promise.race([worker.close().then(() => 'closed' as const), grace]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        log.warn({ graceMs }, 'grace period over: handing running jobs back to the queue');
        // BullMQ's forced close can still wait on a processor stuck on its target: bound it.
        // The job stays active in Redis; its lock lapses and another worker takes it.
        let forced: NodeJS.Timeout | undefined;
        await Promise.race([worker.close(true), new Promise<void>((resolve) => (forced = setTimeout(resolve, FORCED_CLOSE_MS)))]);
        clearTimeout(forced);
      }
    },
  };
}
