import { randomBytes } from 'node:crypto';
import { statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { Client, escapeIdentifier } from 'pg';
import { diskCheck, isLocalPostgresUrl } from '../../src/jobs/disk-check';
import { migrate } from '../../src/results/migrate';
import { ResultStore } from '../../src/results/store';
import type { Finding, TaskResult } from '../../src/contract/result';
import { createTestDatabase, dropRoles, randomRoleName, urlFor, type TestDatabase } from '../support/db';
import { runOnPostgres } from '../support/run-task';
import { TEST_PG_ADMIN_URL } from '../support/env';

const KiB = 1024;
const WEIRD = 'We"ird Table; DROP TABLE x';
const role = randomRoleName('disk');
let db: TestDatabase;
let dataDirectory: string;

function run(params: Record<string, unknown> = {}, url = db.url): Promise<TaskResult> {
  return runOnPostgres(diskCheck, { url, state: db.pool, params });
}

const byCode = (r: TaskResult, code: string): Finding[] => r.findings.filter((f) => f.code === code);
const one = (r: TaskResult, code: string, subject?: string): Finding | undefined =>
  r.findings.find((f) => f.code === code && (subject === undefined || f.subject === subject));

/** df's Use%, as the task computes it. */
async function usedRatio(path: string): Promise<{ ratio: number; totalBytes: number }> {
  const s = await statfs(path);
  const used = (s.blocks - s.bfree) * s.bsize;
  return { ratio: used / (used + s.bavail * s.bsize), totalBytes: s.blocks * s.bsize };
}

async function size(sql: string, params: unknown[] = []): Promise<number> {
  const { rows } = await db.pool.query<{ n: string }>(sql, params);
  return Number(rows[0]!.n);
}

/**
 * What the task must never change: every relation's file (a rewrite), and
 * the page and tuple counts only VACUUM and ANALYZE set. From pg_class, not
 * the statistics views: their counters arrive when a session flushes them,
 * so the setup's own inserts could land between two snapshots.
 */
async function snapshot(): Promise<string> {
  const { rows } = await db.pool.query(`
    SELECT c.relname, c.relfilenode, c.relpages, c.reltuples
    FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace ORDER BY c.relname`);
  return JSON.stringify(rows);
}

beforeAll(async () => {
  db = await createTestDatabase('disk');
  const q = (sql: string) => db.pool.query(sql);
  const weird = `public.${escapeIdentifier(WEIRD)}`;
  // Autovacuum stays off on the planted tables: their pages and statistics are what the test sets.
  const noAutovacuum = 'WITH (autovacuum_enabled = false)';
  // 5,000 rows, with a primary key and 200 values large enough to be toasted: the largest table.
  await q(`CREATE TABLE big (id int PRIMARY KEY, payload text, doc text) ${noAutovacuum}`);
  await q(`INSERT INTO big
           SELECT i, repeat(md5(i::text), 12),
                  CASE WHEN i % 25 = 0 THEN (SELECT string_agg(md5(i::text || g::text), '') FROM generate_series(1, 200) g) END
           FROM generate_series(1, 5000) i`);
  // Bloated by insert + delete of 90 % of its rows, spread over every page, then ANALYZE only.
  await q(`CREATE TABLE bloated (id int, filler text) ${noAutovacuum}`);
  await q(`INSERT INTO bloated SELECT i, repeat('b', 100) FROM generate_series(1, 10000) i`);
  await q(`DELETE FROM bloated WHERE id % 10 <> 0`);
  // The same shape, freshly loaded.
  await q(`CREATE TABLE fresh (id int, filler text) ${noAutovacuum}`);
  await q(`INSERT INTO fresh SELECT i, repeat('f', 100) FROM generate_series(1, 10000) i`);
  // A name that needs quoting, also bloated; and the canary it names.
  await q(`CREATE TABLE x (id int)`);
  await q(`CREATE TABLE ${weird} (id int, filler text) ${noAutovacuum}`);
  await q(`INSERT INTO ${weird} SELECT i, repeat('w', 100) FROM generate_series(1, 3000) i`);
  await q(`DELETE FROM ${weird} WHERE id % 10 <> 0`);
  await q(`VACUUM ANALYZE big, fresh, x`);
  await q(`ANALYZE bloated, ${weird}`);
  await migrate(db.pool);
  dataDirectory = (await db.pool.query<{ path: string }>(`SELECT current_setting('data_directory') AS path`)).rows[0]!.path;

  const admin = new Client({ connectionString: TEST_PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE ROLE ${role} LOGIN`);
  await admin.end();
});

afterAll(async () => {
  await db.drop();
  await dropRoles(role);
});

describe('disk-check: sizes', () => {
  it('measures the database as pg_database_size and lists every database on the server', async () => {
    const sizeNow = () => size('SELECT pg_database_size(current_database()) AS n');
    const before = await sizeNow();
    const result = await run();
    const after = await sizeNow();
    // Nothing writes here between the two readings, so this is an equality unless autovacuum touched a catalog.
    expect(result.metrics.database_size_bytes).toBeGreaterThanOrEqual(before);
    expect(result.metrics.database_size_bytes).toBeLessThanOrEqual(after);
    expect(result.status).not.toBe('error');

    const finding = one(result, 'database_size')!;
    expect(finding).toMatchObject({ severity: 'info', subject: db.name });
    const databases = finding.details!.databases as { name: string; bytes: number | null }[];
    expect(databases.find((d) => d.name === db.name)?.bytes).toBe(result.metrics.database_size_bytes);
    const postgres = databases.find((d) => d.name === 'postgres')!;
    expect(postgres.bytes).toBeGreaterThan(0);
  });

  it('lists the largest tables, the planted one first, with table + index + toast = total', async () => {
    const result = await run();
    const { tables, indexes } = one(result, 'largest_tables')!.details as {
      tables: { schema: string; table: string; totalBytes: number; tableBytes: number; indexBytes: number; toastBytes: number }[];
      indexes: { schema: string; index: string; table: string; bytes: number }[];
    };
    expect(tables.length).toBeLessThanOrEqual(10);
    const top = tables[0]!;
    expect(top).toMatchObject({ schema: 'public', table: 'big' });
    expect(top.totalBytes).toBe(await size(`SELECT pg_total_relation_size('big') AS n`));
    expect(top.indexBytes).toBe(await size(`SELECT pg_relation_size('big_pkey') AS n`));
    expect(top.toastBytes).toBe(await size(`SELECT pg_total_relation_size(reltoastrelid) AS n FROM pg_class WHERE oid = 'big'::regclass`));
    expect(top.toastBytes).toBeGreaterThan(0);
    expect(top.tableBytes).toBeGreaterThanOrEqual(await size(`SELECT pg_relation_size('big') AS n`));
    expect(top.tableBytes + top.indexBytes + top.toastBytes).toBe(top.totalBytes);
    // Sorted, largest first.
    expect(tables.map((t) => t.totalBytes)).toEqual([...tables.map((t) => t.totalBytes)].sort((a, b) => b - a));
    expect(indexes).toContainEqual({ schema: 'public', index: 'big_pkey', table: 'big', bytes: top.indexBytes });
    expect(result.summary).toContain(`largest public.big`);

    const limited = await run({ topN: 2 });
    const limitedDetails = one(limited, 'largest_tables')!.details as { tables: unknown[]; indexes: unknown[] };
    expect(limitedDetails.tables).toHaveLength(2);
    expect(limitedDetails.indexes.length).toBeLessThanOrEqual(2);
  });

  it('shows a table whose name needs quoting as it is, and changes nothing', async () => {
    const before = await snapshot();
    const result = await run({ topN: 50, bloatWarningBytes: 256 * KiB });
    const tables = (one(result, 'largest_tables')!.details!.tables as { schema: string; table: string; totalBytes: number }[]);
    const weird = tables.find((t) => t.table === WEIRD)!;
    expect(weird).toMatchObject({ schema: 'public' });
    expect(weird.totalBytes).toBe(await size(`SELECT pg_total_relation_size(to_regclass($1)) AS n`, [`public."We""ird Table; DROP TABLE x"`]));
    // Its bloat finding names it plainly, and the suggested statement quotes it correctly.
    const bloat = one(result, 'table_bloat', `public.${WEIRD}`)!;
    expect(bloat).toBeDefined();
    const literal = /pgstattuple_approx\('((?:[^']|'')*)'::regclass\)/.exec(bloat.suggestion!)![1]!.replace(/''/g, "'");
    expect(await size(`SELECT $1::regclass::oid AS n`, [literal])).toBe(await size(`SELECT to_regclass($1)::oid AS n`, [`public."We""ird Table; DROP TABLE x"`]));
    expect(await snapshot()).toBe(before);
    expect(await size(`SELECT count(*) AS n FROM x`)).toBe(0);
    expect(await size(`SELECT count(*) AS n FROM public."We""ird Table; DROP TABLE x"`)).toBe(300);
  });
});

describe('disk-check: growth', () => {
  it('without a previous run of this task on this target, reports no growth and says "first run"', async () => {
    const store = new ResultStore(db.pool);
    const old = new Date(Date.now() - 2 * 86_400_000).toISOString();
    const other = (task: string, target: string): TaskResult => ({
      task, target, status: 'ok', startedAt: old, finishedAt: old, durationMs: 1, dryRun: false,
      summary: 'elsewhere', findings: [], actions: [], metrics: { database_size_bytes: 1 },
    });
    await store.save(other('disk-check', 'another-target'));
    await store.save(other('connections', 'main'));
    const result = await run();
    expect(byCode(result, 'database_growth')).toEqual([]);
    expect(result.metrics.database_growth_bytes_per_day).toBeUndefined();
    expect(result.summary).toMatch(/first run/);
  });

  it('reports database_growth in bytes/day against the previous result', async () => {
    const current = await size('SELECT pg_database_size(current_database()) AS n');
    const previousBytes = current - 3_000_000;
    const previousAt = new Date(Date.now() - 2 * 86_400_000).toISOString();
    await new ResultStore(db.pool).save({
      task: 'disk-check', target: 'main', status: 'ok', startedAt: previousAt, finishedAt: previousAt, durationMs: 120, dryRun: false,
      summary: 'fabricated', findings: [], actions: [], metrics: { database_size_bytes: previousBytes },
    });
    const result = await run();
    const growth = one(result, 'database_growth')!;
    expect(growth).toMatchObject({ severity: 'info', subject: db.name });
    const d = growth.details as { bytesPerDay: number; previousBytes: number; bytes: number; previousAt: string; measuredAt: string; elapsedDays: number };
    expect(d.previousBytes).toBe(previousBytes);
    expect(d.previousAt).toBe(previousAt);
    expect(d.bytes).toBe(result.metrics.database_size_bytes);
    const elapsedDays = (Date.parse(d.measuredAt) - Date.parse(previousAt)) / 86_400_000;
    expect(d.elapsedDays).toBe(elapsedDays);
    expect(d.bytesPerDay).toBe(Math.round((d.bytes - previousBytes) / elapsedDays));
    // Two days (plus the seconds this test took) for about 3 MB: about 1.5 MB a day.
    expect(elapsedDays).toBeGreaterThanOrEqual(2);
    expect(elapsedDays).toBeLessThan(2.01);
    expect(d.bytesPerDay).toBeGreaterThanOrEqual(Math.floor(((d.bytes - previousBytes) / 2) * 0.995));
    expect(d.bytesPerDay).toBeLessThanOrEqual(Math.ceil((d.bytes - previousBytes) / 2));
    expect(result.metrics.database_growth_bytes_per_day).toBe(d.bytesPerDay);
    expect(result.summary).toMatch(/\+1\.\d MB\/day over 2\.0 days/);
  });

  it('does not compare with a previous run that measured another database', async () => {
    const previousAt = new Date(Date.now() - 86_400_000).toISOString();
    await new ResultStore(db.pool).save({
      task: 'disk-check', target: 'main', status: 'ok', startedAt: previousAt, finishedAt: previousAt, durationMs: 120, dryRun: false,
      summary: 'fabricated', actions: [], metrics: { database_size_bytes: 1 },
      findings: [{ severity: 'info', code: 'database_size', subject: 'olddb', message: 'database olddb is 1 B', details: { database: 'olddb', bytes: 1 } }],
    });
    const result = await run();
    expect(byCode(result, 'database_growth')).toEqual([]);
    expect(result.summary).toMatch(/growth unknown \(the previous run measured olddb\)/);
  });

  describe('with runs minutes apart', () => {
    const HOUR_MS = 3_600_000;
    /** A stored disk-check run of this target, `agoMs` back, that measured this database at `bytes`. */
    async function plant(agoMs: number, bytes: number): Promise<string> {
      const at = new Date(Date.now() - agoMs).toISOString();
      await new ResultStore(db.pool).save({
        task: 'disk-check', target: 'main', status: 'ok', startedAt: at, finishedAt: at, durationMs: 120, dryRun: false,
        summary: 'fabricated', actions: [], metrics: { database_size_bytes: bytes },
        findings: [{ severity: 'info', code: 'database_size', subject: db.name, message: 'fabricated', details: { database: db.name, bytes } }],
      });
      return at;
    }
    // Only these tests' runs: the ones planted above are a day or more old and would be the baseline.
    beforeEach(async () => {
      await db.pool.query(`DELETE FROM caretaker.runs WHERE task = 'disk-check'`);
    });

    it('gives no growth figure from a run minutes ago, and says how long it needs', async () => {
      const current = await size('SELECT pg_database_size(current_database()) AS n');
      await plant(20 * 60_000, current - 50_000_000);
      await plant(5 * 60_000, current - 1_000_000);
      const result = await run();
      expect(result.status).not.toBe('error');
      expect(byCode(result, 'database_growth')).toEqual([]);
      expect(result.metrics.database_growth_bytes_per_day).toBeUndefined();
      expect(result.summary).toMatch(/growth needs 12 h between runs; the last run was \d+ min \d+ s ago/);

      // growthMinHours lowers the bar: 0.05 h is 3 minutes, so the run of 5 minutes ago counts.
      const lowered = await run({ growthMinHours: 0.05 });
      expect(one(lowered, 'database_growth')!.details!.previousBytes).toBe(current - 1_000_000);
    });

    it('compares with the newest run at least growthMinHours old, not with the last one', async () => {
      const current = await size('SELECT pg_database_size(current_database()) AS n');
      await plant(30 * HOUR_MS, current - 9_000_000);
      const baselineAt = await plant(13 * HOUR_MS, current - 2_000_000);
      await plant(10 * 60_000, current - 1_000);
      const result = await run();
      const d = one(result, 'database_growth')!.details as { bytesPerDay: number; previousBytes: number; previousAt: string; measuredAt: string; elapsedDays: number };
      expect(d.previousAt).toBe(baselineAt);
      expect(d.previousBytes).toBe(current - 2_000_000);
      const elapsedDays = (Date.parse(d.measuredAt) - Date.parse(baselineAt)) / 86_400_000;
      expect(d.elapsedDays).toBe(elapsedDays);
      expect(elapsedDays).toBeGreaterThanOrEqual(13 / 24);
      expect(result.metrics.database_growth_bytes_per_day).toBe(d.bytesPerDay);
      expect(d.bytesPerDay).toBe(Math.round((result.metrics.database_size_bytes! - (current - 2_000_000)) / elapsedDays));
      expect(result.summary).toMatch(/\+\d+(\.\d)? MB\/day over 0\.5 days/);
    });
  });
});

describe('disk-check: filesystems', () => {
  it('checks the data directory of a local server; quiet under 80 % with the defaults', async () => {
    const result = await run();
    const real = await usedRatio(dataDirectory);
    expect(result.metrics.disk_total_bytes).toBe(real.totalBytes);
    expect(result.metrics.disk_used_ratio).toBeCloseTo(real.ratio, 2);
    expect(result.metrics.disk_free_bytes).toBeGreaterThan(0);
    expect(result.summary).toMatch(/data directory \d+ % used \(.* free\)/);
    expect(byCode(result, 'disk_usage_unknown')).toEqual([]);
    if (real.ratio < 0.79) expect(byCode(result, 'disk_usage_high')).toEqual([]);
  });

  it('raises disk_usage_high over the thresholds, with the right severity', async () => {
    const real = await usedRatio(dataDirectory);
    const warning = await run({ diskWarning: 0.0001, diskCritical: 0.99 });
    const finding = one(warning, 'disk_usage_high', dataDirectory)!;
    expect(finding.severity).toBe(real.ratio >= 0.99 ? 'critical' : 'warning');
    expect(finding.details).toMatchObject({ kind: 'data_directory', path: dataDirectory, totalBytes: real.totalBytes });
    expect(finding.message).toMatch(/% used, .* free of /);

    const critical = await run({ diskWarning: 0.0001, diskCritical: 0.0002 });
    expect(one(critical, 'disk_usage_high', dataDirectory)?.severity).toBe('critical');
    expect(critical.status).toBe('critical');
  });

  it('checks configured volumes; a missing one is an info finding, not an error', async () => {
    const missing = `/nonexistent/caretaker-${randomBytes(4).toString('hex')}`;
    const volume = tmpdir();
    const result = await run({ volumes: [volume, missing], diskWarning: 0.0001, diskCritical: 1 });
    expect(result.status).not.toBe('error');
    const high = one(result, 'disk_usage_high', volume)!;
    expect(high.details).toMatchObject({ kind: 'volume', path: volume, totalBytes: (await usedRatio(volume)).totalBytes });
    const unknown = one(result, 'disk_usage_unknown', missing)!;
    expect(unknown).toMatchObject({ severity: 'info', details: { kind: 'volume', path: missing } });
    expect(unknown.message).toBe(`cannot read the filesystem usage of ${missing} (ENOENT: no such file or directory, statfs '${missing}')`);
    expect(result.summary).toContain(`${missing} unknown`);
  });

  it('does not guess for a server that is not on this machine', async () => {
    // 127.1 reaches the same server, but is not one of the names the task takes as local.
    const url = new URL(db.url);
    url.hostname = '127.1';
    const result = await run({ diskWarning: 0.0001 }, url.toString());
    expect(result.status).toBe('ok');
    expect(result.metrics.disk_used_ratio).toBeUndefined();
    expect(byCode(result, 'disk_usage_high')).toEqual([]);
    expect(one(result, 'disk_usage_unknown', dataDirectory)).toMatchObject({ severity: 'info' });
    expect(result.summary).toMatch(/data directory not local, disk not checked/);
  });

  it('says so when the role cannot see the data directory (no pg_read_all_settings)', async () => {
    const result = await run({ diskWarning: 0.0001 }, urlFor(db.name, role));
    expect(result.status).toBe('ok');
    expect(result.metrics.database_size_bytes).toBeGreaterThan(0);
    expect(one(result, 'disk_usage_unknown', 'data_directory')).toMatchObject({ severity: 'info' });
    expect(result.summary).toMatch(/data directory not visible/);
  });

  it('takes only localhost, loopback addresses and socket paths as local', () => {
    for (const url of [
      'postgres://postgres@127.0.0.1:5432/db',
      'postgres://localhost/db',
      'postgresql://u:p@LOCALHOST:5433/db',
      'postgres://[::1]:5432/db',
      'postgres:///db',
      'postgres:///db?host=/var/run/postgresql',
      'postgres://%2Fvar%2Frun%2Fpostgresql/db',
      'postgres://localhost,127.0.0.1/db',
    ]) expect([url, isLocalPostgresUrl(url)]).toEqual([url, true]);
    for (const url of [
      'postgres://db.example.com/db',
      'postgres://10.0.0.5:5432/db',
      'postgres://localhost.example.com/db',
      'postgres://127.1/db',
      'postgres://localhost/db?host=db.example.com',
      'postgres://localhost,db2.example.com/db',
      'not a url',
    ]) expect([url, isLocalPostgresUrl(url)]).toEqual([url, false]);
  });
});

describe('disk-check: table bloat', () => {
  it('flags a table bloated by insert + delete, as an estimate, and not a freshly loaded one', async () => {
    const result = await run({ bloatWarningBytes: 512 * KiB, bloatCriticalBytes: 1024 ** 3 });
    const bloated = one(result, 'table_bloat', 'public.bloated')!;
    expect(bloated.severity).toBe('warning');
    expect(bloated.message).toMatch(/estimate/);
    const d = bloated.details as { estimatedBloatBytes: number; bloatRatio: number; realBytes: number; expectedBytes: number };
    expect(d.realBytes).toBe(await size(`SELECT pg_relation_size('bloated') AS n`));
    // 90 % of the rows were deleted from every page: the estimate should need a tenth of the
    // pages the same rows take freshly loaded, within a page of rounding.
    const freshPages = (await size(`SELECT pg_relation_size('fresh') AS n`)) / 8192;
    expect(Math.abs(d.expectedBytes / 8192 - freshPages / 10)).toBeLessThanOrEqual(1);
    expect(d.estimatedBloatBytes).toBe(d.realBytes - d.expectedBytes);
    expect(d.bloatRatio).toBeCloseTo(d.estimatedBloatBytes / d.realBytes, 10);
    expect(one(result, 'table_bloat', 'public.fresh')).toBeUndefined();
    expect(one(result, 'table_bloat', 'public.big')).toBeUndefined();
    expect(result.summary).toMatch(/1 table with estimated bloat over 512 kB/);

    const critical = await run({ bloatWarningBytes: 256 * KiB, bloatCriticalBytes: 512 * KiB });
    expect(one(critical, 'table_bloat', 'public.bloated')?.severity).toBe('critical');
  });

  it('flags nothing with the default bounds (1 GB, 5 GB)', async () => {
    const result = await run();
    expect(byCode(result, 'table_bloat')).toEqual([]);
    expect(result.metrics.table_bloat_estimated_bytes).toBeGreaterThan(0);
    expect(result.summary).toMatch(/no table with estimated bloat over 1 GB/);
  });
});
