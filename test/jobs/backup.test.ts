import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Pool } from 'pg';
import { backup } from '../../src/jobs/backup';
import { manifestSchema } from '../../src/backups/manifest';
import { dumpName, fileTimestamp } from '../../src/backups/dump';
import type { TaskResult } from '../../src/contract/result';
import { createTestDatabase, dropRoles, randomRoleName, urlFor, type TestDatabase } from '../support/db';
import { runOnBackups } from '../support/backups';

const DAY = 86_400_000;
const role = randomRoleName('bkp');
let db: TestDatabase;
let root: string;
let dirs = 0;

/** What the seed puts in each table pg_dump dumps the rows of. */
const SEEDED: Record<string, number> = {
  'public.accounts': 120,
  'public.Order Items': 37,
  'public.empty': 0,
  'public.events_2025': 50,
  'public.events_2026': 50,
  'billing.invoices': 250,
  'public.busy': 0,
};

async function freshDir(): Promise<string> {
  const dir = join(root, `d${++dirs}`);
  await mkdir(dir);
  return dir;
}

function run(dir: string, opts: { params?: Record<string, unknown>; dryRun?: boolean; allow?: boolean; pattern?: string; sourceUrl?: string } = {}): Promise<TaskResult> {
  return runOnBackups(backup, {
    sourceUrl: opts.sourceUrl ?? db.url,
    state: db.pool,
    backups: {
      store: { kind: 'directory', path: dir },
      pattern: opts.pattern ?? 'seed-*.sql.gz',
      allow: { backup: opts.allow ?? true, restore: false },
    },
    params: opts.params,
    dryRun: opts.dryRun,
  });
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Every file in the directory, hidden ones (a store's partial writes) included. */
async function listing(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

/** Old dump files (content irrelevant to retention), each `days` old, with a manifest when asked. */
async function plantOld(dir: string, files: { name: string; days: number; manifest?: boolean }[]): Promise<void> {
  for (const f of files) {
    const at = new Date(Date.now() - f.days * DAY);
    await writeFile(join(dir, f.name), `dump ${f.name}`);
    await utimes(join(dir, f.name), at, at);
    if (f.manifest) await writeFile(join(dir, `${f.name}.manifest.json`), '{}');
  }
}

/** Rows per table in a plain dump: the lines between `COPY schema.table ... FROM stdin;` and `\.`. */
function copyRows(sql: string): Record<string, number> {
  const counts: Record<string, number> = {};
  const re = /^COPY (\S+|\S+\."[^"]+") \(.*\) FROM stdin;\n([\s\S]*?)^\\\.$/gm;
  for (const m of sql.matchAll(re)) counts[m[1]!.replace(/"/g, '')] = m[2]!.split('\n').length - 1;
  return counts;
}

beforeAll(async () => {
  db = await createTestDatabase('backup');
  root = await mkdtemp(join(tmpdir(), 'caretaker-backup-'));
  const q = (sql: string) => db.pool.query(sql);
  await q(`CREATE TABLE accounts (id serial PRIMARY KEY, email text NOT NULL)`);
  await q(`INSERT INTO accounts (email) SELECT 'user' || g || '@example.com' FROM generate_series(1, 120) g`);
  await q(`CREATE TABLE "Order Items" (id int, note text)`);
  await q(`INSERT INTO "Order Items" SELECT g, repeat('n', g) FROM generate_series(1, 37) g`);
  await q(`CREATE TABLE empty (id int)`);
  await q(`CREATE TABLE events (id int, at date) PARTITION BY RANGE (at)`);
  await q(`CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')`);
  await q(`CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')`);
  await q(`INSERT INTO events SELECT g, date '2025-06-01' + (g % 2) * 365 FROM generate_series(1, 100) g`);
  await q(`CREATE SCHEMA billing`);
  await q(`CREATE TABLE billing.invoices (id bigint PRIMARY KEY, amount numeric)`);
  await q(`INSERT INTO billing.invoices SELECT g, g * 1.5 FROM generate_series(1, 250) g`);
  await q(`CREATE MATERIALIZED VIEW account_count AS SELECT count(*) FROM accounts`);
  await q(`CREATE VIEW recent AS SELECT * FROM accounts WHERE id > 100`);
  await q(`CREATE TABLE busy (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())`);
});

afterAll(async () => {
  await db.drop();
  await dropRoles(role);
  await rm(root, { recursive: true, force: true });
});

describe('backup', () => {
  it('names dumps from the pattern with a UTC timestamp, and refuses a pattern without exactly one "*"', async () => {
    const at = new Date('2026-11-27T03:00:00.456Z');
    expect(fileTimestamp(at)).toBe('20261127T030000Z');
    expect(dumpName('auditron-*.sql.gz', at)).toBe('auditron-20261127T030000Z.sql.gz');
    expect(() => dumpName('auditron.sql.gz', at)).toThrow(/exactly one "\*"/);
    expect(() => dumpName('a-*-*.sql.gz', at)).toThrow(/exactly one "\*"/);
    const dir = await freshDir();
    const result = await run(dir, { pattern: 'seed.sql.gz' });
    expect(result.status).toBe('error');
    expect(result.summary).toMatch(/pattern "seed\.sql\.gz" must contain exactly one "\*"/);
    expect(await listing(dir)).toEqual([]);
  });

  it('streams pg_dump | gzip into the store with a manifest: sha256 of the file, row counts of the source', async () => {
    const dir = await freshDir();
    const result = await run(dir);
    expect(result.status).toBe('ok');
    const files = await listing(dir);
    expect(files).toHaveLength(2);
    const name = files[0]!;
    expect(name).toMatch(/^seed-\d{8}T\d{6}Z\.sql\.gz$/);
    expect(files[1]).toBe(`${name}.manifest.json`);

    const manifest = manifestSchema.parse(JSON.parse(await readFile(join(dir, files[1]!), 'utf8')));
    const size = (await stat(join(dir, name))).size;
    const { rows } = await db.pool.query<{ v: string }>(`SELECT current_setting('server_version') AS v`);
    expect(manifest).toMatchObject({ version: 1, file: name, format: 'plain-gzip', sizeBytes: size, database: db.name, serverVersion: rows[0]!.v });
    expect(manifest.sha256).toBe(await sha256Of(join(dir, name)));
    expect(manifest.tables).toEqual(SEEDED);
    expect(Date.parse(manifest.finishedAt)).toBeGreaterThanOrEqual(Date.parse(manifest.startedAt));

    // The file is the runbook's dump: gzip'd plain SQL that pg_dump finished, quoting what needs it.
    const sql = gunzipSync(await readFile(join(dir, name))).toString('utf8');
    expect(sql).toContain('CREATE TABLE public."Order Items"');
    expect(sql).toMatch(/-- PostgreSQL database dump complete\n--\n/);
    expect(copyRows(sql)).toEqual(SEEDED);

    expect(result.metrics).toEqual({ backup_size_bytes: size, backup_seconds: expect.any(Number), backup_tables: 7, backups_deleted: 0 });
    expect(result.actions).toEqual([
      expect.objectContaining({ kind: 'take_dump', subject: name, applied: true, details: expect.objectContaining({ sha256: manifest.sha256, sizeBytes: size, tables: 7 }) }),
    ]);
    expect(result.summary).toMatch(new RegExp(`dumped ${db.name} \\(7 tables, .* plain-gzip\\) to ${name.replace(/\./g, '\\.')}`));
  });

  it('lists the dump as applied when its manifest cannot be written after it (a full disk), and the run is an error', async () => {
    const dir = await freshDir();
    // Where each manifest of the next two minutes would go, a non-empty directory: renaming the written manifest onto it fails.
    const now = Date.now();
    for (let s = 0; s < 120; s++) {
      const blocked = join(dir, `seed-${fileTimestamp(new Date(now + s * 1000))}.sql.gz.manifest.json`);
      await mkdir(join(blocked, 'x'), { recursive: true });
    }
    const result = await run(dir);
    expect(result.status).toBe('error');
    expect(result.summary).toMatch(/^backup failed on nightly: seed-\d{8}T\d{6}Z\.sql\.gz was written but its manifest was not \(.+\): backup-verify cannot check its sha256 \(after 1 change: see actions\)$/);
    const name = /(seed-\S+\.sql\.gz) was written/.exec(result.summary)![1]!;
    expect(result.actions).toEqual([expect.objectContaining({ kind: 'take_dump', subject: name, applied: true })]);
    expect((await stat(join(dir, name))).size).toBeGreaterThan(0);
  });

  it('counts rows in the snapshot pg_dump dumps, so they agree while the source is being written', async () => {
    const dir = await freshDir();
    const writer = new Pool({ connectionString: db.url, max: 1 });
    let writing = true;
    let inserted = 0;
    const loop = (async () => {
      while (writing) {
        await writer.query('INSERT INTO busy DEFAULT VALUES');
        inserted++;
      }
    })();
    try {
      // Let the writer get going, so rows land between the counts and pg_dump's start.
      while (inserted < 50) await new Promise((r) => setTimeout(r, 10));
      const result = await run(dir);
      expect(result.status).toBe('ok');
    } finally {
      writing = false;
      await loop;
      await writer.end();
    }
    const [name, manifestFile] = await listing(dir);
    const manifest = manifestSchema.parse(JSON.parse(await readFile(join(dir, manifestFile!), 'utf8')));
    const dumped = copyRows(gunzipSync(await readFile(join(dir, name!))).toString('utf8'));
    expect(manifest.tables['public.busy']).toBeGreaterThanOrEqual(50);
    expect(dumped['public.busy']).toBe(manifest.tables['public.busy']);
    expect(inserted).toBeGreaterThan(manifest.tables['public.busy']!);
    await db.pool.query('TRUNCATE busy');
  });

  it('takes a custom-format dump (pg_dump -Fc) when the pattern says so', async () => {
    const dir = await freshDir();
    const result = await run(dir, { pattern: 'seed-*.dump' });
    expect(result.status).toBe('ok');
    const [name, manifestFile] = await listing(dir);
    expect(name).toMatch(/^seed-\d{8}T\d{6}Z\.dump$/);
    const manifest = manifestSchema.parse(JSON.parse(await readFile(join(dir, manifestFile!), 'utf8')));
    expect(manifest.format).toBe('custom');
    expect(manifest.sha256).toBe(await sha256Of(join(dir, name!)));
    expect(manifest.tables).toEqual(SEEDED);
    expect((await readFile(join(dir, name!))).subarray(0, 5).toString()).toBe('PGDMP');
    const list = spawnSync('pg_restore', ['--list', join(dir, name!)], { encoding: 'utf8' });
    expect(list.status).toBe(0);
    expect(list.stdout).toMatch(/TABLE DATA public Order Items /);
    // A format the name contradicts is refused: backup-verify goes by the name.
    const refused = await run(await freshDir(), { pattern: 'seed-*.sql.gz', params: { format: 'custom' } });
    expect(refused.status).toBe('error');
    expect(refused.summary).toMatch(/format custom contradicts the pattern/);
  });

  it('deletes only dumps beyond both limits (the newest keep AND keepDays), with their manifests', async () => {
    // keep 2, keepDays 3: x2 is beyond the count but young, x3 and x4 beyond both.
    const a = await freshDir();
    await plantOld(a, [
      { name: 'seed-x1.sql.gz', days: 1 },
      { name: 'seed-x2.sql.gz', days: 2 },
      { name: 'seed-x3.sql.gz', days: 5, manifest: true },
      { name: 'seed-x4.sql.gz', days: 10, manifest: true },
      { name: 'unrelated.sql.gz', days: 40 },
    ]);
    const first = await run(a, { params: { keep: 2, keepDays: 3 } });
    expect(first.status).toBe('ok');
    const taken = first.actions[0]!.subject;
    expect(await listing(a)).toEqual([taken, `${taken}.manifest.json`, 'seed-x1.sql.gz', 'seed-x2.sql.gz', 'unrelated.sql.gz'].sort());
    expect(first.actions.slice(1).map((x) => [x.kind, x.subject, x.applied])).toEqual([
      ['delete_dump', 'seed-x3.sql.gz', true],
      ['delete_dump', 'seed-x4.sql.gz', true],
    ]);
    expect(first.actions[1]!.details).toMatchObject({ ageDays: 5, manifest: 'seed-x3.sql.gz.manifest.json' });
    expect(first.metrics.backups_deleted).toBe(2);
    expect(first.summary).toMatch(/deleted 2 old dumps/);

    // keep 3, keepDays 1: y2 is old but among the newest 3, y3 beyond both.
    const b = await freshDir();
    await plantOld(b, [
      { name: 'seed-y1.sql.gz', days: 5 },
      { name: 'seed-y2.sql.gz', days: 6 },
      { name: 'seed-y3.sql.gz', days: 7 },
    ]);
    const second = await run(b, { params: { keep: 3, keepDays: 1 } });
    expect(second.actions.filter((x) => x.kind === 'delete_dump').map((x) => x.subject)).toEqual(['seed-y3.sql.gz']);
    expect((await listing(b)).filter((f) => f.startsWith('seed-y'))).toEqual(['seed-y1.sql.gz', 'seed-y2.sql.gz']);
  });

  it('in a dry run takes no dump and deletes nothing, and says what it would do', async () => {
    const dir = await freshDir();
    await plantOld(dir, [
      { name: 'seed-x1.sql.gz', days: 1 },
      { name: 'seed-x2.sql.gz', days: 20, manifest: true },
    ]);
    const before = await listing(dir);
    const result = await run(dir, { dryRun: true, params: { keep: 1, keepDays: 7 } });
    expect(result.status).toBe('ok');
    expect(await listing(dir)).toEqual(before);
    expect(result.actions.map((a) => [a.kind, a.applied])).toEqual([
      ['take_dump', false],
      ['delete_dump', false],
    ]);
    expect(result.actions[1]!.subject).toBe('seed-x2.sql.gz');
    expect(result.metrics.backups_deleted).toBe(0);
    expect(result.summary).toMatch(/^dry run: would dump main to seed-\d{8}T\d{6}Z\.sql\.gz \(plain-gzip\) and delete 1 old dumps$/);
  });

  it('without allow.backup does nothing and says so (info, not an error)', async () => {
    const dir = await freshDir();
    await plantOld(dir, [{ name: 'seed-x1.sql.gz', days: 100 }]);
    const result = await run(dir, { allow: false, params: { keep: 1, keepDays: 0 } });
    expect(result.status).toBe('ok');
    expect(result.findings).toEqual([expect.objectContaining({ severity: 'info', code: 'backup_not_allowed', subject: 'nightly' })]);
    expect(result.actions).toEqual([]);
    expect(await listing(dir)).toEqual(['seed-x1.sql.gz']);
  });

  it('without pg_dump is an error that says to install the PostgreSQL client', async () => {
    const dir = await freshDir();
    const result = await run(dir, { params: { pgDump: '/nonexistent/bin/pg_dump' } });
    expect(result.status).toBe('error');
    expect(result.summary).toMatch(/pg_dump not found \(\/nonexistent\/bin\/pg_dump\): install the PostgreSQL client/);
    expect(await listing(dir)).toEqual([]);
  });

  it('leaves nothing in the store when pg_dump fails midway', async () => {
    // Row-level security on the last table: the role may count it, but pg_dump
    // (row_security off) fails at its COPY, after the rest has streamed out.
    await db.pool.query(`CREATE ROLE ${role} LOGIN`);
    await db.pool.query(`CREATE TABLE zz_secret (id int)`);
    await db.pool.query(`INSERT INTO zz_secret SELECT generate_series(1, 10)`);
    await db.pool.query(`ALTER TABLE zz_secret ENABLE ROW LEVEL SECURITY`);
    await db.pool.query(`CREATE POLICY mine ON zz_secret USING (id < 5)`);
    await db.pool.query(`GRANT USAGE ON SCHEMA billing TO ${role}`);
    await db.pool.query(`GRANT SELECT ON ALL TABLES IN SCHEMA public, billing TO ${role}`);
    await db.pool.query(`GRANT SELECT ON ALL SEQUENCES IN SCHEMA public, billing TO ${role}`);
    try {
      const dir = await freshDir();
      const result = await run(dir, { sourceUrl: urlFor(db.name, role) });
      expect(result.status).toBe('error');
      expect(result.summary).toMatch(/pg_dump failed \(exit 1\): .*row-level security/);
      expect(await listing(dir)).toEqual([]);
    } finally {
      await db.pool.query(`DROP TABLE zz_secret`);
      await db.pool.query(`DROP OWNED BY ${role}`);
    }
  });
});
