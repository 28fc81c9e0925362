/**
 * index-audit (weekly): the runbook's "check index usage / find missing
 * indexes", to the bar of PgHero and check_postgres, with their defaults.
 * Finds unused, duplicate, invalid and bloated indexes and tables that
 * sequential scans read in bulk. A partitioned table's indexes are judged
 * as the parent index, the one that can be dropped or rebuilt, from its
 * partitions' indexes. Relations another session holds or waits for in
 * ACCESS EXCLUSIVE mode are not opened (index-audit.sql.ts says why): the
 * run reports everything, their sizes from the catalog, and names them.
 * Read-only: every statement it suggests is text for an operator, never
 * executed. A constant number of catalog queries (index-audit.sql.ts),
 * whatever the number of tables (one more for a query that a lock, queued
 * while it ran, made wait).
 */
import { z } from 'zod';
import type { Client } from 'pg';
import { defineTask, type FindingCodes } from '../contract/task';
import type { Finding, Severity } from '../contract/result';
import { formatBytes, formatDuration } from '../util/format';
import { SQL } from './index-audit.sql';
import { LOCK_NOT_AVAILABLE, sqlState } from '../clients/postgres';

export { SQL } from './index-audit.sql';

const MB = 1024 * 1024;
const DAY_SECONDS = 86_400;
/** The lock wait a suggested plain DROP INDEX is bounded by, so that it cannot stall the table's traffic. */
const SUGGESTED_LOCK_TIMEOUT = `SET lock_timeout = '5s';`;

const codes = {
  unused_index: 'an index with no scans since the statistics reset, not unique or backing a constraint, ≥ `minIndexBytes`',
  duplicate_index: "an index whose keys (expressions, opclass, collation, order, predicate) prefix another valid index's",
  invalid_index: 'an index left invalid by a failed CONCURRENTLY build, or a partitioned index with partitions unattached',
  missing_index: 'a table read by bulk sequential scans: few index scans (`maxIndexScanPercent`) or none at all',
  index_bloat: 'a btree index whose estimated wasted space reaches `minBloatBytes` (critical at `criticalBloatBytes`)',
  index_check_incomplete: 'relations not opened because of an ACCESS EXCLUSIVE lock held or awaited: their sizes are estimates',
} satisfies FindingCodes;
type Code = keyof typeof codes;

const params = z
  .strictObject({
    /** An unused index smaller than this is not worth a finding. PgHero lists unused indexes of any size: 0 matches it. */
    minIndexBytes: z.number().int().min(0).default(10 * MB),
    /** Statistics reset less than this many days ago make "unused" unproven: such findings are `info`. */
    minStatsAgeDays: z.number().min(0).max(3650).default(7),
    /** `missing_index`, PgHero's rule: a table of at least this many live rows... */
    minRows: z.number().int().min(0).default(10_000),
    /** ...whose index scans are fewer than this share (%) of all its scans. */
    maxIndexScanPercent: z.number().gt(0).max(100).default(95),
    /** `missing_index`, the runbook's rule (no index scan at all): at least this many sequential scans... */
    minSeqScans: z.number().int().min(1).default(1000),
    /** ...reading at least this many rows each on average... */
    minRowsPerScan: z.number().min(0).default(10_000),
    /** ...on a table of at least this size. */
    minTableBytes: z.number().int().min(0).default(MB),
    /** `index_bloat` warning: estimated wasted bytes (PgHero's 100 MB)... */
    minBloatBytes: z.number().int().min(0).default(100 * MB),
    /** ...and critical (check_postgres's bloat default, 5 GB). */
    criticalBloatBytes: z.number().int().min(0).default(5 * 1024 * MB),
    /** At most this many findings per code; the metrics still count them all. */
    maxFindings: z.number().int().min(1).max(10_000).default(200),
  })
  .refine((p) => p.minBloatBytes <= p.criticalBloatBytes, { error: 'minBloatBytes must not be above criticalBloatBytes', path: ['minBloatBytes'] });

type Params = z.infer<typeof params>;

interface Overview { database: string; statsReset: Date | null; statsAgeSeconds: number | null; inRecovery: boolean; indexesTotal: number }
/** How a row was sized: from the files, or from pg_class where opening a relation would have queued behind a lock. */
interface Measured {
  sizeEstimated: boolean;
  /** The locked relations the row did not open ("schema.name"). */
  lockedRelations: string[];
}
interface IndexRow extends Measured {
  schema: string; table: string; index: string; bytes: number; scans: number;
  /** pg_get_indexdef; null when its table is locked. */
  definition: string | null;
  /** A partitioned index: how many partitions' (leaf) indexes its figures sum. Null for a plain index. */
  partitions: number | null;
}
interface DuplicateRow extends IndexRow { covering: string; identical: boolean; unique: boolean; coveringDefinition: string | null }
interface InvalidRow extends IndexRow { unique: boolean; ready: boolean; validCopy: string | null }
interface MissingRow extends Measured {
  schema: string; table: string; rule: 'low_index_use' | 'no_index_use'; bytes: number; seqScans: number;
  seqRowsRead: number; indexScans: number | null; liveRows: number; indexes: number;
}
interface BloatRow {
  schema: string; table: string; index: string; bytes: number; expectedBytes: number; wastedBytes: number;
  rows: number; fillfactor: number; scans: number;
  /** A partitioned index: its leaf indexes, and how many of them had the statistics to be estimated. */
  partitions: number | null; partitionsEstimated: number | null;
}
interface BloatResult { totalWasted: number; estimated: number; flagged: BloatRow[] }

export const indexAudit = defineTask({
  name: 'index-audit',
  description: 'Unused, duplicate, invalid and bloated indexes, and tables read by bulk sequential scans; suggests DDL, changes nothing',
  target: 'postgres',
  defaultSchedule: 'weekly',
  timeoutMs: 10 * 60_000,
  changesTarget: false,
  params,
  codes,
  async run(ctx, p) {
    const db = await ctx.clients.postgres();
    const step = async <T>(percent: number, fn: () => Promise<T>): Promise<T> => {
      ctx.signal.throwIfAborted();
      const value = await fn();
      await ctx.progress(percent);
      return value;
    };

    // The queries that open relations, each run again without opening any if a lock queued while it ran.
    const retried: string[] = [];
    const measure = <T>(part: string, sql: string, args: unknown[]) => queryWithoutWaiting<T>(db, part, sql, args, retried);

    const overview = await step(10, async () => (await db.query<Overview>(SQL.overview)).rows[0]!);
    const unused = await step(25, () => measure<IndexRow>('unused', SQL.unused, [p.minIndexBytes]));
    const duplicates = await step(45, () => measure<DuplicateRow>('duplicates', SQL.duplicates, []));
    const invalid = await step(55, () => measure<InvalidRow>('invalid', SQL.invalid, []));
    const missing = await step(70, () =>
      measure<MissingRow>('missing', SQL.missing, [p.minRows, p.maxIndexScanPercent, p.minSeqScans, p.minRowsPerScan, p.minTableBytes]));
    const bloat = await step(95, async () => (await db.query<BloatResult>(SQL.bloat, [p.minBloatBytes])).rows[0]!);
    const locked = [...new Set([unused, duplicates, invalid, missing].flatMap((rows) => rows.flatMap((r) => r.lockedRelations)))].sort();

    const stats = describeStats(overview, p);
    const findings: Finding<Code>[] = [
      ...unused.slice(0, p.maxFindings).map((r) => unusedFinding(db, r, stats, overview.inRecovery)),
      ...duplicates.slice(0, p.maxFindings).map((r) => duplicateFinding(db, r)),
      ...invalid.slice(0, p.maxFindings).map((r) => invalidFinding(db, r)),
      ...missing.slice(0, p.maxFindings).map((r) => missingFinding(db, r, p, stats)),
      ...bloat.flagged.slice(0, p.maxFindings).map((r) => bloatFinding(db, r, p)),
      ...incompleteFinding(overview.database, locked, retried),
    ];

    const parts = [
      `${overview.indexesTotal} indexes`,
      `${unused.length} unused${unused.length > 0 ? ` (${unused.some((r) => r.sizeEstimated) ? '~' : ''}${formatBytes(sum(unused.map((r) => r.bytes)))})` : ''}`,
      `${duplicates.length} duplicate`,
      `${invalid.length} invalid`,
      `${missing.length} ${missing.length === 1 ? 'table' : 'tables'} missing an index`,
      `~${formatBytes(bloat.totalWasted)} estimated index bloat`,
      stats.summary,
    ];
    if (locked.length > 0) parts.push(`${locked.length} locked ${locked.length === 1 ? 'relation' : 'relations'} not opened`);
    if (retried.length > 0) parts.push(`${retried.join(', ')} run again without opening relations`);
    const capped = [unused, duplicates, invalid, missing, bloat.flagged].some((rows) => rows.length > p.maxFindings);
    if (capped) parts.push(`findings capped at ${p.maxFindings} per code`);
    const metrics: Record<string, number> = {
      indexes_total: overview.indexesTotal,
      unused_indexes: unused.length,
      duplicate_indexes: duplicates.length,
      invalid_indexes: invalid.length,
      missing_indexes: missing.length,
      index_bloat_bytes: bloat.totalWasted,
    };
    // Unknown when the statistics were never reset (or were lost in a crash): no number rather than a wrong one.
    if (overview.statsAgeSeconds !== null) metrics.stats_age_seconds = Math.round(overview.statsAgeSeconds);
    return { summary: parts.join(', '), findings, metrics };
  },
});

interface StatsAge {
  /** True when the statistics are too young for "never scanned" to mean "unused". */
  young: boolean;
  /** "since the statistics reset 2024-05-01T10:00:00.000Z (3 days ago)", or since they began. */
  since: string;
  summary: string;
  resetAt: string | null;
}

/** How far back the scan counters go, in words, for messages and the summary. */
export function describeStats(o: Pick<Overview, 'statsReset' | 'statsAgeSeconds'>, p: Pick<Params, 'minStatsAgeDays'>): StatsAge {
  if (o.statsReset === null || o.statsAgeSeconds === null) {
    return {
      young: false,
      since: 'since statistics began (never reset, or lost in a crash)',
      summary: 'statistics never reset',
      resetAt: null,
    };
  }
  const resetAt = o.statsReset.toISOString();
  const age = formatDuration(o.statsAgeSeconds * 1000);
  const young = o.statsAgeSeconds < p.minStatsAgeDays * DAY_SECONDS;
  return {
    young,
    since: `since the statistics reset ${resetAt} (${age} ago)`,
    summary: `statistics reset ${age} ago${young ? ` (under ${p.minStatsAgeDays} days: unused indexes unproven)` : ''}`,
    resetAt,
  };
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/**
 * Runs one of the queries that open relations, with $open (its last
 * parameter) true. The query opens no relation it saw locked, but a lock
 * queued while it runs can still make it wait, until lock_timeout cancels
 * it: then it is run again opening nothing, sizes from the catalog, rather
 * than failing the run. `retried` collects the parts that were.
 */
async function queryWithoutWaiting<T>(db: Client, part: string, sql: string, args: unknown[], retried: string[]): Promise<T[]> {
  try {
    return (await db.query(sql, [...args, true])).rows as T[];
  } catch (err) {
    if (sqlState(err) !== LOCK_NOT_AVAILABLE) throw err;
    retried.push(part);
    return (await db.query(sql, [...args, false])).rows as T[];
  }
}

/** An index's size for a message: "~" when it is pg_class's figure rather than the files'. */
function sizeText(r: Pick<IndexRow, 'bytes' | 'sizeEstimated'>): string {
  return `${r.sizeEstimated ? '~' : ''}${formatBytes(r.bytes)}`;
}

/** "4 partitions, " before a partitioned index's figures; nothing for a plain index. */
function partitionsText(partitions: number | null): string {
  return partitions === null ? '' : `${partitions} ${partitions === 1 ? 'partition' : 'partitions'}, `;
}

/**
 * The statement that drops an index without blocking its table: CONCURRENTLY,
 * except for a partitioned index, which PostgreSQL can only drop plainly
 * (taking its table and partitions with ACCESS EXCLUSIVE): then with a bounded lock wait.
 */
function dropStatement(db: Client, r: IndexRow): string {
  const name = ident(db, r.schema, r.index);
  return r.partitions === null ? `DROP INDEX CONCURRENTLY ${name};` : `${SUGGESTED_LOCK_TIMEOUT} DROP INDEX ${name};`;
}

function ident(db: Client, schema: string, name: string): string {
  return `${db.escapeIdentifier(schema)}.${db.escapeIdentifier(name)}`;
}

function indexDetails(r: IndexRow): Record<string, unknown> {
  return {
    schema: r.schema, table: r.table, index: r.index, indexBytes: r.bytes, scans: r.scans, definition: r.definition,
    partitions: r.partitions, sizeEstimated: r.sizeEstimated,
  };
}

function unusedFinding(db: Client, r: IndexRow, stats: StatsAge, inRecovery: boolean): Finding<Code> {
  return {
    severity: stats.young ? 'info' : 'warning',
    code: 'unused_index',
    subject: `${r.schema}.${r.index}`,
    message: `${r.schema}.${r.index} on ${r.table} (${partitionsText(r.partitions)}${sizeText(r)}) has not been scanned ${stats.since}`
      + (stats.young ? ': too recent to call it unused' : ''),
    suggestion: r.partitions === null
      ? `Check that no replica or rare job (monthly report) uses it, then: ${dropStatement(db, r)}`
      : `Check that no replica or rare job (monthly report) uses it, then drop it with its ${r.partitions} partitions' indexes`
        + ` (a partitioned index cannot be dropped CONCURRENTLY: this locks the table and its partitions, so bound the wait): ${dropStatement(db, r)}`,
    details: { ...indexDetails(r), statsReset: stats.resetAt, inRecovery },
  };
}

function duplicateFinding(db: Client, r: DuplicateRow): Finding<Code> {
  const how = r.identical ? 'is the same index as' : 'is a prefix of';
  return {
    severity: 'warning',
    code: 'duplicate_index',
    subject: `${r.schema}.${r.index}`,
    message: `${r.schema}.${r.index} on ${r.table} (${partitionsText(r.partitions)}${sizeText(r)}, ${r.scans} scans) ${how} ${r.schema}.${r.covering}, which serves the same queries`
      + (r.partitions === null ? '' : "; dropping it drops its partitions' indexes"),
    suggestion: dropStatement(db, r),
    details: { ...indexDetails(r), coveringIndex: r.covering, coveringDefinition: r.coveringDefinition, identical: r.identical },
  };
}

/** `CREATE [UNIQUE] INDEX name ON ...` as pg_get_indexdef prints it, made CONCURRENTLY. */
export function concurrentDefinition(definition: string): string {
  return definition.replace(/^CREATE (UNIQUE )?INDEX /, 'CREATE $1INDEX CONCURRENTLY ');
}

function invalidFinding(db: Client, r: InvalidRow): Finding<Code> {
  const drop = `DROP INDEX CONCURRENTLY ${ident(db, r.schema, r.index)};`;
  const cost = r.ready ? (r.unique ? 'every write still maintains it (and it still rejects duplicates), no query uses it' : 'every write still maintains it, no query uses it') : 'no query uses it';
  const size = `${partitionsText(r.partitions)}${sizeText(r)}`;
  let message: string;
  let suggestion: string;
  if (r.partitions !== null) {
    // Not a failed build: a partitioned index made ON ONLY its table is invalid until each partition has an index attached.
    message = `${r.schema}.${r.index} on ${r.table} is invalid (${size}): a partitioned index is valid once every partition has an index attached to it`;
    suggestion = `Attach an index of each partition still missing one (ALTER INDEX ${ident(db, r.schema, r.index)} ATTACH PARTITION <index>), or drop it: ${dropStatement(db, r)}`;
  } else if (r.validCopy) {
    message = `${r.schema}.${r.index} on ${r.table} is invalid (${size}) beside a valid copy, ${r.schema}.${r.validCopy}: left by an interrupted REINDEX or CREATE INDEX CONCURRENTLY`;
    suggestion = drop;
  } else {
    message = `${r.schema}.${r.index} on ${r.table} is invalid (${size}): a CREATE or REINDEX INDEX CONCURRENTLY failed; ${cost}`;
    const rebuild = r.definition === null
      ? `then recreate it as it was (its definition was not read: its table is locked; run index-audit again once it is not)`
      : concurrentDefinition(r.definition) + ';';
    suggestion = `${r.unique ? 'Remove the duplicate rows that made the build fail, then: ' : ''}${drop} ${rebuild}`;
  }
  return {
    severity: 'warning',
    code: 'invalid_index',
    subject: `${r.schema}.${r.index}`,
    message,
    suggestion,
    details: { ...indexDetails(r), unique: r.unique, maintainedOnWrites: r.ready, validCopy: r.validCopy },
  };
}

function missingFinding(db: Client, r: MissingRow, p: Params, stats: StatsAge): Finding<Code> {
  const perScan = Math.round(r.seqRowsRead / Math.max(r.seqScans, 1));
  const scans = `${r.seqScans} sequential scans reading ${perScan} rows each on average`;
  const message = r.rule === 'low_index_use'
    ? `${r.schema}.${r.table} (${sizeText(r)}, ${r.liveRows} rows): ${pct(r.indexScans ?? 0, r.seqScans)} of scans use an index (under ${p.maxIndexScanPercent} %), ${scans}`
    : `${r.schema}.${r.table} (${sizeText(r)}, ${r.liveRows} rows): ${scans}, ${r.indexes === 0 ? 'and it has no index' : 'and no index scan'}`;
  return {
    severity: 'warning',
    code: 'missing_index',
    subject: `${r.schema}.${r.table}`,
    message: `${message} (${stats.since})`,
    suggestion: `Find the queries that filter it (pg_stat_statements, EXPLAIN) and index their columns: CREATE INDEX CONCURRENTLY ON ${ident(db, r.schema, r.table)} (<columns>);`,
    details: {
      schema: r.schema, table: r.table, rule: r.rule, tableBytes: r.bytes, liveRows: r.liveRows, seqScans: r.seqScans,
      seqRowsRead: r.seqRowsRead, rowsPerSeqScan: perScan, indexScans: r.indexScans, indexes: r.indexes, sizeEstimated: r.sizeEstimated,
    },
  };
}

function pct(indexScans: number, seqScans: number): string {
  return `${((100 * indexScans) / (indexScans + seqScans)).toFixed(1)} %`;
}

function bloatFinding(db: Client, r: BloatRow, p: Params): Finding<Code> {
  const severity: Severity = r.wastedBytes >= p.criticalBloatBytes ? 'critical' : 'warning';
  return {
    severity,
    code: 'index_bloat',
    subject: `${r.schema}.${r.index}`,
    message: `${r.schema}.${r.index} on ${r.table}${r.partitions === null ? '' : ` (${r.partitions} ${r.partitions === 1 ? 'partition' : 'partitions'})`}: `
      + `~${formatBytes(r.wastedBytes)} of ${formatBytes(r.bytes)} wasted (estimate from catalog statistics; expected ~${formatBytes(r.expectedBytes)})`,
    // On a partitioned index (PostgreSQL 14+) it rebuilds each partition's index in turn.
    suggestion: `REINDEX INDEX CONCURRENTLY ${ident(db, r.schema, r.index)};`,
    details: {
      schema: r.schema, table: r.table, index: r.index, indexBytes: r.bytes, scans: r.scans, estimate: true,
      estimatedWastedBytes: r.wastedBytes, estimatedExpectedBytes: r.expectedBytes, rows: r.rows, fillfactor: r.fillfactor,
      partitions: r.partitions, partitionsEstimated: r.partitionsEstimated,
      method: 'btree size expected from reltuples and pg_stats average widths (ioguix model), against pg_class.relpages',
    },
  };
}

/**
 * What the run did not open, if anything: the locked relations, measured
 * from pg_class instead, and the parts run again after a lock queued while
 * they ran. Info: every finding still stands, some sizes are approximate.
 */
function incompleteFinding(database: string, locked: string[], retried: string[]): Finding<Code>[] {
  if (locked.length === 0 && retried.length === 0) return [];
  const sentences: string[] = [];
  if (locked.length > 0) {
    sentences.push(`Did not open ${locked.join(', ')}: another session holds or waits for an ACCESS EXCLUSIVE lock on them, and opening them would have queued behind it.`
      + ' Their sizes are pg_class\'s, as of their last VACUUM, ANALYZE or index build (shown with ~), and the definitions of their indexes were not read.');
  }
  if (retried.length > 0) {
    sentences.push(`A lock was queued while the ${retried.join(', ')} ${retried.length === 1 ? 'query' : 'queries'} ran: run again without opening any relation, all ${retried.length === 1 ? 'its' : 'their'} sizes are pg_class's.`);
  }
  return [{
    severity: 'info',
    code: 'index_check_incomplete',
    subject: database,
    message: sentences.join(' '),
    suggestion: 'For exact sizes, run index-audit again once the lock is gone. If it lasts, see who holds or awaits it: '
      + "SELECT l.pid, l.mode, l.granted, l.relation::regclass, a.xact_start, a.query FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.mode = 'AccessExclusiveLock';",
    details: { lockedRelations: locked, retriedParts: retried },
  }];
}
