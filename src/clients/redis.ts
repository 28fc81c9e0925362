import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { redactSecretsIn } from '../logger';
import { coerceError } from '../errors';

/** How long a connection with commands pending may stay silent before it is taken for dead. */
export const SOCKET_TIMEOUT_MS = 30_000;

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
    // A connection silent for this long while commands wait is dead (a partition, a NAT that forgot the
    // flow: no error ever comes); it is cut and reconnected. Longer than any block BullMQ asks for (10 s).
    socketTimeout: SOCKET_TIMEOUT_MS,
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

/** host:port of a Redis URL, never its credentials. */
export function redisAddress(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || '6379'}`;
}

/** The client's latest connection error, which says more than "max retries per request". */
export function recordErrors(redis: Redis): () => string | undefined {
  let last: string | undefined;
  redis.on('error', (err: Error) => {
    last = err.message;
  });
  return () => last;
}

export type AuthProbe = { state: 'open' } | { state: 'protected' } | { state: 'unknown'; reason: string };

/**
 * Opens a second connection to the same host and port (and TLS) WITHOUT the
 * URL's credentials and sends PING: PONG means anyone who reaches the port can
 * use the instance; NOAUTH means a password is required. For redis-health
 * and security-audit.
 */
export async function probeAuth(url: string, timeoutMs = 5_000): Promise<AuthProbe> {
  const bare = new URL(url);
  bare.username = '';
  bare.password = '';
  bare.pathname = '';
  const probe = oneShotRedis(bare.toString(), timeoutMs);
  let connectError: string | undefined;
  probe.on('error', (err: Error) => {
    connectError = err.message;
  });
  try {
    await probe.connect();
    const reply = await probe.ping();
    return reply === 'PONG' ? { state: 'open' } : { state: 'unknown', reason: `PING answered ${JSON.stringify(reply)}` };
  } catch (err) {
    const reason = coerceError(err).message;
    if (/^NOAUTH\b/.test(reason)) return { state: 'protected' };
    return { state: 'unknown', reason: connectError ?? reason };
  } finally {
    probe.disconnect();
  }
}
