/**
 * index-audit's catalog queries. Each is one statement over the whole
 * database (never one per table), reads only catalogs and statistics, and
 * takes no lock beyond AccessShareLock: `pg_relation_size` is only called on
 * the few rows that survive every other filter (MATERIALIZED CTEs make sure
 * of that), and the bloat estimate uses `pg_class.relpages`, which needs none.
 */
import { userRelation } from '../util/catalog-sql';

/**
 * Indexes that back a constraint (primary key, unique, exclusion) or that a
 * foreign key references. `IN (subquery)` runs as one hashed subplan, where a
 * correlated EXISTS could rescan pg_constraint per index when the planner
 * misjudges how many indexes are unused (it does: pg_stat_get_numscans() = 0
 * is estimated at under 1 %).
 */
const BACKS_CONSTRAINT = (indexOid: string) => `(${indexOid} IN (SELECT k.conindid FROM pg_catalog.pg_constraint k))`;

export const SQL = {
  /** Once per run: when the statistics were reset, and how many indexes there are. */
  overview: `
    SELECT d.stats_reset AS "statsReset",
           extract(epoch FROM now() - d.stats_reset)::float8 AS "statsAgeSeconds",
           pg_is_in_recovery() AS "inRecovery",
           (SELECT count(*)
              FROM pg_catalog.pg_index i
              JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
              JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE ${userRelation('n', 'c')})::int AS "indexesTotal"
    FROM pg_catalog.pg_stat_database d
    WHERE d.datname = current_database()`,

  /**
   * Valid, non-unique, non-primary indexes backing no constraint, never
   * scanned since the statistics were reset, of at least $1 bytes. An index
   * attached to a partitioned index is left out: it cannot be dropped alone.
   */
  unused: `
    WITH candidates AS MATERIALIZED (
      SELECT s.indexrelid, s.schemaname, s.relname, s.indexrelname, s.idx_scan
      FROM pg_catalog.pg_stat_user_indexes s
      JOIN pg_catalog.pg_index i ON i.indexrelid = s.indexrelid
      JOIN pg_catalog.pg_class c ON c.oid = s.indexrelid
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE s.idx_scan = 0
        AND i.indisvalid AND NOT i.indisunique AND NOT i.indisprimary
        AND ${userRelation('n', 'c')}
        AND NOT ${BACKS_CONSTRAINT('i.indexrelid')}
        AND NOT (i.indexrelid IN (SELECT h.inhrelid FROM pg_catalog.pg_inherits h))
    ), sized AS MATERIALIZED (
      SELECT cd.*, pg_relation_size(cd.indexrelid)::float8 AS bytes FROM candidates cd
    )
    SELECT schemaname AS schema, relname AS "table", indexrelname AS index, bytes,
           idx_scan::float8 AS scans, pg_get_indexdef(indexrelid) AS definition
    FROM sized
    WHERE bytes >= $1
    ORDER BY bytes DESC, schemaname, indexrelname`,

  /**
   * Valid indexes whose key columns (column or expression, operator class,
   * collation, ASC/DESC and NULLS order) are a prefix of another valid
   * index's on the same table, with the same access method and predicate,
   * and whose INCLUDE columns the other index also holds. A unique index is
   * only redundant beside a unique index on the same keys (and the same
   * NULLS [NOT] DISTINCT); a primary key or an index backing a constraint is
   * never the one to drop. Of two equivalent indexes, the one kept is the
   * primary key, else the one backing a constraint, else the unique one, else
   * the first by name. The covering index named is the best one to keep.
   */
  duplicates: `
    WITH idx AS MATERIALIZED (
      SELECT i.indexrelid, i.indrelid, n.nspname AS schema, t.relname AS tbl, c.relname AS name, c.relam,
             i.indisunique AS uniq, i.indisprimary AS pk, i.indnullsnotdistinct AS nnd,
             ${BACKS_CONSTRAINT('i.indexrelid')} AS backs,
             pg_get_expr(i.indpred, i.indrelid) AS predicate,
             cols.keys, cols.included, cols.allcols
      FROM pg_catalog.pg_index i
      JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
      JOIN pg_catalog.pg_class t ON t.oid = i.indrelid
      JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
      CROSS JOIN LATERAL (
        SELECT array_agg(concat_ws('|', col.att, col.opclass, col.coll, col.opt) ORDER BY col.pos)
                 FILTER (WHERE col.pos <= i.indnkeyatts) AS keys,
               coalesce(array_agg(col.att ORDER BY col.pos) FILTER (WHERE col.pos > i.indnkeyatts), '{}') AS included,
               array_agg(col.att ORDER BY col.pos) AS allcols
        FROM (
          SELECT k.pos,
                 CASE WHEN k.attnum <> 0 THEN 'c' || k.attnum ELSE 'e:' || pg_get_indexdef(i.indexrelid, k.pos::int, false) END AS att,
                 k.opclass::text AS opclass, k.coll::text AS coll, k.opt::text AS opt
          FROM unnest(i.indkey::int2[], i.indclass::oid[], i.indcollation::oid[], i.indoption::int2[])
               WITH ORDINALITY AS k(attnum, opclass, coll, opt, pos)
        ) col
      ) cols
      WHERE i.indisvalid
        AND ${userRelation('n', 't')}
        AND EXISTS (SELECT 1 FROM pg_catalog.pg_index o WHERE o.indrelid = i.indrelid AND o.indexrelid <> i.indexrelid)
    ), pairs AS MATERIALIZED (
      SELECT DISTINCT ON (x.indexrelid)
             x.indexrelid, x.schema, x.tbl, x.name, x.uniq,
             y.name AS covering, pg_get_indexdef(y.indexrelid) AS "coveringDefinition",
             cardinality(x.keys) = cardinality(y.keys) AND y.included <@ x.allcols AS identical
      FROM idx x
      JOIN idx y ON y.indrelid = x.indrelid AND y.indexrelid <> x.indexrelid
      WHERE y.relam = x.relam
        AND y.predicate IS NOT DISTINCT FROM x.predicate
        AND NOT x.pk AND NOT x.backs
        AND cardinality(x.keys) <= cardinality(y.keys)
        AND y.keys[1:cardinality(x.keys)] = x.keys
        AND x.included <@ y.allcols
        AND (NOT x.uniq OR (y.uniq AND x.nnd = y.nnd AND cardinality(x.keys) = cardinality(y.keys)))
        AND (
          -- y holds strictly more: x is redundant whatever the names
          cardinality(x.keys) < cardinality(y.keys) OR NOT y.included <@ x.allcols
          -- the same index twice: keep the primary key, the constraint, the unique one, the first name
          OR y.pk OR y.backs OR (y.uniq AND NOT x.uniq) OR x.name > y.name
        )
      ORDER BY x.indexrelid, y.pk DESC, y.backs DESC, y.uniq DESC, cardinality(y.keys), y.name
    )
    SELECT p.schema, p.tbl AS "table", p.name AS index, p.covering, p.identical, p.uniq AS "unique",
           pg_relation_size(p.indexrelid)::float8 AS bytes,
           coalesce(pg_stat_get_numscans(p.indexrelid), 0)::float8 AS scans,
           pg_get_indexdef(p.indexrelid) AS definition, p."coveringDefinition"
    FROM pairs p
    ORDER BY p.schema, p.tbl, p.name`,

  /**
   * Indexes marked invalid, except those a CREATE INDEX CONCURRENTLY or a
   * REINDEX CONCURRENTLY is building right now. `validCopy` names a valid
   * index with the same definition (what an interrupted REINDEX CONCURRENTLY
   * leaves beside its `_ccnew` index): then dropping is all there is to do.
   */
  invalid: `
    WITH bad AS MATERIALIZED (
      SELECT i.indexrelid, i.indrelid, n.nspname AS schema, t.relname AS tbl, c.relname AS name, c.relam,
             i.indisunique AS uniq, i.indisready AS ready
      FROM pg_catalog.pg_index i
      JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
      JOIN pg_catalog.pg_class t ON t.oid = i.indrelid
      JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
      WHERE NOT i.indisvalid
        AND ${userRelation('n', 't')}
        AND NOT EXISTS (
          SELECT 1 FROM pg_catalog.pg_stat_progress_create_index p
          WHERE p.index_relid = i.indexrelid
             OR (p.relid = i.indrelid AND p.command = 'REINDEX CONCURRENTLY'))
    )
    SELECT b.schema, b.tbl AS "table", b.name AS index, b.uniq AS "unique", b.ready,
           pg_relation_size(b.indexrelid)::float8 AS bytes,
           coalesce(pg_stat_get_numscans(b.indexrelid), 0)::float8 AS scans,
           pg_get_indexdef(b.indexrelid) AS definition,
           copy.name AS "validCopy"
    FROM bad b
    JOIN pg_catalog.pg_index bi ON bi.indexrelid = b.indexrelid
    LEFT JOIN LATERAL (
      SELECT oc.relname AS name
      FROM pg_catalog.pg_index o
      JOIN pg_catalog.pg_class oc ON oc.oid = o.indexrelid
      WHERE o.indrelid = b.indrelid AND o.indexrelid <> b.indexrelid AND o.indisvalid
        AND oc.relam = b.relam AND o.indisunique = bi.indisunique
        AND o.indkey = bi.indkey AND o.indclass = bi.indclass
        AND o.indcollation = bi.indcollation AND o.indoption = bi.indoption
        AND pg_get_expr(o.indexprs, o.indrelid) IS NOT DISTINCT FROM pg_get_expr(bi.indexprs, bi.indrelid)
        AND pg_get_expr(o.indpred, o.indrelid) IS NOT DISTINCT FROM pg_get_expr(bi.indpred, bi.indrelid)
      ORDER BY oc.relname
      LIMIT 1
    ) copy ON true
    ORDER BY b.schema, b.tbl, b.name`,

  /**
   * Tables that sequential scans read in bulk. Two rules:
   * - `low_index_use`, PgHero's: some index scans, but fewer than $2 % of
   *   all scans, on a table of at least $1 live rows;
   * - `no_index_use`, the runbook's `seq_scan > 1000 AND idx_scan = 0`
   *   refined: at least $3 sequential scans reading at least $4 rows each on
   *   average, no index scan at all (or no index), a table of at least $5 bytes.
   */
  missing: `
    WITH candidates AS MATERIALIZED (
      SELECT s.relid, s.schemaname, s.relname, s.seq_scan, s.seq_tup_read, s.idx_scan, s.n_live_tup,
             CASE WHEN coalesce(s.idx_scan, 0) = 0 THEN 'no_index_use' ELSE 'low_index_use' END AS rule
      FROM pg_catalog.pg_stat_user_tables s
      JOIN pg_catalog.pg_class c ON c.oid = s.relid
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'm')
        AND ${userRelation('n', 'c')}
        AND (
          (s.idx_scan > 0 AND s.n_live_tup >= $1 AND 100.0 * s.idx_scan / (s.seq_scan + s.idx_scan) < $2)
          OR (coalesce(s.idx_scan, 0) = 0 AND s.seq_scan >= $3 AND s.seq_tup_read::float8 / s.seq_scan >= $4)
        )
    ), sized AS MATERIALIZED (
      SELECT cd.*, pg_relation_size(cd.relid)::float8 AS bytes FROM candidates cd
    )
    SELECT schemaname AS schema, relname AS "table", rule, bytes,
           seq_scan::float8 AS "seqScans", seq_tup_read::float8 AS "seqRowsRead",
           idx_scan::float8 AS "indexScans", n_live_tup::float8 AS "liveRows",
           (SELECT count(*) FROM pg_catalog.pg_index i WHERE i.indrelid = relid)::int AS indexes
    FROM sized
    WHERE rule = 'low_index_use' OR bytes >= $5
    ORDER BY seq_tup_read DESC, schemaname, relname`,

  /**
   * Estimated wasted space of every valid btree index, from the catalog and
   * pg_stats alone: the model of ioguix's btree bloat estimation (PgHero's
   * index_bloat is an older form of it), written afresh. Expected pages = a
   * metapage + leaf pages holding reltuples items at the index's fillfactor
   * + one level of internal pages at 70 % (none when the root is the only
   * leaf). An item is its line pointer (4 bytes) and its MAXALIGNed tuple:
   * IndexTupleData (8 bytes; 16 for every item when a column has nulls,
   * which overstates the expected size) and the columns' average widths net
   * of nulls. Not estimated: an index with a column that has no statistics,
   * or a `name` column. B-tree deduplication (PG13+) is not modelled: it
   * makes an index smaller than expected, so it can hide bloat, not invent it.
   * Returns the total over every estimated index and those wasting at least $1 bytes.
   */
  bloat: `
    WITH idx AS MATERIALIZED (
      SELECT i.indexrelid, i.indrelid, i.indkey, n.nspname AS schema, t.relname AS tbl, c.relname AS name,
             c.relpages::float8 AS relpages, c.reltuples::float8 AS reltuples,
             coalesce((SELECT o.option_value::float8 FROM pg_options_to_table(c.reloptions) o
                        WHERE o.option_name = 'fillfactor'), 90) AS fillfactor
      FROM pg_catalog.pg_index i
      JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
      JOIN pg_catalog.pg_class t ON t.oid = i.indrelid
      JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
      WHERE c.relam = (SELECT oid FROM pg_catalog.pg_am WHERE amname = 'btree')
        AND c.relkind = 'i' AND i.indisvalid AND c.relpages > 0 AND c.reltuples >= 0
        AND ${userRelation('n', 't')}
    ), cols AS (
      -- the statistics of a plain column are the table's; an expression's are the index's own
      SELECT x.indexrelid,
             CASE WHEN k.attnum <> 0 THEN x.indrelid ELSE x.indexrelid END AS statrel,
             CASE WHEN k.attnum <> 0 THEN k.attnum ELSE k.pos::int2 END AS statatt
      FROM idx x, unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, pos)
    ), widths AS (
      SELECT cl.indexrelid,
             count(*) AS columns, count(s.attname) AS "withStats",
             bool_or(a.atttypid = 'pg_catalog.name'::regtype) AS "hasName",
             coalesce(max(s.null_frac), 0) > 0 AS "hasNulls",
             sum((1 - s.null_frac) * s.avg_width) AS width
      FROM cols cl
      JOIN pg_catalog.pg_attribute a ON a.attrelid = cl.statrel AND a.attnum = cl.statatt
      JOIN pg_catalog.pg_class r ON r.oid = cl.statrel
      JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
      LEFT JOIN pg_catalog.pg_stats s
        ON s.schemaname = rn.nspname AND s.tablename = r.relname AND s.attname = a.attname AND NOT s.inherited
      GROUP BY cl.indexrelid
    ), sizes AS (
      SELECT x.*, current_setting('block_size')::float8 AS bs,
             -- line pointer + MAXALIGN(header + data), MAXALIGN being 8 on 64-bit builds
             4 + 8 * ceil(((CASE WHEN w."hasNulls" THEN 16 ELSE 8 END) + w.width) / 8) AS item
      FROM idx x
      JOIN widths w ON w.indexrelid = x.indexrelid
      WHERE w."withStats" = w.columns AND NOT w."hasName"
    ), est AS MATERIALIZED (
      SELECT z.*, greatest(z.relpages - z.expected, 0) * z.bs AS wasted
      FROM (
        SELECT s.*, 1 + leaf + CASE WHEN leaf > 1 THEN ceil(leaf / greatest(floor((s.bs - 40) * 0.7 / s.item), 2)) ELSE 0 END AS expected
        FROM sizes s,
             LATERAL (SELECT ceil(s.reltuples / greatest(floor((s.bs - 40) * s.fillfactor / 100 / s.item), 1)) AS leaf) l
      ) z
    )
    SELECT coalesce(sum(wasted), 0)::float8 AS "totalWasted",
           count(*)::int AS estimated,
           coalesce(json_agg(json_build_object(
             'schema', schema, 'table', tbl, 'index', name,
             'bytes', relpages * bs, 'expectedBytes', expected * bs, 'wastedBytes', wasted,
             'rows', reltuples, 'fillfactor', fillfactor,
             'scans', coalesce(pg_stat_get_numscans(indexrelid), 0))
             ORDER BY wasted DESC, schema, name) FILTER (WHERE wasted >= $1), '[]') AS flagged
    FROM est`,
} as const;
