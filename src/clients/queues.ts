/**
 * The BullMQ queues of a queues target, read through BullMQ's own Queue
 * API over one Redis connection, opened without touching the queues' meta
 * keys (caretaker only looks).
 */
import { Queue } from 'bullmq';
import type { Logger } from 'pino';
import type { QueuesTarget } from '../config/schema';
import type { QueuesClient } from '../contract/clients';
import { createRedis, recordErrors, redisAddress } from './redis';

export interface OpenQueues extends QueuesClient {
  close(): Promise<void>;
}

/** Connects and PINGs; rejects naming the address and Redis's own reason when it does not answer. */
export async function openQueues(target: QueuesTarget, log: Logger): Promise<OpenQueues> {
  const redis = createRedis(target.redisTarget.url, log, { maxRetriesPerRequest: 1, connectTimeout: 5_000 });
  const lastError = recordErrors(redis);
  try {
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    throw new Error(`cannot reach redis at ${redisAddress(target.redisTarget.url)}: ${lastError() ?? (err as Error).message}`, { cause: err });
  }
  const opened = new Map<string, Queue>();
  return {
    redis,
    queue(name) {
      let queue = opened.get(name);
      if (!queue) {
        queue = new Queue(name, { connection: redis, prefix: target.prefix, skipMetasUpdate: true });
        queue.on('error', (err) => log.warn({ queue: name, err: err.message }, 'queue error'));
        opened.set(name, queue);
      }
      return queue;
    },
    async close() {
      await Promise.all([...opened.values()].map((q) => q.close().catch(() => undefined)));
      redis.disconnect();
    },
  };
}
