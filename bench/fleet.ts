/**
 * Fleet scale (issue #7): the real `caretaker` binary, one scheduler process
 * and 1, then 2, worker processes, against 200 PostgreSQL targets (small
 * databases on the local server, copies of a template with three analyzed
 * tables) and 10 queues targets (BullMQ queues on the local Redis, a few
 * jobs in each). The daily catalog is made to fire exactly once, a few
 * seconds ahead, by overriding `schedules.daily.cron` with a 6-field cron
 * (seconds first); every other catalog schedule is disabled. The workers
 * start first (they never read the schedules), then the scheduler with the
 * real fire times.
 *
 * Per scenario: wall time from the fire time to the last job finished
 * (BullMQ finishedOn), jobs/s, fire lag per job (processedOn − the fire
 * time, which BullMQ 6 stores as `opts.prevMillis` and in the job id
 * `repeat:<scheduler>:<millis>`; checked on every job), peak RSS per process
 * (VmHWM, read before SIGTERM), Redis bytes per job scheduler (MEMORY USAGE
 * of the queue's keys once the schedulers are in place, and the INFO
 * used_memory delta), and exactly-once: one stored run per (task, target) in
 * caretaker.runs, one finished BullMQ job per scheduler, no job run by two
 * workers (their run log lines).
 *
 * Fire lag with idle workers: the drain's lag is queueing (612 jobs on a few
 * slots), so a second schedule, `probe` (redis-health on the one redis
 * target, 1 job), fires once a second for PROBE_FIRINGS seconds before the
 * daily fire, while the workers have nothing else to do. Its baseline: a
 * bare BullMQ job scheduler and worker in this process, same Redis, same
 * seconds.
 *
 * The baseline of the speed-up is the first scenario of the same run. CPU is
 * accounted per process over the drain and over the probe window before it
 * (/proc/<pid>/stat; PostgreSQL as the postmaster and its children, reaped
 * ones included through cutime; "other" is what the rest of the machine
 * used), so a speed-up below the goal says where the cores went. Each
 * scenario has its own Redis prefix and state database; the targets'
 * statistics are reset before each (pg_stat_reset, which also opens each
 * database once), so vacuum-analyze has the same work. Everything is dropped
 * at the end, also on failure and on Ctrl-C.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { Redis } from 'ioredis';
import { Queue, Worker } from 'bullmq';
import { stringify } from 'yaml';
import { validateConfig } from '../src/config/load';
import { TASKS } from '../src/jobs';
import { QUEUE_NAME } from '../src/queue/queue';
import { spawnCaretaker, type CaretakerProcess, type LogLine } from '../test/support/processes';
import { withClient } from '../test/support/db';

/** One scenario: this many worker processes, each with this `worker.concurrency`. */
export interface FleetScenario {
  workers: number;
  concurrency: number;
}

export interface FleetEnv {
  pgAdminUrl: string;
  redisUrl: string;
  databases: number;
  queueTargets: number;
  /** In order; the first is the baseline of the speed-ups. */
  scenarios: FleetScenario[];
}

const DB_PREFIX = 'caretaker_bench_fleet_';
const TEMPLATE_DB = `${DB_PREFIX}tpl`;
const STATE_DB = `${DB_PREFIX}state`;
const PROBE_FIRINGS = 15;
/** From spawning the scheduler to the probe's first fire: start-up, migrate, 600+ upserts on 2 busy cores. */
const LEAD_MS = 8_000;
/** After the last job: time for a duplicate delivery to show up. */
const SETTLE_MS = 1_500;
const DRAIN_TIMEOUT_MS = 300_000;
const CLK_TCK = 100;

const TEMPLATE_SQL = [
  `CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL, balance numeric NOT NULL DEFAULT 0, created_at timestamptz NOT NULL DEFAULT now())`,
  `CREATE TABLE events (id bigserial PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts (id), kind text NOT NULL, payload jsonb, at timestamptz NOT NULL DEFAULT now())`,
  `CREATE INDEX events_account_idx ON events (account_id)`,
  `CREATE TABLE settings (key text PRIMARY KEY, value text)`,
  `INSERT INTO accounts (name, balance) SELECT 'account ' || g, g % 1000 FROM generate_series(1, 1000) g`,
  `INSERT INTO events (account_id, kind, payload) SELECT 1 + g % 1000, 'kind' || (g % 7), jsonb_build_object('n', g) FROM generate_series(1, 5000) g`,
  `INSERT INTO settings SELECT 'key' || g, 'value' FROM generate_series(1, 50) g`,
  // reltuples > 0 is copied with the catalog; the statistics are not: every copy's tables are "never analyzed".
  `VACUUM ANALYZE`,
];

// ---- small helpers ----------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dbUrl = (admin: string, db: string) => Object.assign(new URL(admin), { pathname: `/${db}` }).toString();
const pct = (sorted: number[], p: number) => (sorted.length === 0 ? NaN : sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!);
const sortNum = (xs: number[]) => [...xs].sort((a, b) => a - b);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** Runs `fn` over `items` with at most `n` at a time. */
async function parallel<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

// ---- processes: spawn, logs, RSS, CPU ---------------------------------------

/** A caretaker process of the bench's, named in the figures (`scheduler`, `worker1`...). */
type Proc = CaretakerProcess & { name: string };

function startProc(name: string, configPath: string, role: string): Proc {
  return { name, ...spawnCaretaker(['--config', configPath, 'start', '--role', role]) };
}

/** Waits for the process's log line until `deadline` (ms since the epoch). */
async function waitForLog(p: Proc, msg: string, deadline: number): Promise<LogLine> {
  return p.waitForLog(msg, Math.max(0, deadline - Date.now())).catch((err: Error) => {
    throw new Error(`${p.name}: ${err.message} (raise LEAD_MS?)`);
  });
}

function statusKiB(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** utime, stime, cutime, cstime (clock ticks), the name and the parent of a process. */
function procStat(pid: number | string): { comm: string; ppid: number; ticks: number; childTicks: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = text.lastIndexOf(')');
    const f = text.slice(close + 2).split(' ');
    return { comm: text.slice(text.indexOf('(') + 1, close), ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]), childTicks: Number(f[13]) + Number(f[14]) };
  } catch {
    return undefined; // gone meanwhile
  }
}

interface CpuSnapshot {
  at: number;
  machineBusy: number;
  machineIowait: number;
  machineTotal: number;
  postgres: number;
  redis: number;
  bench: number;
  procs: Map<string, number>;
}

/** CPU ticks consumed so far, per group. PostgreSQL: the postmaster, its reaped children (cutime) and its live ones. */
function cpuSnapshot(procs: Proc[], redisPid: number): CpuSnapshot {
  const all = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map((d) => ({ pid: Number(d), s: procStat(d) })).filter((p) => p.s);
  const byPid = new Map(all.map((p) => [p.pid, p.s!]));
  const postmaster = all.find((p) => p.s!.comm === 'postgres' && byPid.get(p.s!.ppid)?.comm !== 'postgres');
  let postgres = 0;
  if (postmaster) {
    postgres = postmaster.s!.ticks + postmaster.s!.childTicks;
    for (const p of all) if (p.s!.ppid === postmaster.pid) postgres += p.s!.ticks;
  }
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = cpu as [number, number, number, number, number, number, number, number];
  const usage = process.cpuUsage();
  return {
    at: Date.now(),
    machineBusy: user + nice + system + irq + softirq + steal,
    machineIowait: iowait,
    machineTotal: user + nice + system + idle + iowait + irq + softirq + steal,
    postgres,
    redis: byPid.get(redisPid)?.ticks ?? 0,
    bench: ((usage.user + usage.system) / 1e6) * CLK_TCK,
    procs: new Map(procs.map((p) => [p.name, byPid.get(p.pid)?.ticks ?? 0])),
  };
}

/** Cores used by each group between two snapshots. */
function coresBetween(a: CpuSnapshot, b: CpuSnapshot): Record<string, number> {
  const seconds = (b.at - a.at) / 1000;
  const cores = (ticks: number) => ticks / CLK_TCK / seconds;
  const ncpu = cpus().length;
  const out: Record<string, number> = {
    machine: ((b.machineBusy - a.machineBusy) / (b.machineTotal - a.machineTotal)) * ncpu,
    iowait: ((b.machineIowait - a.machineIowait) / (b.machineTotal - a.machineTotal)) * ncpu,
    postgres: cores(b.postgres - a.postgres),
    redis: cores(b.redis - a.redis),
    bench: cores(b.bench - a.bench),
  };
  for (const [name, t] of b.procs) out[name] = cores(t - (a.procs.get(name) ?? 0));
  out.other = out.machine! - Object.entries(out).filter(([k]) => !['machine', 'iowait'].includes(k)).reduce((s, [, v]) => s + v, 0);
  return out;
}

// ---- the fleet: databases, queues, config -----------------------------------

async function dropFleetDatabases(admin: string): Promise<void> {
  const names = await withClient(admin, async (c) => (await c.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE $1`, [`${DB_PREFIX}%`])).rows.map((r) => r.datname));
  // The template last: the others may still be copying from it.
  const ordered = [...names.filter((n) => n !== TEMPLATE_DB), ...names.filter((n) => n === TEMPLATE_DB)];
  // DROP DATABASE waits for a checkpoint: side by side, they share them.
  const clients = await Promise.all(Array.from({ length: 8 }, async () => {
    const c = new Client({ connectionString: admin });
    await c.connect();
    return c;
  }));
  let next = 0;
  await Promise.all(clients.map(async (c) => {
    while (next < ordered.length - 1) await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(ordered[next++]!)} WITH (FORCE)`);
  }));
  if (next < ordered.length) await clients[0]!.query(`DROP DATABASE IF EXISTS ${clients[0]!.escapeIdentifier(ordered[next]!)} WITH (FORCE)`);
  await Promise.all(clients.map((c) => c.end()));
}

async function createFleetDatabases(admin: string, n: number): Promise<string[]> {
  await withClient(admin, (c) => c.query(`CREATE DATABASE ${c.escapeIdentifier(TEMPLATE_DB)} TEMPLATE template0`));
  await withClient(dbUrl(admin, TEMPLATE_DB), async (c) => {
    for (const sql of TEMPLATE_SQL) await c.query(sql);
  });
  const names = Array.from({ length: n }, (_, i) => `${DB_PREFIX}${String(i).padStart(3, '0')}`);
  await parallel(names, 4, (name) => withClient(admin, async (c) => void (await c.query(`CREATE DATABASE ${c.escapeIdentifier(name)} TEMPLATE ${c.escapeIdentifier(TEMPLATE_DB)}`))));
  await withClient(admin, (c) => c.query('CHECKPOINT'));
  return names;
}

/** Every key under `prefix` (the caretaker queue's and the monitored apps' alike). */
async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  const stream = redis.scanStream({ match: `${prefix}*`, count: 1000 });
  for await (const keys of stream as AsyncIterable<string[]>) if (keys.length > 0) await redis.unlink(...keys);
}

async function usedMemory(redis: Redis): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
}

/** MEMORY USAGE of every key of caretaker's queue. */
async function queueKeyBytes(redis: Redis, prefix: string): Promise<{ keys: number; bytes: number }> {
  const keys: string[] = [];
  for await (const batch of redis.scanStream({ match: `${prefix}:${QUEUE_NAME}:*`, count: 1000 }) as AsyncIterable<string[]>) keys.push(...batch);
  const pipe = redis.pipeline();
  for (const k of keys) pipe.memory('USAGE', k, 'SAMPLES', 0);
  const res = (await pipe.exec()) ?? [];
  return { keys: keys.length, bytes: res.reduce((s, [, v]) => s + Number(v ?? 0), 0) };
}

/** A cron firing once a day at the given second (UTC), optionally for `count` consecutive seconds. */
function cronAt(ms: number, count = 1): string {
  const d = new Date(ms);
  const s = d.getUTCSeconds();
  return `${count > 1 ? `${s}-${s + count - 1}` : s} ${d.getUTCMinutes()} ${d.getUTCHours()} * * *`;
}

function fleetConfig(env: FleetEnv, concurrency: number, dbs: string[], prefix: string, stateUrl: string, dailyCron: string, probeCron: string): Record<string, unknown> {
  return {
    timezone: 'UTC',
    logLevel: 'info',
    redis: { url: env.redisUrl, prefix },
    state: { url: stateUrl },
    worker: { concurrency, attempts: 1, shutdownGraceMs: 10_000 },
    targets: {
      postgres: dbs.map((db, i) => ({ name: `db${String(i).padStart(3, '0')}`, url: dbUrl(env.pgAdminUrl, db), allow: { vacuum: true } })),
      redis: [{ name: 'fleet-redis', url: env.redisUrl }],
      queues: Array.from({ length: env.queueTargets }, (_, i) => ({ name: `app${i}`, redis: 'fleet-redis', prefix: `${prefix}-app${i}`, queues: ['emails', 'webhooks'] })),
    },
    schedules: {
      daily: { cron: dailyCron, timezone: 'UTC' },
      hourly: { enabled: false },
      weekly: { enabled: false },
      monthly: { enabled: false },
      report: { enabled: false },
      probe: { cron: probeCron, timezone: 'UTC', tasks: ['redis-health'] },
    },
  };
}

// ---- one scenario -----------------------------------------------------------

/** Lag figures, ms. */
interface Lag {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export interface ScenarioResult extends FleetScenario {
  jobs: number;
  expected: number;
  wallSeconds: number;
  jobsPerSecond: number;
  /** processedOn − fire time of every daily job (mostly queueing), and of the first `slots` starts. */
  lag: Lag & { first: number[] };
  /** The probe schedule, fired while the workers are idle: caretaker's workers, and a bare BullMQ worker at the same seconds. */
  idleLag: Lag;
  bareIdleLag: Lag;
  startupSeconds: number;
  rssMiB: Record<string, { ready: number; readyPeak: number; peak: number }>;
  bytesPerScheduler: number;
  usedMemoryPerScheduler: number;
  schedulers: number;
  duplicates: number;
  missing: number;
  failed: number;
  perWorker: number[];
  statuses: Map<string, Map<string, number>>;
  /** Mean durationMs of the stored runs, per task and overall. */
  taskMs: Map<string, number>;
  meanTaskMs: number;
  /** CPU seconds each process used from its start to the end of the drain. */
  cpuSeconds: Record<string, number>;
  cores: Record<string, number>;
  /** Over the probe window, before the fire. */
  idleCores: Record<string, number>;
}

function lagOf(values: number[]): Lag {
  const sorted = sortNum(values);
  return { n: sorted.length, p50: pct(sorted, 50), p99: pct(sorted, 99), max: sorted[sorted.length - 1] ?? NaN };
}

async function runScenario(env: FleetEnv, sc: FleetScenario, dbs: string[], track: { procs: Proc[]; prefixes: string[] }, redis: Redis): Promise<ScenarioResult> {
  const prefix = `ct-fleet-${randomBytes(4).toString('hex')}`;
  track.prefixes.push(prefix);
  const stateUrl = dbUrl(env.pgAdminUrl, STATE_DB);
  await withClient(env.pgAdminUrl, async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(STATE_DB)} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${c.escapeIdentifier(STATE_DB)} TEMPLATE template0`);
  });
  // The same work for every scenario: each table "never analyzed" again.
  await parallel(dbs, 4, (db) => withClient(dbUrl(env.pgAdminUrl, db), async (c) => void (await c.query('SELECT pg_stat_reset()'))));
  // The monitored applications' queues: a few waiting and delayed jobs each.
  for (let i = 0; i < env.queueTargets; i++) {
    for (const name of ['emails', 'webhooks']) {
      const q = new Queue(name, { connection: redis, prefix: `${prefix}-app${i}` });
      await q.addBulk(Array.from({ length: 8 }, (_, j) => ({ name: 'send', data: { n: j }, opts: j < 2 ? { delay: 3600_000 } : {} })));
      await q.close();
    }
  }

  // The workers start first: they read the targets, never the schedules, so their copy of the config
  // can carry provisional fire times; the scheduler's carries the real ones, a few seconds ahead.
  const dir = await mkdtemp(join(tmpdir(), 'ct-fleet-'));
  const configPath = join(dir, 'caretaker.yaml');
  const times = (lead: number) => {
    // The probe fires every second for PROBE_FIRINGS s (within one minute, so one cron says it), the daily schedule 2 s later.
    let probeStart = Math.ceil((Date.now() + lead) / 1000) * 1000;
    if (new Date(probeStart).getUTCSeconds() + PROBE_FIRINGS > 60) probeStart = Math.ceil(probeStart / 60_000) * 60_000;
    const fireAt = probeStart + (PROBE_FIRINGS + 2) * 1000;
    const raw = fleetConfig(env, sc.concurrency, dbs, prefix, stateUrl, cronAt(fireAt), cronAt(probeStart, PROBE_FIRINGS));
    return { probeStart, fireAt, probeCron: cronAt(probeStart, PROBE_FIRINGS), raw };
  };
  await writeFile(configPath, stringify(times(3600_000).raw));
  const redisPid = Number(/process_id:(\d+)/.exec(await redis.info('server'))![1]);
  const spawnedAt = Date.now();
  const ws = Array.from({ length: sc.workers }, (_, i) => startProc(`worker${i + 1}`, configPath, 'worker'));
  track.procs.push(...ws);
  const queue = new Queue(QUEUE_NAME, { connection: redis, prefix });
  // The idle-lag baseline: a bare BullMQ scheduler and worker, same Redis, same seconds.
  const bareQueue = new Queue('bare-probe', { connection: redis, prefix });
  let bareWorker: Worker | undefined;
  let procs: Proc[] = ws;
  try {
    for (const w of ws) await waitForLog(w, 'worker started', Date.now() + 60_000);
    const { probeStart, fireAt, probeCron, raw } = times(LEAD_MS);
    const entries = validateConfig(raw, 'bench fleet', TASKS).schedulers;
    const daily = entries.filter((e) => e.schedule === 'daily');
    await writeFile(configPath, stringify(raw));
    const memBefore = await usedMemory(redis);
    const sched = startProc('scheduler', configPath, 'scheduler');
    track.procs.push(sched);
    procs = [sched, ...ws];
    await waitForLog(sched, 'job schedulers in place', probeStart - 500);
    const startupSeconds = (Date.now() - spawnedAt) / 1000;
    const mem = await queueKeyBytes(redis, prefix);
    const memAfter = await usedMemory(redis);
    const ready = Object.fromEntries(procs.map((p) => [p.name, { ready: statusKiB(p.pid, 'VmRSS') / 1024, readyPeak: statusKiB(p.pid, 'VmHWM') / 1024 }]));
    await bareQueue.upsertJobScheduler('probe', { pattern: probeCron, tz: 'UTC' }, { name: 'probe', data: {} });
    bareWorker = new Worker('bare-probe', async () => ({ ok: true }), { connection: redis, prefix, concurrency: 1 });
    if (Date.now() > probeStart - 200) throw new Error('the scheduler took longer than LEAD_MS to start');

    // The probe window (the fleet idle: what the rest of the machine uses), then the drain.
    await sleep(probeStart - Date.now());
    const cpuIdle = cpuSnapshot(procs, redisPid);
    await sleep(fireAt - Date.now());
    const cpuStart = cpuSnapshot(procs, redisPid);
    await bareWorker.close();
    const isDaily = (id: string) => id.startsWith('repeat:daily:') && id.endsWith(`:${fireAt}`);
    const deadline = Date.now() + DRAIN_TIMEOUT_MS;
    for (;;) {
      const [done, failed] = await Promise.all([redis.zrange(queue.keys.completed!, '0', '-1'), redis.zrange(queue.keys.failed!, '0', '-1')]);
      if ([...done, ...failed].filter(isDaily).length >= daily.length || Date.now() > deadline) break;
      await sleep(200);
    }
    const cpuEnd = cpuSnapshot(procs, redisPid);
    const cpuSeconds = Object.fromEntries([...cpuEnd.procs].map(([k, t]) => [k, t / CLK_TCK]));
    await sleep(SETTLE_MS);
    const rssMiB = Object.fromEntries(procs.map((p) => [p.name, { ...ready[p.name]!, peak: statusKiB(p.pid, 'VmHWM') / 1024 }]));
    await Promise.all(procs.map((p) => p.stop()));

    // What happened, from Redis (the jobs) and the state database (the runs).
    const jobs = await queue.getJobs(['completed', 'failed', 'active', 'wait', 'delayed'], 0, -1);
    const fired = jobs.filter((j) => j.id!.startsWith('repeat:daily:') && j.opts.prevMillis! <= fireAt + 60_000);
    const finished = fired.filter((j) => j.finishedOn !== undefined);
    for (const j of fired) {
      if (j.opts.prevMillis !== fireAt || !j.id!.endsWith(`:${fireAt}`)) throw new Error(`job ${j.id}: prevMillis ${j.opts.prevMillis}, expected the fire time ${fireAt}`);
    }
    const bySched = new Map<string, number>();
    for (const j of finished) {
      const sid = j.id!.slice('repeat:'.length, j.id!.lastIndexOf(':'));
      bySched.set(sid, (bySched.get(sid) ?? 0) + 1);
    }
    const runs = await withClient(stateUrl, async (c) => (await c.query<{ task: string; target: string; status: string; skipped: boolean; duration_ms: number }>(`SELECT task, target, status, skipped, duration_ms FROM caretaker.runs WHERE schedule = 'daily'`)).rows);
    const byRun = new Map<string, number>();
    for (const r of runs) byRun.set(`daily:${r.task}:${r.target}`, (byRun.get(`daily:${r.task}:${r.target}`) ?? 0) + 1);
    let duplicates = 0;
    let missing = 0;
    for (const e of daily) {
      const [nj, nr] = [bySched.get(e.id) ?? 0, byRun.get(e.id) ?? 0];
      duplicates += Math.max(0, nj - 1) + Math.max(0, nr - 1);
      if (nj === 0 || nr === 0) missing++;
    }
    const statuses = new Map<string, Map<string, number>>();
    for (const r of runs) {
      const s = statuses.get(r.task) ?? new Map<string, number>();
      const k = r.skipped ? 'skipped' : r.status;
      s.set(k, (s.get(k) ?? 0) + 1);
      statuses.set(r.task, s);
    }
    // Which worker ran which job: its run's log line (jobId with status and durationMs). A job run by two is a duplicate.
    const seen = new Map<string, number>();
    const perWorker = ws.map((w) => {
      const ids = new Set(w.logs().filter((l) => typeof l.jobId === 'string' && isDaily(l.jobId) && 'durationMs' in l && 'status' in l).map((l) => l.jobId as string));
      for (const id of ids) seen.set(id, (seen.get(id) ?? 0) + 1);
      return ids.size;
    });
    duplicates += [...seen.values()].filter((n) => n > 1).length;

    const lags = sortNum(fired.filter((j) => j.processedOn).map((j) => j.processedOn! - fireAt));
    const probeLag = (js: typeof jobs) => js.filter((j) => j.processedOn && j.opts.prevMillis! < probeStart + PROBE_FIRINGS * 1000).map((j) => j.processedOn! - j.opts.prevMillis!);
    const bareJobs = await bareQueue.getJobs(['completed'], 0, -1);
    const last = Math.max(...finished.map((j) => j.finishedOn!));
    const wallSeconds = (last - fireAt) / 1000;
    const one = fired[0];
    if (one && sc === env.scenarios[0]) {
      console.log(`  fire time checked on every job: e.g. ${one.id} has opts.prevMillis ${one.opts.prevMillis} (the fire time), timestamp ${one.timestamp} (the upsert), processedOn ${one.processedOn}`);
    }
    return {
      ...sc,
      jobs: finished.length,
      expected: daily.length,
      wallSeconds,
      jobsPerSecond: finished.length / wallSeconds,
      lag: { ...lagOf(lags), first: lags.slice(0, sc.concurrency * sc.workers) },
      idleLag: lagOf(probeLag(jobs.filter((j) => j.id!.startsWith('repeat:probe:')))),
      bareIdleLag: lagOf(probeLag(bareJobs)),
      startupSeconds,
      rssMiB,
      bytesPerScheduler: mem.bytes / entries.length,
      usedMemoryPerScheduler: (memAfter - memBefore) / entries.length,
      schedulers: entries.length,
      duplicates,
      missing,
      failed: finished.filter((j) => j.failedReason).length,
      perWorker,
      statuses,
      taskMs: new Map([...statuses.keys()].map((t) => [t, mean(runs.filter((r) => r.task === t).map((r) => r.duration_ms))])),
      cpuSeconds,
      meanTaskMs: runs.reduce((s, r) => s + r.duration_ms, 0) / Math.max(1, runs.length),
      cores: coresBetween(cpuStart, cpuEnd),
      idleCores: coresBetween(cpuIdle, cpuStart),
    };
  } finally {
    await bareWorker?.close();
    await Promise.all(procs.map((p) => p.stop()));
    await queue.close();
    await bareQueue.close();
    await deleteKeys(redis, prefix);
    await withClient(env.pgAdminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(STATE_DB)} WITH (FORCE)`));
    await rm(dir, { recursive: true, force: true });
  }
}

// ---- the bench --------------------------------------------------------------

const label = (sc: FleetScenario) => `${sc.workers} worker${sc.workers > 1 ? 's' : ''} × ${sc.concurrency}`;

function printResults(results: ScenarioResult[]): void {
  const f = (n: number, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : '-');
  const lagText = (l: Lag) => `p50 ${f(l.p50)} / p99 ${f(l.p99)} / max ${f(l.max)} ms (${l.n} fires)`;
  console.log('  jobs per task (daily schedule), their statuses and mean run time, first scenario:');
  for (const [task, s] of [...results[0]!.statuses].sort()) console.log(`    ${task.padEnd(15)} ${[...s].map(([k, v]) => `${v} ${k}`).join(', ').padEnd(12)} ${f(results[0]!.taskMs.get(task)!, 1)} ms`);
  console.log(`  ${'workers × slots'.padEnd(16)} ${'jobs'.padStart(8)} ${'wall s'.padStart(7)} ${'jobs/s'.padStart(7)} ${'drain lag p50/p99 ms'.padStart(20)} ${'idle lag p99 ms'.padStart(15)} ${'peak RSS MiB s | w…'.padEnd(20)} ${'Redis B/sched'.padStart(13)} ${'dup'.padStart(3)} miss`);
  for (const r of results) {
    const rss = Object.values(r.rssMiB).map((v) => f(v.peak)).join(' | ');
    console.log(`  ${label(r).padEnd(16)} ${`${r.jobs}/${r.expected}`.padStart(8)} ${f(r.wallSeconds, 1).padStart(7)} ${f(r.jobsPerSecond, 1).padStart(7)} ${`${f(r.lag.p50)}/${f(r.lag.p99)}`.padStart(20)} ${f(r.idleLag.p99).padStart(15)} ${rss.padEnd(20)} ${f(r.bytesPerScheduler).padStart(13)} ${String(r.duplicates).padStart(3)} ${String(r.missing).padStart(4)}`);
  }
  for (const r of results) {
    const c = r.cores;
    const perJob = (cores: number) => f((cores * r.wallSeconds * 1000) / Math.max(1, r.jobs), 1);
    const workerCores = Object.entries(c).filter(([k]) => k.startsWith('worker')).reduce((s, [, v]) => s + v, 0);
    console.log(`  ${label(r)}:`);
    console.log(`    idle fire lag: caretaker ${lagText(r.idleLag)}; bare BullMQ worker (baseline) ${lagText(r.bareIdleLag)}; first ${r.lag.first.length} drain starts ${r.lag.first.join(', ')} ms`);
    console.log(`    RSS MiB ready → peak at ready → peak at the end: ${Object.entries(r.rssMiB).map(([k, v]) => `${k} ${f(v.ready)} → ${f(v.readyPeak)} → ${f(v.peak)}`).join(', ')}; start-up ${f(r.startupSeconds, 1)} s; CPU s from start to drained: ${Object.entries(r.cpuSeconds).map(([k, v]) => `${k} ${f(v, 1)}`).join(', ')}`);
    console.log(`    jobs per worker ${r.perWorker.join(' / ')}; failed ${r.failed}; Redis ${r.schedulers} schedulers, ${f(r.bytesPerScheduler)} B each by MEMORY USAGE, ${f(r.usedMemoryPerScheduler)} B each by used_memory`);
    console.log(`    cores busy over the drain: machine ${f(c.machine!, 2)} of ${cpus().length} (iowait ${f(c.iowait!, 2)}): postgres ${f(c.postgres!, 2)}, caretaker workers ${f(workerCores, 2)}, scheduler ${f(c.scheduler!, 2)}, redis ${f(c.redis!, 2)}, bench ${f(c.bench!, 2)}, other processes ${f(c.other!, 2)}`);
    console.log(`    cores busy before the fire (the probe window, fleet idle): machine ${f(r.idleCores.machine!, 2)}, postgres ${f(r.idleCores.postgres!, 2)}, other processes ${f(r.idleCores.other!, 2)}`);
    console.log(`    CPU per job: postgres ${perJob(c.postgres!)} ms, workers ${perJob(workerCores)} ms, redis ${perJob(c.redis!)} ms; slot time per job ${f((r.wallSeconds * 1000 * r.workers * r.concurrency) / Math.max(1, r.jobs), 1)} ms, of which the task (mean durationMs) ${f(r.meanTaskMs, 1)} ms`);
  }
  const base = results[0]!;
  // What the cores allow: every core busy with the fleet's own work (postgres, workers, scheduler, redis) at the first scenario's CPU per job.
  const fleetCores = base.cores.postgres! + base.cores.redis! + Object.entries(base.cores).filter(([k]) => k.startsWith('worker') || k === 'scheduler').reduce((s, [, v]) => s + v, 0);
  const cpuPerJob = (fleetCores * base.wallSeconds) / Math.max(1, base.jobs);
  console.log(`  ${label(base)} kept ${f(fleetCores, 2)} of ${cpus().length} cores busy with the fleet (${f(cpuPerJob * 1000, 1)} ms CPU per job): at that cost the cores allow at most ${f(cpus().length / cpuPerJob)} jobs/s, ${f(cpus().length / cpuPerJob / base.jobsPerSecond, 2)} × its ${f(base.jobsPerSecond, 1)} jobs/s`);
  for (const r of results.slice(1)) {
    const goal = r.workers === 2 * base.workers && r.concurrency === base.concurrency ? ' (goal ≥ 1.7)' : '';
    console.log(`  speed-up ${label(r)} / ${label(base)}: ${(r.jobsPerSecond / base.jobsPerSecond).toFixed(2)}${goal}`);
  }
}

export async function benchFleet(env: FleetEnv): Promise<ScenarioResult[]> {
  const redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
  const track = { procs: [] as Proc[], prefixes: [] as string[] };
  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    (cleaned ??= (async () => {
      await Promise.all(track.procs.map((p) => p.stop()));
      for (const p of track.prefixes) await deleteKeys(redis, p).catch(() => undefined);
      await dropFleetDatabases(env.pgAdminUrl).catch((err) => console.error(`  could not drop the bench databases: ${(err as Error).message}`));
      redis.disconnect();
    })());
  const onSignal = () => void cleanup().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await dropFleetDatabases(env.pgAdminUrl); // leftovers of an interrupted run
    const started = Date.now();
    const dbs = await createFleetDatabases(env.pgAdminUrl, env.databases);
    const hz = ((await redis.config('GET', 'hz')) as string[])[1];
    console.log(`  ${dbs.length} databases (3 tables, 6,050 rows each, copies of ${TEMPLATE_DB}) created in ${((Date.now() - started) / 1000).toFixed(1)} s; Redis hz ${hz}`);
    const results: ScenarioResult[] = [];
    for (const sc of env.scenarios) results.push(await runScenario(env, sc, dbs, track, redis));
    printResults(results);
    return results;
  } finally {
    const dropping = Date.now();
    await cleanup();
    console.log(`  cleaned up (processes, Redis keys, databases) in ${((Date.now() - dropping) / 1000).toFixed(1)} s`);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
