/**
 * pg-health (daily): what check_postgres checks that the other tasks do not.
 * Long transactions, sessions stuck behind a lock and who blocks them,
 * sequences near the end of their range (or of their column's type), the
 * block cache hit ratio, replication lag and inactive slots, and prepared
 * transactions left open, the database's transaction ID and multixact ages
 * (with the tables and the xmin holders that keep them from falling), and
 * WAL archiving. Read-only; a constant number of catalog queries.
 *
 * Scope: sessions, locks, prepared transactions and logical slots are the
 * target database's own; replicas and physical slots belong to the whole
 * server, so every target on that server reports them (turn physical slots
 * off with `physicalSlots: false` on all but one); so is WAL archiving
 * (`archiving: false`).
 */
import { z } from 'zod';
import type { Client } from 'pg';
import { defineTask } from '../contract/task';
import type { Finding, Severity } from '../contract/result';
import { formatBytes, formatDuration } from '../util/format';
import { MIN_SERVER_VERSION, SQL } from './pg-health.sql';

/** SQLSTATE of a statement cancelled by lock_timeout. */
const LOCK_NOT_AVAILABLE = '55P03';
/** SQLSTATE of a refused privilege. */
const INSUFFICIENT_PRIVILEGE = '42501';

/** Transaction and multixact IDs wrap at 2³¹: PostgreSQL stops assigning new ones a few million before. */
const ID_WRAP = 2 ** 31;
/** Tables and xmin holders a wraparound message names (details list up to maxListed). */
const NAMED_IN_MESSAGE = 5;

const seconds = z.number().min(0).max(30 * 86_400);
const ratio = z.number().min(0).max(1);
const bytes = z.number().int().min(0);

const params = z
  .strictObject({
    /** A transaction open this long is `long_transaction` (warning)... */
    transactionWarningSeconds: seconds.default(300),
    /** ...and critical from this age. */
    transactionCriticalSeconds: seconds.default(1800),
    /** A session waiting on a lock this long is `lock_wait` (warning)... */
    lockWaitWarningSeconds: seconds.default(30),
    /** ...and critical from this wait. */
    lockWaitCriticalSeconds: seconds.default(300),
    /** Share of a sequence's usable range consumed that raises `sequence_exhaustion` (warning)... */
    sequenceWarning: ratio.default(0.85),
    /** ...and critical. */
    sequenceCritical: ratio.default(0.95),
    /** A cache hit ratio below this is `cache_hit_low`... */
    cacheHitWarning: ratio.default(0.99),
    /** ...once this many blocks were read from outside shared buffers since the statistics reset. */
    minBlocksRead: z.number().int().min(0).default(10_000),
    /** Replica lag (replay_lag) that raises `replication_lag` (warning)... */
    replicationLagWarningSeconds: seconds.default(60),
    /** ...and critical. */
    replicationLagCriticalSeconds: seconds.default(600),
    /** Replica lag in WAL bytes that raises `replication_lag` (warning)... */
    replicationLagWarningBytes: bytes.default(64 * 1024 ** 2),
    /** ...and critical. */
    replicationLagCriticalBytes: bytes.default(1024 ** 3),
    /** An inactive slot is `replication_slot_inactive` (info), a warning once it retains this much WAL. */
    slotRetainedWarningBytes: bytes.default(1024 ** 3),
    /** Report inactive physical slots (server-wide: every target on the server sees them). */
    physicalSlots: z.boolean().default(true),
    /** A prepared transaction this old is `prepared_transaction` (warning)... */
    preparedWarningSeconds: seconds.default(300),
    /** ...and critical. */
    preparedCriticalSeconds: seconds.default(1800),
    /** age(datfrozenxid) or mxid_age(datminmxid) of the database that raises `database_wraparound_risk` / `multixact_wraparound_risk` (warning, check_postgres's txn_wraparound default)... */
    wraparoundWarning: z.number().int().min(1).max(ID_WRAP).default(1_300_000_000),
    /** ...and critical. */
    wraparoundCritical: z.number().int().min(1).max(ID_WRAP).default(1_400_000_000),
    /** Watch WAL archiving (server-wide: every target on the server sees it). */
    archiving: z.boolean().default(true),
    /** `archive_failing` is critical once nothing was archived for this long (or ever since the statistics reset). */
    archiveFailingCriticalSeconds: seconds.default(3600),
    /** Characters of a session's query text kept in details (0: none; the text can hold data). */
    queryTextChars: z.number().int().min(0).max(1000).default(100),
    /** Findings per code at most (the worst first); counts in metrics are always complete. */
    maxListed: z.number().int().min(1).max(1000).default(20),
  })
  .refine((p) => p.transactionWarningSeconds <= p.transactionCriticalSeconds, { error: 'must not be above transactionCriticalSeconds', path: ['transactionWarningSeconds'] })
  .refine((p) => p.lockWaitWarningSeconds <= p.lockWaitCriticalSeconds, { error: 'must not be above lockWaitCriticalSeconds', path: ['lockWaitWarningSeconds'] })
  .refine((p) => p.sequenceWarning <= p.sequenceCritical, { error: 'must not be above sequenceCritical', path: ['sequenceWarning'] })
  .refine((p) => p.replicationLagWarningSeconds <= p.replicationLagCriticalSeconds, { error: 'must not be above replicationLagCriticalSeconds', path: ['replicationLagWarningSeconds'] })
  .refine((p) => p.replicationLagWarningBytes <= p.replicationLagCriticalBytes, { error: 'must not be above replicationLagCriticalBytes', path: ['replicationLagWarningBytes'] })
  .refine((p) => p.preparedWarningSeconds <= p.preparedCriticalSeconds, { error: 'must not be above preparedCriticalSeconds', path: ['preparedWarningSeconds'] })
  .refine((p) => p.wraparoundWarning <= p.wraparoundCritical, { error: 'must not be above wraparoundCritical', path: ['wraparoundWarning'] });

export type PgHealthParams = z.infer<typeof params>;

interface Transaction {
  pid: number;
  user: string | null;
  application: string;
  clientAddr: string | null;
  state: string | null;
  waitEventType: string | null;
  waitEvent: string | null;
  ageSeconds: number;
  queryAgeSeconds: number | null;
  query: string | null;
}

interface Blocker {
  pid: number;
  user: string | null;
  application: string | null;
  state: string | null;
  transactionSeconds: number | null;
  query: string | null;
}

interface LockWait {
  pid: number;
  user: string | null;
  application: string;
  state: string | null;
  waitEventType: string;
  waitEvent: string;
  lockType: string | null;
  mode: string | null;
  relation: string | null;
  waitSeconds: number;
  blockedBy: number[];
  blockers: Blocker[];
  query: string | null;
}

interface SequenceUse {
  schema: string;
  name: string;
  type: string;
  increment: number;
  cycle: boolean;
  lastValue: string;
  minValue: string;
  maxValue: string;
  sequenceMinValue: string;
  sequenceMaxValue: string;
  columnSchema: string | null;
  table: string | null;
  column: string | null;
  columnType: string | null;
  columnNarrower: boolean;
  ratio: number;
  remaining: number;
}

/** One replica as pg_stat_replication shows it (figures are null without pg_read_all_stats). */
export interface Replica {
  pid: number;
  application: string;
  clientAddr: string | null;
  state: string | null;
  syncState: string | null;
  replayLagSeconds: number | null;
  lagBytes: number | null;
  lagFrom: 'replay' | 'flush';
}

interface Slot {
  name: string;
  type: 'physical' | 'logical';
  database: string | null;
  plugin: string | null;
  walStatus: string | null;
  restartLsn: string | null;
  xmin: string | null;
  catalogXmin: string | null;
  retainedBytes: number | null;
}

interface Prepared {
  gid: string;
  xid: string;
  owner: string;
  prepared: string;
  ageSeconds: number;
}

/** A table holding the database's frozen ID back. */
interface OldTable {
  name: string;
  age: number;
  frozenId: string;
  kind: 'table' | 'toast' | 'materialized view';
  toastOf: string | null;
  shared: boolean;
  otherSessionTemp: boolean;
  mayVacuum: boolean;
}

interface DatabaseAge {
  database: string;
  xidAge: number;
  frozenXid: string;
  mxidAge: number;
  minMxid: string;
  oldestByXid: OldTable[];
  oldestByMxid: OldTable[];
}

/** Something that keeps VACUUM from freezing past its xmin. */
interface XminHolder {
  kind: 'session' | 'prepared' | 'slot' | 'replica';
  pid: number | null;
  name: string | null;
  database: string | null;
  user: string | null;
  application: string | null;
  state: string | null;
  ageSeconds: number | null;
  xidAge: number;
  reaches: 'all tables' | 'shared catalogs' | 'catalogs';
}

interface XminHolders {
  oldestXidAge: number;
  total: number;
  seesAllSessions: boolean;
  holders: XminHolder[];
}

interface Archiver {
  mode: string;
  archivedCount: number;
  lastArchivedWal: string | null;
  lastArchivedTime: Date | null;
  failedCount: number;
  lastFailedWal: string | null;
  lastFailedTime: Date | null;
  statsReset: Date | null;
  secondsSinceArchived: number | null;
  mayListStatus: boolean;
}

/** WAL segments waiting for archive_command, or why they could not be counted. */
type ArchiveReady = { ready: number; oldest: string | null } | { unreadable: string };

/** 1300000000 → "1,300,000,000". */
const fmt = (n: number) => n.toLocaleString('en-US');
const pct = (r: number, digits = 1) => `${(r * 100).toFixed(digits)} %`;
/** A share rounded down: a sequence with values left never reads "100.0 %". */
const pctDown = (r: number) => `${(Math.floor(r * 1000) / 10).toFixed(1)} %`;
const severityOf = (value: number, warning: number, critical: number): Severity | undefined =>
  value >= critical ? 'critical' : value >= warning ? 'warning' : undefined;
const worst = (a: Severity | undefined, b: Severity | undefined): Severity | undefined =>
  a === 'critical' || b === 'critical' ? 'critical' : a === 'warning' || b === 'warning' ? 'warning' : a ?? b;

export const pgHealth = defineTask({
  name: 'pg-health',
  description: 'Long transactions, lock waits, sequences near exhaustion, cache hit ratio, replication lag and slots, prepared transactions',
  target: 'postgres',
  defaultSchedule: 'daily',
  timeoutMs: 120_000,
  changesTarget: false,
  params,
  async run(ctx, p) {
    const db = await ctx.clients.postgres();
    const server = (await db.query(SQL.server)).rows[0] as { version: number; database: string; inRecovery: boolean };
    if (server.version < MIN_SERVER_VERSION) {
      throw new Error(`pg-health needs PostgreSQL 13 or newer; ${server.database} runs ${server.version}`);
    }
    const findings: Finding[] = [];
    const metrics: Record<string, number> = {};
    const summary: string[] = [];

    // Long transactions.
    const tx = (await db.query(SQL.transactions, [p.transactionWarningSeconds, p.maxListed, p.queryTextChars])).rows[0] as {
      longest: number;
      count: number;
      sessions: Transaction[];
    };
    for (const s of tx.sessions) findings.push(transactionFinding(s, p));
    metrics.longest_transaction_seconds = Math.floor(tx.longest);
    metrics.long_transactions = tx.count;
    summary.push(`longest transaction ${formatDuration(tx.longest * 1000)}`);

    // Lock waits.
    const locks = (await db.query(SQL.lockWaits(server.version), [p.lockWaitWarningSeconds, p.maxListed, p.queryTextChars])).rows[0] as {
      total: number;
      sessions: LockWait[];
    };
    for (const w of locks.sessions) findings.push(lockWaitFinding(w, p));
    metrics.lock_waits = locks.total;
    summary.push(`${locks.total} lock waits`);
    await ctx.progress(30);

    // Sequences.
    const seq = await sequences(db, p.sequenceWarning);
    if ('failed' in seq) {
      findings.push({
        severity: 'warning',
        code: 'sequence_check_incomplete',
        subject: 'sequences',
        message: `could not read the sequences: ${seq.failed}`,
        suggestion: 'A transaction holds a lock on a sequence (ALTER SEQUENCE, DROP): see the lock_wait and long_transaction findings, and run pg-health again',
      });
      summary.push('sequences not checked');
    } else {
      for (const s of seq.flagged.slice(0, p.maxListed)) findings.push(sequenceFinding(db, s, p));
      if (seq.unreadable > 0) {
        findings.push({
          severity: 'info',
          code: 'sequences_hidden',
          subject: 'sequences',
          message: `cannot read ${seq.unreadable} of ${seq.total} sequences: their use is not checked`,
          suggestion: 'GRANT SELECT ON ALL SEQUENCES IN SCHEMA ... (or USAGE) to the role caretaker connects as',
          details: { unreadable: seq.unreadable, total: seq.total },
        });
      }
      metrics.max_sequence_used_ratio = seq.maxRatio;
      summary.push(`sequences at most ${pctDown(seq.maxRatio)} used`);
    }
    await ctx.progress(50);

    // Cache hit ratio.
    const cache = (await db.query(SQL.cache)).rows[0] as { hit: number; read: number; statsReset: Date | null } | undefined;
    const blocks = cache ? cache.hit + cache.read : 0;
    if (cache && blocks > 0) {
      const hitRatio = cache.hit / blocks;
      metrics.cache_hit_ratio = hitRatio;
      summary.push(`cache hit ${pct(hitRatio, 2)}`);
      if (hitRatio < p.cacheHitWarning && cache.read >= p.minBlocksRead) {
        findings.push({
          severity: 'warning',
          code: 'cache_hit_low',
          subject: server.database,
          message: `cache hit ratio ${pct(hitRatio, 2)} (below ${pct(p.cacheHitWarning, 2)}): ${cache.read} of ${blocks} blocks read from outside shared buffers`,
          suggestion: 'Find the queries reading the most blocks (pg_stat_statements shared_blks_read) and their missing indexes; if the working set outgrew memory, raise shared_buffers',
          details: { blocksHit: cache.hit, blocksRead: cache.read, ratio: hitRatio, statsReset: cache.statsReset?.toISOString() ?? null },
        });
      }
    } else {
      summary.push('no cache traffic yet');
    }
    await ctx.progress(60);

    // Replication: replicas and inactive slots.
    const replicas = (await db.query<Replica>(SQL.replicas)).rows;
    findings.push(...replicationFindings(replicas, p));
    metrics.replicas = replicas.length;
    metrics.max_replication_lag_bytes = Math.max(0, ...replicas.map((r) => r.lagBytes ?? 0));
    summary.push(`${replicas.length} replicas`);
    const slots = (await db.query<Slot>(SQL.inactiveSlots, [p.physicalSlots])).rows;
    for (const s of slots.slice(0, p.maxListed)) findings.push(slotFinding(db, s, p));
    metrics.inactive_replication_slots = slots.length;
    if (slots.length > 0) summary.push(`${slots.length} inactive slots`);
    await ctx.progress(80);

    // Prepared transactions.
    const prepared = (await db.query(SQL.prepared, [p.preparedWarningSeconds, p.maxListed])).rows[0] as { total: number; transactions: Prepared[] };
    for (const x of prepared.transactions) findings.push(preparedFinding(db, x, server.database, p));
    metrics.prepared_transactions = prepared.total;
    summary.push(`${prepared.total} prepared transactions`);

    await ctx.progress(90);

    // Transaction ID and multixact wraparound of the database.
    const age = (await db.query(SQL.wraparound(server.version), [p.maxListed])).rows[0] as DatabaseAge;
    const horizon = (await db.query(SQL.xminHolders, [p.maxListed])).rows[0] as XminHolders;
    findings.push(...wraparoundFindings(age, horizon, p));
    metrics.database_xid_age = age.xidAge;
    metrics.database_mxid_age = age.mxidAge;
    metrics.oldest_xmin_age = horizon.oldestXidAge;
    summary.push(`database xid age ${fmt(age.xidAge)}`);

    // WAL archiving (server-wide).
    if (p.archiving) {
      const archive = await archiving(db, server.inRecovery);
      if (archive === undefined) {
        summary.push('archiving off');
      } else {
        const failing = archiveFailingFinding(archive.stats, archive.ready, p);
        if (failing) findings.push(failing);
        metrics.archive_failed_count = archive.stats.failedCount;
        if ('ready' in archive.ready) metrics.archive_ready_files = archive.ready.ready;
        summary.push(failing ? 'archiving failing' : 'archiving ok');
      }
    }

    ctx.log.info({ findings: findings.length }, 'pg-health checked');
    return { summary: summary.join(', '), findings, metrics };
  },
});

async function sequences(db: Client, warning: number) {
  try {
    return (await db.query(SQL.sequences, [warning])).rows[0] as { total: number; unreadable: number; maxRatio: number; flagged: SequenceUse[] };
  } catch (err) {
    // A sequence locked by an open ALTER SEQUENCE: report the rest, do not fail the run.
    if ((err as { code?: string }).code === LOCK_NOT_AVAILABLE) return { failed: (err as Error).message };
    throw err;
  }
}

/**
 * The archiver's state when this server archives (archive_mode on, and not
 * a standby, or always); undefined when it does not. The .ready files are
 * counted only with the privilege to list them.
 */
async function archiving(db: Client, inRecovery: boolean): Promise<{ stats: Archiver; ready: ArchiveReady } | undefined> {
  const stats = (await db.query(SQL.archiver)).rows[0] as Archiver;
  // A standby archives only with archive_mode = always; with "on" it leaves that to its primary.
  const archives = stats.mode === 'always' || (stats.mode === 'on' && !inRecovery);
  if (!archives) return undefined;
  if (!stats.mayListStatus) return { stats, ready: { unreadable: 'listing pg_wal/archive_status needs pg_monitor (or superuser)' } };
  try {
    return { stats, ready: (await db.query(SQL.archiveReady)).rows[0] as { ready: number; oldest: string | null } };
  } catch (err) {
    // Refused after all (a revoked grant): the counters still tell whether archiving fails.
    if ((err as { code?: string }).code === INSUFFICIENT_PRIVILEGE) return { stats, ready: { unreadable: (err as Error).message } };
    throw err;
  }
}

/**
 * archive_failing when the last thing the archiver did was fail: a failure
 * since the statistics reset, later than the last success (or with none).
 */
export function archiveFailingFinding(a: Archiver, ready: ArchiveReady, p: PgHealthParams): Finding | undefined {
  if (a.failedCount === 0 || !a.lastFailedTime) return undefined;
  if (a.lastArchivedTime && a.lastArchivedTime >= a.lastFailedTime) return undefined;
  const neverArchived = a.secondsSinceArchived === null;
  const severity: Severity = neverArchived || a.secondsSinceArchived! >= p.archiveFailingCriticalSeconds ? 'critical' : 'warning';
  const lastSuccess = neverArchived
    ? `nothing archived since ${a.statsReset ? `the statistics reset at ${a.statsReset.toISOString()}` : 'the statistics reset'}`
    : `last success ${a.lastArchivedWal} at ${a.lastArchivedTime!.toISOString()} (${formatDuration(a.secondsSinceArchived! * 1000)} ago)`;
  const waiting = 'ready' in ready
    ? `${ready.ready} WAL files wait in pg_wal/archive_status${ready.oldest ? ` (oldest ${ready.oldest})` : ''}`
    : `the WAL files waiting are not counted: ${ready.unreadable}`;
  return {
    severity,
    code: 'archive_failing',
    subject: 'archive_command',
    message: `WAL archiving is failing: last failure on ${a.lastFailedWal} at ${a.lastFailedTime.toISOString()}, ${lastSuccess}; ${a.failedCount} failures since the statistics reset; ${waiting}`,
    suggestion:
      'Point-in-time recovery stops at the last archived WAL, and pg_wal keeps every unarchived file until the disk fills: read the archive_command errors in the server log, fix the command or its destination, and check the files are archived (pg_stat_archiver.last_archived_wal moves)',
    details: {
      ...a,
      lastArchivedTime: a.lastArchivedTime?.toISOString() ?? null,
      lastFailedTime: a.lastFailedTime.toISOString(),
      statsReset: a.statsReset?.toISOString() ?? null,
      secondsSinceArchived: a.secondsSinceArchived === null ? null : Math.floor(a.secondsSinceArchived),
      ...('ready' in ready ? { readyFiles: ready.ready, oldestReady: ready.oldest } : { readyFiles: null, readyUnreadable: ready.unreadable }),
    },
  };
}

/** database_wraparound_risk and multixact_wraparound_risk, each naming the tables and xmin holders that hold it back. */
export function wraparoundFindings(age: DatabaseAge, horizon: XminHolders, p: PgHealthParams): Finding[] {
  const findings: Finding[] = [];
  const ids = [
    { code: 'database_wraparound_risk', what: 'transaction ID', measure: 'age(datfrozenxid)', value: age.xidAge, frozen: age.frozenXid, tables: age.oldestByXid },
    { code: 'multixact_wraparound_risk', what: 'multixact ID', measure: 'mxid_age(datminmxid)', value: age.mxidAge, frozen: age.minMxid, tables: age.oldestByMxid },
  ];
  for (const id of ids) {
    const severity = severityOf(id.value, p.wraparoundWarning, p.wraparoundCritical);
    if (!severity) continue;
    const limit = severity === 'critical' ? p.wraparoundCritical : p.wraparoundWarning;
    const tables = id.tables.slice(0, NAMED_IN_MESSAGE).map(describeTable).join(', ');
    findings.push({
      severity,
      code: id.code,
      subject: age.database,
      message:
        `database ${age.database} has ${id.what} age ${fmt(id.value)} (${id.measure}; ${severity} at ${fmt(limit)}; PostgreSQL stops assigning new IDs shortly before ${fmt(ID_WRAP)}); ` +
        `held back by ${tables || 'no table this role can see'}; ${describeHorizon(horizon)}`,
      suggestion: wraparoundSuggestion(id.tables, horizon),
      details: { age: id.value, frozenId: id.frozen, warning: p.wraparoundWarning, critical: p.wraparoundCritical, oldestTables: id.tables, xminHolders: horizon.holders, xminHoldersTotal: horizon.total },
    });
  }
  return findings;
}

function describeTable(t: OldTable): string {
  const notes = [
    `age ${fmt(t.age)}`,
    t.toastOf ? `toast of ${t.toastOf}` : null,
    t.kind === 'materialized view' ? 'materialized view' : null,
    t.shared ? 'shared catalog' : null,
    t.otherSessionTemp ? "another session's temporary table: only that session can vacuum it" : !t.mayVacuum ? 'this role may not vacuum it' : null,
  ].filter(Boolean);
  return `${t.name} (${notes.join(', ')})`;
}

function describeHolder(h: XminHolder): string {
  const open = h.ageSeconds === null ? '' : `, open ${formatDuration(h.ageSeconds * 1000)}`;
  const where = h.reaches === 'all tables' ? '' : `, holds back the ${h.reaches} only`;
  switch (h.kind) {
    case 'session':
      return `pid ${h.pid} (database ${h.database}, user ${h.user ?? '?'}, ${h.state ?? 'state hidden'}${open}, xmin age ${fmt(h.xidAge)}${where})`;
    case 'prepared':
      return `prepared transaction ${h.name} (database ${h.database}, owner ${h.user}${open}, xmin age ${fmt(h.xidAge)}${where})`;
    case 'slot':
      return `replication slot ${h.name} (${h.state}, xmin age ${fmt(h.xidAge)}${where})`;
    case 'replica':
      return `replica ${h.application || `pid ${h.pid}`} (hot_standby_feedback, xmin age ${fmt(h.xidAge)})`;
  }
}

function describeHorizon(horizon: XminHolders): string {
  if (horizon.total === 0) {
    return horizon.seesAllSessions
      ? 'nothing holds the xmin horizon back: VACUUM can freeze them now'
      : "nothing this role can see holds the xmin horizon back (other roles' sessions show only with pg_read_all_stats)";
  }
  const more = horizon.total > NAMED_IN_MESSAGE ? ` and ${horizon.total - NAMED_IN_MESSAGE} more` : '';
  return `VACUUM cannot freeze past the xmin of ${horizon.holders.slice(0, NAMED_IN_MESSAGE).map(describeHolder).join(', ')}${more}`;
}

function wraparoundSuggestion(tables: readonly OldTable[], horizon: XminHolders): string {
  const steps: string[] = [];
  if (horizon.holders.some((h) => h.kind === 'prepared')) steps.push('finish or roll back the prepared transactions (COMMIT/ROLLBACK PREPARED)');
  if (horizon.holders.some((h) => h.kind === 'session')) steps.push('end the old transactions (pg_terminate_backend)');
  if (horizon.holders.some((h) => h.kind === 'slot')) steps.push('drop the slots nothing consumes (pg_drop_replication_slot)');
  if (horizon.holders.some((h) => h.kind === 'replica')) steps.push("check the replicas' long queries (hot_standby_feedback)");
  if (tables.some((t) => t.otherSessionTemp)) steps.push('end the sessions owning old temporary tables');
  const vacuum = tables.some((t) => !t.mayVacuum && !t.otherSessionTemp)
    ? "VACUUM (FREEZE) the oldest tables as their owner or a superuser (caretaker's role may not vacuum some of them)"
    : 'VACUUM (FREEZE) the oldest tables, or let autovacuum finish its anti-wraparound run (check it is not cancelled or throttled)';
  // Freezing only gets past the horizon once what holds it is gone: those steps come first.
  const text = [...steps, steps.length > 0 ? `then ${vacuum}` : vacuum].join('; ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function transactionFinding(s: Transaction, p: PgHealthParams): Finding {
  const severity = severityOf(s.ageSeconds, p.transactionWarningSeconds, p.transactionCriticalSeconds) ?? 'warning';
  const doing = s.state === 'active' ? `running a query for ${formatDuration((s.queryAgeSeconds ?? 0) * 1000)}` : (s.state ?? 'state hidden');
  return {
    severity,
    code: 'long_transaction',
    subject: `pid ${s.pid}`,
    message: `transaction of pid ${s.pid} (user ${s.user ?? '?'}, ${s.application || 'no application name'}) open for ${formatDuration(s.ageSeconds * 1000)}, ${doing}`,
    suggestion: `Ask its owner what it is doing; if stuck, SELECT pg_terminate_backend(${s.pid}). Long transactions hold locks and keep vacuum from removing dead rows: set idle_in_transaction_session_timeout / statement_timeout for the role`,
    details: { ...s, ageSeconds: Math.floor(s.ageSeconds), queryAgeSeconds: s.queryAgeSeconds === null ? null : Math.floor(s.queryAgeSeconds) },
  };
}

function lockWaitFinding(w: LockWait, p: PgHealthParams): Finding {
  const severity = severityOf(w.waitSeconds, p.lockWaitWarningSeconds, p.lockWaitCriticalSeconds) ?? 'warning';
  const who = w.blockedBy.map((pid) => (pid === 0 ? 'a prepared transaction' : `pid ${pid}`)).join(', ') || 'an unknown session';
  const what = w.relation ? `${w.mode ?? 'a lock'} on ${w.relation}` : `${w.mode ?? 'a lock'} (${w.lockType ?? w.waitEvent})`;
  return {
    severity,
    code: 'lock_wait',
    subject: `pid ${w.pid}`,
    message: `pid ${w.pid} (user ${w.user ?? '?'}) has waited ${formatDuration(w.waitSeconds * 1000)} for ${what}, blocked by ${who}`,
    suggestion: `See what the blocker is doing (pg_stat_activity WHERE pid IN (${w.blockedBy.join(', ')})); a blocker idle in a transaction or stuck can be ended with pg_terminate_backend(pid)`,
    details: { ...w, waitSeconds: Math.floor(w.waitSeconds) },
  };
}

function sequenceFinding(db: Client, s: SequenceUse, p: PgHealthParams): Finding {
  const severity = severityOf(s.ratio, p.sequenceWarning, p.sequenceCritical) ?? 'warning';
  const seqName = `${db.escapeIdentifier(s.schema)}.${db.escapeIdentifier(s.name)}`;
  const columnName = s.table && s.column ? `${s.columnSchema}.${s.table}.${s.column}` : null;
  const limitBy = s.columnNarrower ? `its column ${columnName} (${s.columnType})` : `the sequence (${s.type})`;
  let suggestion: string;
  if (s.columnNarrower) {
    const table = `${db.escapeIdentifier(s.columnSchema!)}.${db.escapeIdentifier(s.table!)}`;
    suggestion = `Widen the column before it overflows: ALTER TABLE ${table} ALTER COLUMN ${db.escapeIdentifier(s.column!)} TYPE bigint; (rewrites the table under an ACCESS EXCLUSIVE lock: plan it)`;
    if (s.type !== 'bigint') suggestion += `, then ALTER SEQUENCE ${seqName} AS bigint;`;
  } else if (s.type !== 'bigint') {
    suggestion = `ALTER SEQUENCE ${seqName} AS bigint; and widen the columns that use it to bigint (a table rewrite: plan it)`;
  } else {
    suggestion = `Raise the sequence's limit (ALTER SEQUENCE ${seqName} ${s.increment > 0 ? 'NO MAXVALUE' : 'NO MINVALUE'}) or plan a new key before it runs out`;
  }
  return {
    severity,
    code: 'sequence_exhaustion',
    subject: `${s.schema}.${s.name}`,
    message: `sequence ${s.schema}.${s.name} has used ${pctDown(s.ratio)} of the range allowed by ${limitBy}: last value ${s.lastValue}, limit ${s.increment > 0 ? s.maxValue : s.minValue}, ${Math.floor(s.remaining)} values left`,
    suggestion,
    details: { ...s },
  };
}

/** replication_lag findings for the replicas listed (pure: the lag figures decide). */
export function replicationFindings(replicas: readonly Replica[], p: PgHealthParams): Finding[] {
  const findings: Finding[] = [];
  for (const r of replicas) {
    const bySeconds = r.replayLagSeconds === null ? undefined : severityOf(r.replayLagSeconds, p.replicationLagWarningSeconds, p.replicationLagCriticalSeconds);
    const byBytes = r.lagBytes === null ? undefined : severityOf(r.lagBytes, p.replicationLagWarningBytes, p.replicationLagCriticalBytes);
    const severity = worst(bySeconds, byBytes);
    if (!severity) continue;
    const name = `${r.application || 'replica'}${r.clientAddr ? ` (${r.clientAddr})` : ''}`;
    const lag = [
      r.lagBytes === null ? null : `${formatBytes(r.lagBytes)} of WAL behind (${r.lagFrom})`,
      r.replayLagSeconds === null ? null : `replay lag ${formatDuration(r.replayLagSeconds * 1000)}`,
    ].filter(Boolean);
    findings.push({
      severity,
      code: 'replication_lag',
      subject: name,
      message: `replica ${name} is ${lag.join(', ')} (state ${r.state ?? 'hidden'})`,
      suggestion: 'Check the replica: its disk and CPU, the network, and replay conflicts or a paused replay (pg_stat_database_conflicts, pg_is_wal_replay_paused() on the replica)',
      details: { ...r },
    });
  }
  return findings;
}

function slotFinding(db: Client, s: Slot, p: PgHealthParams): Finding {
  const lost = s.walStatus === 'lost' || s.walStatus === 'unreserved';
  const big = s.retainedBytes !== null && s.retainedBytes >= p.slotRetainedWarningBytes;
  const retained = s.retainedBytes === null ? 'retains no WAL' : `retains ${formatBytes(s.retainedBytes)} of WAL`;
  return {
    severity: lost || big ? 'warning' : 'info',
    code: 'replication_slot_inactive',
    subject: s.name,
    message: `inactive ${s.type} replication slot ${s.name} ${retained}${s.walStatus ? ` (wal_status ${s.walStatus})` : ''}`,
    suggestion: `If its consumer is gone for good, drop it: SELECT pg_drop_replication_slot(${db.escapeLiteral(s.name)}); otherwise bring the consumer back. max_slot_wal_keep_size bounds what a slot can hold`,
    details: { ...s },
  };
}

function preparedFinding(db: Client, x: Prepared, database: string, p: PgHealthParams): Finding {
  const severity = severityOf(x.ageSeconds, p.preparedWarningSeconds, p.preparedCriticalSeconds) ?? 'warning';
  return {
    severity,
    code: 'prepared_transaction',
    subject: x.gid,
    message: `prepared transaction ${x.gid} (owner ${x.owner}) open for ${formatDuration(x.ageSeconds * 1000)}: it holds its locks and keeps vacuum from cleaning up`,
    suggestion: `Let the transaction manager that prepared it finish it; if it is orphaned, in database ${database}: COMMIT PREPARED ${db.escapeLiteral(x.gid)} or ROLLBACK PREPARED ${db.escapeLiteral(x.gid)}`,
    details: { ...x, ageSeconds: Math.floor(x.ageSeconds) },
  };
}
