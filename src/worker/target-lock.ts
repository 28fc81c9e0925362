/**
 * One run of a task per target at a time, across every worker process: a
 * Redis key set with NX and an expiry. The expiry frees the target if the
 * holder dies (SIGKILL); the token makes sure only the holder releases it.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { redisScript, runScript } from '../clients/redis-scripts';

/** Deletes the key only if it still holds our token. */
const RELEASE = redisScript(`if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`);

/** Replaces the token only if it is still the one we saw. */
const TAKE_OVER = redisScript(`if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 else return 0 end`);

export interface TargetLock {
  /** Who holds it, for the skipped result's message. */
  readonly holder: string;
  release(): Promise<void>;
}

/** Lock expiry beyond the task's timeout: covers storing the result after the run. */
const LOCK_MARGIN_MS = 60_000;

/** How long a run's lock lives when its holder dies without releasing it. */
export function runLockTtlMs(taskTimeoutMs: number): number {
  return taskTimeoutMs + LOCK_MARGIN_MS;
}

export function lockKey(prefix: string, task: string, target: string): string {
  return `${prefix}:caretaker:lock:${task}:${target}`;
}

/** Takes the lock, or returns the current holder's description when it is taken. */
export async function acquireTargetLock(
  redis: Redis,
  key: string,
  holder: string,
  ttlMs: number,
): Promise<{ lock: TargetLock } | { heldBy: string }> {
  const token = `${holder}|${randomUUID()}`;
  const ok = await redis.set(key, token, 'PX', Math.max(1_000, Math.round(ttlMs)), 'NX');
  if (ok !== 'OK') {
    const current = (await redis.get(key)) ?? 'another run';
    const heldBy = current.split('|')[0] ?? current;
    // The same job holding it means its previous delivery died (a killed
    // worker): BullMQ runs one delivery of a job at a time, so take it over.
    const takenOver = heldBy === holder && (await runScript(redis, TAKE_OVER, [key], [current, token, Math.max(1_000, Math.round(ttlMs))])) === 1;
    if (!takenOver) return { heldBy };
  }
  return {
    lock: {
      holder,
      release: async () => {
        await runScript(redis, RELEASE, [key], [token]);
      },
    },
  };
}
