/**
 * security-audit on a Redis target: does it answer without credentials
 * (`redis_no_auth`, through `probeAuth`, as redis-health: a PING on a
 * connection without the URL's credentials), and is protected mode off
 * (`redis_protected_mode_off`, CONFIG GET on a connection as configured)?
 * PING and CONFIG GET only; the URL's password is never put in a finding,
 * a message or an error.
 */
import type { Finding } from '../contract/result';
import type { FindingCodes } from '../contract/task';
import { redactSecretsIn } from '../logger';
import { AUDIT_INCOMPLETE, AUDIT_INCOMPLETE_CODES, countsByCode, type AuditIncomplete, type AuditResult } from './audit';
import { oneShotRedis, probeAuth, redisAddress } from '../clients/redis';

/** The codes of this check's findings, besides audit_incomplete; security-audit declares them. */
export const REDIS_CODES = {
  redis_no_auth: 'a Redis that answers a connection without credentials',
  redis_protected_mode_off: 'protected-mode is off on a Redis (a warning when it requires no password either)',
} satisfies FindingCodes;
type RedisCode = keyof typeof REDIS_CODES | AuditIncomplete;

/** What the redis check needs from security-audit's params. */
export interface RedisAuditOptions {
  /** Bound on connecting and on each command. */
  timeoutMs: number;
}

/**
 * Audits the Redis server at `url` (the target's URL, credentials included).
 * Throws when the server cannot be reached at all.
 */
export async function auditRedis(url: string, opts: RedisAuditOptions, signal: AbortSignal): Promise<AuditResult<RedisCode>> {
  const parsed = new URL(url);
  const endpoint = redisAddress(url);
  const hasCredentials = parsed.username !== '' || parsed.password !== '';
  if (signal.aborted) throw signal.reason;
  const findings: Finding<RedisCode>[] = [];

  const probe = await probeAuth(url, opts.timeoutMs);
  if (probe.state === 'unknown') throw new Error(`cannot reach redis ${endpoint}: ${redactSecretsIn(probe.reason)}`);
  const noAuth = probe.state === 'open';
  if (noAuth) {
    findings.push({
      severity: 'warning',
      code: 'redis_no_auth',
      subject: endpoint,
      message: `Redis at ${endpoint} answers commands without any credentials: whoever reaches the port can read, change or flush every key`,
      suggestion: 'Require a password (requirepass, or an ACL that turns the default user off or gives it a password), keep the port on a private network, and put the password in the target URL through ${VAR}',
      details: { endpoint, urlHasCredentials: hasCredentials },
    });
  }

  if (signal.aborted) throw signal.reason;
  const redis = oneShotRedis(url, opts.timeoutMs);
  const onAbort = () => redis.disconnect();
  signal.addEventListener('abort', onAbort, { once: true });
  let protectedMode: string | undefined;
  let refused: string | undefined;
  try {
    await redis.connect();
    const reply = (await redis.config('GET', 'protected-mode')) as unknown;
    protectedMode = Array.isArray(reply) && typeof reply[1] === 'string' ? reply[1] : undefined;
    if (protectedMode === undefined) refused = 'no value for protected-mode';
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    refused = redactSecretsIn(err instanceof Error ? err.message : String(err));
  } finally {
    signal.removeEventListener('abort', onAbort);
    redis.disconnect();
  }

  if (refused !== undefined) {
    findings.push({
      severity: 'info',
      code: AUDIT_INCOMPLETE,
      subject: endpoint,
      message: `cannot read protected-mode on ${endpoint} (CONFIG GET: ${refused}); managed Redis services often disable CONFIG`,
      details: { endpoint, check: 'redis_protected_mode_off' },
    });
  } else if (protectedMode === 'no') {
    findings.push({
      severity: noAuth ? 'warning' : 'info',
      code: 'redis_protected_mode_off',
      subject: endpoint,
      message: noAuth
        ? `protected-mode is off on ${endpoint} and no password is required: Redis accepts unauthenticated clients on every interface it binds`
        : `protected-mode is off on ${endpoint}; harmless while a password is required, a safety net gone if it is ever removed`,
      suggestion: 'CONFIG SET protected-mode yes, and set protected-mode yes in redis.conf; bind Redis to private interfaces only',
      details: { endpoint, protectedMode },
    });
  }

  return { findings, metrics: { ...countsByCode({ ...REDIS_CODES, ...AUDIT_INCOMPLETE_CODES }, findings), redis_requires_auth: noAuth ? 0 : 1 } };
}
