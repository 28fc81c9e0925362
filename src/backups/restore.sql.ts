/**
 * The SQL of the restore engine (src/backups/restore*.ts), shared by
 * restore-test and dr-drill. Identifiers are quoted by the caller's
 * `escapeIdentifier`; values are parameters.
 */

/**
 * Caretaker's own schema (runs, findings, ...). When the state lives in the
 * target database (the default with one postgres target) it is dumped and
 * restored with the application's tables, but it is never compared: every
 * run, this one included, adds to it after the dump was taken, and it is
 * not the data a restore test vouches for.
 */
export const STATE_SCHEMA = 'caretaker';

/**
 * Tables of a database, `schema.table` as the manifest names them;
 * partitions flagged (their parent counts them). Without STATE_SCHEMA.
 */
const TABLES = `
    SELECT n.nspname || '.' || c.relname AS key, n.nspname AS schema, c.relname AS name, c.relispartition AS partition
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema', '${STATE_SCHEMA}')
      AND n.nspname !~ '^pg_(toast|temp_)'`;

export const SQL = {
  tables: TABLES,
  /**
   * The statistics' live-row estimates of the same tables: what stands in
   * for exact counts when counting the source would pass its statement
   * or lock timeout. A partitioned table sums its partitions.
   */
  estimates: `
    SELECT t.key,
           (CASE WHEN c.relkind = 'p'
                 THEN (SELECT coalesce(sum(s.n_live_tup), 0) FROM pg_partition_tree(c.oid) pt JOIN pg_stat_all_tables s ON s.relid = pt.relid)
                 ELSE coalesce((SELECT s.n_live_tup FROM pg_stat_all_tables s WHERE s.relid = c.oid), 0)
            END)::bigint AS n
    FROM (${TABLES}) t
    JOIN pg_namespace n ON n.nspname = t.schema
    JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.name`,
  /** Databases whose name starts with $1 (starts_with: `_` is not a wildcard here, unlike LIKE). */
  scratchDatabases: `SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname`,
  /** template0: a restore must start from an empty database (pg_dump's documentation). */
  createDatabase: (quotedName: string) => `CREATE DATABASE ${quotedName} TEMPLATE template0`,
  /** FORCE ends the sessions still in it (a killed psql's backend, an aborted count). */
  dropDatabase: (quotedName: string) => `DROP DATABASE IF EXISTS ${quotedName} WITH (FORCE)`,
  setLocalStatementTimeout: `SELECT set_config('statement_timeout', $1, true)`,
} as const;

/**
 * One statement counting the rows of every table given: `i` is the table's
 * index in `tables`, `n` its exact count (bigint, as a string).
 */
export function countRowsSql(tables: readonly { schema: string; name: string }[], quote: (identifier: string) => string): string {
  return tables.map((t, i) => `SELECT ${i} AS i, count(*) AS n FROM ${quote(t.schema)}.${quote(t.name)}`).join('\nUNION ALL\n');
}
