/**
 * caretaker's one BullMQ queue. Job names are task names, so Bull Board
 * lists runs by task; job data names the target, never its secrets.
 */
import { Queue, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { Config } from '../config/schema';
import { redactSecretsIn, type Logger } from '../logger';

export const QUEUE_NAME = 'caretaker';

/** What a job carries. Anything else a hand-added job holds is ignored. */
export const jobDataSchema = z.object({
  task: z.string().min(1),
  target: z.string().min(1),
  schedule: z.string().optional(),
  dryRun: z.boolean().optional(),
  params: z.record(z.string(), z.unknown()).optional(),
});
export type JobData = z.infer<typeof jobDataSchema>;

/**
 * The queue; with `worker` settings, jobs added without options (Bull Board's
 * "add job", a scheduler's "run now") still get retries and cleanup. Its
 * errors (Redis away) are one structured warning each on `log`: without a
 * listener BullMQ prints each as a raw multi-line stack trace on stderr.
 * Without `log` they are dropped here; the call that needed Redis fails and
 * says so itself.
 */
export function createQueue(connection: Redis, prefix: string, worker?: Config['worker'], log?: Logger): Queue<JobData> {
  const queue = new Queue<JobData>(QUEUE_NAME, { connection, prefix, defaultJobOptions: worker ? jobOptions(worker) : undefined });
  // The connection repeats its error at each reconnect attempt: a line when it changes, not one per retry.
  let last = '';
  queue.on('error', (err: Error) => {
    if (err.message !== last) log?.warn({ err: redactSecretsIn(err.message) }, 'queue: redis error');
    last = err.message;
  });
  return queue;
}

/**
 * Retries with exponential backoff; Redis keeps a bounded tail of jobs for
 * Bull Board, the state database keeps the history.
 */
export function jobOptions(worker: Pick<Config['worker'], 'attempts' | 'backoffMs'>): JobsOptions {
  return {
    attempts: worker.attempts,
    backoff: { type: 'exponential', delay: worker.backoffMs },
    removeOnComplete: { age: 14 * 24 * 3600, count: 5_000 },
    removeOnFail: { age: 60 * 24 * 3600, count: 5_000 },
  };
}

/**
 * Queues one run of `task` on `target` now, as `caretaker enqueue` and the
 * console's "run now" do: the schedule stays as it is, the job carries the
 * worker's retries and cleanup, and `schedule: 'manual'` in the history.
 */
export async function enqueueNow(
  queue: Queue<JobData>,
  worker: Config['worker'],
  run: { task: string; target: string; dryRun?: boolean },
): Promise<string> {
  const job = await queue.add(run.task, { task: run.task, target: run.target, schedule: 'manual', dryRun: run.dryRun || undefined }, jobOptions(worker));
  return job.id!;
}
