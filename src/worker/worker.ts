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

export interface WorkerRole {
  worker: Worker<JobData, TaskResult>;
  /** Waits up to `graceMs` for running tasks, then forces the close. */
  close(graceMs: number): Promise<void>;
}

export function startWorker(deps: ProcessorDeps & { connection: Redis; log: Logger }): WorkerRole {
  const { config, log } = deps;
  const worker = new Worker<JobData, TaskResult>(QUEUE_NAME, createProcessor(deps), {
    connection: deps.connection,
    prefix: config.redis.prefix,
    concurrency: config.worker.concurrency,
    // A killed worker's job is picked up again after this long.
    stalledInterval: 30_000,
    maxStalledCount: 2,
  });
  worker.on('failed', (job, err) => log.warn({ jobId: job?.id, task: job?.name, reason: err.message }, 'job failed'));
  worker.on('error', (err) => log.error({ err: err.message }, 'worker error'));
  log.info({ queue: QUEUE_NAME, concurrency: config.worker.concurrency }, 'worker started');

  return {
    worker,
    async close(graceMs: number) {
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), graceMs);
      });
      const outcome = await Promise.race([worker.close().then(() => 'closed' as const), grace]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        log.warn({ graceMs }, 'grace period over: handing running jobs back to the queue');
        await worker.close(true);
      }
    },
  };
}
