/**
 * SQL conditions on PostgreSQL's catalogs that several tasks share, so that
 * they agree on what they look at.
 */

/**
 * The relations caretaker reports on: those of user schemas (not
 * pg_catalog, information_schema or toast), never temporary ones (of this
 * or other sessions). `ns` is the alias of pg_namespace, `rel` of pg_class.
 */
export function userRelation(ns: string, rel: string): string {
  return `
      ${ns}.nspname NOT IN ('pg_catalog', 'information_schema')
      AND ${ns}.nspname !~ '^pg_toast'
      AND ${rel}.relpersistence <> 't'`;
}

/**
 * The relation locks of this database held or awaited in ACCESS EXCLUSIVE
 * mode by another session (columns `oid`, `pid`, `granted`; pid is null
 * for a prepared transaction). It is the one mode that the ACCESS SHARE
 * of a size function or pg_get_indexdef waits for, and an awaited one
 * counts: a queued ALTER TABLE makes every later ACCESS SHARE queue behind
 * it. A task that must not queue reads this once and opens none of them.
 */
export const ACCESS_EXCLUSIVE_LOCKS = `
      SELECT l.relation AS oid, l.pid, l.granted
      FROM pg_catalog.pg_locks l
      WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
        AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = current_database())
        AND l.pid IS DISTINCT FROM pg_backend_pid()`;
