import { Client } from 'pg';
import { indexAudit, SQL } from '../../src/jobs/index-audit';
import type { Finding, TaskResult } from '../../src/contract/result';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { runOnPostgres } from '../support/run-task';

const MB = 1024 * 1024;
let db: TestDatabase;

function run(params: Record<string, unknown> = {}): Promise<TaskResult> {
  return runOnPostgres(indexAudit, { url: db.url, state: db.pool, params });
}

/** Findings of one code about one table (tests share a database; each plants its own tables). */
function about(result: TaskResult, code: string, table: string): Finding[] {
  return result.findings.filter((f) => f.code === code && f.details?.table === table);
}

const subjects = (fs: Finding[]) => fs.map((f) => f.subject).sort();

/** Runs statements on one session, then flushes its pending statistics before returning. */
async function onSession(statements: string[]): Promise<void> {
  const c = new Client({ connectionString: db.url });
  await c.connect();
  try {
    for (const s of statements) await c.query(s);
    // PG15 flushes a session's statistics when it goes idle, at most once a second unless forced:
    // forced, they are in shared memory before this call's ReadyForQuery reaches us.
    await c.query('SELECT pg_stat_force_next_flush()');
  } finally {
    await c.end();
  }
}

const repeat = (n: number, sql: string) => Array.from({ length: n }, () => sql);

async function indexExists(schema: string, name: string): Promise<boolean> {
  const { rows } = await db.pool.query(
    `SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'i'`,
    [schema, name],
  );
  return rows[0].n === 1;
}

beforeAll(async () => {
  db = await createTestDatabase('index_audit');
});

afterAll(async () => {
  await db.drop();
});

describe('index-audit', () => {
  it('finds nothing in a clean database, even at lowered thresholds', async () => {
    await db.pool.query(`CREATE TABLE clean (id int PRIMARY KEY, email text UNIQUE, created timestamptz)`);
    await db.pool.query(`INSERT INTO clean SELECT g, 'u' || g || '@example.com', now() FROM generate_series(1, 1000) g`);
    await db.pool.query('ANALYZE clean');
    const result = await run({ minIndexBytes: 0, minBloatBytes: MB, minSeqScans: 1, minRowsPerScan: 0, minTableBytes: 0, minRows: 0 });
    expect(result.status).toBe('ok');
    expect(result.findings).toEqual([]);
    const { index_bloat_bytes: bloat, ...counts } = result.metrics;
    // A fresh database's statistics were never reset: no stats_age_seconds rather than a made-up one.
    expect(counts).toEqual({ indexes_total: 2, unused_indexes: 0, duplicate_indexes: 0, invalid_indexes: 0, missing_indexes: 0 });
    // Rows inserted after the indexes were built leave their pages a little emptier than a fresh build: a few kB.
    expect(bloat).toBeLessThan(MB);
    expect(result.summary).toMatch(/^2 indexes, 0 unused, 0 duplicate, 0 invalid, 0 tables missing an index, ~\d+ (B|kB) estimated index bloat, statistics never reset$/);
  });

  describe('unused_index', () => {
    beforeAll(async () => {
      await db.pool.query(`
        CREATE TABLE u (id int PRIMARY KEY, a int, b int, c int, d int,
                        CONSTRAINT u_c_excl EXCLUDE USING btree (c WITH =));
        CREATE INDEX u_a ON u (a);
        CREATE UNIQUE INDEX u_b_unique ON u (b);
        CREATE INDEX u_d_used ON u (d);
        INSERT INTO u SELECT g, g, g, g, g FROM generate_series(1, 2000) g;
        ANALYZE u;`);
      await onSession(['SET enable_seqscan = off', 'SELECT * FROM u WHERE d = 7']);
    });

    it('reports a non-unique index never scanned; never a unique one, a primary key, a constraint\'s or a scanned one', async () => {
      const result = await run({ minIndexBytes: 0 });
      const found = about(result, 'unused_index', 'u');
      // u_pkey (primary), u_b_unique (unique), u_c_excl (non-unique, backs the exclusion constraint), u_d_used (scanned) are not.
      expect(subjects(found)).toEqual(['public.u_a']);
      const [f] = found;
      const { rows } = await db.pool.query(`SELECT pg_relation_size('u_a')::float8 AS bytes`);
      expect(f).toMatchObject({
        severity: 'warning',
        suggestion: 'Check that no replica or rare job (monthly report) uses it, then: DROP INDEX CONCURRENTLY "public"."u_a";',
        details: { schema: 'public', table: 'u', index: 'u_a', indexBytes: rows[0].bytes, scans: 0, statsReset: null },
      });
      expect(f!.message).toMatch(/^public\.u_a on u \(\d+ kB\) has not been scanned since statistics began \(never reset, or lost in a crash\)$/);
    });

    it('leaves out an unused index under minIndexBytes (10 MB by default)', async () => {
      const result = await run();
      expect(about(result, 'unused_index', 'u')).toEqual([]);
    });

    it('says when the statistics were reset, and only informs while they are younger than minStatsAgeDays', async () => {
      await db.pool.query('SELECT pg_stat_reset()');
      const { rows } = await db.pool.query(`SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()`);
      const resetAt = (rows[0].stats_reset as Date).toISOString();

      const young = await run({ minIndexBytes: 0 });
      const info = about(young, 'unused_index', 'u');
      // After the reset, u_d_used has no scans either.
      expect(subjects(info)).toEqual(['public.u_a', 'public.u_d_used']);
      for (const f of info) {
        expect(f.severity).toBe('info');
        expect(f.message).toContain(`since the statistics reset ${resetAt} (`);
        expect(f.message).toMatch(/too recent to call it unused$/);
        expect(f.details!.statsReset).toBe(resetAt);
      }
      expect(young.status).toBe('ok');
      expect(young.metrics.stats_age_seconds).toBeGreaterThanOrEqual(0);
      expect(young.metrics.stats_age_seconds).toBeLessThan(86_400);
      expect(young.summary).toMatch(/statistics reset \d+ (ms|s|min \d+ s) ago \(under 7 days: unused indexes unproven\)$/);

      const trusted = await run({ minIndexBytes: 0, minStatsAgeDays: 0 });
      expect(about(trusted, 'unused_index', 'u').map((f) => f.severity)).toEqual(['warning', 'warning']);
    });
  });

  describe('duplicate_index', () => {
    beforeAll(async () => {
      await db.pool.query(`
        CREATE TABLE dup (a int, b int, c int, d text, e int);
        CREATE INDEX dup_a ON dup (a);
        CREATE INDEX dup_ab ON dup (a, b);
        CREATE UNIQUE INDEX dup_b_unique ON dup (b);
        CREATE INDEX dup_bc ON dup (b, c);
        CREATE INDEX dup_c_partial ON dup (c) WHERE c > 0;
        CREATE INDEX dup_cd ON dup (c, d);
        CREATE INDEX dup_lower_d ON dup (lower(d));
        CREATE INDEX dup_upper_d_e ON dup (upper(d), e);
        CREATE INDEX dup_de ON dup (d, e);
        CREATE INDEX dup_e_desc ON dup (e DESC);
        CREATE INDEX dup_ea ON dup (e, a);
        CREATE INDEX dup_e_hash ON dup USING hash (e);
        INSERT INTO dup SELECT g, g, g, 'd' || g, g FROM generate_series(1, 500) g;`);
    });

    it('reports an index that is a prefix of another, naming the covering index', async () => {
      const result = await run();
      const found = about(result, 'duplicate_index', 'dup');
      // Not: unique (b) beside non-unique (b, c); (c) WHERE c > 0 beside (c, d); lower(d) beside (d, e) or (upper(d), e);
      // (e DESC) beside (e, a); hash (e) beside btree (e, a).
      expect(subjects(found)).toEqual(['public.dup_a']);
      expect(found[0]).toMatchObject({
        severity: 'warning',
        suggestion: 'DROP INDEX CONCURRENTLY "public"."dup_a";',
        details: { index: 'dup_a', coveringIndex: 'dup_ab', identical: false, coveringDefinition: 'CREATE INDEX dup_ab ON public.dup USING btree (a, b)' },
      });
      expect(found[0]!.message).toMatch(/^public\.dup_a on dup \(\d+ kB, 0 scans\) is a prefix of public\.dup_ab, which serves the same queries$/);
      expect(result.metrics.duplicate_indexes).toBe(1);
    });

    it('of two identical indexes, reports one; beside a primary key, the non-primary one', async () => {
      await db.pool.query(`
        CREATE TABLE twins (id int PRIMARY KEY, a int);
        CREATE UNIQUE INDEX twins_id_again ON twins (id);
        CREATE INDEX twins_a1 ON twins (a);
        CREATE INDEX twins_a2 ON twins (a);`);
      const found = about(await run(), 'duplicate_index', 'twins');
      expect(found.map((f) => [f.subject, f.details!.coveringIndex, f.details!.identical]).sort()).toEqual([
        ['public.twins_a2', 'twins_a1', true],
        ['public.twins_id_again', 'twins_pkey', true],
      ]);
      expect(found.find((f) => f.subject === 'public.twins_a2')!.message).toContain('is the same index as public.twins_a1');
      await db.pool.query('DROP TABLE twins');
    });
  });

  describe('invalid_index', () => {
    it('reports the index a failed CREATE UNIQUE INDEX CONCURRENTLY left, with the rebuild statements', async () => {
      await db.pool.query(`CREATE TABLE inv (x int); INSERT INTO inv VALUES (1), (1), (2)`);
      await expect(db.pool.query('CREATE UNIQUE INDEX CONCURRENTLY inv_x ON inv (x)')).rejects.toThrow(/could not create unique index/);
      const result = await run();
      const found = about(result, 'invalid_index', 'inv');
      expect(found).toHaveLength(1);
      expect(found[0]).toMatchObject({
        severity: 'warning',
        subject: 'public.inv_x',
        suggestion: 'Remove the duplicate rows that made the build fail, then: DROP INDEX CONCURRENTLY "public"."inv_x"; CREATE UNIQUE INDEX CONCURRENTLY inv_x ON public.inv USING btree (x);',
        details: { index: 'inv_x', unique: true, validCopy: null, definition: 'CREATE UNIQUE INDEX inv_x ON public.inv USING btree (x)' },
      });
      expect(found[0]!.message).toMatch(/^public\.inv_x on inv is invalid \(.*\): a CREATE or REINDEX INDEX CONCURRENTLY failed/);
      expect(result.metrics.invalid_indexes).toBe(1);
      // An invalid index is not also reported as unused or duplicate.
      expect(about(await run({ minIndexBytes: 0 }), 'unused_index', 'inv')).toEqual([]);
      await db.pool.query('DROP TABLE inv');
    });

    it('reports the _ccnew copy an interrupted REINDEX CONCURRENTLY left, beside its valid original, with a drop only', async () => {
      await db.pool.query(`CREATE TABLE reindexed (x int); CREATE INDEX reindexed_x ON reindexed (x); INSERT INTO reindexed VALUES (1)`);
      const writer = new Client({ connectionString: db.url });
      const reindexer = new Client({ connectionString: db.url });
      await writer.connect();
      await reindexer.connect();
      try {
        // The open write makes the REINDEX wait, with its new index in the catalog, until the timeout cancels it.
        await writer.query('BEGIN');
        await writer.query('INSERT INTO reindexed VALUES (2)');
        await reindexer.query('SET statement_timeout = 300');
        await expect(reindexer.query('REINDEX INDEX CONCURRENTLY reindexed_x')).rejects.toThrow(/statement timeout/);
        await writer.query('ROLLBACK');
      } finally {
        await writer.end();
        await reindexer.end();
      }
      const found = about(await run(), 'invalid_index', 'reindexed');
      expect(found).toHaveLength(1);
      expect(found[0]).toMatchObject({
        subject: 'public.reindexed_x_ccnew',
        suggestion: 'DROP INDEX CONCURRENTLY "public"."reindexed_x_ccnew";',
        details: { validCopy: 'reindexed_x', unique: false },
      });
      expect(found[0]!.message).toMatch(/beside a valid copy, public\.reindexed_x: left by an interrupted REINDEX/);
      await db.pool.query('DROP TABLE reindexed');
    });

    it('leaves alone an index that CREATE INDEX CONCURRENTLY is still building', async () => {
      await db.pool.query(`CREATE TABLE building (x int); INSERT INTO building VALUES (1), (2)`);
      const writer = new Client({ connectionString: db.url });
      const builder = new Client({ connectionString: db.url });
      await writer.connect();
      await builder.connect();
      try {
        // An open write transaction makes the build wait after its index is in the catalog, invalid.
        await writer.query('BEGIN');
        await writer.query('INSERT INTO building VALUES (3)');
        const build = builder.query('CREATE INDEX CONCURRENTLY building_x ON building (x)');
        let waiting = false;
        for (let i = 0; i < 200 && !waiting; i++) {
          const { rows } = await db.pool.query(
            `SELECT count(*)::int AS n FROM pg_stat_progress_create_index p JOIN pg_index i ON i.indexrelid = p.index_relid
             WHERE p.index_relid = 'building_x'::regclass AND NOT i.indisvalid`,
          ).catch(() => ({ rows: [{ n: 0 }] }));
          waiting = rows[0].n === 1;
          if (!waiting) await new Promise((r) => setTimeout(r, 50));
        }
        expect(waiting).toBe(true);
        const result = await run();
        expect(about(result, 'invalid_index', 'building')).toEqual([]);
        await writer.query('ROLLBACK');
        await build;
      } finally {
        await writer.end();
        await builder.end();
      }
      const { rows } = await db.pool.query(`SELECT indisvalid FROM pg_index WHERE indexrelid = 'building_x'::regclass`);
      expect(rows[0].indisvalid).toBe(true);
      await db.pool.query('DROP TABLE building');
    });
  });

  describe('missing_index', () => {
    const lowered = { minSeqScans: 20, minRowsPerScan: 1000, minTableBytes: 0, minRows: 1000 };

    beforeAll(async () => {
      // Reset here, not only by the test above, so these run alone too; everything these tables count
      // happens after it, on one flushed session.
      await db.pool.query('SELECT pg_stat_reset()');
      await onSession([
        'CREATE TABLE scanned (id int, v int)',
        'INSERT INTO scanned SELECT g, g % 10 FROM generate_series(1, 5000) g',
        'CREATE TABLE tiny (id int, v int)',
        'INSERT INTO tiny SELECT g, g FROM generate_series(1, 50) g',
        'CREATE TABLE rarely_indexed (id int PRIMARY KEY, v int)',
        'INSERT INTO rarely_indexed SELECT g, g % 10 FROM generate_series(1, 5000) g',
        ...repeat(30, 'SELECT count(*) FROM scanned WHERE v = 1'),
        ...repeat(100, 'SELECT count(*) FROM tiny WHERE v = 1'),
        ...repeat(30, 'SELECT count(*) FROM rarely_indexed WHERE v = 1'),
        'SET enable_seqscan = off',
        'SELECT v FROM rarely_indexed WHERE id = 42',
      ]);
    });

    it('reports a table read by many bulk sequential scans and no index scan', async () => {
      const result = await run(lowered);
      const [f] = about(result, 'missing_index', 'scanned');
      expect(f).toMatchObject({
        severity: 'warning',
        subject: 'public.scanned',
        suggestion: 'Find the queries that filter it (pg_stat_statements, EXPLAIN) and index their columns: CREATE INDEX CONCURRENTLY ON "public"."scanned" (<columns>);',
        details: { rule: 'no_index_use', seqScans: 30, seqRowsRead: 150_000, rowsPerSeqScan: 5000, indexScans: null, indexes: 0, liveRows: 5000 },
      });
      expect(f!.message).toMatch(/^public\.scanned \(\d+ kB, 5000 rows\): 30 sequential scans reading 5000 rows each on average, and it has no index \(since the statistics reset /);
    });

    it('reports, as PgHero does, a big table whose scans rarely use its index', async () => {
      const [f] = about(await run(lowered), 'missing_index', 'rarely_indexed');
      // 31 sequential scans: the 30 queries and the primary key's build, which reads the table as one.
      expect(f).toMatchObject({ details: { rule: 'low_index_use', seqScans: 31, indexScans: 1, indexes: 1, liveRows: 5000 } });
      expect(f!.message).toContain('3.1 % of scans use an index (under 95 %), 31 sequential scans reading');
    });

    it('does not report a 50-row table however often it is scanned, nor anything at the default thresholds', async () => {
      const result = await run(lowered);
      expect(subjects(result.findings.filter((f) => f.code === 'missing_index'))).toEqual(['public.rarely_indexed', 'public.scanned']);
      expect(result.metrics.missing_indexes).toBe(2);
      expect((await run()).findings.filter((f) => f.code === 'missing_index')).toEqual([]);
    });
  });

  describe('index_bloat', () => {
    beforeAll(async () => {
      await db.pool.query(`
        CREATE TABLE bloated (id int);
        CREATE INDEX bloated_id ON bloated (id);
        INSERT INTO bloated SELECT g FROM generate_series(1, 100000) g;
        DELETE FROM bloated WHERE id > 10000;
        CREATE TABLE compact (id int);
        INSERT INTO compact SELECT g FROM generate_series(1, 10000) g;
        CREATE INDEX compact_id ON compact (id);`);
      await db.pool.query('VACUUM ANALYZE bloated');
      await db.pool.query('ANALYZE compact');
    });

    it('reports a btree index emptied by deletes as an estimate; not a freshly built one', async () => {
      const result = await run({ minBloatBytes: MB });
      const found = result.findings.filter((f) => f.code === 'index_bloat');
      expect(subjects(found)).toEqual(['public.bloated_id']);
      const [f] = found;
      const { rows } = await db.pool.query(
        `SELECT pg_relation_size('bloated_id')::float8 AS bloated, pg_relation_size('compact_id')::float8 AS compact`,
      );
      expect(f!.severity).toBe('warning');
      expect(f!.message).toMatch(/^public\.bloated_id on bloated: ~\d+(\.\d)? MB of \d+(\.\d)? MB wasted \(estimate from catalog statistics; expected ~\d+ kB\)$/);
      expect(f!.suggestion).toBe('REINDEX INDEX CONCURRENTLY "public"."bloated_id";');
      const d = f!.details!;
      expect(d).toMatchObject({ estimate: true, indexBytes: rows[0].bloated, rows: 10000, fillfactor: 90 });
      // The estimate expects what a fresh build of the same 10,000 rows takes, within two pages.
      expect(Math.abs((d.estimatedExpectedBytes as number) - rows[0].compact)).toBeLessThanOrEqual(2 * 8192);
      expect(d.estimatedWastedBytes).toBe(rows[0].bloated - (d.estimatedExpectedBytes as number));
      expect(result.metrics.index_bloat_bytes).toBeGreaterThanOrEqual(d.estimatedWastedBytes as number);
    });

    it('is critical past criticalBloatBytes and silent at the default 100 MB', async () => {
      const critical = await run({ minBloatBytes: MB, criticalBloatBytes: MB });
      expect(critical.findings.find((f) => f.code === 'index_bloat')?.severity).toBe('critical');
      expect(critical.status).toBe('critical');
      expect((await run()).findings.filter((f) => f.code === 'index_bloat')).toEqual([]);
    });
  });

  describe('relations another session has locked', () => {
    /** Waits until some session's lock request on `relation` is queued (not granted). */
    async function waitForQueuedLock(relation: string): Promise<void> {
      let queued = false;
      for (let i = 0; i < 200 && !queued; i++) {
        const { rows } = await db.pool.query(
          `SELECT count(*)::int AS n FROM pg_locks WHERE NOT granted AND relation = (SELECT oid FROM pg_class WHERE relname = $1)`,
          [relation],
        );
        queued = rows[0].n > 0;
        if (!queued) await new Promise((r) => setTimeout(r, 50));
      }
      expect(queued).toBe(true);
    }

    const catalogBytes = async (relation: string): Promise<number> =>
      (await db.pool.query(`SELECT relpages::float8 * current_setting('block_size')::float8 AS b FROM pg_class WHERE relname = $1`, [relation])).rows[0].b;

    it('does not queue behind a waiting ALTER TABLE or REINDEX: estimates those sizes, reports everything, says what it did not open', async () => {
      await db.pool.query(`
        CREATE TABLE queued (id int, a int, b int, note text);
        CREATE INDEX queued_a ON queued (a);
        CREATE INDEX queued_ab ON queued (a, b);
        CREATE INDEX queued_lower ON queued (lower(note)) WHERE b > 0;
        CREATE INDEX queued_lower_id ON queued (lower(note), id) WHERE b > 0;
        INSERT INTO queued SELECT g, g, g, 'n' || g FROM generate_series(1, 2000) g;
        CREATE TABLE unlocked (a int);
        CREATE INDEX unlocked_a ON unlocked (a);
        INSERT INTO unlocked SELECT g FROM generate_series(1, 100) g;
        ANALYZE queued;
        ANALYZE unlocked;`);
      await onSession(repeat(3, `SELECT count(*) FROM queued WHERE note = 'x'`));

      const reader = new Client({ connectionString: db.url });
      const reindexer = new Client({ connectionString: db.url });
      const alterer = new Client({ connectionString: db.url });
      const waiting: Promise<unknown>[] = [];
      await Promise.all([reader.connect(), reindexer.connect(), alterer.connect()]);
      try {
        await reader.query('BEGIN');
        // Planning opens every index of the table: the open transaction holds ACCESS SHARE on the table and each index.
        await reader.query('SELECT * FROM queued LIMIT 0');
        for (const c of [reindexer, alterer]) await c.query(`SET statement_timeout = '60s'; SET lock_timeout = '60s'`);
        // REINDEX takes SHARE on the table, then waits for ACCESS EXCLUSIVE on the index; the ALTER TABLE waits for the table.
        waiting.push(reindexer.query('REINDEX INDEX queued_a'));
        await waitForQueuedLock('queued_a');
        waiting.push(alterer.query('ALTER TABLE queued ADD COLUMN extra int'));
        await waitForQueuedLock('queued');

        const result = await run({ minIndexBytes: 0, minSeqScans: 1, minRowsPerScan: 0, minTableBytes: 0 });
        expect(result.status).toBe('warning');

        const unused = about(result, 'unused_index', 'queued');
        expect(subjects(unused)).toEqual(['public.queued_a', 'public.queued_ab', 'public.queued_lower', 'public.queued_lower_id']);
        // queued_a itself has a lock queued: its size is the catalog's. queued_ab has none: measured.
        expect(unused.find((f) => f.subject === 'public.queued_a')).toMatchObject({
          details: { indexBytes: await catalogBytes('queued_a'), sizeEstimated: true, definition: null },
        });
        expect(unused.find((f) => f.subject === 'public.queued_a')!.message).toMatch(/^public\.queued_a on queued \(~\d+ kB\) has not been scanned/);
        expect(unused.find((f) => f.subject === 'public.queued_ab')!.details).toMatchObject({ sizeEstimated: false, definition: null });

        // Duplicates are still found, expressions and predicates compared without opening the table.
        const dups = about(result, 'duplicate_index', 'queued');
        expect(dups.map((f) => [f.subject, f.details!.coveringIndex, f.details!.coveringDefinition]).sort()).toEqual([
          ['public.queued_a', 'queued_ab', null],
          ['public.queued_lower', 'queued_lower_id', null],
        ]);

        const [missing] = about(result, 'missing_index', 'queued');
        expect(missing).toMatchObject({ details: { tableBytes: await catalogBytes('queued'), sizeEstimated: true } });

        // The table nobody locks is measured as usual.
        const { rows } = await db.pool.query(`SELECT pg_relation_size('unlocked_a')::float8 AS bytes`);
        expect(about(result, 'unused_index', 'unlocked')).toMatchObject([
          { subject: 'public.unlocked_a', details: { indexBytes: rows[0].bytes, sizeEstimated: false, definition: 'CREATE INDEX unlocked_a ON public.unlocked USING btree (a)' } },
        ]);

        const incomplete = result.findings.filter((f) => f.code === 'index_check_incomplete');
        expect(incomplete).toHaveLength(1);
        expect(incomplete[0]).toMatchObject({ severity: 'info', subject: db.name, details: { lockedRelations: ['public.queued', 'public.queued_a'], retriedParts: [] } });
        expect(incomplete[0]!.message).toMatch(/^Did not open public\.queued, public\.queued_a: another session holds or waits for an ACCESS EXCLUSIVE lock on them/);
        expect(result.summary).toContain('2 locked relations not opened');
      } finally {
        // Ending the reader's transaction lets the REINDEX and the ALTER TABLE through.
        await reader.query('ROLLBACK').catch(() => undefined);
        await Promise.allSettled(waiting);
        await Promise.all([reader.end(), reindexer.end(), alterer.end()]);
      }
      await expect(Promise.all(waiting)).resolves.toBeDefined();
      await db.pool.query('DROP TABLE queued, unlocked');
    });
  });

  describe('names that need quoting', () => {
    const schema = 'We"ird Schema';
    const table = 'We"ird Table; DROP TABLE x';
    const index = 'We"ird Idx; DROP TABLE x';

    beforeAll(async () => {
      await db.pool.query(`
        CREATE TABLE x (keep int);
        CREATE SCHEMA "We""ird Schema";
        CREATE TABLE "We""ird Schema"."We""ird Table; DROP TABLE x" (a int, b int);
        CREATE INDEX "We""ird Idx; DROP TABLE x" ON "We""ird Schema"."We""ird Table; DROP TABLE x" (a);
        CREATE INDEX "We""ird Idx 2" ON "We""ird Schema"."We""ird Table; DROP TABLE x" (a, b);`);
    });

    it('audits them, quotes them in the suggested DDL and executes nothing', async () => {
      const result = await run({ minIndexBytes: 0 });
      const drop = 'DROP INDEX CONCURRENTLY "We""ird Schema"."We""ird Idx; DROP TABLE x";';
      const unused = about(result, 'unused_index', table).find((f) => f.details!.index === index)!;
      expect(unused.subject).toBe(`${schema}.${index}`);
      expect(unused.suggestion).toBe(`Check that no replica or rare job (monthly report) uses it, then: ${drop}`);
      const [dup] = about(result, 'duplicate_index', table);
      expect(dup).toMatchObject({ subject: `${schema}.${index}`, suggestion: drop, details: { coveringIndex: 'We"ird Idx 2' } });
      expect(await indexExists(schema, index)).toBe(true);

      // The suggestion is one statement that drops exactly that index.
      await db.pool.query(drop);
      expect(await indexExists(schema, index)).toBe(false);
      expect(await indexExists(schema, 'We"ird Idx 2')).toBe(true);
      const { rows } = await db.pool.query(`SELECT to_regclass('public.x') IS NOT NULL AS kept`);
      expect(rows[0].kept).toBe(true);
    });
  });

  it('sends the same, constant number of queries for 5 tables as for 50', async () => {
    await db.pool.query('CREATE SCHEMA many');
    const plant = (from: number, to: number) =>
      db.pool.query(`DO $$ BEGIN FOR i IN ${from}..${to} LOOP
        EXECUTE format('CREATE TABLE many.t%s (id int PRIMARY KEY, a int, b int)', i);
        EXECUTE format('CREATE INDEX ON many.t%s (a)', i);
        EXECUTE format('CREATE INDEX ON many.t%s (a, b)', i);
      END LOOP; END $$`);
    const spy = jest.spyOn(Client.prototype, 'query');
    try {
      await plant(1, 5);
      spy.mockClear();
      const five = await run({ minIndexBytes: 0 });
      const queriesFor5 = spy.mock.calls.length;
      expect(five.findings.filter((f) => f.code === 'duplicate_index' && (f.details!.schema as string) === 'many')).toHaveLength(5);

      await plant(6, 50);
      spy.mockClear();
      const fifty = await run({ minIndexBytes: 0 });
      const queriesFor50 = spy.mock.calls.length;
      expect(fifty.findings.filter((f) => f.code === 'duplicate_index' && (f.details!.schema as string) === 'many')).toHaveLength(50);
      expect(fifty.metrics.indexes_total! - five.metrics.indexes_total!).toBe(45 * 3);

      expect(queriesFor5).toBe(Object.keys(SQL).length);
      expect(queriesFor50).toBe(queriesFor5);
    } finally {
      spy.mockRestore();
    }
  });

  it('caps the findings per code at maxFindings, and says so, while the metrics count them all', async () => {
    // Duplicates of its own (whatever earlier tests planted): two tables, each with an index its wider one covers.
    await db.pool.query(`CREATE SCHEMA IF NOT EXISTS capped;
      CREATE TABLE IF NOT EXISTS capped.t1 (id int PRIMARY KEY, a int, b int);
      CREATE INDEX IF NOT EXISTS t1_a ON capped.t1 (a);
      CREATE INDEX IF NOT EXISTS t1_ab ON capped.t1 (a, b);
      CREATE TABLE IF NOT EXISTS capped.t2 (id int PRIMARY KEY, a int, b int);
      CREATE INDEX IF NOT EXISTS t2_a ON capped.t2 (a);
      CREATE INDEX IF NOT EXISTS t2_ab ON capped.t2 (a, b);`);
    const result = await run({ maxFindings: 1, minIndexBytes: 0 });
    expect(result.findings.filter((f) => f.code === 'duplicate_index')).toHaveLength(1);
    expect(result.metrics.duplicate_indexes).toBeGreaterThanOrEqual(2);
    expect(result.summary).toMatch(/, findings capped at 1 per code$/);
  });
});
