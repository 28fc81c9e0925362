/**
 * Results that could not reach the state database wait here, in Redis, until
 * it answers again: a run's outcome is never lost to a database outage
 * (runs are stored once per job id, so a result written twice counts once).
 */
import type { Redis } from 'ioredis';
import type { TaskResult } from '../contract/result';
import type { ResultStore, RunMeta } from './store';

interface Pending {
  result: TaskResult;
  meta: RunMeta;
}

/** How many results one flush writes before it yields. */
const FLUSH_BATCH = 100;

export class ResultOutbox {
  readonly key: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.key = `${prefix}:caretaker:results-outbox`;
  }

  async push(result: TaskResult, meta: RunMeta): Promise<void> {
    await this.redis.rpush(this.key, JSON.stringify({ result, meta } satisfies Pending));
  }

  async size(): Promise<number> {
    return this.redis.llen(this.key);
  }

  /**
   * Writes the waiting results, oldest first; stops at the first failure
   * (the database is still away) and leaves the rest for the next flush.
   * Returns how many were written.
   */
  async flush(store: ResultStore): Promise<number> {
    let written = 0;
    for (let i = 0; i < FLUSH_BATCH; i++) {
      const head = await this.redis.lindex(this.key, 0);
      if (head === null) break;
      const pending = JSON.parse(head) as Pending;
      await store.save(pending.result, pending.meta);
      // Remove exactly the entry written (another worker may have flushed it meanwhile).
      await this.redis.lrem(this.key, 1, head);
      written++;
    }
    return written;
  }
}
