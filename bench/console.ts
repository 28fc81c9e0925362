/**
 * The console at fleet size: 200 postgres targets on the default catalog
 * (daily connections, vacuum-analyze, pg-health; weekly index-audit,
 * disk-check, slow-queries) plus the caretaker self-target's tasks, and a
 * year of history in a state database of its own. The console reads only
 * the state database and Redis, so no target database exists: the history
 * is planted with set-based SQL (INSERT ... SELECT over generate_series),
 * one run per fire time of each scheduler entry, statuses and findings
 * drawn from a hash of (task, target, fire), and a few long-lived problems
 * so the latest runs carry a few hundred open findings, an errored run
 * whose previous findings stay open, skipped runs, a late and a missed
 * check. The job schedulers are upserted into Redis (syncSchedulers, under
 * a random prefix) so next due times are read as in production.
 *
 * Measured, sequentially, through a real startWeb (port 0, auth off, on
 * 127.0.0.1) and Node's fetch: GET / (and ?severity=critical), one check
 * page, one run page; buildStatus alone (`caretaker status`'s model) and
 * each of its statements. Baselines of the same run: the weekly report page
 * /reports on the same history (the overview that existed before the
 * console) and its model alone; for "each pair's latest run", one
 * DISTINCT ON over the whole of caretaker.runs against the console's
 * latestRuns (one index descent per pair). The database and the Redis keys
 * are removed at the end, also on failure and on Ctrl-C.
 */
import { randomBytes } from 'node:crypto';
import { Client, type Pool } from 'pg';
import pino from 'pino';
import type { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import { validateConfig } from '../src/config/load';
import type { Config } from '../src/config/schema';
import type { SchedulerEntry } from '../src/schedules/resolve';
import { TASKS } from '../src/jobs';
import { STATE_LIMITS, createPool } from '../src/clients/postgres';
import { createRedis } from '../src/clients/redis';
import { createQueue, jobOptions, type JobData } from '../src/queue/queue';
import { migrate } from '../src/results/migrate';
import { ResultStore } from '../src/results/store';
import { syncSchedulers } from '../src/schedules/sync';
import { graceOf, probeDueRuns, SQL as MISSED_SQL } from '../src/schedules/missed-runs';
import { lastFireAtOrBefore } from '../src/schedules/cron';
import { buildStatus } from '../src/status/status';
import { STATUS_SQL } from '../src/status/status.sql';
import { buildWeeklyReport, expectedInWeek, reportSettingsOf } from '../src/reports/weekly-data';
import { lastCompleteWeek } from '../src/reports/week';
import { startWeb, type WebServer } from '../src/web/server';
import { renderStatusPage } from '../src/web/console/status-page';
import { alertChannels } from '../src/alerts/notifiers';
import { withClient } from '../test/support/db';

export interface ConsoleEnv {
  pgAdminUrl: string;
  redisUrl: string;
  /** Postgres targets (db000, db001...). */
  targets: number;
  /** Days of history. */
  days: number;
  /** Timed requests (or calls) per figure, after `warmups` untimed ones. */
  requests: number;
  warmups: number;
  /** Print the EXPLAIN ANALYZE plans of buildStatus's statements, not only their times. */
  plans: boolean;
}

const STATE_DB = 'caretaker_bench_console_state';

// ---- small helpers ----------------------------------------------------------

const dbUrl = (admin: string, db: string) => Object.assign(new URL(admin), { pathname: `/${db}` }).toString();
const sortNum = (xs: number[]) => [...xs].sort((a, b) => a - b);
const pct = (sorted: number[], p: number) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
const ms = (n: number) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
const kib = (bytes: number) => `${(bytes / 1024).toFixed(0)} KiB`;
const count = (text: string, needle: string) => text.split(needle).length - 1;

interface Timing {
  median: number;
  p95: number;
  n: number;
}

/** `fn` `warmups` times untimed, then `n` times timed, one after the other; returns the figures and the last value. */
async function timed<T>(n: number, warmups: number, fn: () => Promise<T>): Promise<{ t: Timing; value: T }> {
  let value!: T;
  for (let i = 0; i < warmups; i++) value = await fn();
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    value = await fn();
    times.push(performance.now() - start);
  }
  const sorted = sortNum(times);
  return { t: { median: pct(sorted, 50), p95: pct(sorted, 95), n }, value };
}

async function getPage(url: string): Promise<string> {
  const res = await fetch(url);
  const html = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${html.slice(0, 300)}`);
  return html;
}

async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  const stream = redis.scanStream({ match: `${prefix}:*`, count: 1000 });
  for await (const keys of stream as AsyncIterable<string[]>) if (keys.length > 0) await redis.unlink(...keys);
}

// ---- the fleet's config -----------------------------------------------------

const targetName = (i: number) => `db${String(i).padStart(3, '0')}`;

function benchConfig(env: ConsoleEnv, stateUrl: string, prefix: string): Config {
  return validateConfig(
    {
      timezone: 'UTC',
      redis: { url: env.redisUrl, prefix },
      state: { url: stateUrl },
      web: { host: '127.0.0.1', port: 0 },
      // The URLs are never opened: the console reads the history, not the targets.
      targets: { postgres: Array.from({ length: env.targets }, (_, i) => ({ name: targetName(i), url: dbUrl(env.pgAdminUrl, targetName(i)), allow: { vacuum: true } })) },
    },
    'bench console',
    TASKS,
  );
}

// ---- the history ------------------------------------------------------------

/**
 * One task's runs: SQL expressions over `t.i` (the target's number), `t.name`,
 * `k` (0 = the latest fire, 1 the one before...), `f.fire`, `f.roll` (0-999,
 * a hash of task, target and k) and the task's own `v.*` (from `lets`).
 * `findings` is a jsonb array; `err`, when not NULL, makes the run an error
 * (no findings, `err` as its summary), as a task that could not look.
 */
interface TaskPlan {
  task: string;
  /** The stagger of this task's jobs within one fire (a few workers drain them), s. */
  slot: number;
  lets?: string;
  duration: string;
  err: string;
  findings: string;
  summary: string;
  metrics: string;
  actions?: string;
  /** Rows to leave out (a fire with no run). */
  omit?: string;
}

/** A jsonb array of one finding when `cond`, else an empty one: findings expressions are sums of these. */
function finding(cond: string, severity: 'info' | 'warning' | 'critical', code: string, subject: string, message: string, suggestion?: string): string {
  const s = suggestion ? `, 'suggestion', ${suggestion}` : '';
  return `CASE WHEN ${cond} THEN jsonb_build_array(jsonb_build_object('severity', '${severity}', 'code', '${code}', 'subject', ${subject}, 'message', ${message}${s})) ELSE '[]'::jsonb END`;
}
const sum = (...parts: string[]) => parts.join(' || ');

/** The fleet's long-lived problems pick targets by their number: `i % m = r`. */
const PLANS: Record<string, TaskPlan> = {
  connections: {
    task: 'connections',
    slot: 0,
    lets: `CASE WHEN f.roll < 3 THEN 96 + f.roll WHEN f.roll < 30 THEN 80 + f.roll % 15 ELSE 10 + f.roll % 60 END AS used,
           CASE WHEN t.i % 50 = 17 AND k < 60 THEN 3 ELSE 0 END AS idle_tx`,
    duration: `40 + f.roll % 80`,
    err: `CASE WHEN f.roll >= 997 THEN 'connections failed on ' || t.name || ': timeout expired after 10 s' END`,
    findings: sum(
      finding('f.roll < 3', 'critical', 'connections_high', `'max_connections'`, `v.used || '/100 connections in use (' || v.used || ' %)'`, `'Find who holds them (pg_stat_activity by application_name) or put a pooler in front'`),
      finding('f.roll >= 3 AND f.roll < 30', 'warning', 'connections_high', `'max_connections'`, `v.used || '/100 connections in use (' || v.used || ' %)'`, `'Find who holds them (pg_stat_activity by application_name) or put a pooler in front'`),
      finding('v.idle_tx > 0', 'warning', 'idle_in_transaction', `'app@' || t.name`, `'3 sessions idle in transaction for over 10 min'`, `'Fix the client that leaves transactions open, or set idle_in_transaction_session_timeout'`),
    ),
    summary: `v.used || '/100 connections (' || v.used || ' %), ' || (f.roll % 7) || ' idle, ' || v.idle_tx || ' idle in transaction'`,
    metrics: `jsonb_build_object('connections_used', v.used, 'connections_max', 100, 'connections_used_ratio', round(v.used / 100.0, 2), 'connections_idle', f.roll % 7, 'connections_idle_in_transaction', v.idle_tx, 'connections_terminated', 0)`,
    omit: `t.i % 100 = 99 AND k = 0`,
  },
  'vacuum-analyze': {
    task: 'vacuum-analyze',
    slot: 1,
    lets: `1000 + f.roll * 10 AS dead`,
    duration: `800 + f.roll * 4`,
    err: `CASE WHEN f.roll >= 996 OR (t.i % 30 = 13 AND k < 2) THEN 'vacuum-analyze failed on ' || t.name || ': canceling statement due to lock timeout' END`,
    findings: sum(
      finding('t.i % 33 = 4 AND k < 200', 'warning', 'autovacuum_stale', `'public.events'`, `'autovacuum has not processed public.events for 9 days (1.2M dead tuples)'`, `'Check autovacuum_naptime and long transactions holding back the xmin horizon'`),
      finding('t.i % 60 = 21 AND k < 5', 'critical', 'wraparound_risk', `t.name`, `'datfrozenxid age 1,610,000,000 (80 % of the wraparound limit)'`, `'VACUUM FREEZE the oldest tables now'`),
    ),
    summary: `'vacuumed and analyzed 2 of 3 tables; dead tuples ' || v.dead || ' -> 0'`,
    metrics: `jsonb_build_object('tables_total', 3, 'tables_needing_vacuum', 2, 'tables_vacuumed', 2, 'tables_skipped_locked', 0, 'tables_failed', 0, 'tables_deferred', 0, 'dead_tuples_before', v.dead, 'dead_tuples_after', 0)`,
    actions: `jsonb_build_array(
      jsonb_build_object('kind', 'vacuum_analyze', 'subject', 'public.events', 'applied', true, 'durationMs', 300 + f.roll),
      jsonb_build_object('kind', 'vacuum_analyze', 'subject', 'public.accounts', 'applied', true, 'durationMs', 200 + f.roll))`,
    omit: `t.i % 100 = 99 AND k = 0`,
  },
  'pg-health': {
    task: 'pg-health',
    slot: 2,
    lets: `CASE WHEN f.roll < 50 THEN 600 + f.roll * 40 ELSE f.roll % 90 END AS longest`,
    duration: `120 + f.roll % 200`,
    err: `CASE WHEN f.roll >= 995 THEN 'pg-health failed on ' || t.name || ': canceling statement due to statement timeout' END`,
    findings: sum(
      finding('f.roll < 50', 'warning', 'long_transaction', `'pid ' || (20000 + (k * 37 + t.i) % 9000)`, `'transaction open for ' || (v.longest / 60) || ' min (batch)'`, `'Find the session in pg_stat_activity and ask its owner'`),
      finding('t.i % 40 = 5 AND k < 3', 'critical', 'sequence_near_limit', `'public.orders_id_seq'`, `'sequence 93 % used (integer column)'`, `'ALTER the column and the sequence to bigint'`),
      finding('t.i % 25 = 9 AND k < 120', 'warning', 'cache_hit_low', `t.name`, `'cache hit ratio 91.0 % (below 95 %)'`, `'Raise shared_buffers or look for sequential scans'`),
    ),
    summary: `'longest transaction ' || v.longest || ' s, ' || (f.roll % 4) || ' lock waits, sequences at most ' || (CASE WHEN t.i % 40 = 5 AND k < 3 THEN 93 ELSE 12 END) || ' % used, cache hit ' || (CASE WHEN t.i % 25 = 9 AND k < 120 THEN '91.00' ELSE '99.40' END) || ' %, 1 replicas'`,
    metrics: `jsonb_build_object('longest_transaction_seconds', v.longest, 'long_transactions', (f.roll < 50)::int, 'lock_waits', f.roll % 4, 'max_sequence_used_ratio', 0.12, 'cache_hit_ratio', 0.994, 'replicas', 1, 'max_replication_lag_bytes', f.roll * 1000)`,
    omit: `t.i % 100 = 99 AND k = 0`,
  },
  'index-audit': {
    task: 'index-audit',
    slot: 0,
    lets: `CASE WHEN t.i % 4 = 0 AND k < 10 + t.i % 30 THEN 3 ELSE 0 END AS unused,
           CASE WHEN t.i % 25 = 7 AND k < 2 THEN 1 ELSE 0 END AS invalid,
           CASE WHEN t.i % 8 = 1 AND k < 5 THEN 1 ELSE 0 END AS dup`,
    duration: `300 + f.roll % 600`,
    err: `CASE WHEN f.roll >= 990 THEN 'index-audit failed on ' || t.name || ': could not connect: connection refused' END`,
    findings: sum(
      ...['public.events_kind_idx', 'public.accounts_name_idx', 'public.settings_value_idx'].map((ix) =>
        finding('v.unused > 0', 'warning', 'unused_index', `'${ix}'`, `'${ix} has had no scans in 41 days (8 MB)'`, `'DROP INDEX CONCURRENTLY ${ix}'`),
      ),
      finding('v.invalid > 0', 'critical', 'invalid_index', `'public.orders_idx'`, `'index is invalid (a failed CREATE INDEX CONCURRENTLY)'`, `'DROP INDEX CONCURRENTLY public.orders_idx and create it again'`),
      finding('v.dup > 0', 'warning', 'duplicate_index', `'public.events_account_idx2'`, `'public.events_account_idx2 duplicates public.events_account_idx'`, `'DROP INDEX CONCURRENTLY public.events_account_idx2'`),
    ),
    summary: `'12 indexes: ' || v.unused || ' unused, ' || v.dup || ' duplicate, ' || v.invalid || ' invalid; statistics reset 41 days ago'`,
    metrics: `jsonb_build_object('indexes_total', 12, 'unused_indexes', v.unused, 'duplicate_indexes', v.dup, 'invalid_indexes', v.invalid, 'missing_indexes', 0, 'index_bloat_bytes', f.roll * 8192, 'stats_age_seconds', 3542400)`,
  },
  'disk-check': {
    task: 'disk-check',
    slot: 1,
    lets: `((1 + t.i % 7) * 1e9 * (1 + (51 - k) * 0.004))::bigint AS size,
           CASE WHEN t.i % 50 = 11 AND k = 0 THEN 96 WHEN t.i % 20 = 3 AND k < 13 + t.i % 13 THEN 86 ELSE 40 + t.i % 30 END AS used`,
    duration: `200 + f.roll % 300`,
    err: `CASE WHEN (t.i % 40 = 3 AND k = 0) OR f.roll >= 990 THEN 'disk-check failed on ' || t.name || ': could not connect: connection refused' END`,
    findings: sum(
      finding('true', 'info', 'database_size', `t.name`, `t.name || ' is ' || pg_size_pretty(v.size)`),
      finding('true', 'info', 'largest_tables', `t.name`, `'largest: public.events ' || pg_size_pretty(v.size * 6 / 10) || ', public.accounts ' || pg_size_pretty(v.size * 3 / 10)`),
      finding('v.used = 86', 'warning', 'disk_usage_high', `'/var/lib/postgresql'`, `'volume 86 % used'`, `'Grow the volume or free space before it fills'`),
      finding('v.used = 96', 'critical', 'disk_usage_critical', `'/var/lib/postgresql'`, `'volume 96 % used'`, `'Free space now: the database stops when the volume is full'`),
    ),
    summary: `t.name || ' ' || pg_size_pretty(v.size) || '; +' || pg_size_pretty(((1 + t.i % 7) * 571428)::bigint) || '/day; largest public.events ' || pg_size_pretty(v.size * 6 / 10) || '; /var/lib/postgresql ' || v.used || ' % used'`,
    metrics: `jsonb_build_object('database_size_bytes', v.size, 'database_growth_bytes_per_day', (1 + t.i % 7) * 571428, 'table_bloat_estimated_bytes', v.size / 20)`,
  },
  'slow-queries': {
    task: 'slow-queries',
    slot: 2,
    lets: `CASE WHEN t.i % 5 = 2 AND f.roll < 600 THEN 2 ELSE 0 END AS slow`,
    duration: `100 + f.roll % 300`,
    err: `CASE WHEN f.roll >= 990 THEN 'slow-queries failed on ' || t.name || ': could not connect: connection refused' END`,
    findings: sum(
      finding('v.slow > 0', 'warning', 'slow_query', `'queryid ' || (1000000 + t.i * 7)`, `'mean 840 ms over 1,200 calls: SELECT * FROM events WHERE kind = $1 ORDER BY at DESC'`, `'An index on events (kind, at) would serve it'`),
      finding('v.slow > 0', 'warning', 'slow_query', `'queryid ' || (2000000 + t.i * 11)`, `'mean 310 ms over 9,400 calls: UPDATE accounts SET balance = balance + $1 WHERE name = $2'`, `'An index on accounts (name) would serve it'`),
    ),
    summary: `v.slow || ' slow statements (mean >= 250 ms over >= 50 calls) of 250 tracked in ' || t.name`,
    metrics: `jsonb_build_object('statements_tracked', 250, 'slow_queries', v.slow, 'statements_hidden', 0, 'slowest_mean_ms', CASE WHEN v.slow > 0 THEN 840 ELSE 40 + f.roll % 100 END)`,
  },
  'history-prune': {
    task: 'history-prune',
    slot: 3,
    duration: `50 + f.roll % 100`,
    err: `NULL`,
    findings: `'[]'::jsonb`,
    summary: `'deleted 0 runs older than 400 days'`,
    metrics: `jsonb_build_object('history_runs_deleted', 0)`,
  },
  'security-audit': {
    task: 'security-audit',
    slot: 3,
    duration: `3000 + f.roll * 5`,
    err: `NULL`,
    findings: finding('true', 'warning', 'superuser_login', `'postgres targets'`, `'every postgres target is reached as a superuser (postgres)'`, `'Give caretaker a role with pg_monitor and only the grants its tasks need'`),
    summary: `'audited every postgres target; 0 TLS endpoints; 1 warning'`,
    metrics: `jsonb_build_object('security_targets_failed', 0)`,
  },
  'capacity-plan': {
    task: 'capacity-plan',
    slot: 3,
    duration: `800 + f.roll`,
    err: `NULL`,
    findings: `'[]'::jsonb`,
    summary: `'forecast for every database: none fills its volume within 90 days'`,
    metrics: `'{}'::jsonb`,
  },
  'weekly-report': {
    task: 'weekly-report',
    slot: 3,
    duration: `2500 + f.roll`,
    err: `NULL`,
    findings: `'[]'::jsonb`,
    summary: `'weekly report written; not sent (no email configured)'`,
    metrics: `jsonb_build_object('report_findings', 300)`,
  },
};

/** One plan's runs into the scratch table `plan`: $1 schedule, $2 task, $3 the latest fire, $4 fires, $5 targets, $6 the period. */
function planSql(p: TaskPlan): string {
  return `
    INSERT INTO plan (schedule, task, target, fire, started_at, duration_ms, err, findings, summary, metrics, actions)
    SELECT $1::text, $2::text, t.name, f.fire, f.fire + make_interval(secs => t.i * 3 + ${p.slot}), ${p.duration},
           ${p.err}, ${p.findings}, ${p.summary}, ${p.metrics}, ${p.actions ?? `'[]'::jsonb`}
    FROM unnest($5::text[]) WITH ORDINALITY AS t0(name, n)
    CROSS JOIN LATERAL (SELECT t0.name, (t0.n - 1)::int AS i) t
    CROSS JOIN generate_series(0, $4::int - 1) k
    CROSS JOIN LATERAL (SELECT $3::timestamptz - k * $6::interval AS fire, abs(hashtext($2::text || ':' || t.name || ':' || k)) % 1000 AS roll) f
    CROSS JOIN LATERAL (SELECT ${p.lets ?? 'NULL AS none'}) v
    ${p.omit ? `WHERE NOT (${p.omit})` : ''}`;
}

const PLANT_SQL = {
  scratch: `
    CREATE TEMP TABLE plan (
      schedule text, task text, target text, fire timestamptz, started_at timestamptz, duration_ms int,
      err text, skipped boolean NOT NULL DEFAULT false, findings jsonb, summary text, metrics jsonb, actions jsonb)`,
  /**
   * A manual run that found the target locked by the scheduled one: stored
   * with skipped, and on these three targets it is the latest row, which
   * the console must look past.
   */
  skipped: `
    INSERT INTO plan (schedule, task, target, fire, started_at, duration_ms, err, skipped, findings, summary, metrics, actions)
    SELECT 'manual', 'vacuum-analyze', name, $1::timestamptz + interval '30 min', $1::timestamptz + interval '30 min', 0, NULL, true,
           jsonb_build_array(jsonb_build_object('severity', 'info', 'code', 'run_skipped', 'subject', 'vacuum-analyze:' || name,
             'message', 'another run of vacuum-analyze on ' || name || ' is in progress (worker 2)')),
           'skipped: another run of vacuum-analyze on ' || name || ' is in progress (worker 2)', '{}'::jsonb, '[]'::jsonb
    FROM unnest($2::text[]) AS name`,
  /** Chronological, as a worker stores them: ids follow finished_at, which the heap's order and the scans' costs depend on. */
  runs: `
    INSERT INTO caretaker.runs (job_id, job_key, task, target, schedule, status, skipped, dry_run, attempt, started_at, finished_at, duration_ms, summary, result)
    SELECT q.job_id, q.job_id || '@' || q.fire_ms, q.task, q.target, q.schedule, q.status, q.skipped, false, 1, q.started_at, q.finished_at, q.duration_ms, q.summary,
           jsonb_build_object(
             'task', q.task, 'target', q.target, 'status', q.status,
             'startedAt', to_char(q.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
             'finishedAt', to_char(q.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
             'durationMs', q.duration_ms, 'dryRun', false, 'summary', q.summary,
             'findings', q.findings, 'actions', q.actions, 'metrics', q.metrics)
           || CASE WHEN q.skipped THEN '{"skipped": true}'::jsonb ELSE '{}'::jsonb END
    FROM (
      SELECT p.schedule, p.task, p.target, p.fire, p.started_at, p.duration_ms, p.skipped,
             (extract(epoch FROM p.fire) * 1000)::bigint AS fire_ms,
             CASE WHEN p.schedule = 'manual' THEN 'manual-' || p.target || '-' || (extract(epoch FROM p.fire) * 1000)::bigint
                  ELSE 'repeat:' || p.schedule || ':' || p.task || ':' || p.target || ':' || (extract(epoch FROM p.fire) * 1000)::bigint END AS job_id,
             p.started_at + make_interval(secs => p.duration_ms / 1000.0) AS finished_at,
             CASE WHEN p.err IS NOT NULL THEN 'error'
                  WHEN p.findings @> '[{"severity": "critical"}]' THEN 'critical'
                  WHEN p.findings @> '[{"severity": "warning"}]' THEN 'warning'
                  ELSE 'ok' END AS status,
             CASE WHEN p.err IS NOT NULL THEN '[]'::jsonb ELSE p.findings END AS findings,
             CASE WHEN p.err IS NOT NULL THEN p.err ELSE p.summary END AS summary,
             CASE WHEN p.err IS NOT NULL THEN '{}'::jsonb ELSE p.metrics END AS metrics,
             CASE WHEN p.err IS NOT NULL THEN '[]'::jsonb ELSE p.actions END AS actions
      FROM plan p
    ) q
    ORDER BY q.finished_at, q.target, q.task`,
  /** As ResultStore.save: every finding of a run (info included), found_at = the run's finished_at. */
  findings: `
    INSERT INTO caretaker.findings (run_id, task, target, severity, code, subject, message, suggestion, details, found_at)
    SELECT r.id, r.task, r.target, f.severity, f.code, f.subject, f.message, f.suggestion, f.details, r.finished_at
    FROM caretaker.runs r
    CROSS JOIN LATERAL jsonb_to_recordset(r.result->'findings')
      AS f(severity text, code text, subject text, message text, suggestion text, details jsonb)
    WHERE jsonb_array_length(r.result->'findings') > 0
    ORDER BY r.id`,
  /** The missed-run watch's record of the late daily runs of the last target: its rows are `missed`, the other late target's `late`. */
  missed: `
    INSERT INTO caretaker.missed_runs (schedule, task, target, due_at, detected_at)
    SELECT 'daily', task, $2::text, $1::timestamptz, $1::timestamptz + interval '1 hour'
    FROM unnest(ARRAY['connections', 'vacuum-analyze', 'pg-health']) AS task`,
} as const;

/** How many fires of each schedule a year holds, and the length of its period. */
function periodOf(schedule: string, days: number): { fires: number; step: string } {
  switch (schedule) {
    case 'daily':
      return { fires: days, step: '1 day' };
    case 'monthly':
      return { fires: Math.max(1, Math.floor(days / 30.4)), step: '1 month' };
    default: // weekly, report
      return { fires: Math.max(1, Math.floor(days / 7)), step: '7 days' };
  }
}

/**
 * Each entry's due time now, as probeDueRuns computes it: the last fire at or
 * before now − grace. Once per (cron, zone, grace): one evaluation costs
 * milliseconds and 1,204 entries share a handful of schedules.
 */
function dueTimes(now: Date): (e: SchedulerEntry) => Date | undefined {
  const grace = graceOf(now);
  const memo = new Map<string, Date | undefined>();
  return (e) => {
    const g = grace(e);
    const key = `${e.cron}\u0000${e.timezone}\u0000${g}`;
    if (!memo.has(key)) memo.set(key, lastFireAtOrBefore(e.cron, e.timezone, new Date(now.getTime() - g)));
    return memo.get(key);
  };
}

interface Planted {
  seconds: number;
  runs: number;
  findings: number;
  runsMiB: number;
  findingsMiB: number;
}

/**
 * A year of runs for every scheduler entry, the latest at its due time now
 * (so its row is current, not late), and the findings of those runs.
 */
async function plantHistory(stateUrl: string, config: Config, env: ConsoleEnv, now: Date): Promise<Planted> {
  const started = Date.now();
  const dueAt = dueTimes(now);
  // One plan per (schedule, task), over the targets its entries name, in the config's order (t.i is db<i>'s i).
  const groups = new Map<string, { schedule: string; task: string; latest: Date; targets: string[] }>();
  for (const e of config.schedulers) {
    const latest = dueAt(e);
    if (!latest) throw new Error(`${e.id}: no fire time before now`);
    const key = `${e.schedule}\u0000${e.task}`;
    const g = groups.get(key) ?? { schedule: e.schedule, task: e.task, latest, targets: [] };
    g.targets.push(e.target);
    groups.set(key, g);
  }
  const postgres = config.targets.postgres.map((t) => t.name);
  // Its own session, not the pool: the pool's statement timeout (STATE_LIMITS) is for the pages, not for a bulk load.
  const client = new Client({ connectionString: stateUrl });
  // A lost connection rejects the query in flight; without a listener it would also crash the process before the cleanup.
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query('BEGIN');
    await client.query(PLANT_SQL.scratch);
    for (const g of groups.values()) {
      const plan = PLANS[g.task];
      if (!plan) throw new Error(`no plan for task ${g.task} (schedule ${g.schedule})`);
      const { fires, step } = periodOf(g.schedule, env.days);
      await client.query(planSql(plan), [g.schedule, g.task, g.latest.toISOString(), fires, g.targets, step]);
    }
    const daily = [...groups.values()].find((g) => g.schedule === 'daily')!.latest;
    const skippedOn = postgres.filter((_, i) => i % 70 === 44);
    await client.query(PLANT_SQL.skipped, [daily.toISOString(), skippedOn]);
    await client.query(PLANT_SQL.runs);
    await client.query(PLANT_SQL.findings);
    const lateTargets = postgres.filter((_, i) => i % 100 === 99);
    if (lateTargets.length > 0) await client.query(PLANT_SQL.missed, [daily.toISOString(), lateTargets.at(-1)]);
    await client.query('COMMIT');
    // A year-old table has been vacuumed (visibility map, hint bits) and analyzed by autovacuum.
    await client.query('VACUUM (ANALYZE) caretaker.runs, caretaker.findings, caretaker.missed_runs');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    await client.end().catch(() => undefined);
  }
  const seconds = (Date.now() - started) / 1000;
  const { rows } = await withClient(stateUrl, (c) => c.query<{ runs: string; findings: string; runs_bytes: string; findings_bytes: string }>(`
    SELECT (SELECT count(*) FROM caretaker.runs) AS runs, (SELECT count(*) FROM caretaker.findings) AS findings,
           pg_total_relation_size('caretaker.runs') AS runs_bytes, pg_total_relation_size('caretaker.findings') AS findings_bytes`));
  const r = rows[0]!;
  return { seconds, runs: Number(r.runs), findings: Number(r.findings), runsMiB: Number(r.runs_bytes) / 2 ** 20, findingsMiB: Number(r.findings_bytes) / 2 ** 20 };
}

// ---- buildStatus's statements, one by one -----------------------------------

/** The console's own statements with the parameters buildStatus gives them on this fleet now. */
async function statusStatements(state: Pool, config: Config, now: Date): Promise<{ name: string; sql: string; params: unknown[] }[]> {
  const pairs = [...new Map(config.schedulers.map((e) => [`${e.task}\u0000${e.target}`, e])).values()];
  const tasks = pairs.map((p) => p.task);
  const targets = pairs.map((p) => p.target);
  // The probe's parameters, as probeDueRuns computes them.
  const dueAt = dueTimes(now);
  const candidates = config.schedulers
    .map((e) => ({ e, dueAt: dueAt(e) }))
    .filter((c) => c.dueAt !== undefined);
  const unran = (await probeDueRuns({ entries: config.schedulers, state, now })).filter((p) => !p.ran).map((p) => p.due);
  return [
    { name: 'latestRuns', sql: STATUS_SQL.latestRuns, params: [tasks, targets] },
    { name: 'openFindings', sql: STATUS_SQL.openFindings, params: [tasks, targets] },
    { name: 'probe (probeDueRuns)', sql: MISSED_SQL.probe, params: [candidates.map((c) => c.e.task), candidates.map((c) => c.e.target), candidates.map((c) => c.dueAt!.toISOString())] },
    {
      name: 'recordedMisses',
      sql: STATUS_SQL.recordedMisses,
      params: [unran.map((m) => m.schedule), unran.map((m) => m.task), unran.map((m) => m.target), unran.map((m) => m.dueAt.toISOString())],
    },
  ];
}

/** What every pair's latest run costs without the pairs: one pass over the whole history. */
const NAIVE_LATEST = `
  SELECT DISTINCT ON (task, target) task, target, id, job_id, status, dry_run, started_at, finished_at, duration_ms, summary
  FROM caretaker.runs
  WHERE NOT skipped
  ORDER BY task, target, finished_at DESC, id DESC`;

// ---- the bench --------------------------------------------------------------

export async function benchConsole(env: ConsoleEnv): Promise<void> {
  const admin = env.pgAdminUrl;
  const stateUrl = dbUrl(admin, STATE_DB);
  const prefix = `ct-bench-console-${randomBytes(4).toString('hex')}`;
  const log = pino({ level: 'silent' });
  const config = benchConfig(env, stateUrl, prefix);
  let state: Pool | undefined;
  let redis: Redis | undefined;
  let queue: Queue<JobData> | undefined;
  let web: WebServer | undefined;

  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    (cleaned ??= (async () => {
      await web?.close().catch(() => undefined);
      await queue?.close().catch(() => undefined);
      if (redis) {
        await deleteKeys(redis, prefix).catch((err) => console.error(`  could not delete the Redis keys under ${prefix}: ${(err as Error).message}`));
        redis.disconnect();
      }
      await state?.end().catch(() => undefined);
      await withClient(admin, (c) => c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(STATE_DB)} WITH (FORCE)`)).catch((err) =>
        console.error(`  could not drop ${STATE_DB}: ${(err as Error).message}`),
      );
    })());
  const onSignal = () => void cleanup().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    // Leftovers of an interrupted run first.
    await withClient(admin, async (c) => {
      await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(STATE_DB)} WITH (FORCE)`);
      await c.query(`CREATE DATABASE ${c.escapeIdentifier(STATE_DB)}`);
    });
    state = createPool(stateUrl, STATE_LIMITS, log);
    await migrate(state);
    const now = new Date();
    const planted = await plantHistory(stateUrl, config, env, now);
    const entries = config.schedulers;
    console.log(
      `  history: ${planted.runs.toLocaleString('en')} runs (${planted.runsMiB.toFixed(0)} MiB with indexes and TOAST), ${planted.findings.toLocaleString('en')} findings ` +
        `(${planted.findingsMiB.toFixed(0)} MiB); ${env.days} days, ${entries.length} scheduler entries on ${env.targets} postgres targets + caretaker; ` +
        `planted, vacuumed and analyzed in ${planted.seconds.toFixed(1)} s`,
    );

    redis = createRedis(env.redisUrl, log);
    queue = createQueue(redis, prefix, config.worker);
    const syncStart = Date.now();
    const synced = await syncSchedulers(queue, entries, jobOptions(config.worker), log);
    console.log(`  ${synced.upserted.length} job schedulers upserted into Redis (prefix ${prefix}) in ${((Date.now() - syncStart) / 1000).toFixed(1)} s`);

    web = await startWeb({ config, queue, redis, state, store: new ResultStore(state), log });
    const { requests: n, warmups } = env;

    // The model: what the pages and `caretaker status` have in common.
    const status = await timed(n, warmups, () => buildStatus({ state: state!, queue, entries }));
    const report = status.value;
    const states = new Map<string, number>();
    for (const c of report.checks) states.set(c.state, (states.get(c.state) ?? 0) + 1);
    const critical = report.findings.filter((f) => f.severity === 'critical').length;
    console.log(
      `  the model: ${report.checks.length} rows (${[...states].sort((a, b) => b[1] - a[1]).map(([s, k]) => `${k} ${s}`).join(', ')}), ` +
        `${report.findings.length} open findings (${critical} critical), next due read from Redis: ${report.schedulersRead}`,
    );
    // The rest of GET /: Redis's listing of the job schedulers (inside buildStatus) and the HTML (after it).
    const listing = await timed(n, warmups, () => queue!.getJobSchedulers(0, -1));
    const ctx = { title: config.report.title, timezone: config.timezone, now: new Date(), role: 'admin' as const, alertChannels: alertChannels(config) };
    const choices = { tasks: [...new Set(entries.map((x) => x.task))].sort(), targets: [...new Set(entries.map((x) => x.target))].sort() };
    const render = await timed(n, warmups, async () => renderStatusPage(report, ctx, { filter: {}, choices }));
    // The cron arithmetic buildStatus does on each call, as probeDueRuns does it: the grace (two fires back) and the due time of each distinct schedule.
    const schedules = [...new Map(entries.map((e) => [`${e.cron}\u0000${e.timezone}`, e])).values()];
    const cron = await timed(n, warmups, async () => {
      const at = new Date();
      const grace = graceOf(at);
      for (const e of schedules) lastFireAtOrBefore(e.cron, e.timezone, new Date(at.getTime() - grace(e)));
    });
    const settings = reportSettingsOf(config);
    const week = lastCompleteWeek(new Date(), settings.timezone);
    const weekly = await timed(n, warmups, () => buildWeeklyReport(state!, { week, title: settings.title, expected: expectedInWeek(settings.schedulers, week, new Date()), now: new Date() }));

    // The pages, each fetched whole (body read), one request at a time.
    const firstCritical = report.findings.find((f) => f.severity === 'critical') ?? report.findings[0];
    const checkTarget = report.findings.find((f) => f.task === 'pg-health' && f.severity === 'critical')?.target ?? targetName(5);
    const pages: { label: string; path: string }[] = [
      { label: 'GET /', path: '/' },
      { label: 'GET /?severity=critical', path: '/?severity=critical' },
      { label: `GET /checks/pg-health/${checkTarget}`, path: `/checks/pg-health/${checkTarget}` },
      { label: `GET /runs/${firstCritical?.runId} (${firstCritical?.task} ${firstCritical?.target})`, path: `/runs/${firstCritical?.runId}` },
    ];
    const reportsPage = await timed(n, warmups, () => getPage(`${web!.url}/reports`));
    const measured: { label: string; t: Timing; html: string }[] = [];
    for (const p of pages) {
      const r = await timed(n, warmups, () => getPage(`${web!.url}${p.path}`));
      measured.push({ label: p.label, t: r.t, html: r.value });
    }

    // Each pair's latest run: the console's descents against the naive pass.
    const statements = await statusStatements(state, config, now);
    const latestRuns = statements[0]!;
    const descents = await timed(n, warmups, () => state!.query(latestRuns.sql, latestRuns.params));
    const naive = await timed(n, warmups, () => state!.query(NAIVE_LATEST));
    const perStatement: { name: string; t: Timing; rows: number }[] = [];
    for (const s of statements) {
      const r = await timed(n, warmups, () => state!.query(s.sql, s.params));
      perStatement.push({ name: s.name, t: r.t, rows: r.value.rowCount ?? 0 });
    }

    const base = reportsPage.t.median;
    const col = (s: string, w: number) => s.padEnd(w);
    const num = (s: string, w: number) => s.padStart(w);
    console.log(`  pages, ${n} sequential requests after ${warmups} warm-ups each (ratio: median / the weekly report page's median)`);
    console.log(`    ${col('', 52)} ${num('median ms', 10)} ${num('p95 ms', 8)} ${num('size', 10)}  rows`);
    const reportRows = count(reportsPage.value, '<tr');
    console.log(`    ${col('GET /reports (baseline: the weekly report)', 52)} ${num(ms(reportsPage.t.median), 10)} ${num(ms(reportsPage.t.p95), 8)} ${num(kib(Buffer.byteLength(reportsPage.value)), 10)}  ${reportRows} <tr>`);
    for (const m of measured) {
      const rows = m.label.startsWith('GET /?') || m.label === 'GET /'
        ? `${count(m.html, '<tr class="check ')} checks, ${count(m.html, '<tr class="finding"')} findings`
        : `${count(m.html, '<tr')} <tr>`;
      console.log(`    ${col(m.label, 52)} ${num(ms(m.t.median), 10)} ${num(ms(m.t.p95), 8)} ${num(kib(Buffer.byteLength(m.html)), 10)}  ${rows.padEnd(26)} ratio ${(m.t.median / base).toFixed(3)}`);
    }
    const pageMedian = measured[0]!.t.median;
    console.log(`  the model alone, ${n} calls after ${warmups} warm-ups (median)`);
    console.log(`    buildWeeklyReport (baseline: the report's model)    ${num(ms(weekly.t.median), 8)} ms`);
    console.log(
      `    buildStatus (caretaker status, the console's model) ${num(ms(status.t.median), 8)} ms   ratio ${(status.t.median / weekly.t.median).toFixed(3)}; ` +
        `${((status.t.median / pageMedian) * 100).toFixed(0)} % of GET /'s median`,
    );
    console.log(`    of GET /'s median: the job schedulers from Redis (getJobSchedulers, ${listing.value.length}) ${ms(listing.t.median)} ms inside buildStatus, its cron arithmetic (graceOf and due times of ${schedules.length} schedules) ${ms(cron.t.median)} ms; renderStatusPage alone ${ms(render.t.median)} ms (${kib(Buffer.byteLength(render.value))})`);
    const statementSum = perStatement.reduce((s, p) => s + p.t.median, 0);
    console.log(`    its statements one at a time (buildStatus runs the first three side by side, then the fourth), median ms:`);
    for (const p of perStatement) console.log(`      ${col(p.name, 24)} ${num(ms(p.t.median), 8)} ms  ${num(`${((p.t.median / statementSum) * 100).toFixed(0)} %`, 5)}  ${p.rows} rows`);
    console.log(`  each pair's latest run (${(latestRuns.params[0] as string[]).length} pairs), median of ${n}`);
    console.log(`    DISTINCT ON over all of caretaker.runs (baseline)   ${num(ms(naive.t.median), 8)} ms  ${naive.value.rowCount} rows`);
    console.log(`    latestRuns (one descent per pair)                   ${num(ms(descents.t.median), 8)} ms  ${descents.value.rowCount} rows   ratio ${(descents.t.median / naive.t.median).toFixed(3)}`);

    // Where the time goes inside each statement.
    const explained: string[] = [];
    for (const s of [...statements, { name: 'DISTINCT ON (baseline)', sql: NAIVE_LATEST, params: [] }]) {
      const { rows } = await state.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS) ${s.sql}`, s.params);
      const plan = rows.map((r) => r['QUERY PLAN']);
      const exec = plan.find((l) => l.startsWith('Execution Time'));
      const hits = /shared hit=(\d+)(?: read=(\d+))?/.exec(plan.find((l) => l.includes('Buffers:')) ?? '');
      explained.push(`    ${col(s.name, 24)} ${exec ?? '?'}; buffers hit ${hits?.[1] ?? '?'} read ${hits?.[2] ?? 0}`);
      if (env.plans) explained.push(...plan.map((l) => `      | ${l}`));
    }
    console.log(`  EXPLAIN (ANALYZE, BUFFERS), one execution each${env.plans ? '' : ' (BENCH_CONSOLE_PLANS=1 prints the plans)'}:`);
    for (const line of explained) console.log(line);
  } finally {
    const dropping = Date.now();
    await cleanup();
    console.log(`  cleaned up (web server, Redis keys, ${STATE_DB}) in ${((Date.now() - dropping) / 1000).toFixed(1)} s`);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
