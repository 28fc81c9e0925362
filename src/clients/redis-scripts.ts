/**
 * Lua scripts called by their SHA1 (EVALSHA), as Redis's docs advise: the
 * script's text travels once per server, not with every call. A server that
 * does not know the script yet (a restart, SCRIPT FLUSH, a failover to a
 * replica) answers NOSCRIPT; the call is then made once with EVAL, which
 * also loads it for the next one.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

export interface RedisScript {
  readonly source: string;
  readonly sha: string;
}

export function redisScript(source: string): RedisScript {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

export async function runScript(redis: Redis, script: RedisScript, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
  try {
    return await redis.evalsha(script.sha, keys.length, ...keys, ...args);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
    return redis.eval(script.source, keys.length, ...keys, ...args);
  }
}
