/**
 * The disk-check task's SQL: four catalog queries per run, whatever the
 * number of tables, and one on caretaker's own history. Sizes come from the
 * size functions (they stat the relation files and take AccessShareLock);
 * the bloat figure is an estimate from pg_class and pg_stats.
 */
import { ACCESS_EXCLUSIVE_LOCKS, userRelation } from '../util/catalog-sql';
import { didItsWork } from '../results/store';

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
   * The $1 largest tables and the $1 largest indexes, in one statement, and
   * the user relations it did not size because another session holds or
   * awaits an ACCESS EXCLUSIVE lock on them. That is the one mode the size
   * functions' ACCESS SHARE waits for, and an awaited one counts: a queued
   * ALTER TABLE makes every later ACCESS SHARE queue behind it. Skipping
   * those up front, from one read of pg_locks, keeps one migration from
   * costing every table's figure (a per-table try would be a round trip
   * per table). A lock taken after that read is caught by the caller's
   * short lock_timeout.
   *
   * A table is skipped when it, one of its indexes, its toast table or the
   * toast's index is locked (pg_total_relation_size opens them all); an
   * index when it is. A skipped relation's estimate is pg_class's relpages
   * (as of its last VACUUM, ANALYZE or CREATE INDEX), which needs no lock.
   *
   * table + index + toast = total: pg_table_size counts the heap's forks
   * plus the toast table and its index, pg_indexes_size every index's forks.
   *
   * One row: tables, indexes, skipped (the 100 largest by estimate) and
   * skippedCount.
   */
  relationSizes: `
    WITH locked AS MATERIALIZED (${ACCESS_EXCLUSIVE_LOCKS}
    ),
    locked_table AS MATERIALIZED (
      SELECT coalesce(owner.oid, base.oid) AS oid, l.pid, l.granted
      FROM locked l
      LEFT JOIN pg_index i ON i.indexrelid = l.oid
      JOIN pg_class base ON base.oid = coalesce(i.indrelid, l.oid)
      LEFT JOIN pg_class owner ON base.relkind = 't' AND owner.reltoastrelid = base.oid
    ),
    user_tables AS (
      SELECT c.oid, c.reltoastrelid, n.nspname AS schema, c.relname AS "table"
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'm') AND ${userRelation('n', 'c')}
    ),
    user_indexes AS (
      SELECT c.oid, c.relpages, n.nspname AS schema, c.relname AS index, t.relname AS "table"
      FROM pg_index i
      JOIN pg_class c ON c.oid = i.indexrelid
      JOIN pg_class t ON t.oid = i.indrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'i' AND ${userRelation('n', 'c')}
    ),
    top_tables AS (
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
          SELECT t.oid, t.reltoastrelid, t.schema, t."table",
                 pg_total_relation_size(t.oid)::float8 AS total_bytes
          FROM user_tables t
          WHERE NOT EXISTS (SELECT 1 FROM locked_table l WHERE l.oid = t.oid)
          ORDER BY total_bytes DESC NULLS LAST, t.schema, t."table"
          LIMIT $1
        ) top
      ) sized
      WHERE total_bytes IS NOT NULL
    ),
    top_indexes AS (
      SELECT schema, index, "table", pg_total_relation_size(x.oid)::float8 AS bytes
      FROM user_indexes x
      WHERE NOT EXISTS (SELECT 1 FROM locked l WHERE l.oid = x.oid)
      ORDER BY bytes DESC NULLS LAST, schema, index
      LIMIT $1
    ),
    skipped AS (
      SELECT t.schema, t."table" AS name, 'table' AS kind,
             (coalesce((SELECT sum(r.relpages) FROM pg_class r WHERE r.oid IN (t.oid, t.reltoastrelid)), 0)
              + coalesce((SELECT sum(ic.relpages) FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid
                          WHERE x.indrelid IN (t.oid, t.reltoastrelid)), 0)
             )::float8 * current_setting('block_size')::float8 AS "estimatedBytes",
             l."lockedBy"
      FROM user_tables t
      JOIN (SELECT oid, jsonb_agg(DISTINCT jsonb_build_object('pid', pid, 'granted', granted)) AS "lockedBy"
            FROM locked_table GROUP BY oid) l ON l.oid = t.oid
      UNION ALL
      SELECT x.schema, x.index, 'index',
             x.relpages::float8 * current_setting('block_size')::float8,
             l."lockedBy"
      FROM user_indexes x
      JOIN (SELECT oid, jsonb_agg(DISTINCT jsonb_build_object('pid', pid, 'granted', granted)) AS "lockedBy"
            FROM locked GROUP BY oid) l ON l.oid = x.oid
    )
    SELECT
      coalesce((SELECT json_agg(t ORDER BY "totalBytes" DESC, schema, "table") FROM top_tables t), '[]'::json) AS tables,
      coalesce((SELECT json_agg(i ORDER BY bytes DESC, schema, index) FROM top_indexes i WHERE bytes IS NOT NULL), '[]'::json) AS indexes,
      (SELECT count(*) FROM skipped)::int AS "skippedCount",
      coalesce((
        SELECT json_agg(s ORDER BY "estimatedBytes" DESC, schema, name)
        FROM (SELECT * FROM skipped ORDER BY "estimatedBytes" DESC, schema, name LIMIT 100) s
      ), '[]'::json) AS skipped`,

  /**
   * Bounds every lock wait of the current transaction: the sizes are taken
   * under a lock_timeout much shorter than the session's.
   */
  localLockTimeout: `SELECT set_config('lock_timeout', $1, true)`,

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

  /**
   * In caretaker's state database: when the last completed disk-check of
   * this target ($1 task, $2 target) finished, and the newest one that
   * finished at or before $3 (the growth baseline) with the size and the
   * database it measured (runs_task_target_finished_at_idx).
   */
  growthBaseline: `
    SELECT
      (SELECT max(finished_at) FROM caretaker.runs WHERE task = $1 AND target = $2 AND ${didItsWork()}) AS "lastAt",
      base.finished_at AS "baseAt",
      base.bytes,
      base.database
    FROM (SELECT 1) one
    LEFT JOIN LATERAL (
      SELECT r.finished_at,
             r.result->'metrics'->'database_size_bytes' AS bytes,
             jsonb_path_query_first(r.result, '$.findings[*] ? (@.code == "database_size").details.database') #>> '{}' AS database
      FROM caretaker.runs r
      WHERE r.task = $1 AND r.target = $2 AND ${didItsWork('r')} AND r.finished_at <= $3
      ORDER BY r.finished_at DESC, r.id DESC
      LIMIT 1
    ) base ON true`,
} as const;
