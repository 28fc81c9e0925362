/**
 * What the worker does with one job: check the job's data, look the task
 * up, take the target's lock, run, store the result. Bad data and unknown
 * tasks end as `error` results; they never crash the worker.
 */
import { UnrecoverableError, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config/schema';
import type { TaskRegistry } from '../jobs';
import type { TaskResult } from '../contract/result';
import type { ResultStore } from '../results/store';
import type { ResultOutbox } from '../results/outbox';
import { jobDataSchema, type JobData } from '../queue/queue';
import { formatIssues } from '../config/format-issues';
import { acquireTargetLock } from './target-lock';
import { rejectedResult } from './run-task';
import { runInSequence } from './run-sequence';
import { coerceError } from '../errors';
import type { Liveness } from '../liveness/liveness';
import { configSecrets } from '../config/secrets';
import { oneLine } from '../util/format';

export interface ProcessorDeps {
  config: Config;
  registry: TaskRegistry;
  store: ResultStore;
  state: Pool;
  /** For target locks; BullMQ's own connection is separate. */
  redis: Redis;
  log: Logger;
  /** Where results wait when the state database is down (src/results/outbox.ts). */
  outbox?: ResultOutbox;
  /** Called with each stored result (metrics, alerts). */
  onResult?: (result: TaskResult, job: Job<JobData>) => void;
  /** Told when a job enters and leaves the processor, so /livez can tell a stuck job from a long one. */
  liveness?: Liveness;
}

/**
 * How long past its task's timeout a job may stay in the processor before
 * /livez calls it stuck: the run is cut at the timeout; taking the lock,
 * storing the result (each state query bounded at its statement timeout
 * plus 5 s) and the outbox come on top.
 */
export const STUCK_MARGIN_MS = 5 * 60_000;

/** Longest reason a rejected job records (in failedReason and the history). */
const MAX_REASON = 1_000;

/**
 * Jobs whose stored data BullMQ could not parse: the stored text and why.
 * BullMQ parses a job's data while fetching it, before any processor runs, so
 * the worker (worker.ts) builds such a job without its data and leaves them
 * here, for the processor to reject the job like any other bad job.
 */
const unreadableData = new WeakMap<Job, { raw: string; reason: string }>();

/** Marks `job` as one whose stored data (`raw`) could not be parsed: the processor rejects it with `reason`. */
export function markUnreadableData(job: Job, raw: string, reason: string): void {
  unreadableData.set(job, { raw, reason });
}

/** The worker's processor: one job in, its stored TaskResult out; a job it rejects fails without a retry. */
export function createProcessor(deps: ProcessorDeps) {
  const process = processJob(deps);
  const liveness = deps.liveness;
  if (!liveness) return process;
  return async (job: Job<JobData>, token?: string, signal?: AbortSignal): Promise<TaskResult> => {
    const data = (job.data ?? {}) as Partial<JobData>;
    const task = deps.registry.get(typeof data.task === 'string' ? data.task : job.name);
    const id = job.id ?? '?';
    // /livez is open: a hand-added job's name and target are cut to a line, as the board's job names are.
    const what = oneLine(`${job.name} on ${typeof data.target === 'string' ? data.target : '?'}`, 120);
    liveness.jobStarted(id, what, (task?.timeoutMs ?? 0) + STUCK_MARGIN_MS);
    try {
      return await process(job, token, signal);
    } finally {
      liveness.jobEnded(id);
    }
  };
}

function processJob(deps: ProcessorDeps) {
  // Collected once: every result is scrubbed of them before anyone sees it.
  const secrets = configSecrets(deps.config);
  return async function process(job: Job<JobData>, _token?: string, signal?: AbortSignal): Promise<TaskResult> {
    const attempt = job.attemptsMade + 1;
    const maxAttempts = job.opts.attempts ?? 1;
    const log = deps.log.child({ jobId: job.id, task: job.name, attempt });

    const store = async (result: TaskResult): Promise<TaskResult> => {
      const meta = { jobId: job.id, jobKey: `${job.id}@${job.timestamp}`, schedule: (job.data as Partial<JobData>)?.schedule, attempt };
      try {
        await deps.store.save(result, meta);
      } catch (err) {
        // The state database is away: the result waits in Redis and is written when it is back.
        log.error({ err: coerceError(err).message }, 'could not store the result in the state database: kept in the outbox');
        await deps.outbox?.push(result, meta).catch((e) => log.error({ err: coerceError(e).message }, 'could not keep the result in the outbox either'));
      }
      deps.onResult?.(result, job);
      return result;
    };
    const reject = async (task: string, target: string, fullReason: string): Promise<never> => {
      // Hand-added job data can be anything: keep the reason a readable size.
      const reason = fullReason.length > MAX_REASON ? `${fullReason.slice(0, MAX_REASON)}…` : fullReason;
      const result = await store(rejectedResult(task, target, false, reason));
      await job.log(JSON.stringify(result)).catch(() => undefined);
      const mistake = new UnrecoverableError(reason);
      // BullMQ records the stack as the job's stacktrace, which Bull Board shows on the job: a
      // mistake in the job's data reads as its reason on one line, not the worker's frames.
      mistake.stack = reason.replace(/\s*\n\s*/g, ' ');
      throw mistake;
    };

    const unreadable = unreadableData.get(job);
    if (unreadable !== undefined) {
      // Every BullMQ reader (Queue.getJob, the failed list, Bull Board) throws on such a job:
      // its text is stored back as a JSON string, which reads as the same text.
      await job.updateData(unreadable.raw as unknown as JobData).catch((err) => log.warn({ err: coerceError(err).message }, 'could not store the unreadable job data as a string'));
      // Nothing of the data survives to name the target: the job's name is usually its task.
      return reject(job.name || '?', '?', unreadable.reason);
    }
    const parsed = jobDataSchema.safeParse(job.data);
    if (!parsed.success) {
      const raw = (job.data ?? {}) as Record<string, unknown>;
      return reject(String(raw.task ?? job.name ?? '?'), String(raw.target ?? '?'), `invalid job data: ${formatIssues(parsed.error).join('; ')}`);
    }
    const data = parsed.data;
    const task = deps.registry.get(data.task);
    if (!task) return reject(data.task, data.target, `unknown task ${JSON.stringify(data.task)}`);
    let prepared;
    try {
      prepared = task.prepare(deps.config, { targetName: data.target, overrides: data.params ?? {}, overridePath: 'job data params' });
    } catch (err) {
      return reject(task.name, data.target, coerceError(err).message);
    }
    if (!prepared.ok) return reject(task.name, data.target, `invalid params: ${prepared.problems.join('; ')}`);

    const runLog = log.child({ target: data.target });
    return runInSequence({
      run: prepared.run,
      config: deps.config,
      dryRun: data.dryRun ?? false,
      secrets,
      log: runLog,
      state: deps.state,
      signal,
      progress: (p) => job.updateProgress(p),
      jobLog: async (line) => {
        await job.log(line);
      },
      takeLock: (key, ttlMs) => acquireTargetLock(deps.redis, key, `job ${job.id}`, ttlMs),
      store: async (result) => {
        if (result.status === 'error' && attempt < maxAttempts) {
          // Not stored yet: only a job's final outcome becomes history (job_id is unique).
          await job.log(`attempt ${attempt} of ${maxAttempts}: ${result.summary}`).catch(() => undefined);
          throw new Error(result.summary);
        }
        await store(result);
        if (result.status === 'error') {
          await job.log(JSON.stringify(result)).catch(() => undefined);
          throw new UnrecoverableError(result.summary);
        }
        return result;
      },
    });
  };
}
