import { Client } from 'pg';
import { indexAudit } from '../../src/jobs/index-audit';
import type { Finding, TaskResult } from '../../src/contract/result';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { runOnPostgres } from '../support/run-task';

/**
 * Partitioned tables: the parent index is what an operator can drop or
 * rebuild, and it has no statistics of its own, so index-audit judges it
 * from its partitions' indexes and never reports those on their own.
 */
const MB = 1024 * 1024;
let db: TestDatabase;

function run(params: Record<string, unknown> = {}): Promise<TaskResult> {
  return runOnPostgres(indexAudit, { url: db.url, state: db.pool, params });
}

/** Findings of one code about one (parent) table. */
function about(result: TaskResult, code: string, table: string): Finding[] {
  return result.findings.filter((f) => f.code === code && f.details?.table === table);
}

/** The leaf indexes under a partitioned index, with their sizes and scan counts (after a stats flush). */
async function leavesOf(parent: string): Promise<{ name: string; bytes: number; scans: number }[]> {
  const { rows } = await db.pool.query(
    `WITH RECURSIVE tree AS (
       SELECT $1::regclass::oid AS oid
       UNION ALL SELECT h.inhrelid FROM tree t JOIN pg_inherits h ON h.inhparent = t.oid)
     SELECT c.relname AS name, pg_relation_size(c.oid)::float8 AS bytes, pg_stat_get_numscans(c.oid)::float8 AS scans
     FROM tree t JOIN pg_class c ON c.oid = t.oid WHERE c.relkind = 'i' ORDER BY 1`,
    [parent],
  );
  return rows;
}

const total = (xs: { bytes: number }[]) => xs.reduce((a, x) => a + x.bytes, 0);

/** Every index attached to a partitioned index, at any depth: none may be a finding's subject. */
async function partitionIndexNames(): Promise<string[]> {
  const { rows } = await db.pool.query(
    `SELECT n.nspname || '.' || c.relname AS name FROM pg_inherits h
     JOIN pg_class c ON c.oid = h.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('i', 'I') AND c.relname LIKE 'events%'`,
  );
  return rows.map((r) => r.name as string);
}

beforeAll(async () => {
  db = await createTestDatabase('index_audit_parts');
  // Three partitions, the third itself partitioned in two: the parent's indexes reach leaves two levels down.
  await db.pool.query(`
    CREATE TABLE events (id int, kind int, at int, note text) PARTITION BY RANGE (id);
    CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (0) TO (1000);
    CREATE TABLE events_2 PARTITION OF events FOR VALUES FROM (1000) TO (2000);
    CREATE TABLE events_3 PARTITION OF events FOR VALUES FROM (2000) TO (4000) PARTITION BY RANGE (id);
    CREATE TABLE events_3a PARTITION OF events_3 FOR VALUES FROM (2000) TO (3000);
    CREATE TABLE events_3b PARTITION OF events_3 FOR VALUES FROM (3000) TO (4000);
    CREATE INDEX events_note ON events (note);
    CREATE INDEX events_kind ON events (kind);
    CREATE INDEX events_kind_at ON events (kind, at);
    CREATE INDEX events_at ON events (at);
    INSERT INTO events SELECT g, g % 7, g, 'note ' || g FROM generate_series(0, 3999) g;
    ANALYZE events;`);
  // One index scan of one partition's index (events_1's, pruned to by id) is a use of the parent index.
  const c = new Client({ connectionString: db.url });
  await c.connect();
  try {
    await c.query('SET enable_seqscan = off');
    await c.query('SET enable_bitmapscan = off');
    await c.query('SELECT * FROM events WHERE id = 7 AND at = 7');
    // PG15+ flushes a session's statistics at most once a second unless forced.
    await c.query('SELECT pg_stat_force_next_flush()');
  } finally {
    await c.end();
  }
});

afterAll(async () => {
  await db.drop();
});

describe('index-audit on a partitioned table', () => {
  it('reports an unused parent index once, with its partitions\' sizes summed, suggesting a drop of the parent', async () => {
    const leaves = await leavesOf('events_note');
    expect(leaves.map((l) => l.name)).toEqual(['events_1_note_idx', 'events_2_note_idx', 'events_3a_note_idx', 'events_3b_note_idx']);
    const result = await run({ minIndexBytes: 0 });
    const found = about(result, 'unused_index', 'events');
    expect(found.map((f) => f.subject).sort()).toEqual(['public.events_kind', 'public.events_kind_at', 'public.events_note']);
    const f = found.find((x) => x.subject === 'public.events_note')!;
    expect(f).toMatchObject({
      severity: 'warning',
      details: { schema: 'public', table: 'events', index: 'events_note', indexBytes: total(leaves), scans: 0, partitions: 4, sizeEstimated: false },
    });
    expect(f.message).toMatch(/^public\.events_note on events \(4 partitions, \d+ kB\) has not been scanned since statistics began/);
    expect(f.suggestion).toBe(
      'Check that no replica or rare job (monthly report) uses it, then drop it with its 4 partitions\' indexes'
      + ' (a partitioned index cannot be dropped CONCURRENTLY: this locks the table and its partitions, so bound the wait):'
      + ' SET lock_timeout = \'5s\'; DROP INDEX "public"."events_note";',
    );
    expect(result.metrics.unused_indexes).toBe(3);
  });

  it('does not report a parent index whose only scan was of one partition\'s index', async () => {
    const leaves = await leavesOf('events_at');
    // The setup's scan is in the statistics: one partition's index scanned, the others not.
    expect(leaves.map((l) => l.scans)).toEqual([1, 0, 0, 0]);
    const result = await run({ minIndexBytes: 0 });
    expect(result.findings.filter((x) => x.subject === 'public.events_at')).toEqual([]);
    // In the same run, its never-scanned sibling is reported: the parents are judged, and this one was used.
    expect(about(result, 'unused_index', 'events').map((x) => x.subject)).toContain('public.events_note');
  });

  it('reports a duplicate parent index, naming the covering parent, and no partition\'s pair', async () => {
    const leaves = await leavesOf('events_kind');
    const result = await run();
    const found = about(result, 'duplicate_index', 'events');
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({
      severity: 'warning',
      subject: 'public.events_kind',
      suggestion: 'SET lock_timeout = \'5s\'; DROP INDEX "public"."events_kind";',
      details: {
        index: 'events_kind', coveringIndex: 'events_kind_at', identical: false, indexBytes: total(leaves), scans: 0, partitions: 4,
        coveringDefinition: 'CREATE INDEX events_kind_at ON ONLY public.events USING btree (kind, at)',
      },
    });
    expect(found[0]!.message).toMatch(/^public\.events_kind on events \(4 partitions, \d+ kB, 0 scans\) is a prefix of public\.events_kind_at, which serves the same queries; dropping it drops its partitions' indexes$/);
    expect(result.metrics.duplicate_indexes).toBe(1);
  });

  it('never names a partition\'s index in a finding', async () => {
    const result = await run({ minIndexBytes: 0, minBloatBytes: 0 });
    const partitionIndexes = new Set(await partitionIndexNames());
    expect(partitionIndexes.size).toBe(4 * 5);
    expect(result.findings.filter((f) => partitionIndexes.has(f.subject))).toEqual([]);
    // minBloatBytes 0 flags every estimated index: the parents, summed, stand for their partitions.
    expect(about(result, 'index_bloat', 'events').map((f) => f.subject).sort())
      .toEqual(['public.events_at', 'public.events_kind', 'public.events_kind_at', 'public.events_note']);
  });

  it('reports a partitioned index made ON ONLY its table as waiting for its partitions\' indexes, and how to finish it', async () => {
    await db.pool.query(`
      CREATE TABLE halfway (id int, v int) PARTITION BY RANGE (id);
      CREATE TABLE halfway_1 PARTITION OF halfway FOR VALUES FROM (0) TO (10);
      CREATE TABLE halfway_2 PARTITION OF halfway FOR VALUES FROM (10) TO (20);
      CREATE INDEX halfway_v ON ONLY halfway (v);
      CREATE INDEX halfway_1_v ON halfway_1 (v);
      ALTER INDEX halfway_v ATTACH PARTITION halfway_1_v;`);
    const found = about(await run(), 'invalid_index', 'halfway');
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({
      subject: 'public.halfway_v',
      suggestion: 'Attach an index of each partition still missing one (ALTER INDEX "public"."halfway_v" ATTACH PARTITION <index>),'
        + ' or drop it: SET lock_timeout = \'5s\'; DROP INDEX "public"."halfway_v";',
      details: { index: 'halfway_v', partitions: 1 },
    });
    expect(found[0]!.message).toMatch(/^public\.halfway_v on halfway is invalid \(1 partition, \d+ kB\): a partitioned index is valid once every partition has an index attached to it$/);
    // Attaching the missing partition's index, as suggested, makes it valid.
    await db.pool.query('CREATE INDEX halfway_2_v ON halfway_2 (v); ALTER INDEX halfway_v ATTACH PARTITION halfway_2_v');
    expect(about(await run(), 'invalid_index', 'halfway')).toEqual([]);
  });

  describe('index_bloat', () => {
    beforeAll(async () => {
      // Each partition's index wastes about 1 MB: under the threshold alone, over it together.
      await db.pool.query(`
        CREATE TABLE swollen (id int) PARTITION BY RANGE (id);
        CREATE TABLE swollen_1 PARTITION OF swollen FOR VALUES FROM (0) TO (100000);
        CREATE TABLE swollen_2 PARTITION OF swollen FOR VALUES FROM (100000) TO (200000);
        CREATE INDEX swollen_id ON swollen (id);
        INSERT INTO swollen SELECT g FROM generate_series(0, 99999, 2) g UNION ALL SELECT g FROM generate_series(100000, 199999, 2) g;
        DELETE FROM swollen WHERE id % 20 <> 0;`);
      await db.pool.query('VACUUM ANALYZE swollen_1, swollen_2');
    });

    it('sums the partitions\' estimated waste into one finding on the parent', async () => {
      const leaves = await leavesOf('swollen_id');
      const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM swollen`);
      expect(rows[0].n).toBe(10_000);
      const alone = await run({ minBloatBytes: Math.round(0.6 * MB) });
      const each = alone.findings.filter((f) => f.code === 'index_bloat' && f.details!.table === 'swollen');
      expect(each.map((f) => f.subject)).toEqual(['public.swollen_id']);
      const wasted = each[0]!.details!.estimatedWastedBytes as number;

      const result = await run({ minBloatBytes: Math.round(1.5 * MB) });
      const [f] = about(result, 'index_bloat', 'swollen');
      expect(f).toMatchObject({
        severity: 'warning',
        subject: 'public.swollen_id',
        suggestion: 'REINDEX INDEX CONCURRENTLY "public"."swollen_id";',
        details: { index: 'swollen_id', indexBytes: total(leaves), rows: 10_000, partitions: 2, partitionsEstimated: 2, estimatedWastedBytes: wasted },
      });
      expect(wasted).toBeGreaterThanOrEqual(1.5 * MB);
      // Either partition alone wastes less than the threshold: only their sum reaches it.
      expect(Math.max(...leaves.map((l) => l.bytes))).toBeLessThan(1.5 * MB);
      expect(f!.message).toMatch(/^public\.swollen_id on swollen \(2 partitions\): ~\d+(\.\d)? MB of \d+(\.\d)? MB wasted \(estimate from catalog statistics; expected ~\d+ kB\)$/);
      // The suggestion is one statement that the server accepts for a partitioned index (PostgreSQL 14+).
      await db.pool.query(f!.suggestion!);
      expect(total(await leavesOf('swollen_id'))).toBeLessThan(total(leaves) / 2);
    });
  });

  it('the suggested DROP INDEX drops the parent index and every partition\'s index with it', async () => {
    const result = await run({ minIndexBytes: 0 });
    const f = about(result, 'unused_index', 'events').find((x) => x.subject === 'public.events_note')!;
    const statements = f.suggestion!.slice(f.suggestion!.indexOf('SET lock_timeout'));
    // Its own session: the suggestion's SET lasts for the session it runs in.
    const c = new Client({ connectionString: db.url });
    await c.connect();
    try {
      await c.query(statements);
    } finally {
      await c.end();
    }
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM pg_class WHERE relname LIKE 'events%note%' AND relkind IN ('i', 'I')`);
    expect(rows[0].n).toBe(0);
  });
});
