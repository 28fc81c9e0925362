/**
 * `caretaker run TASK`: runs a task now, in this process, and prints its
 * result; the exit code follows the monitoring-plugin convention, so a
 * Nagios-style monitor can call it. The result is also stored in the
 * history, or kept in Redis's outbox for the workers to store when the
 * state database does not answer; a run neither kept is exit 3.
 */
import type { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { EXIT_CODE, type TaskResult } from '../contract/result';
import type { AnyTarget, Config } from '../config/schema';
import type { Task } from '../contract/task';
import { parseParamFlags, resolveParams } from '../config/params';
import { findTarget, noTargetError, targetsOf } from '../config/targets';
import { createPool, stateLimits } from '../clients/postgres';
import { createRedis, recordErrors } from '../clients/redis';
import { ResultStore } from '../results/store';
import { ResultOutbox } from '../results/outbox';
import { configSecrets } from '../config/secrets';
import { withTimeout } from '../util/timeout';
import { migrate } from '../results/migrate';
import { acquireTargetLock, lockKey, runLockTtlMs, type TargetLock } from '../worker/target-lock';
import { pausedByWindow, rejectedResult, runTask, skippedResult } from '../worker/run-task';
import { UsageError, coerceError } from '../errors';
import { redactSecretsIn, type Logger } from '../logger';
import { configFor, loggerFor, taskNamed } from './common';
import { println, type CliIO } from './io';
import { formatResult } from './format-result';

export interface RunOptions {
  config?: string;
  target?: string;
  dryRun?: boolean;
  json?: boolean;
  param?: string[];
}

/** Runs `taskName` once in this process, prints its result (text, or one TaskResult with `--json`) and resolves with the exit code. */
export async function runCommand(io: CliIO, taskName: string, opts: RunOptions): Promise<number> {
  const prepared = prepareRun(io, taskName, opts);
  if (prepared.ok) return runPrepared(io, prepared.run, opts);
  if (!opts.json) throw prepared.error;
  // Monitors parse stdout: a run that cannot start is still the one TaskResult --json promises, not silence.
  const reason = redactSecretsIn(prepared.error.message);
  println(io.stdout, JSON.stringify(rejectedResult(taskName, prepared.target, opts.dryRun === true, reason)));
  return EXIT_CODE.error;
}

interface PreparedRun {
  config: Config;
  task: Task;
  target: AnyTarget;
  params: Record<string, unknown>;
}

/**
 * Everything a run needs from the config and the command line, or why it
 * cannot start (a UsageError saying what to fix, for a mistake) with the
 * target to name in an error result: the one picked when it got that far,
 * else --target, else "" (none was chosen).
 */
function prepareRun(io: CliIO, taskName: string, opts: RunOptions): { ok: true; run: PreparedRun } | { ok: false; error: Error; target: string } {
  let targetName = opts.target ?? '';
  try {
    const config = configFor(io, opts.config);
    const task = taskNamed(taskName);
    const target = pickTarget(config, task.target, task.name, opts.target);
    targetName = target.name;
    const params = resolveParams(task, config, target, parseParamFlags(opts.param ?? []));
    if (!params.ok) throw new UsageError(params.problems.join('; '));
    return { ok: true, run: { config, task, target, params: params.params } };
  } catch (err) {
    return { ok: false, error: coerceError(err), target: targetName };
  }
}

async function runPrepared(io: CliIO, { config, task, target, params }: PreparedRun, opts: RunOptions): Promise<number> {
  const dryRun = opts.dryRun === true;

  const context = { task: task.name, target: target.name, via: 'cli' };
  // A person reading the result wants the warnings that explain it, not JSON; scripts with --json keep pino JSON.
  const log = loggerFor(io, config, opts.json ? {} : { human: true, context: Object.keys(context) }).child(context);
  const state = createPool(config.state.url, stateLimits(config.state), log, 2);
  const redis = createRedis(config.redis.url, log, { maxRetriesPerRequest: 1, connectTimeout: 3_000, retryStrategy: () => null, lazyConnect: true });
  try {
    const paused = pausedByWindow(config, task, target.name, dryRun);
    const lock = paused ? undefined : await tryLock(redis, config, task.name, target.name, task.timeoutMs, log);
    let result: TaskResult;
    if (paused) {
      result = paused;
    } else if (lock && 'heldBy' in lock) {
      result = skippedResult(task.name, target.name, dryRun, lock.heldBy);
    } else {
      try {
        result = await runTask({ task, target, params, dryRun, log, state, secrets: configSecrets(config) });
      } finally {
        await lock?.lock.release().catch(() => undefined);
      }
    }
    const kept = await storeResult(state, redis, config, result, log);
    if (opts.json) println(io.stdout, JSON.stringify(result));
    else println(io.stdout, formatResult(result));
    if (kept !== true) {
      // The check ran, but nothing will remember it: not a success a monitor should take for one.
      println(io.stderr, `caretaker: the result is not in the history: ${kept}`);
      return EXIT_CODE.error;
    }
    return EXIT_CODE[result.status];
  } finally {
    redis.disconnect();
    await state.end().catch(() => undefined);
  }
}

function pickTarget(config: Config, kind: Parameters<typeof targetsOf>[1], taskName: string, name: string | undefined): AnyTarget {
  if (name) return findTarget(config, kind, name);
  const targets = targetsOf(config, kind);
  if (targets.length === 1) return targets[0]!;
  if (targets.length === 0) throw noTargetError(taskName, kind);
  throw new UsageError(`${taskName} can run on ${targets.map((t) => t.name).join(', ')}: pick one with --target`);
}

/**
 * The per-target lock the workers use, so a manual run never overlaps a
 * scheduled one. Redis being down must not stop a manual check: then the
 * run goes ahead unlocked (no worker can run without Redis either).
 */
async function tryLock(redis: Redis, config: Config, task: string, target: string, timeoutMs: number, log: Logger): Promise<{ lock: TargetLock } | { heldBy: string } | undefined> {
  // connect() only rejects with "Connection is closed."; the client's last error says why (ECONNREFUSED, NOAUTH).
  const lastError = recordErrors(redis);
  try {
    await redis.connect();
    return await acquireTargetLock(redis, lockKey(config.redis.prefix, task, target), `cli ${randomUUID().slice(0, 8)}`, runLockTtlMs(timeoutMs));
  } catch (err) {
    log.warn({ err: redactSecretsIn(lastError() ?? coerceError(err).message) }, 'redis unreachable: running without the per-target lock');
    return undefined;
  }
}

/** How long the outbox may take to keep a result when the state database would not. */
const OUTBOX_TIMEOUT_MS = 3_000;

/**
 * Stores the result in the history; when the state database does not take
 * it, in the outbox in Redis, which the workers write to the history once
 * the database answers again (as they do with their own results). True
 * when one of the two kept it, else why neither did. The key makes the
 * run stored once however often the outbox is flushed.
 */
async function storeResult(state: ReturnType<typeof createPool>, redis: Redis, config: Config, result: TaskResult, log: Logger): Promise<true | string> {
  const meta = { schedule: 'cli', jobKey: `cli:${randomUUID()}` };
  let stateError: string;
  try {
    await migrate(state);
    await new ResultStore(state).save(result, meta);
    return true;
  } catch (err) {
    stateError = redactSecretsIn(coerceError(err).message);
  }
  try {
    await withTimeout(new ResultOutbox(redis, config.redis.prefix).push(result, meta), OUTBOX_TIMEOUT_MS, 'the outbox');
    log.warn({ err: stateError }, 'could not store the result in the state database: kept in the outbox, a worker writes it once the database answers');
    return true;
  } catch (err) {
    return `the state database did not take it (${stateError}) and neither did the outbox in Redis (${redactSecretsIn(coerceError(err).message)})`;
  }
}
