/**
 * The pg-health task's catalog queries: one per check, whatever the number
 * of sessions, sequences or slots. Sessions, locks and prepared
 * transactions are those of the target's database only; caretaker's own
 * sessions are never reported.
 */
import { APPLICATION_NAME, otherSessions } from '../clients/postgres';

/** The oldest server the queries run on (pg_replication_slots.wal_status). */
export const MIN_SERVER_VERSION = 130000;

/** Since 14, pg_locks.waitstart says when a wait began; before, the statement start is the best guess. */
const WAITSTART_VERSION = 140000;

/** Since 17, the MAINTAIN privilege (owner, pg_maintain, or granted) says who may VACUUM a table. */
const MAINTAIN_VERSION = 170000;

/** The LSN lag is measured against: the primary's insert position, or a standby's replay position. */
const REFERENCE_LSN = `(SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END AS lsn)`;

/** `$n` characters of a query text, none when `$n` is 0 (the text can hold data). */
const queryText = (column: string, param: string) => `CASE WHEN ${param}::int > 0 THEN left(${column}, ${param}::int) END`;

export const SQL = {
  server: `
    SELECT current_setting('server_version_num')::int AS version,
           current_database() AS database,
           pg_is_in_recovery() AS "inRecovery"`,

  /**
   * Open transactions: the longest of all, and those open for at least $1
   * seconds (at most $2, oldest first, query text cut to $3 characters).
   */
  transactions: `
    WITH tx AS (
      SELECT a.pid, a.usename AS "user", a.application_name AS application, a.client_addr::text AS "clientAddr",
             a.state, a.wait_event_type AS "waitEventType", a.wait_event AS "waitEvent",
             extract(epoch FROM now() - a.xact_start)::float8 AS "ageSeconds",
             CASE WHEN a.state = 'active' THEN extract(epoch FROM now() - a.query_start)::float8 END AS "queryAgeSeconds",
             ${queryText('a.query', '$3')} AS query
      FROM pg_stat_activity a
      WHERE ${otherSessions('a')}
        AND a.xact_start IS NOT NULL
    )
    SELECT coalesce((SELECT max("ageSeconds") FROM tx), 0)::float8 AS longest,
           (SELECT count(*) FROM tx WHERE "ageSeconds" >= $1)::int AS count,
           coalesce((SELECT json_agg(t ORDER BY t."ageSeconds" DESC)
                     FROM (SELECT * FROM tx WHERE "ageSeconds" >= $1 ORDER BY "ageSeconds" DESC LIMIT $2) t), '[]') AS sessions`,

  /**
   * Sessions waiting on a heavyweight lock: how many, and those waiting for
   * at least $1 seconds (at most $2, longest first) with the lock they want
   * and who holds it (pg_blocking_pids; pid 0 is a prepared transaction).
   */
  lockWaits(serverVersion: number): string {
    const waitStart = serverVersion >= WAITSTART_VERSION ? 'l.waitstart' : 'a.query_start';
    return `
    WITH w AS (
      SELECT a.pid, a.usename AS "user", a.application_name AS application, a.state,
             a.wait_event_type AS "waitEventType", a.wait_event AS "waitEvent",
             l.locktype AS "lockType", l.mode,
             CASE WHEN l.relation IS NOT NULL THEN l.relation::regclass::text END AS relation,
             extract(epoch FROM now() - ${waitStart})::float8 AS "waitSeconds",
             pg_blocking_pids(a.pid) AS "blockedBy",
             ${queryText('a.query', '$3')} AS query
      FROM pg_stat_activity a
      LEFT JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted
      WHERE ${otherSessions('a')}
        AND a.wait_event_type = 'Lock'
    )
    SELECT (SELECT count(*) FROM w)::int AS total,
           coalesce((
             SELECT json_agg(x ORDER BY x."waitSeconds" DESC)
             FROM (
               SELECT w.*,
                      coalesce((SELECT json_agg(json_build_object(
                                  'pid', b.pid, 'user', b.usename, 'application', b.application_name, 'state', b.state,
                                  'transactionSeconds', extract(epoch FROM now() - b.xact_start)::float8,
                                  'query', ${queryText('b.query', '$3')}) ORDER BY b.pid)
                                FROM pg_stat_activity b WHERE b.pid = ANY (w."blockedBy")), '[]') AS blockers
               FROM w
               WHERE w."waitSeconds" >= $1
               ORDER BY w."waitSeconds" DESC
               LIMIT $2
             ) x), '[]') AS sessions`;
  },

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

  /** Block cache counters of this database since its statistics were reset. */
  cache: `
    SELECT blks_hit::float8 AS hit, blks_read::float8 AS read, stats_reset AS "statsReset"
    FROM pg_stat_database
    WHERE datname = current_database()`,

  /** Replicas streaming from this server (cluster-wide), with their lag; base backups are not replicas. */
  replicas: `
    SELECT r.pid, r.application_name AS application, r.client_addr::text AS "clientAddr", r.state, r.sync_state AS "syncState",
           extract(epoch FROM r.replay_lag)::float8 AS "replayLagSeconds",
           greatest(0, pg_wal_lsn_diff(ref.lsn, coalesce(r.replay_lsn, r.flush_lsn)))::float8 AS "lagBytes",
           CASE WHEN r.replay_lsn IS NULL AND r.flush_lsn IS NOT NULL THEN 'flush' ELSE 'replay' END AS "lagFrom"
    FROM pg_stat_replication r, ${REFERENCE_LSN} ref
    WHERE r.state IS DISTINCT FROM 'backup'
    ORDER BY r.application_name, r.pid`,

  /**
   * Inactive replication slots and the WAL they hold back: physical slots
   * (cluster-wide) when $1, logical slots of this database only.
   */
  inactiveSlots: `
    SELECT s.slot_name AS name, s.slot_type AS type, s.database, s.plugin, s.wal_status AS "walStatus",
           s.restart_lsn::text AS "restartLsn", s.xmin::text AS xmin, s.catalog_xmin::text AS "catalogXmin",
           CASE WHEN s.restart_lsn IS NOT NULL THEN greatest(0, pg_wal_lsn_diff(ref.lsn, s.restart_lsn))::float8 END AS "retainedBytes"
    FROM pg_replication_slots s, ${REFERENCE_LSN} ref
    WHERE NOT s.active
      AND ((s.slot_type = 'physical' AND $1::bool) OR (s.slot_type = 'logical' AND s.database = current_database()))
    ORDER BY "retainedBytes" DESC NULLS LAST, s.slot_name`,

  /** Prepared transactions of this database: how many, and those older than $1 seconds (at most $2, oldest first). */
  prepared: `
    SELECT (SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database())::int AS total,
           coalesce((
             SELECT json_agg(x ORDER BY x."ageSeconds" DESC)
             FROM (
               SELECT p.gid, p.transaction::text AS xid, p.owner, p.prepared,
                      extract(epoch FROM now() - p.prepared)::float8 AS "ageSeconds"
               FROM pg_prepared_xacts p
               WHERE p.database = current_database() AND p.prepared <= now() - make_interval(secs => $1)
               ORDER BY p.prepared
               LIMIT $2
             ) x), '[]') AS transactions`,

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

  /**
   * WAL archiving: the archive_mode in force, pg_stat_archiver's counters,
   * and whether this role may list pg_wal/archive_status (superuser or
   * pg_monitor), asked first so that an unprivileged role is never refused.
   */
  archiver: `
    SELECT current_setting('archive_mode') AS mode,
           s.archived_count::float8 AS "archivedCount", s.last_archived_wal AS "lastArchivedWal", s.last_archived_time AS "lastArchivedTime",
           s.failed_count::float8 AS "failedCount", s.last_failed_wal AS "lastFailedWal", s.last_failed_time AS "lastFailedTime",
           s.stats_reset AS "statsReset",
           extract(epoch FROM now() - s.last_archived_time)::float8 AS "secondsSinceArchived",
           has_function_privilege('pg_ls_archive_statusdir()', 'EXECUTE') AS "mayListStatus"
    FROM pg_stat_archiver s`,

  /** WAL segments waiting to be archived (a .ready file each in pg_wal/archive_status), and the oldest. */
  archiveReady: `
    SELECT count(*)::int AS ready, min(left(name, -length('.ready'))) AS oldest
    FROM pg_ls_archive_statusdir()
    WHERE name LIKE '%.ready'`,
} as const;
