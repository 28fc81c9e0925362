/**
 * Verification of a restored scratch database for the restore engine
 * (restore.ts): its row counts against the manifest (or, without one, the
 * live source within a tolerance), its key tables, its smoke queries; and
 * the findings each of those builds (restore_mismatch,
 * table_created_after_dump, key_table_empty, smoke_query_failed).
 * Caretaker's own schema is never compared (STATE_SCHEMA).
 *
 * Kept apart from the flow because this is the part that decides what a
 * restore is worth: the severities and tolerances read best in one place.
 * Its SQL is in restore.sql.ts, beside it.
 */
import type { Client } from 'pg';
import type { FindingCodes, TaskContext } from '../contract/task';
import type { Finding } from '../contract/result';
import { redactSecretsIn } from '../logger';
import { coerceError } from '../errors';
import type { BackupManifest } from './manifest';
import { throwIfAborted } from './restore-tools';
import { countRowsSql, SQL, STATE_SCHEMA } from './restore.sql';
import { oneLine } from '../util/format';

/** The codes of what verify finds in a restored database; RESTORE_CODES (restore.ts) holds them with the flow's. */
export const RESTORE_VERIFY_CODES = {
  restore_mismatch: "a table's restored row count differs from the manifest's, or from the live source's past `tolerance`",
  table_created_after_dump: 'a table of the live source not in the dump (no manifest): created after it, or excluded from it',
  key_table_empty: 'a table listed in `keyTables` is empty or absent in the restored database',
  smoke_query_failed: 'a statement of `smokeQueries` failed on the restored database',
} satisfies FindingCodes;
type VerifyCode = keyof typeof RESTORE_VERIFY_CODES;

/**
 * What verify reads of the params: restoreParamFields in restore.ts
 * defines and documents each (a RestoreParams is one).
 */
export interface VerifyParams {
  keyTables: string[];
  smokeQueries: string[];
  smokeTimeoutMs: number;
  tolerance: number;
  toleranceRows: number;
}

interface TableRef {
  key: string;
  schema: string;
  name: string;
  partition: boolean;
}

/** "users" is "public.users". */
function tableKey(name: string): string {
  return name.includes('.') ? name : `public.${name}`;
}

/** What verify found, and what it checked (for the run's summary and metrics). */
export interface Verified {
  findings: Finding<VerifyCode>[];
  /** Tables counted in the restored database. */
  tables: number;
  /** Rows in those tables. */
  rows: number;
  /** What the counts were compared with, for the summary: "the manifest", "the live source", ... */
  against: string;
}

/** Row counts against the manifest (or the live source), key tables, smoke queries. */
export async function verify(ctx: TaskContext<'backups'>, db: Client, manifest: BackupManifest | undefined, p: VerifyParams): Promise<Verified> {
  const findings: Finding<VerifyCode>[] = [];
  const restored = new Map((await db.query<TableRef>(SQL.tables)).rows.map((t) => [t.key, t]));
  const keyTables = [...new Set(p.keyTables.map(tableKey))];

  let expected: Map<string, number>;
  let against: string;
  let method: 'manifest' | 'source' | 'source_estimate' = 'manifest';
  if (manifest) {
    // The backup task's manifest counts every table it dumped, caretaker's own too.
    expected = new Map(Object.entries(manifest.tables).filter(([key]) => !key.startsWith(`${STATE_SCHEMA}.`)));
    against = 'the manifest';
  } else {
    const live = await sourceCounts(ctx);
    expected = live.counts;
    method = live.method === 'exact' ? 'source' : 'source_estimate';
    against = live.method === 'exact' ? 'the live source' : 'the live source (estimated counts)';
  }

  const toCount = new Map<string, TableRef>();
  for (const key of [...expected.keys(), ...keyTables]) {
    const t = restored.get(key);
    if (t) toCount.set(key, t);
  }
  const counts = await countRows(db, [...toCount.values()], ctx.signal);

  for (const [key, want] of expected) {
    const got = counts.get(key);
    const subject = key;
    if (got === undefined) {
      findings.push(manifest ? missingFromDump(key, want) : createdAfterDump(key, want, method === 'source_estimate'));
      continue;
    }
    const diff = got - want;
    if (diff === 0) continue;
    const ratio = Math.abs(diff) / Math.max(want, 1);
    if (manifest) {
      findings.push({
        severity: ratio > p.tolerance || (got === 0 && want > 0) ? 'critical' : 'warning',
        code: 'restore_mismatch',
        subject,
        message: `${key}: ${got} rows restored, the manifest says ${want} (${diff > 0 ? '+' : ''}${diff})`,
        suggestion: 'The dump does not hold what the backup counted: take a new backup and restore-test it',
        details: { table: key, expected: want, restored: got, difference: diff, ratio, against: method },
      });
    } else if (Math.abs(diff) > Math.max(p.tolerance * want, p.toleranceRows)) {
      findings.push({
        severity: 'warning',
        code: 'restore_mismatch',
        subject,
        message: `${key}: ${got} rows restored, the source has ${method === 'source_estimate' ? 'about ' : ''}${want} now (${diff > 0 ? '+' : ''}${diff}, past ${Math.round(p.tolerance * 100)} % / ${p.toleranceRows} rows)`,
        suggestion: 'Without a manifest the live source is the reference and it moves on; if the table did not change that much since the dump, the dump is missing rows',
        details: { table: key, expected: want, restored: got, difference: diff, ratio, against: method, tolerance: p.tolerance, toleranceRows: p.toleranceRows },
      });
    }
  }

  for (const key of keyTables) {
    const got = counts.get(key);
    if (got !== undefined && got > 0) continue;
    findings.push({
      severity: 'critical',
      code: 'key_table_empty',
      subject: key,
      message: got === undefined ? `key table ${key} is not in the restored database` : `key table ${key} is empty in the restored database`,
      suggestion: 'A restore from this dump would come back without this data: check the backup before you need it',
      details: { table: key, restored: got ?? null },
    });
  }

  for (const query of p.smokeQueries) {
    throwIfAborted(ctx.signal);
    const error = await smokeQuery(db, query, p.smokeTimeoutMs);
    if (error === undefined) continue;
    findings.push({
      severity: 'critical',
      code: 'smoke_query_failed',
      subject: oneLine(query, 80),
      message: `smoke query failed on the restored database: ${error}`,
      suggestion: 'The restored data does not answer a query the application depends on: check the dump, or fix the smoke query in the config',
      details: { query, error },
    });
  }

  const rows = [...counts.values()].reduce((a, b) => a + b, 0);
  return { findings, tables: counts.size, rows, against };
}

/** A table the manifest counted in the dump's own snapshot is not in the restored database: the dump lost it. */
function missingFromDump(key: string, want: number): Finding<VerifyCode> {
  return {
    severity: 'critical',
    code: 'restore_mismatch',
    subject: key,
    message: `${key} is in the manifest (${want} rows) but not in the restored database`,
    suggestion: 'Check that pg_dump is not told to skip it (-T, -n) and that the dump is complete',
    details: { table: key, expected: want, restored: null, against: 'manifest' },
  };
}

/**
 * A table of the live source that the dump does not have. PostgreSQL keeps
 * no creation time for a table (pg_class's xmin changes with ALTER TABLE and
 * freezing, and turns into a time only with track_commit_timestamp), so
 * "newer than the dump" cannot be proven; but the live source has moved on
 * since the dump by definition, and a table created since is the common,
 * harmless case: info. A table that must be in every dump belongs in
 * keyTables, whose absence is critical; with a manifest (counted in the
 * dump's snapshot) a missing table stays a critical restore_mismatch.
 */
function createdAfterDump(key: string, sourceRows: number, estimated: boolean): Finding<VerifyCode> {
  return {
    severity: 'info',
    code: 'table_created_after_dump',
    subject: key,
    message: `${key} is in the source (${estimated ? 'about ' : ''}${sourceRows} rows), not in the dump: created after the dump was taken, or excluded from it`,
    suggestion: 'Nothing to do for a new table. If it is older than the dump, check that pg_dump is not told to skip it (-T, -n); list it in keyTables to make its absence critical',
    details: { table: key, source: sourceRows, restored: null, against: estimated ? 'source_estimate' : 'source' },
  };
}

/** Exact counts of `tables` in the scratch database, a bounded statement per 500 tables. */
async function countRows(db: Client, tables: TableRef[], signal: AbortSignal): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (let i = 0; i < tables.length; i += 500) {
    throwIfAborted(signal);
    const chunk = tables.slice(i, i + 500);
    const { rows } = await db.query<{ i: number; n: string }>(countRowsSql(chunk, (s) => db.escapeIdentifier(s)));
    for (const r of rows) out.set(chunk[r.i]!.key, Number(r.n));
  }
  return out;
}

/**
 * The source's tables and their counts, in one read-only snapshot, each
 * statement bounded by the source's statement_timeout and lock_timeout.
 * Past either, the statistics' live-row estimates stand in.
 */
async function sourceCounts(ctx: TaskContext<'backups'>): Promise<{ counts: Map<string, number>; method: 'exact' | 'estimate' }> {
  const source = ctx.target.source;
  const db = await ctx.clients.connect(source.url, source);
  const tables = (await db.query<TableRef>(SQL.tables)).rows.filter((t) => !t.partition);
  try {
    await db.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const counts = await countRows(db, tables, ctx.signal);
    await db.query('COMMIT');
    return { counts, method: 'exact' };
  } catch (err) {
    await db.query('ROLLBACK').catch(() => undefined);
    const code = (err as { code?: string }).code;
    if (code !== '57014' && code !== '55P03') throw err; // only a statement or lock timeout falls back
    ctx.log.warn({ err: coerceError(err).message }, 'counting the source took too long; comparing with its statistics');
    const { rows } = await db.query<{ key: string; n: string }>(SQL.estimates);
    const estimates = new Map(rows.map((r) => [r.key, Number(r.n)]));
    return { counts: new Map(tables.map((t) => [t.key, estimates.get(t.key) ?? 0])), method: 'estimate' };
  }
}

/** One statement (extended protocol: a single statement only) in a READ ONLY transaction; the error, or undefined. */
async function smokeQuery(db: Client, query: string, timeoutMs: number): Promise<string | undefined> {
  try {
    await db.query('BEGIN READ ONLY');
    await db.query(SQL.setLocalStatementTimeout, [`${timeoutMs}ms`]);
    await db.query({ text: query, queryMode: 'extended' } as never);
    return undefined;
  } catch (err) {
    return redactSecretsIn(coerceError(err).message);
  } finally {
    await db.query('ROLLBACK').catch(() => undefined);
  }
}
