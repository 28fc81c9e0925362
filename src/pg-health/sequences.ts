/**
 * pg-health's sequence check: sequences near the end of their range, or of
 * the range of the integer column they feed (`sequence_exhaustion`). A
 * sequence locked by an open ALTER SEQUENCE stops the check, not the run
 * (`sequence_check_incomplete`); sequences this role may not read are
 * counted (`sequences_hidden`).
 */
import type { Client } from 'pg';
import type { Finding } from '../contract/result';
import type { FindingCodes } from '../contract/task';
import { LOCK_NOT_AVAILABLE, sqlState } from '../clients/postgres';
import { severityOf, type CheckResult, type PgSession } from './check';

export const SEQUENCE_CODES = {
  sequence_exhaustion: "a sequence past `sequenceWarning` of its range, or of the column it feeds (critical from `sequenceCritical`)",
  sequence_check_incomplete: 'the sequences could not be read: one is locked by an open ALTER SEQUENCE (the other checks still run)',
  sequences_hidden: 'sequences this role may not read: their use is not checked',
} as const satisfies FindingCodes;
type SequenceCode = keyof typeof SEQUENCE_CODES;

export const SQL = {
  /**
   * Every sequence's used share of its range, in one query. The range is the
   * sequence's own, narrowed by the narrowest integer column that draws from
   * it: owned by it (serial, identity) or calling it in a DEFAULT. A
   * sequence never read (or unreadable: no privilege) has no last value and
   * is left out; a CYCLE sequence is left out unless a column is narrower
   * (then the column overflows before the sequence wraps). Returns the
   * largest ratio, counts, and the sequences at or above $1.
   */
  sequences: `
    WITH seq AS (
      SELECT c.oid, n.nspname AS schema, c.relname AS name, s.seqtypid::regtype::text AS type,
             s.seqmin::numeric AS seqmin, s.seqmax::numeric AS seqmax, s.seqincrement AS increment, s.seqcycle AS cycle,
             has_sequence_privilege(c.oid, 'SELECT,USAGE') AS readable
      FROM pg_sequence s
      JOIN pg_class c ON c.oid = s.seqrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE NOT pg_is_other_temp_schema(n.oid)
    ),
    link AS (
      SELECT d.objid AS seqid, d.refobjid AS relid, d.refobjsubid AS attnum
      FROM pg_depend d
      WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
        AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
      UNION
      SELECT d.refobjid, ad.adrelid, ad.adnum
      FROM pg_depend d
      JOIN pg_attrdef ad ON ad.oid = d.objid
      WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass
    ),
    col AS (
      SELECT DISTINCT ON (link.seqid) link.seqid, n.nspname AS schema, r.relname AS "table", att.attname AS "column",
             format_type(att.atttypid, att.atttypmod) AS type, lim.colmin, lim.colmax
      FROM link
      JOIN pg_class r ON r.oid = link.relid
      JOIN pg_namespace n ON n.oid = r.relnamespace
      JOIN pg_attribute att ON att.attrelid = link.relid AND att.attnum = link.attnum AND NOT att.attisdropped
      JOIN pg_type t ON t.oid = att.atttypid
      CROSS JOIN LATERAL (
        SELECT CASE coalesce(nullif(t.typbasetype, 0), t.oid)
                 WHEN 'int2'::regtype THEN -32768::numeric WHEN 'int4'::regtype THEN -2147483648::numeric END AS colmin,
               CASE coalesce(nullif(t.typbasetype, 0), t.oid)
                 WHEN 'int2'::regtype THEN 32767::numeric WHEN 'int4'::regtype THEN 2147483647::numeric END AS colmax
      ) lim
      WHERE link.seqid IN (SELECT oid FROM seq)
      ORDER BY link.seqid, lim.colmax NULLS LAST, n.nspname, r.relname, att.attname
    ),
    bounded AS (
      SELECT seq.*, col.schema AS "columnSchema", col."table", col."column", col.type AS "columnType",
             CASE WHEN seq.readable THEN pg_sequence_last_value(seq.oid)::numeric END AS last,
             greatest(seq.seqmin, col.colmin) AS lo, least(seq.seqmax, col.colmax) AS hi,
             (col.colmax < seq.seqmax OR col.colmin > seq.seqmin) IS TRUE AS "columnNarrower"
      FROM seq LEFT JOIN col ON col.seqid = seq.oid
    ),
    used AS (
      SELECT b.*,
             greatest(0, CASE WHEN b.increment > 0 THEN (b.last - b.lo) ELSE (b.hi - b.last) END / nullif(b.hi - b.lo, 0))::float8 AS ratio,
             greatest(0, CASE WHEN b.increment > 0 THEN (b.hi - b.last) ELSE (b.last - b.lo) END / abs(b.increment))::float8 AS remaining
      FROM bounded b
      WHERE b.last IS NOT NULL AND NOT (b.cycle AND NOT b."columnNarrower")
    )
    SELECT (SELECT count(*) FROM seq)::int AS total,
           (SELECT count(*) FROM seq WHERE NOT readable)::int AS unreadable,
           coalesce((SELECT max(ratio) FROM used), 0)::float8 AS "maxRatio",
           coalesce((
             SELECT json_agg(json_build_object(
                      'schema', u.schema, 'name', u.name, 'type', u.type, 'increment', u.increment, 'cycle', u.cycle,
                      'lastValue', u.last::text, 'minValue', u.lo::text, 'maxValue', u.hi::text,
                      'sequenceMinValue', u.seqmin::text, 'sequenceMaxValue', u.seqmax::text,
                      'columnSchema', u."columnSchema", 'table', u."table", 'column', u."column", 'columnType', u."columnType",
                      'columnNarrower', u."columnNarrower", 'ratio', u.ratio, 'remaining', u.remaining)
                    ORDER BY u.ratio DESC, u.schema, u.name)
             FROM used u WHERE u.ratio >= $1), '[]') AS flagged`,
} as const;

/** A sequence at or above sequenceWarning, as SQL.sequences returns it (big values as text). */
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

interface SequencesRow {
  total: number;
  unreadable: number;
  maxRatio: number;
  flagged: SequenceUse[];
}

/** What the sequence check reads from pg-health's params. */
export interface SequenceOptions {
  sequenceWarning: number;
  sequenceCritical: number;
  maxListed: number;
}

/** A share rounded down: a sequence with values left never reads "100.0 %". */
const pctDown = (r: number) => `${(Math.floor(r * 1000) / 10).toFixed(1)} %`;

/** Sequences: the most used one's share in the summary, those past the warning listed, the worst first. */
export async function sequences({ db }: PgSession, p: SequenceOptions): Promise<CheckResult<SequenceCode>> {
  const seq = await readSequences(db, p.sequenceWarning);
  if ('failed' in seq) {
    return {
      findings: [
        {
          severity: 'warning',
          code: 'sequence_check_incomplete',
          subject: 'sequences',
          message: `could not read the sequences: ${seq.failed}`,
          suggestion: 'A transaction holds a lock on a sequence (ALTER SEQUENCE, DROP): see the lock_wait and long_transaction findings, and run pg-health again',
        },
      ],
      metrics: {},
      summary: 'sequences not checked',
    };
  }
  const findings = seq.flagged.slice(0, p.maxListed).map((s) => sequenceFinding(db, s, p));
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
  return { findings, metrics: { max_sequence_used_ratio: seq.maxRatio }, summary: `sequences at most ${pctDown(seq.maxRatio)} used` };
}

async function readSequences(db: Client, warning: number): Promise<SequencesRow | { failed: string }> {
  try {
    return (await db.query(SQL.sequences, [warning])).rows[0] as SequencesRow;
  } catch (err) {
    // A sequence locked by an open ALTER SEQUENCE: report the rest, do not fail the run.
    if (sqlState(err) === LOCK_NOT_AVAILABLE) return { failed: (err as Error).message };
    throw err;
  }
}

function sequenceFinding(db: Client, s: SequenceUse, p: SequenceOptions): Finding<SequenceCode> {
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
