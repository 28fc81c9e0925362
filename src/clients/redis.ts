import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { redactSecretsIn } from '../logger';

/**
 * A Redis connection as BullMQ wants it (`maxRetriesPerRequest: null`:
 * blocking commands wait through a reconnect instead of failing). Whoever
 * creates one closes it: BullMQ does not close connections it was given.
 */
export function createRedis(url: string, log: Logger, options: RedisOptions = {}): Redis {
  const redis = new Redis(url, {
    maxRetriesPerRequest: null,
    // Reconnect forever, backing off to 5 s: an outage must not need a restart.
    retryStrategy: (times) => Math.min(times * 200, 5_000),
    lazyConnect: false,
    // disconnect() of a client whose connection already failed otherwise keeps the process alive 2 s.
    disconnectTimeout: 50,
    ...options,
  });
  let lastError = '';
  redis.on('error', (err: Error) => {
    // ioredis repeats the same error on each retry; log changes only.
    if (err.message !== lastError) log.warn({ err: redactSecretsIn(err.message) }, 'redis connection error');
    lastError = err.message;
  });
  redis.on('ready', () => {
    if (lastError) log.info('redis connection restored');
    lastError = '';
  });
  return redis;
}

/**
 * A single-use connection for a quick look (a PING, an INFO): no retries, no
 * offline queue, RESP2 without CLIENT SETINFO (so only our commands are sent),
 * bounded by `timeoutMs`. The caller connects, and disconnects when done.
 */
export function oneShotRedis(url: string, timeoutMs: number): Redis {
  const redis = new Redis(url, {
    lazyConnect: true,
    protocol: 2,
    disableClientInfo: true,
    enableReadyCheck: false,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    // disconnect() after a failed connect otherwise keeps the process alive 2 s.
    disconnectTimeout: 50,
  });
  // Failures surface from connect() and the commands; the event would otherwise be unhandled.
  redis.on('error', () => undefined);
  return redis;
}
