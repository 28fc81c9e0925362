/**
 * pg-health's wraparound check: the database's transaction ID and multixact
 * ages (`database_wraparound_risk`, `multixact_wraparound_risk`, as
 * check_postgres's txn_wraparound), each naming the tables that hold it
 * back and what keeps VACUUM from freezing past the xmin horizon,
 * server-wide. vacuum-analyze's `wraparound_risk` stays per user table.
 */
import { APPLICATION_NAME } from '../clients/postgres';
import type { Finding } from '../contract/result';
import type { FindingCodes } from '../contract/task';
import { formatDuration } from '../util/format';
import { severityOf, type CheckResult, type PgSession } from './check';

export const WRAPAROUND_CODES = {
  database_wraparound_risk: "the database's transaction ID age at or above `wraparoundWarning` (critical from `wraparoundCritical`)",
  multixact_wraparound_risk: "the database's multixact ID age at or above `wraparoundWarning` (critical from `wraparoundCritical`)",
} as const satisfies FindingCodes;
type WraparoundCode = keyof typeof WRAPAROUND_CODES;

/** Transaction and multixact IDs wrap at 2³¹: PostgreSQL stops assigning new ones a few million before. */
export const ID_WRAP = 2 ** 31;
/** Tables and xmin holders a wraparound message names (details list up to maxListed). */
const NAMED_IN_MESSAGE = 5;

/** Since 17, the MAINTAIN privilege (owner, pg_maintain, or granted) says who may VACUUM a table. */
const MAINTAIN_VERSION = 170000;

export const SQL = {
  /**
   * The database's transaction ID and multixact ID ages (what check_postgres's
   * txn_wraparound measures: datfrozenxid is the oldest relfrozenxid of any
   * table in it, catalogs and toast included), and the $1 tables holding each
   * back, oldest first: any table here counts, another session's temporary
   * table too (only that session can vacuum it), and whether this role may
   * VACUUM it.
   */
  wraparound(serverVersion: number): string {
    const mayVacuum =
      serverVersion >= MAINTAIN_VERSION
        ? `has_table_privilege(c.oid, 'MAINTAIN')`
        : `pg_has_role(c.relowner, 'USAGE')`;
    const oldest = (age: string, column: string) => `
      coalesce((
        SELECT json_agg(x ORDER BY x.age DESC, x.name)
        FROM (
          SELECT n.nspname || '.' || c.relname AS name, ${age} AS age, c.${column}::text AS "frozenId",
                 CASE c.relkind WHEN 't' THEN 'toast' WHEN 'm' THEN 'materialized view' ELSE 'table' END AS kind,
                 CASE WHEN main.oid IS NOT NULL THEN mn.nspname || '.' || main.relname END AS "toastOf",
                 c.relisshared AS shared,
                 c.relpersistence = 't' AND pg_is_other_temp_schema(c.relnamespace) AS "otherSessionTemp",
                 (${mayVacuum} OR (pg_has_role(d.datdba, 'USAGE') AND NOT c.relisshared)) AS "mayVacuum"
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_class main ON c.relkind = 't' AND main.reltoastrelid = c.oid
          LEFT JOIN pg_namespace mn ON mn.oid = main.relnamespace
          WHERE c.relkind IN ('r', 't', 'm') AND c.${column} <> '0'
          ORDER BY ${age} DESC, n.nspname, c.relname
          LIMIT $1
        ) x), '[]')`;
    return `
    SELECT d.datname AS database,
           age(d.datfrozenxid) AS "xidAge", d.datfrozenxid::text AS "frozenXid",
           mxid_age(d.datminmxid) AS "mxidAge", d.datminmxid::text AS "minMxid",
           ${oldest('age(c.relfrozenxid)', 'relfrozenxid')} AS "oldestByXid",
           ${oldest('mxid_age(c.relminmxid)', 'relminmxid')} AS "oldestByMxid"
    FROM pg_database d
    WHERE d.datname = current_database()`;
  },

  /**
   * What holds the xmin horizon back, so that VACUUM cannot freeze past it
   * (pganalyze's "VACUUM blocked by xmin horizon"): sessions with an xid or
   * a snapshot, prepared transactions, replication slots' xmin and
   * catalog_xmin, and replicas' hot_standby_feedback. Server-wide, since
   * each reaches this database: a session or prepared transaction of
   * another database holds back only the shared catalogs, a slot's
   * catalog_xmin only the catalogs. The $1 oldest, those that reach every
   * table first. Autovacuum workers' (and VACUUM's) own xmin is ignored by
   * the server for the horizon, and caretaker's own sessions are left out.
   * Other roles' xid and xmin show only with pg_read_all_stats: whether this
   * role has it is returned too.
   */
  xminHolders: `
    WITH h AS (
      SELECT 'session' AS kind, a.pid, NULL::text AS name, a.datname AS database, a.usename AS "user",
             a.application_name AS application, a.state,
             extract(epoch FROM now() - a.xact_start)::float8 AS "ageSeconds",
             greatest(age(a.backend_xid), age(a.backend_xmin)) AS "xidAge",
             CASE WHEN a.datname = current_database() THEN 'all tables' ELSE 'shared catalogs' END AS reaches
      FROM pg_stat_activity a
      WHERE (a.backend_xid IS NOT NULL OR a.backend_xmin IS NOT NULL)
        AND a.pid <> pg_backend_pid()
        AND a.backend_type NOT IN ('autovacuum worker', 'walsender')
        AND a.application_name NOT LIKE '${APPLICATION_NAME}%'
      UNION ALL
      SELECT 'prepared', NULL, p.gid, p.database, p.owner, NULL, NULL,
             extract(epoch FROM now() - p.prepared)::float8, age(p.transaction),
             CASE WHEN p.database = current_database() THEN 'all tables' ELSE 'shared catalogs' END
      FROM pg_prepared_xacts p
      UNION ALL
      SELECT 'slot', NULL, s.slot_name, s.database, NULL, NULL, CASE WHEN s.active THEN 'active' ELSE 'inactive' END,
             NULL, greatest(age(s.xmin), age(s.catalog_xmin)),
             CASE WHEN s.xmin IS NOT NULL THEN 'all tables' ELSE 'catalogs' END
      FROM pg_replication_slots s
      WHERE s.xmin IS NOT NULL OR s.catalog_xmin IS NOT NULL
      UNION ALL
      SELECT 'replica', r.pid, NULL, NULL, r.usename, r.application_name, r.state, NULL, age(r.backend_xmin), 'all tables'
      FROM pg_stat_replication r
      WHERE r.backend_xmin IS NOT NULL
    )
    SELECT coalesce(max("xidAge"), 0) AS "oldestXidAge",
           count(*)::int AS total,
           pg_has_role('pg_read_all_stats', 'USAGE') AS "seesAllSessions",
           coalesce((
             SELECT json_agg(x ORDER BY x.reaches <> 'all tables', x."xidAge" DESC)
             FROM (SELECT * FROM h ORDER BY reaches <> 'all tables', "xidAge" DESC LIMIT $1) x), '[]') AS holders
    FROM h`,
} as const;

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

/** The database's ages, as SQL.wraparound returns them. */
export interface DatabaseAge {
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

/** What holds the xmin horizon back, as SQL.xminHolders returns it. */
export interface XminHolders {
  oldestXidAge: number;
  total: number;
  seesAllSessions: boolean;
  holders: XminHolder[];
}

/** What the wraparound check reads from pg-health's params. */
export interface WraparoundOptions {
  wraparoundWarning: number;
  wraparoundCritical: number;
  maxListed: number;
}

/** 1300000000 → "1,300,000,000". */
const fmt = (n: number) => n.toLocaleString('en-US');

/** Wraparound: both ages and the oldest xmin's in metrics, a finding per ID past its threshold. */
export async function wraparound({ db, server }: PgSession, p: WraparoundOptions): Promise<CheckResult<WraparoundCode>> {
  const age = (await db.query(SQL.wraparound(server.version), [p.maxListed])).rows[0] as DatabaseAge;
  const horizon = (await db.query(SQL.xminHolders, [p.maxListed])).rows[0] as XminHolders;
  return {
    findings: wraparoundFindings(age, horizon, p),
    metrics: { database_xid_age: age.xidAge, database_mxid_age: age.mxidAge, oldest_xmin_age: horizon.oldestXidAge },
    summary: `database xid age ${fmt(age.xidAge)}`,
  };
}

/** database_wraparound_risk and multixact_wraparound_risk, each naming the tables and xmin holders that hold it back. */
export function wraparoundFindings(age: DatabaseAge, horizon: XminHolders, p: WraparoundOptions): Finding<WraparoundCode>[] {
  const findings: Finding<WraparoundCode>[] = [];
  const ids: { code: WraparoundCode; what: string; measure: string; value: number; frozen: string; tables: OldTable[] }[] = [
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
