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
