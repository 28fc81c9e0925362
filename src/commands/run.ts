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
import type { Config } from '../config/schema';
import type { PreparedRun, Task } from '../contract/task';
import { parseParamFlags } from '../config/params';
import { noTargetError, targetsOf } from '../config/targets';
import { createPool, stateLimits } from '../clients/postgres';
import { createRedis, recordErrors } from '../clients/redis';
import { ResultStore } from '../results/store';
import { ResultOutbox } from '../results/outbox';
import { configSecrets } from '../config/secrets';
import { withTimeout } from '../util/timeout';
import { migrate } from '../results/migrate';
import { acquireTargetLock } from '../worker/target-lock';
import { rejectedResult } from '../worker/run-task';
import { runInSequence, type LockOutcome } from '../worker/run-sequence';
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

interface CliRun {
  config: Config;
  run: PreparedRun;
}

/**
 * Everything a run needs from the config and the command line, or why it
 * cannot start (a UsageError saying what to fix, for a mistake) with the
 * target to name in an error result: the one picked when it got that far,
 * else --target, else "" (none was chosen).
 */
function prepareRun(io: CliIO, taskName: string, opts: RunOptions): { ok: true; run: CliRun } | { ok: false; error: Error; target: string } {
  let targetName = opts.target ?? '';
  try {
    const config = configFor(io, opts.config);
    const task = taskNamed(taskName);
    targetName = pickTarget(config, task, opts.target);
    const prepared = task.prepare(config, { targetName, overrides: parseParamFlags(opts.param ?? []) });
    if (!prepared.ok) throw new UsageError(prepared.problems.join('; '));
    return { ok: true, run: { config, run: prepared.run } };
  } catch (err) {
    return { ok: false, error: coerceError(err), target: targetName };
  }
}

async function runPrepared(io: CliIO, { config, run }: CliRun, opts: RunOptions): Promise<number> {
  const dryRun = opts.dryRun === true;
  const { task, target } = run;

  const context = { task: task.name, target: target.name, via: 'cli' };
  // A person reading the result wants the warnings that explain it, not JSON; scripts with --json keep pino JSON.
  const log = loggerFor(io, config, opts.json ? {} : { human: true, context: Object.keys(context) }).child(context);
  const state = createPool(config.state.url, stateLimits(config.state), log, 2);
  const redis = createRedis(config.redis.url, log, { maxRetriesPerRequest: 1, connectTimeout: 3_000, retryStrategy: () => null, lazyConnect: true });
  try {
    const { result, kept } = await runInSequence({
      run,
      config,
      dryRun,
      log,
      state,
      secrets: configSecrets(config),
      takeLock: (key, ttlMs) => tryLock(redis, key, ttlMs, log),
      store: async (result) => ({ result, kept: await storeResult(state, redis, config, result, log) }),
    });
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

/** The target to run on: the one named, else the task's kind's only one; a UsageError says which to pick. */
function pickTarget(config: Config, task: Task, name: string | undefined): string {
  if (name) return name;
  const targets = targetsOf(config, task.target);
  if (targets.length === 1) return targets[0]!.name;
  if (targets.length === 0) throw noTargetError(task.name, task.target);
  throw new UsageError(`${task.name} can run on ${targets.map((t) => t.name).join(', ')}: pick one with --target`);
}

/**
 * The per-target lock the workers use, so a manual run never overlaps a
 * scheduled one. Redis being down must not stop a manual check: then the
 * run goes ahead unlocked (no worker can run without Redis either).
 */
async function tryLock(redis: Redis, key: string, ttlMs: number, log: Logger): Promise<LockOutcome> {
  // connect() only rejects with "Connection is closed."; the client's last error says why (ECONNREFUSED, NOAUTH).
  const lastError = recordErrors(redis);
  try {
    await redis.connect();
    return await acquireTargetLock(redis, key, `cli ${randomUUID().slice(0, 8)}`, ttlMs);
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
