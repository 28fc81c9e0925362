/**
 * The SQL of the vacuum-analyze task (src/jobs/vacuum-analyze.ts). The
 * VACUUM itself is built there, from identifiers quoted by the driver.
 */

export const SQL = {
  /**
   * Every table VACUUM can process in this database, with the figures the
   * choice needs, in one query. Plain and materialized tables only:
   * partitioned parents hold no rows (their partitions are listed on their
   * own) and other sessions' temporary tables cannot be vacuumed. The xid
   * age is the older of the table's and its TOAST table's, as PgHero does.
   */
  tables: `
    SELECT s.relid::int8::text AS relid,
           s.schemaname AS schema,
           s.relname AS "table",
           c.reltuples::float8 AS reltuples,
           s.n_live_tup::float8 AS "liveTuples",
           s.n_dead_tup::float8 AS "deadTuples",
           s.n_mod_since_analyze::float8 AS "modsSinceAnalyze",
           s.last_vacuum AS "lastVacuum",
           s.last_autovacuum AS "lastAutovacuum",
           s.last_analyze AS "lastAnalyze",
           s.last_autoanalyze AS "lastAutoanalyze",
           extract(epoch FROM now() - greatest(s.last_analyze, s.last_autoanalyze))::float8 AS "analyzedSecondsAgo",
           extract(epoch FROM now() - s.last_autovacuum)::float8 AS "autovacuumSecondsAgo",
           greatest(age(c.relfrozenxid), age(t.relfrozenxid))::float8 AS "xidAge",
           (SELECT lower(o.option_value) FROM pg_options_to_table(c.reloptions) o
             WHERE o.option_name = 'autovacuum_enabled') AS "autovacuumOption",
           current_setting('autovacuum') AS "autovacuumSetting"
    FROM pg_stat_user_tables s
    JOIN pg_class c ON c.oid = s.relid
    LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
    WHERE c.relkind IN ('r', 'm')
      AND c.relpersistence <> 't'`,

  /** The same figures after the run, for the tables it vacuumed: one query for all of them. */
  after: `
    SELECT s.relid::int8::text AS relid,
           s.n_dead_tup::float8 AS "deadTuples",
           s.n_mod_since_analyze::float8 AS "modsSinceAnalyze",
           s.last_vacuum AS "lastVacuum",
           s.last_analyze AS "lastAnalyze"
    FROM pg_stat_user_tables s
    WHERE s.relid = ANY($1::oid[])`,

  /**
   * What the VACUUMs change in the session, to put back after them (its
   * statement timeout and cost settings), and autovacuum's pace: a manual
   * VACUUM runs unthrottled (vacuum_cost_delay 0), so caretaker's take
   * autovacuum's delay and limit unless told otherwise. -1 in autovacuum's
   * settings means "use vacuum_cost_*".
   */
  session: `
    SELECT current_setting('statement_timeout') AS "statementTimeout",
           current_setting('vacuum_cost_delay') AS "costDelay",
           current_setting('vacuum_cost_limit') AS "costLimit",
           (SELECT setting::float8 FROM pg_settings WHERE name = 'autovacuum_vacuum_cost_delay') AS "autovacuumDelayMs",
           (SELECT setting::int FROM pg_settings WHERE name = 'autovacuum_vacuum_cost_limit') AS "autovacuumLimit",
           (SELECT setting::int FROM pg_settings WHERE name = 'vacuum_cost_limit') AS "vacuumLimit"`,

  /**
   * Sets the session's statement timeout, vacuum_cost_delay and
   * vacuum_cost_limit (values, so parameters) and answers what the server
   * now says they are.
   */
  setSession: `
    SELECT set_config('statement_timeout', $1, false) AS "statementTimeout",
           set_config('vacuum_cost_delay', $2, false) AS "costDelay",
           set_config('vacuum_cost_limit', $3, false) AS "costLimit"`,

  /**
   * PostgreSQL 14+: a VACUUM whose client went away (the run timed out or
   * the worker stopped, and closed the connection) ends within this interval
   * instead of running on to its statement timeout.
   */
  checkClientConnection: `SELECT set_config('client_connection_check_interval', '10s', false)`,
} as const;
