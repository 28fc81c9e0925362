/**
 * index-audit's catalog queries. Each is one statement over the whole
 * database (never one per table) and reads only catalogs and statistics.
 *
 * Never queuing behind another session's lock: a function that opens a
 * relation takes ACCESS SHARE on it (pg_relation_size on the relation it
 * measures; pg_get_indexdef and pg_get_expr on the index's table, to name
 * its columns), and ACCESS SHARE waits behind an ACCESS EXCLUSIVE lock that
 * is held or merely queued: one ALTER TABLE waiting for a long transaction
 * would hold the statement until lock_timeout and fail the whole run. So
 * each statement first lists the relations of this database that some
 * session holds or awaits in ACCESS EXCLUSIVE mode (`locked`), and opens
 * none of them: their sizes are pg_class's (as of their last VACUUM, ANALYZE
 * or index build) and their definitions are left out (`lockedRelations`
 * names them per row). Expressions and predicates are compared as stored
 * node trees, which needs no lock. A lock that appears while the statement
 * runs can still make it wait: then the statement is run again with its
 * last parameter ($open) false, which opens nothing at all.
 *
 * A partitioned index has no storage and no statistics of its own; its
 * partitions' indexes, attached to it, cannot be dropped alone. So the
 * partitioned index (the top one of its tree) is what is judged, from its
 * leaf indexes at every level: their scans and sizes summed.
 * `pg_partition_tree` is not used: it locks every member of the tree.
 *
 * The sizing functions are only called on the few rows that survive every
 * other filter (MATERIALIZED CTEs make sure of that); the bloat estimate
 * uses `pg_class.relpages` alone.
 */
import { ACCESS_EXCLUSIVE_LOCKS, userRelation } from '../util/catalog-sql';

/**
 * Indexes that back a constraint (primary key, unique, exclusion) or that a
 * foreign key references. `IN (subquery)` runs as one hashed subplan, where a
 * correlated EXISTS could rescan pg_constraint per index when the planner
 * misjudges how many indexes are unused (it does: pg_stat_get_numscans() = 0
 * is estimated at under 1 %).
 */
const BACKS_CONSTRAINT = (indexOid: string) => `(${indexOid} IN (SELECT k.conindid FROM pg_catalog.pg_constraint k))`;

/** An index attached to a partitioned index: dropped or rebuilt only through it. */
const ATTACHED = (indexOid: string) => `(${indexOid} IN (SELECT h.inhrelid FROM pg_catalog.pg_inherits h))`;

/**
 * The relations of this database another session holds or waits for in
 * ACCESS EXCLUSIVE mode, with their names: not to be opened.
 */
const LOCKED = `
    locked AS MATERIALIZED (
      SELECT DISTINCT l.oid, ln.nspname || '.' || lc.relname AS name
      FROM (${ACCESS_EXCLUSIVE_LOCKS}) l
      JOIN pg_catalog.pg_class lc ON lc.oid = l.oid
      JOIN pg_catalog.pg_namespace ln ON ln.oid = lc.relnamespace
    )`;

/**
 * After WITH RECURSIVE: `leaves`, each top partitioned index's leaf indexes
 * at every level (`tree` walks down pg_inherits), and `partitioned`, per
 * top partitioned index, how many leaves and their scans summed.
 */
const PARTITIONS = `
    tree AS (
      SELECT c.oid AS root, c.oid AS member
      FROM pg_catalog.pg_class c
      WHERE c.relkind = 'I' AND NOT ${ATTACHED('c.oid')}
      UNION ALL
      SELECT t.root, h.inhrelid FROM tree t JOIN pg_catalog.pg_inherits h ON h.inhparent = t.member
    ), leaves AS MATERIALIZED (
      SELECT t.root, t.member AS oid, lc.relpages
      FROM tree t JOIN pg_catalog.pg_class lc ON lc.oid = t.member
      WHERE lc.relkind = 'i'
    ), partitioned AS MATERIALIZED (
      SELECT l.root, count(*)::int AS partitions, sum(coalesce(pg_stat_get_numscans(l.oid), 0))::float8 AS scans
      FROM leaves l GROUP BY l.root
    )`;

/** True when `$open` allows opening relations and `oid` is not locked: opening it cannot queue. */
const OPENABLE = (open: string, oid: string) => `(${open} AND NOT (${oid} IN (SELECT lk.oid FROM locked lk)))`;

/** pg_get_indexdef(idx), or NULL when it would have to wait for its table `tbl`. */
const DEFINITION = (open: string, idx: string, tbl: string) => `CASE WHEN ${OPENABLE(open, tbl)} THEN pg_get_indexdef(${idx}) END`;

/** A relation's size without opening it: its pages as of its last VACUUM, ANALYZE or index build. */
const CATALOG_BYTES = (relpages: string) => `(${relpages}::float8 * current_setting('block_size')::float8)`;

/**
 * CTE `leaf_sizes`: the size of each partitioned index of `source` (a CTE
 * with indexrelid and relkind), its leaves' summed, each measured when it
 * can be opened without queuing, else pg_class's figure; `estimated` when
 * any was. Only those indexes' leaves are measured.
 */
const LEAF_SIZES = (open: string, source: string) => `
    leaf_sizes AS MATERIALIZED (
      SELECT l.root,
             sum(CASE WHEN ${OPENABLE(open, 'l.oid')} THEN pg_relation_size(l.oid)::float8 ELSE ${CATALOG_BYTES('l.relpages')} END) AS bytes,
             bool_or(NOT ${OPENABLE(open, 'l.oid')}) AS estimated
      FROM leaves l
      WHERE l.root IN (SELECT src.indexrelid FROM ${source} src WHERE src.relkind = 'I')
      GROUP BY l.root
    )`;

/**
 * The size of index `idx` (`relkind` and `relpages` its pg_class's): a
 * partitioned index's from `ls`, its leaf_sizes row (LEFT JOINed); a plain
 * one's measured when it can be opened without queuing, else pg_class's.
 */
const INDEX_BYTES = (open: string, idx: string, relkind: string, relpages: string, ls: string) => `
      CASE WHEN ${relkind} = 'I' THEN coalesce(${ls}.bytes, 0)
           WHEN ${OPENABLE(open, idx)} THEN pg_relation_size(${idx})::float8
           ELSE ${CATALOG_BYTES(relpages)} END`;

/** Whether INDEX_BYTES took any of its figures from pg_class. */
const INDEX_SIZE_ESTIMATED = (open: string, idx: string, relkind: string, ls: string) => `
      CASE WHEN ${relkind} = 'I' THEN coalesce(${ls}.estimated, false) ELSE NOT ${OPENABLE(open, idx)} END`;

/**
 * The locked relations an index's row did not open (names, sorted): the
 * index, its leaves, its table (for its definition). The leaves are only
 * read when something is locked.
 */
const LOCKED_FOR_INDEX = (idx: string, tbl: string) => `
      ARRAY(SELECT lk.name FROM locked lk
            WHERE lk.oid IN (${idx}, ${tbl}) OR lk.oid IN (SELECT l.oid FROM leaves l WHERE l.root = ${idx})
            ORDER BY lk.name)`;

/** Scans of index `idx`: a partitioned one's are its leaves', summed (`pt`: its `partitioned` row, LEFT JOINed). */
const SCANS = (idx: string, relkind: string, pt: string) =>
  `CASE WHEN ${relkind} = 'I' THEN coalesce(${pt}.scans, 0) ELSE coalesce(pg_stat_get_numscans(${idx}), 0)::float8 END`;

/**
 * A stored node tree (pg_node_tree: an index's expressions or predicate) as
 * text without its parse locations, which differ between equal expressions
 * written at different places of a statement. Equal text, equal expression.
 */
const NODE_TEXT = (tree: string) => `regexp_replace(${tree}::text, ' :location -?[0-9]+', '', 'g')`;

export const SQL = {
  /** Once per run: when the statistics were reset, and how many indexes there are. */
  overview: `
    SELECT current_database() AS database,
           d.stats_reset AS "statsReset",
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
   * scanned since the statistics were reset, of at least $1 bytes: plain
   * indexes of tables and materialized views (as pg_stat_user_indexes), and
   * top partitioned indexes with at least one partition, their leaves'
   * scans and sizes summed. An index attached to a partitioned index is
   * left out: it is judged through its parent. $2: $open.
   */
  unused: `
    WITH RECURSIVE ${LOCKED}, ${PARTITIONS},
    candidates AS MATERIALIZED (
      SELECT i.indexrelid, i.indrelid, n.nspname AS schema, t.relname AS tbl, c.relname AS name, c.relkind, c.relpages,
             pt.partitions
      FROM pg_catalog.pg_index i
      JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
      JOIN pg_catalog.pg_class t ON t.oid = i.indrelid
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN partitioned pt ON pt.root = i.indexrelid
      WHERE i.indisvalid AND NOT i.indisunique AND NOT i.indisprimary
        AND ${userRelation('n', 'c')}
        AND ((c.relkind = 'i' AND t.relkind IN ('r', 'm') AND coalesce(pg_stat_get_numscans(i.indexrelid), 0) = 0)
             OR (c.relkind = 'I' AND pt.scans = 0))
        AND NOT ${BACKS_CONSTRAINT('i.indexrelid')}
        AND NOT ${ATTACHED('i.indexrelid')}
    ), ${LEAF_SIZES('$2', 'candidates')},
    sized AS MATERIALIZED (
      SELECT cd.*, ${INDEX_BYTES('$2', 'cd.indexrelid', 'cd.relkind', 'cd.relpages', 'ls')} AS bytes,
             ${INDEX_SIZE_ESTIMATED('$2', 'cd.indexrelid', 'cd.relkind', 'ls')} AS "sizeEstimated"
      FROM candidates cd LEFT JOIN leaf_sizes ls ON ls.root = cd.indexrelid
    )
    SELECT schema, tbl AS "table", name AS index, bytes, 0::float8 AS scans, partitions,
           "sizeEstimated", ${DEFINITION('$2', 'indexrelid', 'indrelid')} AS definition,
           ${LOCKED_FOR_INDEX('indexrelid', 'indrelid')} AS "lockedRelations"
    FROM sized
    WHERE bytes >= $1
    ORDER BY bytes DESC, schema, name`,

  /**
   * Valid indexes whose key columns (column or expression, operator class,
   * collation, ASC/DESC and NULLS order) are a prefix of another valid
   * index's on the same table, with the same access method and predicate,
   * and whose INCLUDE columns the other index also holds. A unique index is
   * only redundant beside a unique index on the same keys (and the same
   * NULLS [NOT] DISTINCT); a primary key or an index backing a constraint is
   * never the one to drop, nor one attached to a partitioned index (its
   * parent is judged on the parent table instead). Of two equivalent
   * indexes, the one kept is the primary key, else the one backing a
   * constraint, else the unique one, else the first by name. The covering
   * index named is the best one to keep.
   *
   * An expression column is keyed 'e' and the index's expressions compared
   * as a list: the dropped index's list (`({A} {B})`) must begin the other's
   * (`({A} {B} {C})`), node for node. $1: $open.
   */
  duplicates: `
    WITH RECURSIVE ${LOCKED}, ${PARTITIONS},
    idx AS MATERIALIZED (
      SELECT i.indexrelid, i.indrelid, n.nspname AS schema, t.relname AS tbl, c.relname AS name, c.relam, c.relkind, c.relpages,
             i.indisunique AS uniq, i.indisprimary AS pk, i.indnullsnotdistinct AS nnd,
             ${BACKS_CONSTRAINT('i.indexrelid')} AS backs, ${ATTACHED('i.indexrelid')} AS attached,
             ${NODE_TEXT('i.indpred')} AS predicate, ${NODE_TEXT('i.indexprs')} AS exprs,
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
          SELECT k.pos, CASE WHEN k.attnum <> 0 THEN 'c' || k.attnum ELSE 'e' END AS att,
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
             x.indexrelid, x.indrelid, x.relkind, x.relpages, x.schema, x.tbl, x.name, x.uniq,
             y.indexrelid AS "coveringOid", y.name AS covering,
             cardinality(x.keys) = cardinality(y.keys) AND y.included <@ x.allcols AS identical
      FROM idx x
      JOIN idx y ON y.indrelid = x.indrelid AND y.indexrelid <> x.indexrelid
      WHERE y.relam = x.relam
        AND y.predicate IS NOT DISTINCT FROM x.predicate
        AND NOT x.pk AND NOT x.backs AND NOT x.attached
        AND cardinality(x.keys) <= cardinality(y.keys)
        AND y.keys[1:cardinality(x.keys)] = x.keys
        AND (x.exprs IS NULL
             OR (starts_with(y.exprs, left(x.exprs, -1)) AND substr(y.exprs, length(x.exprs), 1) IN (' ', ')')))
        AND x.included <@ y.allcols
        AND (NOT x.uniq OR (y.uniq AND x.nnd = y.nnd AND cardinality(x.keys) = cardinality(y.keys)))
        AND (
          -- y holds strictly more: x is redundant whatever the names
          cardinality(x.keys) < cardinality(y.keys) OR NOT y.included <@ x.allcols
          -- the same index twice: keep the primary key, the constraint, the unique one, the first name
          OR y.pk OR y.backs OR (y.uniq AND NOT x.uniq) OR x.name > y.name
        )
      ORDER BY x.indexrelid, y.pk DESC, y.backs DESC, y.uniq DESC, cardinality(y.keys), y.name
    ), ${LEAF_SIZES('$1', 'pairs')}
    SELECT p.schema, p.tbl AS "table", p.name AS index, p.covering, p.identical, p.uniq AS "unique",
           ${INDEX_BYTES('$1', 'p.indexrelid', 'p.relkind', 'p.relpages', 'ls')} AS bytes,
           ${INDEX_SIZE_ESTIMATED('$1', 'p.indexrelid', 'p.relkind', 'ls')} AS "sizeEstimated",
           ${SCANS('p.indexrelid', 'p.relkind', 'pt')} AS scans, pt.partitions,
           ${DEFINITION('$1', 'p.indexrelid', 'p.indrelid')} AS definition,
           ${DEFINITION('$1', 'p."coveringOid"', 'p.indrelid')} AS "coveringDefinition",
           ${LOCKED_FOR_INDEX('p.indexrelid', 'p.indrelid')} AS "lockedRelations"
    FROM pairs p
    LEFT JOIN partitioned pt ON pt.root = p.indexrelid
    LEFT JOIN leaf_sizes ls ON ls.root = p.indexrelid
    ORDER BY p.schema, p.tbl, p.name`,

  /**
   * Indexes marked invalid, except those a CREATE INDEX CONCURRENTLY or a
   * REINDEX CONCURRENTLY is building right now. `validCopy` names a valid
   * index with the same definition (what an interrupted REINDEX CONCURRENTLY
   * leaves beside its `_ccnew` index): then dropping is all there is to do.
   * $1: $open.
   */
  invalid: `
    WITH RECURSIVE ${LOCKED}, ${PARTITIONS},
    bad AS MATERIALIZED (
      SELECT i.indexrelid, i.indrelid, n.nspname AS schema, t.relname AS tbl, c.relname AS name, c.relam, c.relkind, c.relpages,
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
    ), ${LEAF_SIZES('$1', 'bad')}
    SELECT b.schema, b.tbl AS "table", b.name AS index, b.uniq AS "unique", b.ready,
           ${INDEX_BYTES('$1', 'b.indexrelid', 'b.relkind', 'b.relpages', 'ls')} AS bytes,
           ${INDEX_SIZE_ESTIMATED('$1', 'b.indexrelid', 'b.relkind', 'ls')} AS "sizeEstimated",
           ${SCANS('b.indexrelid', 'b.relkind', 'pt')} AS scans, pt.partitions,
           ${DEFINITION('$1', 'b.indexrelid', 'b.indrelid')} AS definition,
           ${LOCKED_FOR_INDEX('b.indexrelid', 'b.indrelid')} AS "lockedRelations",
           copy.name AS "validCopy"
    FROM bad b
    LEFT JOIN partitioned pt ON pt.root = b.indexrelid
    LEFT JOIN leaf_sizes ls ON ls.root = b.indexrelid
    JOIN pg_catalog.pg_index bi ON bi.indexrelid = b.indexrelid
    LEFT JOIN LATERAL (
      SELECT oc.relname AS name
      FROM pg_catalog.pg_index o
      JOIN pg_catalog.pg_class oc ON oc.oid = o.indexrelid
      WHERE o.indrelid = b.indrelid AND o.indexrelid <> b.indexrelid AND o.indisvalid
        AND oc.relam = b.relam AND o.indisunique = bi.indisunique
        AND o.indkey = bi.indkey AND o.indclass = bi.indclass
        AND o.indcollation = bi.indcollation AND o.indoption = bi.indoption
        AND ${NODE_TEXT('o.indexprs')} IS NOT DISTINCT FROM ${NODE_TEXT('bi.indexprs')}
        AND ${NODE_TEXT('o.indpred')} IS NOT DISTINCT FROM ${NODE_TEXT('bi.indpred')}
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
   * $6: $open.
   */
  missing: `
    WITH ${LOCKED},
    candidates AS MATERIALIZED (
      SELECT s.relid, s.schemaname, s.relname, s.seq_scan, s.seq_tup_read, s.idx_scan, s.n_live_tup, c.relpages,
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
      SELECT cd.*,
             CASE WHEN ${OPENABLE('$6', 'cd.relid')} THEN pg_relation_size(cd.relid)::float8 ELSE ${CATALOG_BYTES('cd.relpages')} END AS bytes,
             NOT ${OPENABLE('$6', 'cd.relid')} AS "sizeEstimated"
      FROM candidates cd
    )
    SELECT schemaname AS schema, relname AS "table", rule, bytes, "sizeEstimated",
           seq_scan::float8 AS "seqScans", seq_tup_read::float8 AS "seqRowsRead",
           idx_scan::float8 AS "indexScans", n_live_tup::float8 AS "liveRows",
           (SELECT count(*) FROM pg_catalog.pg_index i WHERE i.indrelid = relid)::int AS indexes,
           ARRAY(SELECT lk.name FROM locked lk WHERE lk.oid = relid) AS "lockedRelations"
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
   * A partition's index is counted in its top partitioned index, which is
   * judged on its leaves' figures summed (`partitionsEstimated` of its
   * `partitions`: a leaf without statistics is not estimated).
   * Returns the total over every estimated index and those wasting at least $1 bytes.
   */
  bloat: `
    WITH RECURSIVE ${PARTITIONS},
    idx AS MATERIALIZED (
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
    ), judged AS MATERIALIZED (
      -- a plain index as estimated; a partitioned one from its estimated leaves, summed, under its own names
      SELECT e.indexrelid, e.schema, e.tbl, e.name, e.relpages * e.bs AS bytes, e.expected * e.bs AS expected_bytes, e.wasted,
             e.reltuples, e.fillfactor, NULL::float8 AS scans, NULL::int AS partitions, NULL::int AS "partitionsEstimated"
      FROM est e
      WHERE NOT (e.indexrelid IN (SELECT l.oid FROM leaves l))
      UNION ALL
      SELECT g.root, n.nspname, t.relname, c.relname, g.bytes, g.expected_bytes, g.wasted,
             g.reltuples, g.fillfactor, pt.scans, pt.partitions, g."partitionsEstimated"
      FROM (
        SELECT l.root, sum(e.relpages * e.bs) AS bytes, sum(e.expected * e.bs) AS expected_bytes, sum(e.wasted) AS wasted,
               sum(e.reltuples) AS reltuples, max(e.fillfactor) AS fillfactor, count(*)::int AS "partitionsEstimated"
        FROM est e JOIN leaves l ON l.oid = e.indexrelid
        GROUP BY l.root
      ) g
      JOIN partitioned pt ON pt.root = g.root
      JOIN pg_catalog.pg_class c ON c.oid = g.root
      JOIN pg_catalog.pg_index i ON i.indexrelid = g.root
      JOIN pg_catalog.pg_class t ON t.oid = i.indrelid
      JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
    )
    SELECT coalesce(sum(wasted), 0)::float8 AS "totalWasted",
           count(*)::int AS estimated,
           coalesce(json_agg(json_build_object(
             'schema', schema, 'table', tbl, 'index', name,
             'bytes', bytes, 'expectedBytes', expected_bytes, 'wastedBytes', wasted,
             'rows', reltuples, 'fillfactor', fillfactor,
             'scans', coalesce(scans, pg_stat_get_numscans(indexrelid), 0),
             'partitions', partitions, 'partitionsEstimated', "partitionsEstimated")
             ORDER BY wasted DESC, schema, name) FILTER (WHERE wasted >= $1), '[]') AS flagged
    FROM judged`,
} as const;
