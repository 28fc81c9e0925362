import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { configValue, parseInfo, redisHealth } from '../../src/jobs/redis-health';
import { migrate } from '../../src/results/migrate';
import { ResultStore } from '../../src/results/store';
import type { TaskResult } from '../../src/contract/result';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { TEST_REDIS_URL } from '../support/env';
import { runOn } from '../support/run-on';
import { startRedisServer, type OwnRedis } from '../support/redis-server';

/*
 * The shared Redis (no password) shows redis_no_auth. Everything that needs
 * exact figures runs on a redis-server of this file's own, with a password
 * and CONFIG renamed away (as managed services do): its stats are ours alone,
 * and the task must not need CONFIG.
 */
const password = randomBytes(12).toString('hex');
const renamedConfig = `config-${randomBytes(6).toString('hex')}`;
let port: number;
let own: OwnRedis;
let admin: Redis;
let db: TestDatabase;
let ownUrl: string;
let targetSeq = 0;

/** CONFIG under its secret name, on our own instance only. */
const config = (...args: (string | number)[]) => admin.call(renamedConfig, ...args.map(String));

async function info(): Promise<Map<string, string>> {
  return parseInfo(await admin.info());
}

/** A fresh target name per run that needs its own history. */
const freshName = () => `own-${++targetSeq}`;

/** Runs on our instance (password in the URL) under a target name. */
function runOwn(params: Record<string, unknown> = {}, name = freshName(), url = ownUrl): Promise<TaskResult> {
  return runOn(redisHealth, 'redis', { redis: [{ name, url }] }, params, false, { state: db.pool });
}

/** Stores a completed previous run of redis-health on `target` with these metrics. */
async function savePrevious(target: string, metrics: Record<string, number>, finishedAt = new Date()): Promise<void> {
  const at = finishedAt.toISOString();
  await new ResultStore(db.pool).save({
    task: 'redis-health', target, status: 'ok', startedAt: at, finishedAt: at, durationMs: 0,
    dryRun: false, summary: 'previous', findings: [], actions: [], metrics,
  });
}

const find = (r: TaskResult, code: string) => r.findings.find((f) => f.code === code);

/** `hits` GETs of an existing key and `misses` GETs of missing ones. */
async function lookups(hits: number, misses: number): Promise<void> {
  await admin.set('present', '1');
  for (let i = 0; i < hits; i++) await admin.get('present');
  for (let i = 0; i < misses; i++) await admin.get(`missing-${i}`);
}

beforeAll(async () => {
  db = await createTestDatabase('redis_health');
  await migrate(db.pool);
  own = await startRedisServer({ password, extraArgs: ['--rename-command', 'CONFIG', renamedConfig] });
  ({ port, admin, url: ownUrl } = own);
});

afterAll(async () => {
  await own?.stop();
  await db?.drop();
});

beforeEach(async () => {
  // Our own instance only: a clean keyspace, no limits, and stats from zero.
  await admin.flushall();
  await config('SET', 'maxmemory', 0);
  await config('SET', 'maxmemory-policy', 'noeviction');
  await config('SET', 'maxclients', 10_000);
  await config('RESETSTAT');
});

describe('redis-health: authentication', () => {
  it('raises redis_no_auth on the shared Redis, which answers without a password', async () => {
    const result = await runOn(redisHealth, 'redis', { redis: [{ name: 'shared', url: TEST_REDIS_URL }] }, {}, false, { state: db.pool });
    expect(result.status).not.toBe('error');
    const u = new URL(TEST_REDIS_URL);
    expect(find(result, 'redis_no_auth')).toMatchObject({
      severity: 'warning',
      subject: 'shared',
      details: { address: `${u.hostname}:${u.port || '6379'}` },
    });
    expect(result.summary).toMatch(/no auth/);
    expect(typeof result.metrics.redis_keys).toBe('number');
    expect(result.metrics.redis_connected_clients).toBeGreaterThanOrEqual(1);
  });

  it('does not raise redis_no_auth when the instance requires a password (given in the URL)', async () => {
    const result = await runOwn();
    expect(result.status).toBe('ok');
    expect(find(result, 'redis_no_auth')).toBeUndefined();
    expect(result.summary).toMatch(/auth required/);
    expect(result.summary).not.toContain(password);
  });

  it('a wrong password is an error result that names the address, never the password', async () => {
    const wrong = `redis://:not-${password}@127.0.0.1:${port}`;
    const result = await runOwn({}, freshName(), wrong);
    expect(result.status).toBe('error');
    expect(result.summary).toContain(`127.0.0.1:${port}`);
    expect(result.summary).toMatch(/WRONGPASS|NOAUTH|invalid/i);
    expect(result.summary).not.toContain(password);
  });

  it('an unreachable Redis is an error result with the reason', async () => {
    const result = await runOn(redisHealth, 'redis', { redis: [{ name: 'gone', url: 'redis://127.0.0.1:1' }] });
    expect(result.status).toBe('error');
    expect(result.summary).toMatch(/cannot reach redis at 127\.0\.0\.1:1: .*ECONNREFUSED/);
  });
});

describe('redis-health: a healthy instance', () => {
  it('gives no warning or critical, with exact keys and memory figures', async () => {
    await admin.mset('a', '1', 'b', '2', 'c', '3');
    await lookups(9, 1);
    const result = await runOwn({ minLookups: 10 });
    expect(result.status).toBe('ok');
    expect(result.findings.filter((f) => f.severity !== 'info')).toEqual([]);
    expect(result.metrics).toMatchObject({ redis_keys: 4, redis_keyspace_hits: 9, redis_keyspace_misses: 1, redis_lookups: 10, redis_hit_rate: 0.9, redis_maxmemory_bytes: 0, redis_evicted_keys: 0 });
    // No maxmemory: used memory against the machine's, as info.
    const unset = find(result, 'redis_maxmemory_unset')!;
    expect(unset.severity).toBe('info');
    const system = Number((await info()).get('total_system_memory'));
    expect(result.metrics.redis_system_memory_bytes).toBe(system);
    expect(unset.details).toMatchObject({ systemMemory: system, usedMemory: result.metrics.redis_used_memory_bytes, policy: 'noeviction' });
    expect(result.metrics.redis_memory_used_ratio).toBeUndefined();
  });

  it('never needs CONFIG: renamed away here, INFO carries maxmemory and maxclients', async () => {
    expect((await configValue(admin, 'maxclients')).reason).toMatch(/unknown command/i);
    const shared = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
    try {
      expect(await configValue(shared, 'maxclients')).toEqual({ value: (await shared.config('GET', 'maxclients'))[1] });
    } finally {
      shared.disconnect();
    }
    const result = await runOwn();
    expect(result.metrics.redis_maxclients).toBe(10_000);
    expect(result.metrics.redis_maxmemory_bytes).toBe(0);
  });
});

describe('redis-health: hit rate', () => {
  it('raises cache_hit_rate_low below the ratio once enough lookups were made', async () => {
    await lookups(3, 7);
    const result = await runOwn({ minLookups: 10 });
    expect(result.metrics.redis_hit_rate).toBe(0.3);
    expect(find(result, 'cache_hit_rate_low')).toMatchObject({
      severity: 'warning',
      details: { hits: 3, misses: 7, lookups: 10, hitRate: 0.3, window: 'since_restart', threshold: 0.8 },
    });
    expect(result.status).toBe('warning');
  });

  it('does not judge the hit rate on fewer lookups than minLookups', async () => {
    await lookups(3, 7);
    const result = await runOwn({ minLookups: 11 });
    expect(result.metrics.redis_hit_rate).toBe(0.3);
    expect(find(result, 'cache_hit_rate_low')).toBeUndefined();
  });

  it('counts only the lookups since the previous run', async () => {
    await lookups(4, 6);
    const name = freshName();
    await savePrevious(name, { redis_keyspace_hits: 1, redis_keyspace_misses: 2 });
    const result = await runOwn({ minLookups: 7 }, name);
    expect(result.metrics.redis_lookups).toBe(7);
    expect(result.metrics.redis_hit_rate).toBe(3 / 7);
    expect(find(result, 'cache_hit_rate_low')?.details).toMatchObject({ hits: 3, misses: 4, window: 'since_last_run' });
    // The raw counters are kept for the next run's window.
    expect(result.metrics).toMatchObject({ redis_keyspace_hits: 4, redis_keyspace_misses: 6 });
  });

  it('after a stats reset (counters below the previous run\'s), counts everything since', async () => {
    await lookups(4, 6);
    const name = freshName();
    await savePrevious(name, { redis_keyspace_hits: 100, redis_keyspace_misses: 100 });
    const result = await runOwn({ minLookups: 10 }, name);
    expect(find(result, 'cache_hit_rate_low')?.details).toMatchObject({ hits: 4, misses: 6, window: 'since_restart' });
  });
});

describe('redis-health: memory', () => {
  /** Sets maxmemory so that the current usage is about `ratio` of it; returns the limit. */
  async function limitAt(ratio: number): Promise<number> {
    // 8 MB of data, so a client connection's buffers (tens of kB) barely move the ratio.
    const pipeline = admin.pipeline();
    for (let i = 0; i < 800; i++) pipeline.set(`data-${i}`, 'd'.repeat(10_240));
    await pipeline.exec();
    const used = Number((await info()).get('used_memory'));
    const limit = Math.round(used / ratio);
    await config('SET', 'maxmemory', limit);
    return limit;
  }

  it('raises redis_memory_high as a warning at 80 % of maxmemory', async () => {
    const limit = await limitAt(0.88);
    const result = await runOwn();
    expect(result.metrics.redis_maxmemory_bytes).toBe(limit);
    expect(result.metrics.redis_memory_used_ratio).toBe(result.metrics.redis_used_memory_bytes! / limit);
    const finding = find(result, 'redis_memory_high')!;
    expect(finding).toMatchObject({ severity: 'warning', details: { maxMemory: limit, policy: 'noeviction' } });
    expect(finding.suggestion).toMatch(/noeviction, writes fail/);
    expect(find(result, 'redis_maxmemory_unset')).toBeUndefined();
  });

  it('raises it as critical above memoryCritical', async () => {
    await limitAt(0.88);
    const result = await runOwn({ memoryCritical: 0.82 });
    expect(find(result, 'redis_memory_high')?.severity).toBe('critical');
    expect(result.status).toBe('critical');
  });

  it('stays quiet well below the limit', async () => {
    await limitAt(0.3);
    const result = await runOwn();
    expect(result.metrics.redis_memory_used_ratio).toBeLessThan(0.8);
    expect(find(result, 'redis_memory_high')).toBeUndefined();
    expect(result.status).toBe('ok');
  });
});

describe('redis-health: evictions', () => {
  let evicted: number;

  beforeEach(async () => {
    // Real evictions: a small limit, a policy that evicts, and more data than fits.
    const used = Number((await info()).get('used_memory'));
    await config('SET', 'maxmemory-policy', 'allkeys-random');
    await config('SET', 'maxmemory', used + 200_000);
    const value = 'x'.repeat(1024);
    for (let i = 0; i < 600; i++) await admin.set(`fill-${i}`, value);
    // No limit again, so nothing evicts while the task runs: the counter is settled.
    await config('SET', 'maxmemory', 0);
    evicted = Number((await info()).get('evicted_keys'));
    expect(evicted).toBeGreaterThan(0);
  });

  it('raises redis_evictions for keys evicted since the previous run', async () => {
    const name = freshName();
    await savePrevious(name, { redis_evicted_keys: evicted - 7 });
    const result = await runOwn({}, name);
    expect(result.metrics).toMatchObject({ redis_evicted_keys: evicted, redis_evicted_keys_since_last_run: 7 });
    expect(find(result, 'redis_evictions')).toMatchObject({
      severity: 'warning',
      details: { evicted: 7, evictedTotal: evicted, window: 'since_last_run', policy: 'allkeys-random' },
    });
  });

  it('stays quiet when nothing was evicted since the previous run, or fewer than evictionsWarning', async () => {
    const same = freshName();
    await savePrevious(same, { redis_evicted_keys: evicted });
    const quiet = await runOwn({}, same);
    expect(quiet.metrics.redis_evicted_keys_since_last_run).toBe(0);
    expect(find(quiet, 'redis_evictions')).toBeUndefined();

    const few = freshName();
    await savePrevious(few, { redis_evicted_keys: evicted - 7 });
    expect(find(await runOwn({ evictionsWarning: 8 }, few), 'redis_evictions')).toBeUndefined();
  });

  it('after a restart (counter below the previous one) counts every eviction since', async () => {
    const name = freshName();
    await savePrevious(name, { redis_evicted_keys: evicted + 100 });
    const result = await runOwn({}, name);
    expect(find(result, 'redis_evictions')).toMatchObject({ severity: 'warning', details: { evicted, window: 'since_restart' } });
  });

  it('on a first run, reports the evictions since the server started as info only', async () => {
    const result = await runOwn();
    expect(find(result, 'redis_evictions')).toMatchObject({ severity: 'info', details: { evictedTotal: evicted } });
    expect(result.metrics.redis_evicted_keys_since_last_run).toBeUndefined();
  });
});

describe('redis-health: clients', () => {
  const extra: Redis[] = [];
  afterEach(() => {
    for (const c of extra.splice(0)) c.disconnect();
  });

  it('raises redis_clients_high at 80 % of maxclients, critical above clientsCritical', async () => {
    await config('SET', 'maxclients', 12);
    for (let i = 0; i < 8; i++) {
      const c = new Redis(ownUrl, { maxRetriesPerRequest: 1 });
      extra.push(c);
      await c.ping();
    }
    // 8 extra + the admin + the task's own connection.
    const result = await runOwn();
    expect(result.metrics.redis_maxclients).toBe(12);
    expect(result.metrics.redis_connected_clients).toBeGreaterThanOrEqual(10);
    expect(find(result, 'redis_clients_high')).toMatchObject({
      severity: 'warning',
      details: { connected: result.metrics.redis_connected_clients, maxClients: 12 },
    });
    const critical = await runOwn({ clientsCritical: 0.82 });
    expect(find(critical, 'redis_clients_high')?.severity).toBe('critical');
  });

  it('stays quiet with few clients', async () => {
    const result = await runOwn();
    expect(find(result, 'redis_clients_high')).toBeUndefined();
    expect(result.metrics.redis_connected_clients).toBeLessThan(10);
  });
});
