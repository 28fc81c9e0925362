/**
 * redis-health (daily): the runbook's cache operations. Reads `INFO` and
 * `DBSIZE` only: hit rate, memory against maxmemory, evictions and lookups
 * since the previous run, clients against maxclients, and whether the
 * instance answers a connection that brings no credentials.
 *
 * Read-only: never FLUSHALL, MONITOR or KEYS. CONFIG GET is only a fallback
 * for a figure INFO lacks (old servers), and a renamed or disabled CONFIG
 * only costs that figure.
 */
import { z } from 'zod';
import type { Redis } from 'ioredis';
import { defineTask, type FindingCodes } from '../contract/task';
import type { Finding } from '../contract/result';
import { formatBytes, formatPercent } from '../util/format';
import { coerceError } from '../errors';
import { probeAuth, recordErrors, redisAddress } from '../clients/redis';

const NAME = 'redis-health';

const codes = {
  cache_hit_rate_low: 'the hit rate over the lookups since the last run is below `hitRateWarning`, once `minLookups` were made',
  redis_memory_high: 'used memory at or above `memoryWarning` of maxmemory (critical at `memoryCritical`)',
  redis_maxmemory_unset: 'no maxmemory limit: used memory shown against system memory',
  redis_evictions: 'keys evicted since the last run at or above `evictionsWarning` (on a first run: any since start, info)',
  redis_clients_high: 'connected clients at or above `clientsWarning` of maxclients (critical at `clientsCritical`)',
  redis_no_auth: 'a second connection without credentials gets answers: the instance requires no authentication',
} satisfies FindingCodes;
type Code = keyof typeof codes;

const params = z
  .strictObject({
    /** Share of lookups that hit, below which `cache_hit_rate_low` is a warning... */
    hitRateWarning: z.number().min(0).max(1).default(0.8),
    /** ...judged only once this many lookups (hits + misses) were made since the previous run. */
    minLookups: z.number().int().min(1).default(1000),
    /** used_memory / maxmemory that raises `redis_memory_high` as a warning... */
    memoryWarning: z.number().gt(0).max(1).default(0.8),
    /** ...and as critical (at maxmemory Redis evicts keys or refuses writes). */
    memoryCritical: z.number().gt(0).max(1).default(0.95),
    /** connected_clients / maxclients that raises `redis_clients_high` as a warning... */
    clientsWarning: z.number().gt(0).max(1).default(0.8),
    /** ...and as critical (at maxclients new connections are refused). */
    clientsCritical: z.number().gt(0).max(1).default(0.95),
    /** Keys evicted since the previous run that raise `redis_evictions`; raise it for an LRU cache that evicts by design. */
    evictionsWarning: z.number().int().min(1).default(1),
    /** Bound on the unauthenticated probe connection. */
    probeTimeoutMs: z.number().int().min(100).max(60_000).default(5_000),
  })
  .refine((p) => p.memoryWarning <= p.memoryCritical, { error: 'memoryWarning must not be above memoryCritical', path: ['memoryWarning'] })
  .refine((p) => p.clientsWarning <= p.clientsCritical, { error: 'clientsWarning must not be above clientsCritical', path: ['clientsWarning'] });

/** The INFO fields this task reads, as numbers (absent when the server does not report one). */
interface Figures {
  hits: number;
  misses: number;
  evicted: number;
  usedMemory: number;
  maxMemory?: number;
  systemMemory?: number;
  policy?: string;
  clients: number;
  maxClients?: number;
  uptimeSeconds: number;
}

/** Where a counter's figure starts: the previous run, or the server's start / last CONFIG RESETSTAT. */
type Window = 'since_last_run' | 'since_restart';

export const redisHealth = defineTask({
  name: NAME,
  description: 'Redis hit rate, memory vs maxmemory, evictions since the last run, keys, clients vs maxclients, and whether it answers without a password',
  target: 'redis',
  defaultSchedule: 'daily',
  timeoutMs: 60_000,
  changesTarget: false,
  params,
  codes,
  async run(ctx, p) {
    const redis = ctx.clients.redis();
    const lastError = recordErrors(redis);
    const where = redisAddress(ctx.target.url);
    let info: Map<string, string>;
    let keys: number;
    try {
      info = parseInfo(await redis.info());
      keys = await redis.dbsize();
    } catch (err) {
      throw new Error(`cannot reach redis at ${where}: ${lastError() ?? coerceError(err).message}`, { cause: err });
    }
    const f = await figures(info, redis, (field, reason) => ctx.log.warn({ field, reason }, 'CONFIG GET unavailable: figure skipped'));
    const previous = (await ctx.previousResult()).result;
    // uptime_in_seconds is rounded down: only a server younger than the previous run by a whole second surely restarted.
    const restarted = previous !== undefined && (f.uptimeSeconds + 1) * 1000 < Date.now() - Date.parse(previous.finishedAt);
    const since = (current: number, metric: string) => sinceLast(current, previous?.metrics?.[metric], restarted);

    const findings: Finding<Code>[] = [];
    const metrics: Record<string, number> = {
      redis_keyspace_hits: f.hits,
      redis_keyspace_misses: f.misses,
      redis_used_memory_bytes: f.usedMemory,
      redis_maxmemory_bytes: f.maxMemory ?? 0,
      redis_evicted_keys: f.evicted,
      redis_keys: keys,
      redis_connected_clients: f.clients,
      redis_uptime_seconds: f.uptimeSeconds,
    };
    const summary: string[] = [];
    const subject = ctx.target.name;

    // Hit rate over the lookups since the previous run (cumulative counters would hide today behind months).
    const hits = since(f.hits, 'redis_keyspace_hits');
    const misses = since(f.misses, 'redis_keyspace_misses');
    const lookups = hits.value + misses.value;
    const window = hits.window === 'since_last_run' && misses.window === 'since_last_run' ? 'since_last_run' : 'since_restart';
    metrics.redis_lookups = lookups;
    if (lookups > 0) {
      const rate = hits.value / lookups;
      metrics.redis_hit_rate = rate;
      summary.push(`hit rate ${pct(rate)} (${lookups} lookups ${windowText(window)})`);
      if (lookups >= p.minLookups && rate < p.hitRateWarning) {
        findings.push({
          severity: 'warning',
          code: 'cache_hit_rate_low',
          subject,
          message: `cache hit rate ${pct(rate)} (${hits.value} hits, ${misses.value} misses ${windowText(window)}), below ${pct(p.hitRateWarning)}`,
          suggestion: 'Check the TTLs and key names the application caches under, and whether evictions remove keys before they are read again (evicted_keys, maxmemory)',
          details: { hits: hits.value, misses: misses.value, lookups, hitRate: rate, window, threshold: p.hitRateWarning, minLookups: p.minLookups },
        });
      }
    } else {
      summary.push(`no lookups ${windowText(window)}`);
    }

    // Memory: against maxmemory, or, without a limit, against the machine.
    if (f.maxMemory !== undefined && f.maxMemory > 0) {
      const ratio = f.usedMemory / f.maxMemory;
      metrics.redis_memory_used_ratio = ratio;
      summary.push(`memory ${formatBytes(f.usedMemory)} of ${formatBytes(f.maxMemory)} (${pct(ratio)})`);
      if (ratio >= p.memoryWarning) {
        const critical = ratio >= p.memoryCritical;
        findings.push({
          severity: critical ? 'critical' : 'warning',
          code: 'redis_memory_high',
          subject,
          message: `${formatBytes(f.usedMemory)} used of maxmemory ${formatBytes(f.maxMemory)} (${pct(ratio)}, ${critical ? 'critical' : 'warning'} at ${pct(critical ? p.memoryCritical : p.memoryWarning)})`,
          suggestion: f.policy === 'noeviction'
            ? 'With maxmemory-policy noeviction, writes fail at the limit: raise maxmemory, set TTLs on cached keys, or find the largest keys (redis-cli --bigkeys, on a replica)'
            : `At the limit Redis evicts keys (${f.policy ?? 'maxmemory-policy'}): raise maxmemory or set TTLs on cached keys`,
          details: { usedMemory: f.usedMemory, maxMemory: f.maxMemory, ratio, policy: f.policy },
        });
      }
    } else if (f.maxMemory === 0) {
      if (f.systemMemory) metrics.redis_system_memory_bytes = f.systemMemory;
      const ofSystem = f.systemMemory ? ` of ${formatBytes(f.systemMemory)} system memory (${pct(f.usedMemory / f.systemMemory)})` : '';
      summary.push(`memory ${formatBytes(f.usedMemory)}, no maxmemory`);
      findings.push({
        severity: 'info',
        code: 'redis_maxmemory_unset',
        subject,
        message: `no maxmemory limit: ${formatBytes(f.usedMemory)} used${ofSystem}`,
        suggestion: 'Set maxmemory (below the container or machine limit) and a maxmemory-policy, so Redis is not OOM-killed',
        details: { usedMemory: f.usedMemory, systemMemory: f.systemMemory, policy: f.policy },
      });
    } else {
      summary.push(`memory ${formatBytes(f.usedMemory)}`);
    }

    // Evictions since the previous run (the counter is cumulative).
    const evicted = since(f.evicted, 'redis_evicted_keys');
    if (previous) {
      metrics.redis_evicted_keys_since_last_run = evicted.value;
      summary.push(`${evicted.value} evicted ${windowText(evicted.window)}`);
    }
    if (previous ? evicted.value >= p.evictionsWarning : f.evicted > 0) {
      findings.push({
        severity: previous ? 'warning' : 'info',
        code: 'redis_evictions',
        subject,
        message: previous
          ? `${evicted.value} keys evicted ${windowText(evicted.window)} (policy ${f.policy ?? 'unknown'})`
          : `${f.evicted} keys evicted since the server started (no previous run to compare with)`,
        suggestion: 'Redis drops keys when it reaches maxmemory: raise maxmemory or shorten TTLs; BullMQ data must never be evicted (noeviction on its instance)',
        details: { evicted: evicted.value, evictedTotal: f.evicted, window: evicted.window, policy: f.policy, threshold: p.evictionsWarning },
      });
    }

    summary.push(`${keys} keys`);
    if (f.maxClients !== undefined && f.maxClients > 0) {
      const ratio = f.clients / f.maxClients;
      metrics.redis_maxclients = f.maxClients;
      metrics.redis_clients_used_ratio = ratio;
      summary.push(`${f.clients}/${f.maxClients} clients`);
      if (ratio >= p.clientsWarning) {
        const critical = ratio >= p.clientsCritical;
        findings.push({
          severity: critical ? 'critical' : 'warning',
          code: 'redis_clients_high',
          subject,
          message: `${f.clients} of ${f.maxClients} clients connected (${pct(ratio)}, ${critical ? 'critical' : 'warning'} at ${pct(critical ? p.clientsCritical : p.clientsWarning)})`,
          suggestion: 'Look for connection leaks (CLIENT LIST by name and age) and pool sizes; raise maxclients only with the file-descriptor limit',
          details: { connected: f.clients, maxClients: f.maxClients, ratio },
        });
      }
    } else {
      summary.push(`${f.clients} clients`);
    }

    // A separate connection without credentials: does the instance answer it?
    const auth = await probeAuth(ctx.target.url, p.probeTimeoutMs);
    if (auth.state === 'open') {
      findings.push({
        severity: 'warning',
        code: 'redis_no_auth',
        subject,
        message: `${where} answers commands without authentication`,
        suggestion: 'Set requirepass (or ACL users with the default user disabled), keep Redis off public networks, and put the password in the URL through an environment variable',
        details: { address: where },
      });
      summary.push('no auth');
    } else if (auth.state === 'protected') {
      summary.push('auth required');
    } else {
      ctx.log.warn({ reason: auth.reason }, 'unauthenticated probe inconclusive');
      summary.push('auth unknown');
    }

    return { summary: summary.join(', '), findings, metrics };
  },
});

/** `INFO` text as field → value (section headers and blank lines dropped). */
export function parseInfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon > 0) out.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return out;
}

/**
 * One setting by CONFIG GET, or undefined (with the reason) when CONFIG is
 * renamed, disabled or denied by an ACL, as managed services often do.
 */
export async function configValue(redis: Redis, name: string): Promise<{ value?: string; reason?: string }> {
  try {
    const reply = (await redis.call('CONFIG', 'GET', name)) as string[];
    const i = reply.indexOf(name);
    return i >= 0 && i + 1 < reply.length ? { value: reply[i + 1] } : { reason: `CONFIG GET ${name} returned nothing` };
  } catch (err) {
    return { reason: coerceError(err).message };
  }
}

async function figures(info: Map<string, string>, redis: Redis, skipped: (field: string, reason: string) => void): Promise<Figures> {
  const num = (field: string): number | undefined => {
    const raw = info.get(field);
    const n = raw === undefined ? NaN : Number(raw);
    return Number.isFinite(n) ? n : undefined;
  };
  // INFO has maxmemory since Redis 4 and maxclients since 7: older servers need CONFIG GET.
  const orConfig = async (field: string): Promise<number | undefined> => {
    const fromInfo = num(field);
    if (fromInfo !== undefined) return fromInfo;
    const { value, reason } = await configValue(redis, field);
    if (value === undefined) skipped(field, reason ?? 'unknown');
    const n = Number(value);
    return value !== undefined && Number.isFinite(n) ? n : undefined;
  };
  return {
    hits: num('keyspace_hits') ?? 0,
    misses: num('keyspace_misses') ?? 0,
    evicted: num('evicted_keys') ?? 0,
    usedMemory: num('used_memory') ?? 0,
    maxMemory: await orConfig('maxmemory'),
    systemMemory: num('total_system_memory') || undefined,
    policy: info.get('maxmemory_policy'),
    clients: num('connected_clients') ?? 0,
    maxClients: await orConfig('maxclients'),
    uptimeSeconds: num('uptime_in_seconds') ?? 0,
  };
}

/**
 * A cumulative counter's growth since the previous run. A counter below its
 * previous value, or a server up for less time than since the previous run,
 * was reset (restart or CONFIG RESETSTAT): then everything it counts is new.
 */
function sinceLast(current: number, previous: unknown, restarted: boolean): { value: number; window: Window } {
  if (typeof previous !== 'number' || !Number.isFinite(previous)) return { value: current, window: 'since_restart' };
  if (restarted || current < previous) return { value: current, window: 'since_restart' };
  return { value: current - previous, window: 'since_last_run' };
}

const pct = (ratio: number) => formatPercent(ratio, 1);

function windowText(window: Window): string {
  return window === 'since_last_run' ? 'since the last run' : 'since the server started';
}
