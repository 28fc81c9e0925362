/**
 * disk-check beside sessions that hold or await ACCESS EXCLUSIVE locks: the
 * one lock mode the size functions' ACCESS SHARE waits for. A table it
 * cannot size without waiting is named in `size_check_incomplete`;
 * everything else is still reported.
 */
import { Client } from 'pg';
import { diskCheck, type SkippedRelation } from '../../src/jobs/disk-check';
import { migrate } from '../../src/results/migrate';
import type { Finding, TaskResult } from '../../src/contract/result';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { eventually } from '../support/jobs';
import { runOnPostgres } from '../support/run-task';

let db: TestDatabase;

/** topN 50: every table of this database, caretaker's own included, is listed unless it was skipped. */
function run(params: Record<string, unknown> = {}): Promise<TaskResult> {
  return runOnPostgres(diskCheck, { url: db.url, state: db.pool, params: { topN: 50, ...params } });
}

const one = (r: TaskResult, code: string): Finding | undefined => r.findings.find((f) => f.code === code);

interface Sizes {
  tables: { schema: string; table: string; totalBytes: number }[];
  indexes: { schema: string; index: string; table: string; bytes: number }[];
}

async function session(): Promise<{ client: Client; pid: number }> {
  const client = new Client({ connectionString: db.url });
  await client.connect();
  const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  return { client, pid };
}

/** Until `pid` shows a lock of `mode` on `relation` that is (or is not yet) granted. */
async function lockSeen(pid: number, relation: string, mode: string, granted: boolean): Promise<void> {
  await eventually(async () => {
    const { rows } = await db.pool.query(
      `SELECT 1 FROM pg_locks WHERE pid = $1 AND relation = to_regclass($2) AND mode = $3 AND granted = $4`,
      [pid, relation, mode, granted],
    );
    return rows.length > 0 ? true : undefined;
  }, 10_000, `pid ${pid} ${granted ? 'to hold' : 'to await'} ${mode} on ${relation}`);
}

async function totalSize(relation: string): Promise<number> {
  return Number((await db.pool.query<{ n: string }>('SELECT pg_total_relation_size($1::regclass) AS n', [relation])).rows[0]!.n);
}

beforeAll(async () => {
  db = await createTestDatabase('disklocks');
  const q = (sql: string) => db.pool.query(sql);
  await q(`CREATE TABLE sized (id int PRIMARY KEY, filler text)`);
  await q(`INSERT INTO sized SELECT i, repeat('s', 200) FROM generate_series(1, 2000) i`);
  await q(`CREATE TABLE migrating (id int, filler text)`);
  await q(`INSERT INTO migrating SELECT i, repeat('m', 200) FROM generate_series(1, 500) i`);
  await q(`CREATE TABLE reindexed (id int PRIMARY KEY)`);
  await q(`INSERT INTO reindexed SELECT generate_series(1, 500)`);
  await q(`VACUUM ANALYZE sized, migrating, reindexed`);
  await migrate(db.pool);
});

afterAll(async () => {
  await db.drop();
});

describe('disk-check: relations locked by other sessions', () => {
  it('an ALTER TABLE queued behind a long transaction: that table is named as incomplete, every other figure is reported', async () => {
    const reader = await session();
    const migrator = await session();
    let alter: Promise<unknown> | undefined;
    try {
      // The long transaction: a read that keeps its ACCESS SHARE lock until it ends.
      await reader.client.query('BEGIN');
      await reader.client.query('SELECT count(*) FROM migrating');
      // The migration queues for ACCESS EXCLUSIVE behind it; every later ACCESS SHARE queues behind the migration.
      alter = migrator.client.query('ALTER TABLE migrating ADD COLUMN extra int').catch((err: unknown) => err);
      await lockSeen(migrator.pid, 'migrating', 'AccessExclusiveLock', false);

      const result = await run();
      expect(result.status).not.toBe('error');
      expect(result.metrics.database_size_bytes).toBeGreaterThan(0);
      expect(one(result, 'database_size')).toMatchObject({ severity: 'info', subject: db.name });
      expect(result.metrics.table_bloat_estimated_bytes).toBeGreaterThanOrEqual(0);

      const sizes = one(result, 'largest_tables')!.details as unknown as Sizes;
      expect(sizes.tables.find((t) => t.table === 'sized')?.totalBytes).toBe(await totalSize('sized'));
      expect(sizes.tables.find((t) => t.table === 'reindexed')).toBeDefined();
      expect(sizes.tables.find((t) => t.table === 'migrating')).toBeUndefined();
      expect(sizes.indexes).toContainEqual({ schema: 'public', index: 'sized_pkey', table: 'sized', bytes: await totalSize('sized_pkey') });

      const incomplete = one(result, 'size_check_incomplete')!;
      expect(incomplete).toMatchObject({ severity: 'info', subject: db.name });
      expect(incomplete.message).toMatch(
        new RegExp(String.raw`^1 relation not sized: .* left out of largest_tables .*: public\.migrating \(table, about \d+ kB, awaited by pid ${migrator.pid}\)$`),
      );
      const skipped = incomplete.details!.relations as SkippedRelation[];
      expect(skipped).toEqual([
        expect.objectContaining({ schema: 'public', name: 'migrating', kind: 'table', lockedBy: [{ pid: migrator.pid, granted: false }] }),
      ]);
      // The figure pg_class keeps (as of the VACUUM above) stands in for the size it could not measure.
      const pages = Number((await db.pool.query<{ n: string }>(`SELECT relpages AS n FROM pg_class WHERE relname = 'migrating'`)).rows[0]!.n);
      expect(pages).toBeGreaterThan(0);
      expect(skipped[0]!.estimatedBytes).toBeGreaterThanOrEqual(pages * 8192);
      expect(result.metrics.relations_not_sized).toBe(1);
      expect(result.summary).toContain('1 relation not sized (locked)');
    } finally {
      await reader.client.query('ROLLBACK').catch(() => undefined);
      await alter;
      await reader.client.end();
      await migrator.client.end();
    }
    // The migration went through once the reader ended: disk-check did not stand in its way.
    expect(await db.pool.query(`SELECT extra FROM migrating LIMIT 1`)).toBeDefined();
    const after = await run();
    expect(one(after, 'size_check_incomplete')).toBeUndefined();
    expect(after.metrics.relations_not_sized).toBe(0);
  });

  it('an index held by REINDEX: its table and the index are named as incomplete', async () => {
    const holder = await session();
    try {
      await holder.client.query('BEGIN');
      await holder.client.query('REINDEX INDEX reindexed_pkey');
      await lockSeen(holder.pid, 'reindexed_pkey', 'AccessExclusiveLock', true);

      const result = await run();
      expect(result.status).not.toBe('error');
      const sizes = one(result, 'largest_tables')!.details as unknown as Sizes;
      // The state database shares this one: only the planted tables (schema public) are looked at.
      expect(sizes.tables.filter((t) => t.schema === 'public').map((t) => t.table).sort()).toEqual(['migrating', 'sized']);
      expect(sizes.indexes.map((i) => i.index)).not.toContain('reindexed_pkey');
      expect(sizes.indexes.map((i) => i.index)).toContain('sized_pkey');

      const skipped = one(result, 'size_check_incomplete')!.details!.relations as SkippedRelation[];
      const lockedBy = [{ pid: holder.pid, granted: true }];
      expect(skipped).toHaveLength(2);
      expect(skipped).toContainEqual(expect.objectContaining({ schema: 'public', name: 'reindexed', kind: 'table', lockedBy }));
      expect(skipped).toContainEqual(expect.objectContaining({ schema: 'public', name: 'reindexed_pkey', kind: 'index', lockedBy }));
      expect(result.metrics.relations_not_sized).toBe(2);
    } finally {
      await holder.client.query('ROLLBACK').catch(() => undefined);
      await holder.client.end();
    }
  });
});
