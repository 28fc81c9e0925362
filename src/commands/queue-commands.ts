/** `caretaker enqueue` and `caretaker migrate`: one-off actions on Redis and the state database. */
import { EXIT_CODE } from '../contract/result';
import { findTarget, noTargetError, targetsOf } from '../config/targets';
import { createRedis } from '../clients/redis';
import { createPool } from '../clients/postgres';
import { createQueue, enqueueNow } from '../queue/queue';
import { migrate } from '../results/migrate';
import { UsageError } from '../errors';
import { configFor, loggerFor, taskNamed } from './common';
import { println, type CliIO } from './io';

/** Adds a job now (schedules unchanged); prints one job id per target. */
export async function enqueueCommand(io: CliIO, taskName: string, opts: { config?: string; target?: string; dryRun?: boolean }): Promise<number> {
  const config = configFor(io, opts.config);
  const task = taskNamed(taskName);
  const targets = opts.target ? [findTarget(config, task.target, opts.target)] : targetsOf(config, task.target);
  if (targets.length === 0) throw noTargetError(task.name, task.target);
  const log = loggerFor(io, config);
  const redis = createRedis(config.redis.url, log, { maxRetriesPerRequest: 1, connectTimeout: 3_000, retryStrategy: () => null, lazyConnect: true });
  try {
    await redis.connect().catch((err: Error) => {
      throw new UsageError(`cannot reach redis: ${err.message}`);
    });
    const queue = createQueue(redis, config.redis.prefix, undefined, log);
    try {
      for (const target of targets) {
        const jobId = await enqueueNow(queue, config.worker, { task: task.name, target: target.name, dryRun: opts.dryRun });
        println(io.stdout, `enqueued ${task.name} on ${target.name}: job ${jobId}`);
      }
    } finally {
      await queue.close();
    }
    return EXIT_CODE.ok;
  } finally {
    redis.disconnect();
  }
}

export async function migrateCommand(io: CliIO, opts: { config?: string }): Promise<number> {
  const config = configFor(io, opts.config);
  const log = loggerFor(io, config);
  const pool = createPool(config.state.url, { statementTimeoutMs: 60_000, lockTimeoutMs: 10_000 }, log, 1);
  try {
    const applied = await migrate(pool);
    println(io.stdout, applied.length > 0 ? `applied: ${applied.map((m) => `${m.version} ${m.name}`).join(', ')}` : 'state database is up to date');
    return 0;
  } finally {
    await pool.end();
  }
}
