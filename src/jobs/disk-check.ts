/**
 * disk-check (weekly): the runbook's "check disk usage" and "check table
 * sizes". Measures the target database and every database on the server,
 * lists the largest tables and indexes, computes growth against an earlier
 * run, checks the filesystem of the data directory (only when the server is
 * on this machine) and of the configured volumes, and estimates table bloat.
 * Read-only: four catalog queries, one query on caretaker's history, one
 * statfs per path. A relation another session has locked is left out of the
 * sizes and named (`size_check_incomplete`), never waited for.
 */
import { isAbsolute } from 'node:path';
import { stat, statfs } from 'node:fs/promises';
import { z } from 'zod';
import type { Client } from 'pg';
import { defineTask, type FindingCodes, type TaskContext } from '../contract/task';
import type { Finding, Severity } from '../contract/result';
import { formatBytes, formatDuration, formatPercent } from '../util/format';
import { withTimeout } from '../util/timeout';
import { coerceError } from '../errors';
import { SQL } from './disk-check.sql';
import { LOCK_NOT_AVAILABLE, sqlState } from '../clients/postgres';

const TASK_NAME = 'disk-check';
const GiB = 1024 ** 3;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
/**
 * Tries of the sizing statement. It skips what pg_locks shows locked; a lock
 * taken just after that read makes it time out, and the next try sees it.
 */
const SIZE_ATTEMPTS = 3;
/** Relations the `size_check_incomplete` message names; details list up to 100. */
const SKIPPED_NAMED = 10;
/** statfs answers in microseconds; a hung network mount must not hold the run. */
const STATFS_TIMEOUT_MS = 5_000;

const codes = {
  database_size: "the target database's size, and every database's on the server that the role can read",
  largest_tables: 'the `topN` largest tables (table, indexes, toast) and indexes of the database',
  size_check_incomplete: 'relations left unsized because an ACCESS EXCLUSIVE lock is held or awaited on them, or on all',
  database_growth: "the database's growth per day against the newest run at least `growthMinHours` old",
  disk_usage_high: 'the data directory or a volume at or above `diskWarning` used (critical at `diskCritical`)',
  disk_usage_unknown: "a filesystem whose usage is not checked: remote server, data directory hidden or unreadable, missing volume",
  table_bloat: "a table's estimated wasted space at or above `bloatWarningBytes` (critical at `bloatCriticalBytes`)",
} satisfies FindingCodes;
type Code = keyof typeof codes;

const params = z
  .strictObject({
    /** How many of the largest tables and indexes the `largest_tables` finding lists. */
    topN: z.number().int().min(1).max(1000).default(10),
    /** Further paths (mounted volumes) whose filesystem usage is checked. */
    volumes: z.array(z.string().min(1).refine(isAbsolute, { error: 'must be an absolute path' })).default([]),
    /** Share of a filesystem in use that raises `disk_usage_high` as a warning... */
    diskWarning: z.number().gt(0).max(1).default(0.8),
    /** ...and as critical. */
    diskCritical: z.number().gt(0).max(1).default(0.9),
    /** Estimated wasted space in one table that raises `table_bloat` as a warning (check_postgres: 1 GB)... */
    bloatWarningBytes: z.number().int().min(1).default(GiB),
    /** ...and as critical (check_postgres: 5 GB). */
    bloatCriticalBytes: z.number().int().min(1).default(5 * GiB),
    /**
     * Growth is measured against the newest earlier run at least this many
     * hours old: a rate from runs minutes apart is noise (2 MB written in
     * the minute between two runs reads as 2.9 GB a day).
     */
    growthMinHours: z.number().min(0).max(24 * 365).default(12),
    /**
     * The longest the sizing waits for any one lock (capped by the target's
     * lockTimeoutMs). Relations already locked are skipped without waiting;
     * this only bounds a lock taken in the instant between.
     */
    sizeLockTimeoutMs: z.number().int().min(1).max(60_000).default(200),
  })
  .refine((p) => p.diskWarning <= p.diskCritical, { error: 'diskWarning must not be above diskCritical', path: ['diskWarning'] })
  .refine((p) => p.bloatWarningBytes <= p.bloatCriticalBytes, {
    error: 'bloatWarningBytes must not be above bloatCriticalBytes',
    path: ['bloatWarningBytes'],
  });
type Params = z.infer<typeof params>;

interface DatabaseSize {
  name: string;
  current: boolean;
  bytes: number | null;
}
interface TableSize {
  schema: string;
  table: string;
  totalBytes: number;
  tableBytes: number;
  indexBytes: number;
  toastBytes: number;
}
interface IndexSize {
  schema: string;
  index: string;
  table: string;
  bytes: number;
}
/** A relation left unsized because another session holds or awaits ACCESS EXCLUSIVE on it (or, for a table, on its index or toast). */
export interface SkippedRelation {
  schema: string;
  name: string;
  kind: 'table' | 'index';
  /** pg_class's relpages × block size: as of the last VACUUM, ANALYZE or CREATE INDEX. */
  estimatedBytes: number;
  /** The sessions locking it; pid null for a prepared transaction. */
  lockedBy: { pid: number | null; granted: boolean }[];
}
interface RelationSizes {
  tables: TableSize[];
  indexes: IndexSize[];
  skipped: SkippedRelation[];
  skippedCount: number;
}
/** The history row growth is computed from. */
interface GrowthHistory {
  lastAt: Date | null;
  baseAt: Date | null;
  bytes: unknown;
  database: string | null;
}
interface BloatedTable {
  schema: string;
  table: string;
  bloatBytes: number;
  bloatRatio: number;
  realBytes: number;
  expectedBytes: number;
  fillfactor: number;
}
interface BloatEstimate {
  totalBloatBytes: number;
  unestimated: number;
  tables: BloatedTable[];
}

/** A filesystem's figures, as `df` computes them. */
export interface FilesystemUsage {
  path: string;
  totalBytes: number;
  /** Available to unprivileged users (statfs bavail). */
  freeBytes: number;
  usedBytes: number;
  /** used / (used + free), as df's Use%: blocks reserved for root do not count as free. */
  usedRatio: number;
}

/**
 * True when a postgres URL reaches a server on this machine: every host is
 * localhost, 127.0.0.1, ::1 or a unix socket directory (also as `?host=`),
 * or no host at all (the default socket). Anything else, including names
 * that happen to resolve to this machine, is not local.
 */
export function isLocalPostgresUrl(url: string): boolean {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  const fromQuery = parsed.searchParams.get('host');
  const raw = fromQuery ?? decodeURIComponent(parsed.hostname);
  const hosts = raw.split(',').map((h) => h.trim().replace(/^\[(.*)\]$/, '$1').toLowerCase());
  return hosts.every((h) => h === '' || h === 'localhost' || h === '127.0.0.1' || h === '::1' || h.startsWith('/'));
}

/** statfs with a time bound; throws (ENOENT, EACCES, timeout) for the caller to turn into a finding. */
export async function filesystemUsage(path: string, timeoutMs = STATFS_TIMEOUT_MS): Promise<FilesystemUsage> {
  const s = await withTimeout(statfs(path, { bigint: true }), timeoutMs, 'statfs');
  const used = (s.blocks - s.bfree) * s.bsize;
  const free = s.bavail * s.bsize;
  const usable = used + free;
  return {
    path,
    totalBytes: Number(s.blocks * s.bsize),
    freeBytes: Number(free),
    usedBytes: Number(used),
    usedRatio: usable > 0n ? Number(used) / Number(usable) : 0,
  };
}

const pct = (ratio: number) => formatPercent(ratio);
/** An fs or pg error in one line, its code first (node's fs messages already start with it). */
const reason = (err: unknown): string => {
  const e = err as { code?: unknown; message?: unknown } | null;
  const message = typeof e?.message === 'string' ? e.message : coerceError(err).message;
  return typeof e?.code === 'string' && !message.startsWith(e.code) ? `${e.code}: ${message}` : message;
};

export const diskCheck = defineTask({
  name: TASK_NAME,
  description: 'Database and table sizes, growth against a run at least growthMinHours (12 h) earlier, filesystem usage of the data directory and volumes, estimated table bloat',
  target: 'postgres',
  defaultSchedule: 'weekly',
  timeoutMs: 10 * 60_000,
  changesTarget: false,
  params,
  codes,
  async run(ctx, p) {
    const db = await ctx.clients.postgres();
    const findings: Finding<Code>[] = [];
    const metrics: Record<string, number> = {};
    const summary: string[] = [];

    // Sizes: the database, every database, the largest relations.
    const databases = (await db.query<DatabaseSize>(SQL.databases)).rows;
    const measuredAt = new Date();
    const current = databases.find((d) => d.current);
    if (current?.bytes == null) throw new Error('pg_database_size of the current database returned nothing');
    const size = current.bytes;
    metrics.database_size_bytes = size;
    const known = databases.filter((d) => d.bytes !== null);
    const serverBytes = known.reduce((sum, d) => sum + d.bytes!, 0);
    findings.push({
      severity: 'info',
      code: 'database_size',
      subject: current.name,
      message: `database ${current.name} is ${formatBytes(size)}; ${known.length} databases on the server total ${formatBytes(serverBytes)}`
        + (known.length < databases.length ? ` (${databases.length - known.length} not readable by this role)` : ''),
      details: { database: current.name, bytes: size, serverBytes, databases: databases.map(({ name, bytes }) => ({ name, bytes })) },
    });
    summary.push(`${current.name} ${formatBytes(size)}`);

    summary.push(await growth(ctx, current.name, size, measuredAt, p.growthMinHours, findings, metrics));

    summary.push(...(await largestRelations(db, current.name, Math.min(p.sizeLockTimeoutMs, ctx.target.lockTimeoutMs), p.topN, findings, metrics)));
    await ctx.progress(40);

    // Filesystems: the data directory when it is on this machine, then the volumes.
    summary.push(await dataDirectoryUsage(db, ctx.target.url, p, findings, metrics));
    for (const volume of p.volumes) {
      if (ctx.signal.aborted) throw coerceError(ctx.signal.reason);
      const usage = await checkFilesystem(volume, 'volume', p, findings);
      summary.push(usage ? `${volume} ${pct(usage.usedRatio)} used` : `${volume} unknown`);
    }
    await ctx.progress(70);

    // Bloat: an estimate, one query for all tables.
    const bloat = (await db.query<BloatEstimate>(SQL.tableBloat, [p.bloatWarningBytes])).rows[0]!;
    for (const t of bloat.tables) findings.push(bloatFinding(db, t, p));
    metrics.table_bloat_estimated_bytes = bloat.totalBloatBytes;
    const n = bloat.tables.length;
    summary.push(
      (n === 0 ? 'no table' : `${n} table${n === 1 ? '' : 's'}`) + ` with estimated bloat over ${formatBytes(p.bloatWarningBytes)}`
        + (bloat.unestimated > 0 ? ` (${bloat.unestimated} without statistics, not estimated)` : ''),
    );

    return { summary: summary.join('; '), findings, metrics };
  },
});

/**
 * Growth against the newest completed run of this task on this target that
 * is at least `minHours` old; returns the summary part. The history is
 * caretaker's own database: when it cannot be read, the run goes on
 * without a growth figure.
 */
async function growth(
  ctx: TaskContext<'postgres'>,
  database: string,
  size: number,
  measuredAt: Date,
  minHours: number,
  findings: Finding<Code>[],
  metrics: Record<string, number>,
): Promise<string> {
  let history: GrowthHistory;
  try {
    const cutoff = new Date(measuredAt.getTime() - minHours * HOUR_MS);
    history = (await ctx.clients.state.query<GrowthHistory>(SQL.growthBaseline, [TASK_NAME, ctx.target.name, cutoff])).rows[0]!;
  } catch (err) {
    ctx.log.warn({ err: coerceError(err).message }, `cannot read the ${TASK_NAME} history: this run goes without a growth figure`);
    return 'growth unknown (history unreadable)';
  }
  if (!history.lastAt) return 'first run, no growth figure yet';
  if (!history.baseAt) {
    const sinceLast = Math.max(0, measuredAt.getTime() - history.lastAt.getTime());
    return `growth needs ${minHours} h between runs; the last run was ${formatDuration(sinceLast)} ago`;
  }
  const previousSize = history.bytes;
  const previousAt = history.baseAt.toISOString();
  const elapsedMs = measuredAt.getTime() - history.baseAt.getTime();
  if (typeof previousSize !== 'number' || !Number.isFinite(previousSize) || !(elapsedMs > 0)) return 'growth unknown (no previous size)';
  if (history.database !== null && history.database !== database) return `growth unknown (the previous run measured ${history.database})`;

  const elapsedDays = elapsedMs / DAY_MS;
  const bytesPerDay = Math.round((size - previousSize) / elapsedDays);
  metrics.database_growth_bytes_per_day = bytesPerDay;
  const rate = `${bytesPerDay >= 0 ? '+' : ''}${formatBytes(bytesPerDay)}/day`;
  findings.push({
    severity: 'info',
    code: 'database_growth',
    subject: database,
    message: `${rate} over ${elapsedDays.toFixed(1)} days (${formatBytes(previousSize)} → ${formatBytes(size)})`,
    details: {
      bytesPerDay,
      previousBytes: previousSize,
      bytes: size,
      previousAt,
      measuredAt: measuredAt.toISOString(),
      elapsedDays,
      minHours,
    },
  });
  return `${rate} over ${elapsedDays.toFixed(1)} days`;
}

/**
 * The largest tables and indexes (`largest_tables`), and what was locked
 * and so not sized (`size_check_incomplete`); returns the summary parts.
 */
async function largestRelations(
  db: Client,
  database: string,
  lockTimeoutMs: number,
  topN: number,
  findings: Finding<Code>[],
  metrics: Record<string, number>,
): Promise<string[]> {
  const sizes = await relationSizes(db, lockTimeoutMs, topN);
  if ('failed' in sizes) {
    findings.push({
      severity: 'info',
      code: 'size_check_incomplete',
      subject: database,
      message: `could not size the tables and indexes without waiting for a lock (${SIZE_ATTEMPTS} tries, the last: ${sizes.failed}): largest_tables is not reported this run`,
      suggestion: "A session is taking ACCESS EXCLUSIVE locks (a migration, VACUUM FULL, a lock on a catalog): see pg-health's lock_wait and long_transaction findings; the next run sizes them",
      details: { error: sizes.failed, attempts: SIZE_ATTEMPTS },
    });
    return ['table sizes not checked (locked)'];
  }
  const parts: string[] = [];
  findings.push(largestFinding(database, sizes.tables, sizes.indexes));
  const top = sizes.tables[0];
  if (top) parts.push(`largest ${top.schema}.${top.table} ${formatBytes(top.totalBytes)}`);
  metrics.relations_not_sized = sizes.skippedCount;
  if (sizes.skippedCount > 0) {
    findings.push(sizeIncompleteFinding(database, sizes.skipped, sizes.skippedCount));
    parts.push(`${sizes.skippedCount} relation${sizes.skippedCount === 1 ? '' : 's'} not sized (locked)`);
  }
  return parts;
}

/**
 * The sizing statement under a short lock_timeout, tried again when a lock
 * taken after its read of pg_locks makes it time out. Any other error is the
 * run's.
 */
async function relationSizes(db: Client, lockTimeoutMs: number, topN: number): Promise<RelationSizes | { failed: string }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await withLockTimeout(db, lockTimeoutMs, async () => (await db.query<RelationSizes>(SQL.relationSizes, [topN])).rows[0]!);
    } catch (err) {
      if (sqlState(err) !== LOCK_NOT_AVAILABLE) throw err;
      if (attempt >= SIZE_ATTEMPTS) return { failed: reason(err) };
    }
  }
}

/** `work` in a read-only transaction whose lock waits end after `ms`; the session's own lock_timeout is back after it. */
async function withLockTimeout<T>(db: Client, ms: number, work: () => Promise<T>): Promise<T> {
  await db.query('BEGIN READ ONLY');
  try {
    await db.query(SQL.localLockTimeout, [`${ms}ms`]);
    const result = await work();
    await db.query('COMMIT');
    return result;
  } catch (err) {
    // A broken session cannot roll back; the error that matters is the first.
    await db.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

function sizeIncompleteFinding(database: string, skipped: SkippedRelation[], count: number): Finding<Code> {
  const lockers = (r: SkippedRelation) =>
    r.lockedBy.map((l) => `${l.granted ? 'held' : 'awaited'} by ${l.pid === null ? 'a prepared transaction' : `pid ${l.pid}`}`).join(', ');
  const named = skipped.slice(0, SKIPPED_NAMED).map((r) => `${r.schema}.${r.name} (${r.kind}, about ${formatBytes(r.estimatedBytes)}, ${lockers(r)})`).join('; ')
    + (count > SKIPPED_NAMED ? `; and ${count - SKIPPED_NAMED} more` : '');
  return {
    severity: 'info',
    code: 'size_check_incomplete',
    subject: database,
    message: `${count} relation${count === 1 ? '' : 's'} not sized: another session holds or awaits an ACCESS EXCLUSIVE lock on `
      + `${count === 1 ? 'it' : 'them'} (for a table, or on its indexes or toast), so ${count === 1 ? 'it is' : 'they are'} left out of largest_tables rather than waited for: ${named}`,
    suggestion: "A migration or a long transaction holds the lock: see pg-health's lock_wait and long_transaction findings. The next run sizes them; details.relations has pg_class's estimate (as of the last VACUUM or ANALYZE) meanwhile",
    details: { relations: skipped, count },
  };
}

function largestFinding(database: string, tables: TableSize[], indexes: IndexSize[]): Finding<Code> {
  const top = tables[0];
  const topIndex = indexes[0];
  const message = top
    ? `largest table ${top.schema}.${top.table} ${formatBytes(top.totalBytes)} (table ${formatBytes(top.tableBytes)}, indexes ${formatBytes(top.indexBytes)}, toast ${formatBytes(top.toastBytes)})`
      + (topIndex ? `; largest index ${topIndex.schema}.${topIndex.index} ${formatBytes(topIndex.bytes)}` : '')
    : 'no user tables';
  return { severity: 'info', code: 'largest_tables', subject: database, message, details: { tables, indexes } };
}

/** The data directory's filesystem, checked only when it is on this machine; returns the summary part. */
async function dataDirectoryUsage(db: Client, url: string, p: Params, findings: Finding<Code>[], metrics: Record<string, number>): Promise<string> {
  const path = (await db.query<{ path: string }>(SQL.dataDirectory)).rows[0]?.path;
  const unknown = (subject: string, message: string, suggestion: string, details: Record<string, unknown> = {}) => {
    findings.push({ severity: 'info', code: 'disk_usage_unknown', subject, message, suggestion, details: { kind: 'data_directory', ...details } });
  };
  if (!path) {
    unknown(
      'data_directory',
      'data directory not visible to this role: its disk usage is not checked',
      'GRANT pg_read_all_settings TO the role caretaker connects as, or list the mounted volume under tasks.disk-check.volumes',
    );
    return 'data directory not visible (needs pg_read_all_settings)';
  }
  if (!isLocalPostgresUrl(url)) {
    unknown(path, `data directory ${path} is on the database server, not on this machine: its disk usage is not checked`,
      "Watch the database server's disk with its own monitoring, or mount the volume and list it under tasks.disk-check.volumes",
      { path });
    return 'data directory not local, disk not checked';
  }
  try {
    if (!(await stat(path)).isDirectory()) throw new Error('not a directory');
  } catch (err) {
    unknown(path, `data directory ${path} is not readable here (${reason(err)}): its disk usage is not checked`,
      'Run caretaker on the database host with access to the data directory, or list the volume under tasks.disk-check.volumes',
      { path, error: reason(err) });
    return 'data directory not readable here, disk not checked';
  }
  const usage = await checkFilesystem(path, 'data_directory', p, findings);
  if (!usage) return 'data directory disk unknown';
  metrics.disk_used_ratio = usage.usedRatio;
  metrics.disk_free_bytes = usage.freeBytes;
  metrics.disk_total_bytes = usage.totalBytes;
  return `data directory ${pct(usage.usedRatio)} used (${formatBytes(usage.freeBytes)} free)`;
}

/** statfs one path; `disk_usage_high` over the thresholds, `disk_usage_unknown` when statfs fails. */
async function checkFilesystem(path: string, kind: 'data_directory' | 'volume', p: Params, findings: Finding<Code>[]): Promise<FilesystemUsage | undefined> {
  let usage: FilesystemUsage;
  try {
    usage = await filesystemUsage(path);
  } catch (err) {
    findings.push({
      severity: 'info',
      code: 'disk_usage_unknown',
      subject: path,
      message: `cannot read the filesystem usage of ${path} (${reason(err)})`,
      suggestion: kind === 'volume' ? 'Check that the volume is mounted in caretaker\'s container at this path' : undefined,
      details: { kind, path, error: reason(err) },
    });
    return undefined;
  }
  if (usage.usedRatio >= p.diskWarning) {
    const critical = usage.usedRatio >= p.diskCritical;
    findings.push({
      severity: critical ? 'critical' : 'warning',
      code: 'disk_usage_high',
      subject: path,
      message: `${kind === 'data_directory' ? 'data directory' : 'volume'} ${path}: ${pct(usage.usedRatio)} used, ${formatBytes(usage.freeBytes)} free of ${formatBytes(usage.totalBytes)} (${critical ? 'critical' : 'warning'} at ${pct(critical ? p.diskCritical : p.diskWarning)})`,
      suggestion: 'Find what grows (largest_tables, WAL in pg_wal, logs, old backups); grow the volume before it fills: a full data directory stops PostgreSQL',
      details: { kind, ...usage },
    });
  }
  return usage;
}

function bloatFinding(db: Client, t: BloatedTable, p: Params): Finding<Code> {
  const severity: Severity = t.bloatBytes >= p.bloatCriticalBytes ? 'critical' : 'warning';
  const qualified = `${db.escapeIdentifier(t.schema)}.${db.escapeIdentifier(t.table)}`;
  return {
    severity,
    code: 'table_bloat',
    subject: `${t.schema}.${t.table}`,
    message: `estimated ${formatBytes(t.bloatBytes)} wasted (${pct(t.bloatRatio)} of ${formatBytes(t.realBytes)}); an estimate from statistics, ${severity} at ${formatBytes(severity === 'critical' ? p.bloatCriticalBytes : p.bloatWarningBytes)}`,
    suggestion: `Measure it: SELECT * FROM pgstattuple_approx('${qualified.replace(/'/g, "''")}'::regclass) (extension pgstattuple); reclaim it online with pg_repack (VACUUM FULL would lock the table for its whole run); then find why autovacuum falls behind on it`,
    details: { schema: t.schema, table: t.table, estimatedBloatBytes: t.bloatBytes, bloatRatio: t.bloatRatio, realBytes: t.realBytes, expectedBytes: t.expectedBytes, fillfactor: t.fillfactor },
  };
}
