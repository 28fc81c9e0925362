/**
 * The disk-check task's SQL: five catalog queries per run, whatever the
 * number of tables. Sizes come from the size functions (they stat the
 * relation files and take AccessShareLock, bounded by the session's
 * lock_timeout); the bloat figure is an estimate from pg_class and pg_stats.
 */
import { userRelation } from '../util/catalog-sql';

export const SQL = {
  /**
   * Every database on the server with its size; null where this role may
   * not connect and lacks pg_read_all_stats (pg_database_size would fail).
   */
  databases: `
    SELECT d.datname AS name,
           d.datname = current_database() AS current,
           CASE WHEN has_database_privilege(d.oid, 'CONNECT') OR pg_has_role('pg_read_all_stats', 'USAGE')
                THEN pg_database_size(d.oid)::float8
           END AS bytes
    FROM pg_database d
    ORDER BY bytes DESC NULLS LAST, name`,

  /**
   * The data directory, or no row: pg_settings hides it from roles without
   * superuser or pg_read_all_settings (SHOW would raise an error instead).
   */
  dataDirectory: `SELECT setting AS path FROM pg_settings WHERE name = 'data_directory'`,

  /**
   * The $1 largest tables by total size. table + index + toast = total:
   * pg_table_size counts the heap's forks plus the toast table and its
   * index, pg_indexes_size every index's forks.
   */
  largestTables: `
    SELECT schema, "table", total_bytes AS "totalBytes",
           table_and_toast - toast_bytes AS "tableBytes",
           index_bytes AS "indexBytes",
           toast_bytes AS "toastBytes"
    FROM (
      SELECT schema, "table", total_bytes,
             pg_table_size(oid)::float8 AS table_and_toast,
             pg_indexes_size(oid)::float8 AS index_bytes,
             coalesce(pg_total_relation_size(nullif(reltoastrelid, 0)), 0)::float8 AS toast_bytes
      FROM (
        SELECT c.oid, c.reltoastrelid, n.nspname AS schema, c.relname AS "table",
               pg_total_relation_size(c.oid)::float8 AS total_bytes
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'm') AND ${userRelation('n', 'c')}
        ORDER BY total_bytes DESC NULLS LAST, n.nspname, c.relname
        LIMIT $1
      ) top
    ) sized
    WHERE total_bytes IS NOT NULL
    ORDER BY total_bytes DESC, schema, "table"`,

  /** The $1 largest indexes (all forks). */
  largestIndexes: `
    SELECT n.nspname AS schema, c.relname AS index, t.relname AS "table",
           pg_total_relation_size(c.oid)::float8 AS bytes
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_class t ON t.oid = i.indrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'i' AND ${userRelation('n', 'c')}
    ORDER BY bytes DESC NULLS LAST, n.nspname, c.relname
    LIMIT $1`,

  /**
   * Estimated table bloat, after the well-known query of
   * ioguix/pgsql-bloat-estimation (also check_postgres's approach): from
   * pg_stats' average column widths and null fractions, the size a tuple
   * needs on disk; from reltuples, how many pages the table would need at its
   * fillfactor; the pages it has beyond that are the estimated bloat.
   * Toast is counted as 4 chunks a page.
   *
   * Tables without statistics for every column (never analyzed, or columns
   * this role cannot read) and tables with `name` columns (whose width
   * pg_stats under-reports) get no estimate: they are counted, not flagged.
   *
   * One row: tables at or over $1 bytes of estimated bloat (largest first),
   * the estimated total over all tables, and how many had no estimate.
   */
  tableBloat: `
    WITH per_table AS (
      SELECT c.oid, n.nspname AS schema, c.relname AS "table",
             c.reltuples, c.relpages AS heap_pages,
             coalesce(toast.relpages, 0) AS toast_pages,
             coalesce(toast.reltuples, 0) AS toast_tuples,
             coalesce(substring(array_to_string(c.reloptions, ' ') FROM 'fillfactor=([0-9]+)')::int, 100) AS fillfactor,
             current_setting('block_size')::numeric AS bs,
             CASE WHEN version() ~ 'mingw32|64-bit|x86_64|ppc64|ia64|amd64' THEN 8 ELSE 4 END AS ma,
             24 AS page_hdr,
             23 + CASE WHEN max(coalesce(s.null_frac, 0)) > 0 THEN (7 + count(*)) / 8 ELSE 0 END AS tpl_hdr_size,
             sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 0)) AS tpl_data_size,
             bool_or(a.atttypid = 'pg_catalog.name'::regtype) OR count(*) <> count(s.attname) AS no_estimate
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      LEFT JOIN pg_stats s
        ON s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = a.attname AND NOT s.inherited
      LEFT JOIN pg_class toast ON toast.oid = c.reltoastrelid
      WHERE c.relkind IN ('r', 'm') AND ${userRelation('n', 'c')}
        AND c.reltuples >= 0
      GROUP BY c.oid, n.nspname, c.relname, c.reltuples, c.relpages, c.reloptions, toast.relpages, toast.reltuples
    ),
    tuple_size AS (
      SELECT *,
             4 + tpl_hdr_size + tpl_data_size + 2 * ma
               - CASE WHEN tpl_hdr_size % ma = 0 THEN ma ELSE tpl_hdr_size % ma END
               - CASE WHEN ceil(tpl_data_size)::int % ma = 0 THEN ma ELSE ceil(tpl_data_size)::int % ma END
               AS tpl_size
      FROM per_table
    ),
    estimate AS (
      SELECT schema, "table", fillfactor, no_estimate, bs,
             heap_pages + toast_pages AS pages,
             ceil(reltuples / ((bs - page_hdr) * fillfactor / (tpl_size * 100))) + ceil(toast_tuples / 4) AS expected_pages
      FROM tuple_size
    ),
    bloat AS (
      SELECT schema, "table", fillfactor, no_estimate,
             (pages * bs)::float8 AS "realBytes",
             (greatest(expected_pages, 0) * bs)::float8 AS "expectedBytes",
             (greatest(pages - expected_pages, 0) * bs)::float8 AS "bloatBytes",
             CASE WHEN pages > 0 THEN (greatest(pages - expected_pages, 0) / pages)::float8 ELSE 0 END AS "bloatRatio"
      FROM estimate
    )
    SELECT
      coalesce((SELECT sum("bloatBytes") FROM bloat WHERE NOT no_estimate), 0)::float8 AS "totalBloatBytes",
      (SELECT count(*) FROM bloat WHERE no_estimate)::int AS "unestimated",
      coalesce((
        SELECT json_agg(json_build_object(
                 'schema', schema, 'table', "table", 'bloatBytes', "bloatBytes", 'bloatRatio', "bloatRatio",
                 'realBytes', "realBytes", 'expectedBytes', "expectedBytes", 'fillfactor', fillfactor)
               ORDER BY "bloatBytes" DESC, schema, "table")
        FROM bloat
        WHERE NOT no_estimate AND "bloatBytes" >= $1
      ), '[]'::json) AS tables`,
} as const;
