/**
 * index-audit (weekly): the runbook's "check index usage / find missing
 * indexes", to the bar of PgHero and check_postgres, with their defaults.
 * Finds unused, duplicate, invalid and bloated indexes and tables that
 * sequential scans read in bulk. Read-only: every statement it suggests is
 * text for an operator, never executed. A constant number of catalog
 * queries (index-audit.sql.ts), whatever the number of tables.
 */
import { z } from 'zod';
import type { Client } from 'pg';
import { defineTask } from '../contract/task';
import type { Finding, Severity } from '../contract/result';
import { formatBytes, formatDuration } from '../util/format';
import { SQL } from './index-audit.sql';

export { SQL } from './index-audit.sql';

const MB = 1024 * 1024;
const DAY_SECONDS = 86_400;

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

interface Overview { statsReset: Date | null; statsAgeSeconds: number | null; inRecovery: boolean; indexesTotal: number }
interface IndexRow { schema: string; table: string; index: string; bytes: number; scans: number; definition: string }
interface DuplicateRow extends IndexRow { covering: string; identical: boolean; unique: boolean; coveringDefinition: string }
interface InvalidRow extends IndexRow { unique: boolean; ready: boolean; validCopy: string | null }
interface MissingRow {
  schema: string; table: string; rule: 'low_index_use' | 'no_index_use'; bytes: number; seqScans: number;
  seqRowsRead: number; indexScans: number | null; liveRows: number; indexes: number;
}
interface BloatRow {
  schema: string; table: string; index: string; bytes: number; expectedBytes: number; wastedBytes: number;
  rows: number; fillfactor: number; scans: number;
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
  async run(ctx, p) {
    const db = await ctx.clients.postgres();
    const step = async <T>(percent: number, fn: () => Promise<T>): Promise<T> => {
      ctx.signal.throwIfAborted();
      const value = await fn();
      await ctx.progress(percent);
      return value;
    };

    const overview = await step(10, async () => (await db.query<Overview>(SQL.overview)).rows[0]!);
    const unused = await step(25, async () => (await db.query<IndexRow>(SQL.unused, [p.minIndexBytes])).rows);
    const duplicates = await step(45, async () => (await db.query<DuplicateRow>(SQL.duplicates)).rows);
    const invalid = await step(55, async () => (await db.query<InvalidRow>(SQL.invalid)).rows);
    const missing = await step(70, async () =>
      (await db.query<MissingRow>(SQL.missing, [p.minRows, p.maxIndexScanPercent, p.minSeqScans, p.minRowsPerScan, p.minTableBytes])).rows);
    const bloat = await step(95, async () => (await db.query<BloatResult>(SQL.bloat, [p.minBloatBytes])).rows[0]!);

    const stats = describeStats(overview, p);
    const findings: Finding[] = [
      ...unused.slice(0, p.maxFindings).map((r) => unusedFinding(db, r, stats, overview.inRecovery)),
      ...duplicates.slice(0, p.maxFindings).map((r) => duplicateFinding(db, r)),
      ...invalid.slice(0, p.maxFindings).map((r) => invalidFinding(db, r)),
      ...missing.slice(0, p.maxFindings).map((r) => missingFinding(db, r, p, stats)),
      ...bloat.flagged.slice(0, p.maxFindings).map((r) => bloatFinding(db, r, p)),
    ];

    const parts = [
      `${overview.indexesTotal} indexes`,
      `${unused.length} unused${unused.length > 0 ? ` (${formatBytes(sum(unused.map((r) => r.bytes)))})` : ''}`,
      `${duplicates.length} duplicate`,
      `${invalid.length} invalid`,
      `${missing.length} ${missing.length === 1 ? 'table' : 'tables'} missing an index`,
      `~${formatBytes(bloat.totalWasted)} estimated index bloat`,
      stats.summary,
    ];
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

function ident(db: Client, schema: string, name: string): string {
  return `${db.escapeIdentifier(schema)}.${db.escapeIdentifier(name)}`;
}

function indexDetails(r: IndexRow): Record<string, unknown> {
  return { schema: r.schema, table: r.table, index: r.index, indexBytes: r.bytes, scans: r.scans, definition: r.definition };
}

function unusedFinding(db: Client, r: IndexRow, stats: StatsAge, inRecovery: boolean): Finding {
  return {
    severity: stats.young ? 'info' : 'warning',
    code: 'unused_index',
    subject: `${r.schema}.${r.index}`,
    message: `${r.schema}.${r.index} on ${r.table} (${formatBytes(r.bytes)}) has not been scanned ${stats.since}`
      + (stats.young ? ': too recent to call it unused' : ''),
    suggestion: `Check that no replica or rare job (monthly report) uses it, then: DROP INDEX CONCURRENTLY ${ident(db, r.schema, r.index)};`,
    details: { ...indexDetails(r), statsReset: stats.resetAt, inRecovery },
  };
}

function duplicateFinding(db: Client, r: DuplicateRow): Finding {
  const how = r.identical ? 'is the same index as' : 'is a prefix of';
  return {
    severity: 'warning',
    code: 'duplicate_index',
    subject: `${r.schema}.${r.index}`,
    message: `${r.schema}.${r.index} on ${r.table} (${formatBytes(r.bytes)}, ${r.scans} scans) ${how} ${r.schema}.${r.covering}, which serves the same queries`,
    suggestion: `DROP INDEX CONCURRENTLY ${ident(db, r.schema, r.index)};`,
    details: { ...indexDetails(r), coveringIndex: r.covering, coveringDefinition: r.coveringDefinition, identical: r.identical },
  };
}

/** `CREATE [UNIQUE] INDEX name ON ...` as pg_get_indexdef prints it, made CONCURRENTLY. */
export function concurrentDefinition(definition: string): string {
  return definition.replace(/^CREATE (UNIQUE )?INDEX /, 'CREATE $1INDEX CONCURRENTLY ');
}

function invalidFinding(db: Client, r: InvalidRow): Finding {
  const drop = `DROP INDEX CONCURRENTLY ${ident(db, r.schema, r.index)};`;
  const cost = r.ready ? (r.unique ? 'every write still maintains it (and it still rejects duplicates), no query uses it' : 'every write still maintains it, no query uses it') : 'no query uses it';
  const message = r.validCopy
    ? `${r.schema}.${r.index} on ${r.table} is invalid (${formatBytes(r.bytes)}) beside a valid copy, ${r.schema}.${r.validCopy}: left by an interrupted REINDEX or CREATE INDEX CONCURRENTLY`
    : `${r.schema}.${r.index} on ${r.table} is invalid (${formatBytes(r.bytes)}): a CREATE or REINDEX INDEX CONCURRENTLY failed; ${cost}`;
  const suggestion = r.validCopy
    ? drop
    : `${r.unique ? 'Remove the duplicate rows that made the build fail, then: ' : ''}${drop} ${concurrentDefinition(r.definition)};`;
  return {
    severity: 'warning',
    code: 'invalid_index',
    subject: `${r.schema}.${r.index}`,
    message,
    suggestion,
    details: { ...indexDetails(r), unique: r.unique, maintainedOnWrites: r.ready, validCopy: r.validCopy },
  };
}

function missingFinding(db: Client, r: MissingRow, p: Params, stats: StatsAge): Finding {
  const perScan = Math.round(r.seqRowsRead / Math.max(r.seqScans, 1));
  const scans = `${r.seqScans} sequential scans reading ${perScan} rows each on average`;
  const message = r.rule === 'low_index_use'
    ? `${r.schema}.${r.table} (${formatBytes(r.bytes)}, ${r.liveRows} rows): ${pct(r.indexScans ?? 0, r.seqScans)} of scans use an index (under ${p.maxIndexScanPercent} %), ${scans}`
    : `${r.schema}.${r.table} (${formatBytes(r.bytes)}, ${r.liveRows} rows): ${scans}, ${r.indexes === 0 ? 'and it has no index' : 'and no index scan'}`;
  return {
    severity: 'warning',
    code: 'missing_index',
    subject: `${r.schema}.${r.table}`,
    message: `${message} (${stats.since})`,
    suggestion: `Find the queries that filter it (pg_stat_statements, EXPLAIN) and index their columns: CREATE INDEX CONCURRENTLY ON ${ident(db, r.schema, r.table)} (<columns>);`,
    details: {
      schema: r.schema, table: r.table, rule: r.rule, tableBytes: r.bytes, liveRows: r.liveRows, seqScans: r.seqScans,
      seqRowsRead: r.seqRowsRead, rowsPerSeqScan: perScan, indexScans: r.indexScans, indexes: r.indexes,
    },
  };
}

function pct(indexScans: number, seqScans: number): string {
  return `${((100 * indexScans) / (indexScans + seqScans)).toFixed(1)} %`;
}

function bloatFinding(db: Client, r: BloatRow, p: Params): Finding {
  const severity: Severity = r.wastedBytes >= p.criticalBloatBytes ? 'critical' : 'warning';
  return {
    severity,
    code: 'index_bloat',
    subject: `${r.schema}.${r.index}`,
    message: `${r.schema}.${r.index} on ${r.table}: ~${formatBytes(r.wastedBytes)} of ${formatBytes(r.bytes)} wasted (estimate from catalog statistics; expected ~${formatBytes(r.expectedBytes)})`,
    suggestion: `REINDEX INDEX CONCURRENTLY ${ident(db, r.schema, r.index)};`,
    details: {
      schema: r.schema, table: r.table, index: r.index, indexBytes: r.bytes, scans: r.scans, estimate: true,
      estimatedWastedBytes: r.wastedBytes, estimatedExpectedBytes: r.expectedBytes, rows: r.rows, fillfactor: r.fillfactor,
      method: 'btree size expected from reltuples and pg_stats average widths (ioguix model), against pg_class.relpages',
    },
  };
}
