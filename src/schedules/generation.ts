/**
 * Which replica's config owns the job schedulers during a rollout.
 *
 * Every scheduler replica upserts the schedulers its config declares and
 * removes the others. While a config change rolls out, old and new replicas
 * run side by side: left alone, each re-sync of an old replica would put
 * back the schedule the new config removed (and revert the changed one),
 * and the new replicas would take it out again, for as long as the rollout
 * lasts.
 *
 * The rule is the one a rollout already follows: the most recently started
 * replica's config wins. Each replica claims the queue's config generation
 * (a digest of what it would write, and its start time on Redis's clock, so
 * hosts' clocks do not matter) before it writes anything. A replica whose
 * digest differs from a newer claim writes nothing and waits to be replaced.
 * Same digest, any start time: the replicas agree, and all of them sync (a
 * Redis that lost its keys is repaired by whichever replica sees it first).
 * A rollback is a newer start with the older config, so it wins too.
 */
import { createHash } from 'node:crypto';
import type { JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { SchedulerEntry } from './resolve';
import { redisScript, runScript } from '../clients/redis-scripts';

/** This replica's claim: what it would write and when it started. */
export interface ConfigGeneration {
  /** sha256 of the scheduler entries and job options, order-independent. */
  digest: string;
  /** Start time on Redis's clock (ms). */
  startedAt: number;
}

/** The hash holding the current claim, beside the queue's own keys (`qualifiedName` is `<prefix>:<queue>`). */
export function generationKey(qualifiedName: string): string {
  return `${qualifiedName}:config-generation`;
}

/** The digest of what a sync would write: two replicas with equal digests write the same schedulers. */
export function schedulesDigest(entries: readonly SchedulerEntry[], jobOpts: JobsOptions): string {
  const lines = entries.map((e) => JSON.stringify([e.id, e.task, e.target, e.schedule, e.cron, e.timezone])).sort();
  return createHash('sha256').update(JSON.stringify({ lines, jobOpts })).digest('hex');
}

/** Redis's clock in ms: the same for every replica whatever its host's clock says. */
export async function redisNowMs(redis: Redis): Promise<number> {
  const [seconds, micros] = await redis.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

/*
 * One round trip, atomic: take the claim when there is none, when it is the
 * same config (keeping the latest start), or when ours is at least as new;
 * otherwise leave it. Returns 1 when the caller may write, 0 when superseded.
 */
const CLAIM_SCRIPT = redisScript(`
local digest = redis.call('HGET', KEYS[1], 'digest')
local started = tonumber(redis.call('HGET', KEYS[1], 'startedAt') or '0')
local mine = tonumber(ARGV[2])
if digest == ARGV[1] then
  if mine > started then redis.call('HSET', KEYS[1], 'startedAt', ARGV[2]) end
  return 1
end
if (not digest) or mine >= started then
  redis.call('HSET', KEYS[1], 'digest', ARGV[1], 'startedAt', ARGV[2])
  return 1
end
return 0`);

/** True when this replica's config is the current one (and now recorded as such). */
export async function claimGeneration(redis: Redis, key: string, mine: ConfigGeneration): Promise<boolean> {
  const result = await runScript(redis, CLAIM_SCRIPT, [key], [mine.digest, String(mine.startedAt)]);
  return Number(result) === 1;
}
