/**
 * The worker role: a BullMQ Worker on caretaker's queue. Closing it stops
 * taking jobs and waits for running ones; past the grace period they are
 * handed back (their lock lapses and another worker picks them up).
 */
import { Worker, type Job, type JobJson } from 'bullmq';
import type { Redis } from 'ioredis';
import { QUEUE_NAME, type JobData } from '../queue/queue';
import type { TaskResult } from '../contract/result';
import { createProcessor, markUnreadableData, type ProcessorDeps } from './processor';
import { ResultOutbox } from '../results/outbox';
import { coerceError } from '../errors';
import { LOOP_OK, type LoopOutcome } from '../liveness/background';

export interface WorkerRole {
  worker: Worker<JobData, TaskResult>;
  /** Waits up to `graceMs` for running tasks, then forces the close. */
  close(graceMs: number): Promise<void>;
}

/** How long a forced close may take before the worker lets go anyway. */
const FORCED_CLOSE_MS = 2_000;


/**
 * BullMQ's Worker, except for a job whose stored data is not JSON (written
 * straight into Redis). Job.fromJSON parses the data in the worker's fetch,
 * after the job was moved to active and before any processor runs: the error
 * only reaches the 'error' event, and the job stays active with a lock nobody
 * renews, so each stalled check hands it back and the next fetch throws
 * again, forever. Here such a job is built with empty data and marked, so
 * the processor rejects it once, through its usual path (failed, not
 * retried, an error row in the history), under the lock the fetch took.
 */
class CaretakerWorker extends Worker<JobData, TaskResult> {
  protected override createJob(json: JobJson, jobId: string): Job<JobData, TaskResult> {
    try {
      return super.createJob(json, jobId);
    } catch (err) {
      // `data` is the only field Job.fromJSON parses without a guard.
      if (!(err instanceof SyntaxError)) throw err;
      const job = super.createJob({ ...json, data: '{}' }, jobId);
      // JSON.parse quotes the data it read, line breaks and all: the reason stays one line.
      markUnreadableData(job, json.data, `job data is not JSON: ${err.message.replace(/\s+/g, ' ')}`);
      return job;
    }
  }
}

/** What the worker role needs beside the processor's own. */
export interface WorkerDeps extends ProcessorDeps {
  /** BullMQ's connection. */
  connection: Redis;
  /** How often the outbox is flushed: `worker.outboxFlushSeconds` unless a test gives its own. */
  outboxFlushMs?: number;
}

/** Starts the worker role on caretaker's queue, with the outbox flusher beside it. */
export function startWorker(deps: WorkerDeps): WorkerRole {
  const { config, log } = deps;
  const outbox = deps.outbox ?? new ResultOutbox(deps.redis, config.redis.prefix);
  deps = { ...deps, outbox };
  const worker = new CaretakerWorker(QUEUE_NAME, createProcessor(deps), {
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
  // A round fails only when results wait and cannot be written: an empty outbox has nothing to fail on.
  const flushMs = deps.outboxFlushMs ?? config.worker.outboxFlushSeconds * 1000;
  let flushing = false;
  const flushed = deps.liveness?.loop('outbox flush', 4 * flushMs + 60_000);
  const flush = async () => {
    if (flushing) return;
    flushing = true;
    let outcome: LoopOutcome = LOOP_OK;
    try {
      const written = await outbox.flush(deps.store);
      if (written > 0) log.info({ written }, 'results from the outbox written to the state database');
    } catch (err) {
      outcome = { ok: false, error: err };
      log.debug({ err: coerceError(err).message }, 'outbox not flushed yet: the state database is still away');
    } finally {
      flushing = false;
      flushed?.(outcome);
    }
  };
  void flush();
  const flusher = setInterval(() => void flush(), flushMs);
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
