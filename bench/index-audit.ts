/**
 * index-audit on a large catalog (2,000 tables, 8,000 indexes), each part
 * beside a PgHero-style baseline measured in the same run, on the same
 * session: PgHero's unused_indexes, missing_indexes and index_bloat queries,
 * and its duplicate and invalid checks, which load every index and compare
 * definitions in Ruby (here in JS, the same way). The baselines are written
 * from PgHero's logic (lib/pghero/methods/indexes.rb), not copied. Each
 * figure is the best of 3; the database is dropped afterwards.
 */
import { randomBytes } from 'node:crypto';
import { Client, Pool } from 'pg';
import pino from 'pino';
import { indexAudit, SQL } from '../src/jobs/index-audit';
import { validateConfig } from '../src/config/load';
import { TASKS } from '../src/jobs';
import { runTask } from '../src/worker/run-task';

const TABLES = 2000;
/** Tables per DDL transaction: each holds ~8 relation locks per table, under max_locks_per_transaction × max_connections. */
const BATCH = 100;
const ROWS_PER_TABLE = 50;

/** Four indexes per table (the primary key and three), in four shapes that cover prefixes, expressions, predicates and uniques. */
function batchDdl(from: number, to: number): string {
  return `DO $$
  BEGIN
    FOR i IN ${from}..${to} LOOP
      EXECUTE format('CREATE TABLE bench.t%s (id bigint PRIMARY KEY, a int, b int, c text, d timestamptz)', i);
      CASE i % 4
        WHEN 0 THEN
          EXECUTE format('CREATE INDEX t%s_a ON bench.t%s (a)', i, i);
          EXECUTE format('CREATE INDEX t%s_ab ON bench.t%s (a, b)', i, i);
          EXECUTE format('CREATE INDEX t%s_c ON bench.t%s (c)', i, i);
        WHEN 1 THEN
          EXECUTE format('CREATE INDEX t%s_b ON bench.t%s (b)', i, i);
          EXECUTE format('CREATE INDEX t%s_lc ON bench.t%s (lower(c))', i, i);
          EXECUTE format('CREATE INDEX t%s_d ON bench.t%s (d DESC)', i, i);
        WHEN 2 THEN
          EXECUTE format('CREATE INDEX t%s_a_part ON bench.t%s (a) WHERE b > 0', i, i);
          EXECUTE format('CREATE INDEX t%s_ab ON bench.t%s (a, b)', i, i);
          EXECUTE format('CREATE INDEX t%s_dc ON bench.t%s (d, c)', i, i);
        ELSE
          EXECUTE format('CREATE UNIQUE INDEX t%s_c_key ON bench.t%s (c)', i, i);
          EXECUTE format('CREATE INDEX t%s_ca ON bench.t%s (c, a)', i, i);
          EXECUTE format('CREATE INDEX t%s_id ON bench.t%s (id)', i, i);
      END CASE;
      EXECUTE format('INSERT INTO bench.t%s SELECT g, g %% 7, g %% 3, md5(g::text), now() - g * interval ''1 min''
                      FROM generate_series(1, ${ROWS_PER_TABLE}) g', i);
    END LOOP;
  END $$`;
}

// ---- PgHero-style baselines -------------------------------------------------

/** PgHero unused_indexes(max_scans: 0): non-unique indexes with no scans, by size. */
const PGHERO_UNUSED = `
  SELECT s.schemaname AS schema, s.relname AS "table", s.indexrelname AS index,
         pg_relation_size(x.indexrelid) AS size_bytes, s.idx_scan AS index_scans
  FROM pg_stat_user_indexes s JOIN pg_index x ON x.indexrelid = s.indexrelid
  WHERE NOT x.indisunique AND s.idx_scan <= 0
  ORDER BY pg_relation_size(x.indexrelid) DESC, s.relname`;

/** PgHero indexes: every user index with its definition, columns and method cut out of pg_get_indexdef by regexps. */
const PGHERO_INDEXES = `
  SELECT s.schemaname AS schema, t.relname AS "table", ix.relname AS name,
         regexp_replace(pg_get_indexdef(x.indexrelid), '^[^\\(]*\\((.*)\\)$', '\\1') AS columns,
         regexp_replace(pg_get_indexdef(x.indexrelid), '.* USING ([^ ]*) \\(.*', '\\1') AS using,
         x.indisunique AS "unique", x.indisprimary AS "primary", x.indisvalid AS valid,
         x.indexprs::text AS indexprs, x.indpred::text AS indpred, pg_get_indexdef(x.indexrelid) AS definition
  FROM pg_index x
  JOIN pg_class t ON t.oid = x.indrelid
  JOIN pg_class ix ON ix.oid = x.indexrelid
  LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = x.indexrelid
  WHERE s.schemaname IS NOT NULL
  ORDER BY 1, 2`;

/** PgHero running_queries, which its invalid check reads to spare indexes being built. */
const PGHERO_RUNNING = `
  SELECT pid, state, query FROM pg_stat_activity
  WHERE state <> 'idle' AND pid <> pg_backend_pid() AND datname = current_database()`;

/** PgHero missing_indexes: under 95 % index scans on a table of 10,000+ rows. */
const PGHERO_MISSING = `
  SELECT schemaname AS schema, relname AS "table", n_live_tup AS estimated_rows,
         CASE idx_scan WHEN 0 THEN 'Insufficient data' ELSE (100 * idx_scan / (seq_scan + idx_scan))::text END AS percent_of_times_index_used
  FROM pg_stat_user_tables
  WHERE idx_scan > 0 AND (100 * idx_scan / (seq_scan + idx_scan)) < 95 AND n_live_tup >= 10000
  ORDER BY n_live_tup DESC, relname`;

/**
 * PgHero index_bloat (the jberkus/mbanck btree estimate): index columns
 * split out of indkey's text, pg_stats matched through a regclass cast of
 * each row's names, no fillfactor, wasted bytes of at least $1.
 */
const PGHERO_BLOAT = `
  WITH atts AS (
    SELECT nspname, relname, reltuples, relpages, indrelid, relam, indexrelid AS index_oid,
           regexp_split_to_table(indkey::text, ' ')::smallint AS attnum
    FROM pg_index JOIN pg_class ON pg_class.oid = pg_index.indexrelid
    JOIN pg_namespace ON pg_namespace.oid = pg_class.relnamespace
    JOIN pg_am ON pg_class.relam = pg_am.oid
    WHERE pg_am.amname = 'btree'
  ), item_sizes AS (
    SELECT i.nspname, i.relname, i.reltuples, i.relpages, i.relam,
           (quote_ident(s.schemaname) || '.' || quote_ident(s.tablename))::regclass AS starelid,
           a.attrelid AS table_oid, i.index_oid,
           current_setting('block_size')::numeric AS bs,
           CASE WHEN version() ~ 'mingw32' OR version() ~ '64-bit' THEN 8 ELSE 4 END AS maxalign,
           24 AS pagehdr,
           CASE WHEN max(coalesce(s.null_frac, 0)) = 0 THEN 2 ELSE 6 END AS tuple_hdr,
           sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 2048)) AS datawidth
    FROM pg_attribute a
    JOIN pg_stats s ON (quote_ident(s.schemaname) || '.' || quote_ident(s.tablename))::regclass = a.attrelid AND s.attname = a.attname
    JOIN atts i ON i.indrelid = a.attrelid AND a.attnum = i.attnum
    WHERE a.attnum > 0
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
  ), aligned AS (
    SELECT bs, nspname, relname AS index_name, reltuples, relpages, relam, table_oid, index_oid, pagehdr,
           (2 + maxalign - CASE WHEN tuple_hdr % maxalign = 0 THEN maxalign ELSE tuple_hdr % maxalign END
              + datawidth + maxalign - CASE WHEN datawidth::integer % maxalign = 0 THEN maxalign ELSE datawidth::integer % maxalign END
           )::numeric AS hdrwidth
    FROM item_sizes
  ), otta AS (
    SELECT bs, nspname, table_oid, index_oid, index_name, relpages,
           coalesce(ceil((reltuples * (4 + hdrwidth)) / (bs - pagehdr::float))
                    + CASE WHEN am.amname IN ('hash', 'btree') THEN 1 ELSE 0 END, 0) AS otta
    FROM aligned LEFT JOIN pg_am am ON aligned.relam = am.oid
  ), raw AS (
    SELECT nspname, c.relname AS table_name, index_name, bs * sub.relpages::bigint AS totalbytes,
           CASE WHEN sub.relpages <= otta THEN 0 ELSE bs * (sub.relpages - otta)::bigint END AS wastedbytes,
           stat.indexrelid
    FROM otta sub JOIN pg_class c ON c.oid = sub.table_oid
    JOIN pg_stat_user_indexes stat ON sub.index_oid = stat.indexrelid
  )
  SELECT nspname AS schema, table_name AS "table", index_name AS index, wastedbytes AS bloat_bytes,
         totalbytes AS index_bytes, pg_get_indexdef(r.indexrelid) AS definition, x.indisprimary AS primary
  FROM raw r JOIN pg_index x ON x.indexrelid = r.indexrelid
  WHERE wastedbytes >= $1
  ORDER BY wastedbytes DESC, index_name`;

interface PgHeroIndex {
  schema: string; table: string; name: string; columns: string[]; using: string; unique: boolean; primary: boolean;
  valid: boolean; indexprs: string | null; indpred: string | null; definition: string;
}

/** PgHero's unquote: strips the double quotes pg_get_indexdef puts around a column name. */
const unquote = (c: string) => (c.startsWith('"') && c.endsWith('"') ? c.slice(1, -1).replace(/""/g, '"') : c);

function pgheroIndexes(rows: Record<string, unknown>[]): PgHeroIndex[] {
  return rows.map((r) => ({ ...(r as unknown as PgHeroIndex), columns: String(r.columns).replace(') WHERE (', ' WHERE ').split(', ').map(unquote) }));
}

/** PgHero duplicate_indexes: for each plain index, the first index of its table whose leading columns are its columns. */
function pgheroDuplicates(indexes: PgHeroIndex[]): { unneeded: PgHeroIndex; covering: PgHeroIndex }[] {
  const byTable = new Map<string, PgHeroIndex[]>();
  for (const i of indexes) {
    const key = `${i.schema}\u0000${i.table}`;
    byTable.set(key, [...(byTable.get(key) ?? []), i]);
  }
  const same = (a: string[], b: string[]) => a.length === b.length && a.every((c, k) => c === b[k]);
  const covers = (indexed: string[], cols: string[]) => same(indexed.slice(0, cols.length), cols);
  const out: { unneeded: PgHeroIndex; covering: PgHeroIndex }[] = [];
  for (const group of byTable.values()) {
    for (const index of group) {
      if (!index.valid || index.primary || index.unique) continue;
      const covering = group.find((i) => i.valid && i.name !== index.name && covers(i.columns, index.columns)
        && i.using === index.using && i.indexprs === index.indexprs && i.indpred === index.indpred);
      if (covering && (!same(covering.columns, index.columns) || index.name > covering.name || covering.primary || covering.unique)) {
        out.push({ unneeded: index, covering });
      }
    }
  }
  return out;
}

/** PgHero invalid_indexes: invalid, unless a running CREATE INDEX CONCURRENTLY names its table and columns. */
async function pgheroInvalid(c: Client): Promise<PgHeroIndex[]> {
  const invalid = pgheroIndexes((await c.query(PGHERO_INDEXES)).rows).filter((i) => !i.valid);
  if (invalid.length === 0) return [];
  const creating = (await c.query<{ query: string }>(PGHERO_RUNNING)).rows.filter((q) => /\s*CREATE\s+INDEX\s+CONCURRENTLY\s+/i.test(q.query));
  return invalid.filter((i) => !creating.some((q) => q.query.includes(i.table) && i.columns.every((col) => q.query.includes(col))));
}

// ---- measurement -------------------------------------------------------------

async function bestOf3<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  let best = Infinity;
  let value!: T;
  for (let i = 0; i < 3; i++) {
    const started = process.hrtime.bigint();
    value = await fn();
    best = Math.min(best, Number(process.hrtime.bigint() - started) / 1e6);
  }
  return { ms: best, value };
}

const line = (label: string, ours: { ms: number }, base: { ms: number }, note: string) =>
  console.log(`  ${label.padEnd(18)} ${ours.ms.toFixed(1).padStart(8)} ms  ${base.ms.toFixed(1).padStart(8)} ms  ${(ours.ms / base.ms).toFixed(2).padStart(6)}   ${note}`);

export async function benchIndexAudit(env: { pgAdminUrl: string }): Promise<void> {
  const dbName = `ct_bench_ia_${randomBytes(4).toString('hex')}`;
  const admin = new Client({ connectionString: env.pgAdminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(dbName)}`);
  const dbUrl = Object.assign(new URL(env.pgAdminUrl), { pathname: `/${dbName}` }).toString();
  const c = new Client({ connectionString: dbUrl });
  const state = new Pool({ connectionString: dbUrl, max: 1 });
  state.on('error', () => undefined);
  try {
    await c.connect();
    const built = Date.now();
    await c.query('CREATE SCHEMA bench');
    for (let from = 1; from <= TABLES; from += BATCH) await c.query(batchDdl(from, Math.min(from + BATCH - 1, TABLES)));
    // One invalid index, as a failed unique build leaves it.
    await c.query(`CREATE TABLE bench.invalid (x int); INSERT INTO bench.invalid VALUES (1), (1)`);
    await c.query('CREATE UNIQUE INDEX CONCURRENTLY invalid_x ON bench.invalid (x)').catch(() => undefined);
    // One table for the findings that need data: ~4 MB of btree bloat, bulk sequential scans and a rare index scan.
    await c.query(`CREATE TABLE bench.hot (id int, v int); CREATE INDEX hot_id ON bench.hot (id);
                   INSERT INTO bench.hot SELECT g, g % 10 FROM generate_series(1, 200000) g; DELETE FROM bench.hot WHERE id > 20000`);
    await c.query('VACUUM bench.hot');
    for (let i = 0; i < 20; i++) await c.query('SELECT count(*) FROM bench.hot WHERE v = 1');
    await c.query('SET enable_seqscan = off; SELECT v FROM bench.hot WHERE id = 5; RESET enable_seqscan');
    await c.query('SELECT pg_stat_force_next_flush()');
    await c.query('ANALYZE');
    const { rows: [counts] } = await c.query(`SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'bench'::regnamespace AND relkind = 'r')::int AS tables,
                                                    (SELECT count(*) FROM pg_class WHERE relnamespace = 'bench'::regnamespace AND relkind = 'i')::int AS indexes`);
    console.log(`index-audit on ${counts.tables} tables, ${counts.indexes} indexes (built and analyzed in ${((Date.now() - built) / 1000).toFixed(1)} s); best of 3`);
    console.log(`  ${'part'.padEnd(18)} ${'caretaker'.padStart(11)}  ${'PgHero-style'.padStart(11)}  ${'ratio'.padStart(6)}   findings (caretaker / PgHero)`);

    const p = indexAudit.params.parse({}) as Record<string, number>;
    const ours = {
      overview: await bestOf3(() => c.query(SQL.overview)),
      unused: await bestOf3(() => c.query(SQL.unused, [p.minIndexBytes, true])),
      duplicates: await bestOf3(() => c.query(SQL.duplicates, [true])),
      invalid: await bestOf3(() => c.query(SQL.invalid, [true])),
      missing: await bestOf3(() => c.query(SQL.missing, [p.minRows, p.maxIndexScanPercent, p.minSeqScans, p.minRowsPerScan, p.minTableBytes, true])),
      bloat: await bestOf3(() => c.query(SQL.bloat, [p.minBloatBytes])),
    };
    const base = {
      unused: await bestOf3(() => c.query(PGHERO_UNUSED)),
      duplicates: await bestOf3(async () => pgheroDuplicates(pgheroIndexes((await c.query(PGHERO_INDEXES)).rows))),
      invalid: await bestOf3(() => pgheroInvalid(c)),
      missing: await bestOf3(() => c.query(PGHERO_MISSING)),
      bloat: await bestOf3(() => c.query(PGHERO_BLOAT, [100 * 1024 * 1024])),
    };
    // Same thresholds as PgHero for the counts (PgHero lists unused indexes of any size).
    const unusedAnySize = (await c.query(SQL.unused, [0, true])).rowCount;
    const ourDup = new Set(ours.duplicates.value.rows.map((r) => `${r.schema}.${r.index}`));
    const theirDup = base.duplicates.value.map((d) => `${d.unneeded.schema}.${d.unneeded.name}`);
    const dupCovered = theirDup.filter((n) => ourDup.has(n)).length;
    const bloatRow = ours.bloat.value.rows[0] as { flagged: unknown[]; estimated: number; totalWasted: number };

    line('unused', ours.unused, base.unused, `${ours.unused.value.rowCount} at >= 10 MB, ${unusedAnySize} at any size / ${base.unused.value.rowCount}`);
    line('duplicate', ours.duplicates, base.duplicates, `${ourDup.size} / ${theirDup.length} (${dupCovered} of PgHero's also ours)`);
    line('invalid', ours.invalid, base.invalid, `${ours.invalid.value.rowCount} / ${base.invalid.value.length}`);
    line('missing', ours.missing, base.missing, `${ours.missing.value.rowCount} / ${base.missing.value.rowCount}`);
    const ourBloat1MB = (await c.query(SQL.bloat, [1024 * 1024])).rows[0].flagged.length;
    const theirBloat1MB = (await c.query(PGHERO_BLOAT, [1024 * 1024])).rowCount;
    line('bloat', ours.bloat, base.bloat, `${bloatRow.flagged.length} / ${base.bloat.value.rowCount} at 100 MB, ${ourBloat1MB} / ${theirBloat1MB} at 1 MB (${bloatRow.estimated} indexes estimated)`);
    const ourSum = Object.values(ours).reduce((s, r) => s + r.ms, 0);
    const baseSum = Object.values(base).reduce((s, r) => s + r.ms, 0);
    line('all queries', { ms: ourSum }, { ms: baseSum }, 'sum of the parts (caretaker includes its overview query)');

    const config = validateConfig({ targets: { postgres: [{ name: 'bench', url: dbUrl, statementTimeoutMs: 120_000 }] } }, 'bench', TASKS);
    const prepared = indexAudit.prepare(config, { targetName: 'bench', overrides: p });
    if (!prepared.ok) throw new Error(prepared.problems.join('; '));
    const log = pino({ level: 'silent' });
    const whole = await bestOf3(() => runTask({ run: prepared.run, dryRun: false, log, state }));
    if (whole.value.status === 'error') throw new Error(`index-audit failed: ${whole.value.summary}`);
    console.log(`  whole run (connect, 6 queries, findings): ${whole.ms.toFixed(1)} ms; ${whole.value.summary}`);
  } finally {
    await c.end().catch(() => undefined);
    await state.end().catch(() => undefined);
    await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(dbName)} WITH (FORCE)`);
    await admin.end();
  }
}
