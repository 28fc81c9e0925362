/**
 * The one sequence every run goes through, from the queue worker and from
 * `caretaker run` alike: a maintenance window that pauses changes skips
 * it; the target's lock is taken (a run holding it skips this one); the
 * task runs; the lock is released; the result is stored. Each caller says
 * how it takes the lock and how it keeps a result; the order is here.
 */
import type { Config } from '../config/schema';
import type { TaskResult } from '../contract/result';
import { coerceError } from '../errors';
import { pausedByWindow, runTask, skippedResult, type RunRequest } from './run-task';
import { lockKey, runLockTtlMs, type TargetLock } from './target-lock';

/** What taking the lock gave: the lock, who holds it, or nothing (run unlocked, as a CLI run without Redis does). */
export type LockOutcome = { lock: TargetLock } | { heldBy: string } | undefined;

export interface SequenceRequest<T> extends RunRequest {
  config: Pick<Config, 'maintenance' | 'timezone' | 'redis'>;
  /** Takes the target's lock under `key` for `ttlMs`. */
  takeLock(key: string, ttlMs: number): Promise<LockOutcome>;
  /** Keeps the result: the history, else the outbox; the worker throws here to retry a failed attempt instead. */
  store(result: TaskResult): Promise<T>;
}

/** Runs `req.run` once through the sequence and resolves with what `store` made of its result. */
export async function runInSequence<T>(req: SequenceRequest<T>): Promise<T> {
  const { task, target } = req.run;
  const paused = pausedByWindow(req.config, task, target.name, req.dryRun);
  if (paused) {
    req.log.info({ reason: paused.summary }, 'run skipped: maintenance window');
    return req.store(paused);
  }
  const held = await req.takeLock(lockKey(req.config.redis.prefix, task.name, target.name), runLockTtlMs(task.timeoutMs));
  if (held && 'heldBy' in held) {
    req.log.info({ heldBy: held.heldBy }, 'target busy: run skipped');
    return req.store(skippedResult(task.name, target.name, req.dryRun, held.heldBy));
  }
  let result: TaskResult;
  try {
    result = await runTask(req);
  } finally {
    await held?.lock.release().catch((err) => req.log.warn({ err: coerceError(err).message }, 'could not release the target lock; it expires by itself'));
  }
  return req.store(result);
}
