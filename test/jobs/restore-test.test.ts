import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { Client } from 'pg';
import { restoreTest } from '../../src/jobs/restore-test';
import { scratchDatabaseName, scratchNamePrefix } from '../../src/backups/scratch';
import { manifestName, type BackupManifest } from '../../src/backups/manifest';
import { parseToolError } from '../../src/backups/restore';
import type { Task } from '../../src/contract/task';
import type { Finding, TaskResult } from '../../src/contract/result';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { makeDump, runOnBackups } from '../support/backups';
import { eventually } from '../support/jobs';
import { TEST_PG_ADMIN_URL } from '../support/env';
import { migrate } from '../../src/results/migrate';
import { ResultStore } from '../../src/results/store';

/** A target name of this file only: scratch names (and the sweep) are per target, and test files run in parallel. */
const TARGET = `rt-${randomBytes(3).toString('hex')}`;
/** `caretaker_scratch_<target>_`: every scratch database of TARGET starts with it. */
const OURS = scratchNamePrefix(TARGET);
const COUNTS = { 'public.accounts': 1000, 'public.Order Items': 50, 'sales.events': 200, 'public.empty_log': 0 };

let source: TestDatabase;
let admin: Client;
const dirs: string[] = [];

interface RunOpts {
  dir: string;
  allow?: { restore?: boolean };
  scratch?: { url: string } | null;
  params?: Record<string, unknown>;
  dryRun?: boolean;
  signal?: AbortSignal;
  sourceLockTimeoutMs?: number;
}

function run(task: Task, opts: RunOpts): Promise<TaskResult> {
  return runOnBackups(task, {
    sourceUrl: source.url,
    state: source.pool,
    name: TARGET,
    source: { lockTimeoutMs: opts.sourceLockTimeoutMs ?? 5_000 },
    backups: {
      store: { kind: 'directory', path: opts.dir },
      pattern: 'auditron-*',
      ...(opts.scratch === null ? {} : { scratch: opts.scratch ?? { url: TEST_PG_ADMIN_URL } }),
      allow: { restore: opts.allow?.restore ?? true },
    },
    params: opts.params,
    dryRun: opts.dryRun,
    signal: opts.signal,
  });
}

async function storeDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ct-restore-'));
  dirs.push(dir);
  return dir;
}

/** This target's scratch databases on the server. */
async function scratchDatabases(): Promise<string[]> {
  const { rows } = await admin.query<{ datname: string }>('SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY 1', [OURS]);
  return rows.map((r) => r.datname);
}

async function writeManifest(dir: string, file: string, tables: Record<string, number>, extra: Partial<BackupManifest> = {}): Promise<void> {
  const body = await readFile(join(dir, file));
  const manifest: BackupManifest = {
    version: 1,
    file,
    format: file.endsWith('.gz') ? 'plain-gzip' : 'custom',
    sizeBytes: body.length,
    sha256: createHash('sha256').update(body).digest('hex'),
    database: source.name,
    serverVersion: '15',
    startedAt: new Date().toISOString(),
    finishedAt: new Date().toISOString(),
    tables,
    ...extra,
  };
  await writeFile(join(dir, manifestName(file)), JSON.stringify(manifest));
}

/** A gzip'd plain SQL "dump" written by hand. */
async function writeSqlDump(dir: string, name: string, sql: string): Promise<void> {
  await writeFile(join(dir, name), gzipSync(Buffer.from(sql)));
}

const byCode = (r: TaskResult, code: string): Finding[] => r.findings.filter((f) => f.code === code);

beforeAll(async () => {
  source = await createTestDatabase('restore');
  admin = new Client({ connectionString: TEST_PG_ADMIN_URL });
  await admin.connect();
  await source.pool.query(`
    CREATE TABLE public.accounts (id serial PRIMARY KEY, name text NOT NULL);
    INSERT INTO public.accounts (name) SELECT 'a' || g FROM generate_series(1, 1000) g;
    CREATE TABLE public."Order Items" (id int PRIMARY KEY, qty int);
    INSERT INTO public."Order Items" SELECT g, g % 7 FROM generate_series(1, 50) g;
    CREATE SCHEMA sales;
    CREATE TABLE sales.events (id bigint, at timestamptz DEFAULT now());
    INSERT INTO sales.events (id) SELECT g FROM generate_series(1, 200) g;
    CREATE TABLE public.empty_log (id int);
    ANALYZE;`);
});

afterAll(async () => {
  // Nothing of this file's target may be left, whatever a test did.
  for (const name of await scratchDatabases()) await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(name)} WITH (FORCE)`);
  await admin.end();
  await source.drop();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('restore-test', () => {
  it('restores a plain dump, matches the manifest row for row, and drops the scratch database', async () => {
    const dir = await storeDir();
    await makeDump(source.url, dir, 'auditron-1.sql.gz');
    await writeManifest(dir, 'auditron-1.sql.gz', COUNTS);
    const result = await run(restoreTest, { dir });
    expect(result.status).toBe('ok');
    expect(result.findings).toEqual([]);
    expect(result.metrics).toMatchObject({ restore_tables: 4, restore_rows: 1250 });
    expect(result.metrics.restore_seconds).toBeGreaterThan(0);
    expect(result.summary).toContain('checked against the manifest');
    const created = result.actions.find((a) => a.kind === 'create_scratch_database')!;
    expect(created.subject.startsWith(OURS)).toBe(true);
    expect(result.actions).toContainEqual(expect.objectContaining({ kind: 'drop_scratch_database', subject: created.subject, applied: true }));
    expect(await scratchDatabases()).toEqual([]);
  });

  it('restores a custom-format dump without a manifest against the live source, within the tolerance', async () => {
    const dir = await storeDir();
    await makeDump(source.url, dir, 'auditron-2.dump', 'custom');
    const clean = await run(restoreTest, { dir });
    expect(clean.status).toBe('ok');
    expect(clean.findings).toEqual([]);
    expect(clean.metrics).toMatchObject({ restore_tables: 4, restore_rows: 1250 });
    expect(clean.summary).toContain('the live source');

    // The source moves on: +100 rows (50 %) in sales.events, +5 in accounts (within 10 rows).
    await source.pool.query(`INSERT INTO sales.events (id) SELECT g FROM generate_series(201, 300) g; INSERT INTO public.accounts (name) SELECT 'b' || g FROM generate_series(1, 5) g`);
    try {
      const moved = await run(restoreTest, { dir });
      const mismatches = byCode(moved, 'restore_mismatch');
      expect(mismatches).toHaveLength(1);
      expect(mismatches[0]).toMatchObject({ severity: 'warning', subject: 'sales.events', details: { expected: 300, restored: 200, difference: -100, against: 'source' } });
      const tolerant = await run(restoreTest, { dir, params: { tolerance: 0.6 } });
      expect(byCode(tolerant, 'restore_mismatch')).toEqual([]);
    } finally {
      await source.pool.query(`DELETE FROM sales.events WHERE id > 200; DELETE FROM public.accounts WHERE name LIKE 'b%'`);
    }
    expect(await scratchDatabases()).toEqual([]);
  });

  it('reports a table created in the source after the dump as info, not as a mismatch', async () => {
    const dir = await storeDir();
    await makeDump(source.url, dir, 'auditron-3.sql.gz');
    await source.pool.query('CREATE TABLE public.added_later (id int); INSERT INTO public.added_later VALUES (1)');
    try {
      const result = await run(restoreTest, { dir });
      expect(result.status).toBe('ok');
      expect(byCode(result, 'restore_mismatch')).toEqual([]);
      expect(result.findings).toEqual([
        expect.objectContaining({
          severity: 'info',
          code: 'table_created_after_dump',
          subject: 'public.added_later',
          message: expect.stringContaining('created after the dump was taken, or excluded from it'),
          details: { table: 'public.added_later', source: 1, restored: null, against: 'source' },
        }),
      ]);
      expect(result.summary).toContain('all match');
      // A table that must be in every dump is a key table: its absence stays critical.
      const keyed = await run(restoreTest, { dir, params: { keyTables: ['added_later'] } });
      expect(byCode(keyed, 'key_table_empty')).toEqual([expect.objectContaining({ severity: 'critical', subject: 'public.added_later' })]);
    } finally {
      await source.pool.query('DROP TABLE public.added_later');
    }
  });

  it("never compares caretaker's own schema, whether the dump predates it, holds an older copy or its manifest counts it", async () => {
    // The local default: caretaker's state in the database it backs up.
    const before = await storeDir();
    await makeDump(source.url, before, 'auditron-3b.sql.gz');
    await migrate(source.pool);
    try {
      const history = new ResultStore(source.pool);
      const saveRuns = async (n: number) => {
        for (let i = 0; i < n; i++) await history.save(await run(restoreTest, { dir: await storeDir(), allow: { restore: false } }));
      };
      await saveRuns(1);
      // The dump was taken before caretaker created its schema.
      const predates = await run(restoreTest, { dir: before });
      expect(predates.findings).toEqual([]);
      expect(predates.status).toBe('ok');

      // The dump holds caretaker.* from then; the history has grown past the tolerance since.
      const after = await storeDir();
      await makeDump(source.url, after, 'auditron-3c.sql.gz');
      await saveRuns(12);
      const older = await run(restoreTest, { dir: after });
      expect(older.findings).toEqual([]);
      expect(older.metrics).toMatchObject({ restore_tables: 4, restore_rows: 1250 });

      // The backup task's manifest counts caretaker's tables too: none is compared.
      await writeManifest(after, 'auditron-3c.sql.gz', { ...COUNTS, 'caretaker.runs': 1, 'caretaker.findings': 0, 'caretaker.schema_migrations': 99 });
      const manifested = await run(restoreTest, { dir: after });
      expect(manifested.findings).toEqual([]);
      expect(manifested.summary).toContain('checked against the manifest');
    } finally {
      await source.pool.query('DROP SCHEMA caretaker CASCADE');
    }
  });

  it('compares with the statistics when counting the source passes its lock timeout', async () => {
    const dir = await storeDir();
    await makeDump(source.url, dir, 'auditron-4.sql.gz');
    const locker = await source.pool.connect();
    try {
      await locker.query('BEGIN; LOCK TABLE sales.events IN ACCESS EXCLUSIVE MODE');
      const result = await run(restoreTest, { dir, sourceLockTimeoutMs: 200 });
      // Statistics lag behind the other tests' writes by up to a second: only their use is asserted.
      expect(result.status).not.toBe('error');
      expect(result.summary).toContain('estimated counts');
      expect(result.metrics.restore_rows).toBe(1250);
      for (const f of byCode(result, 'restore_mismatch')) expect(f.details).toMatchObject({ against: 'source_estimate' });
    } finally {
      await locker.query('ROLLBACK');
      locker.release();
    }
  });

  it('raises restore_mismatch per table when the manifest disagrees: critical past the tolerance or missing', async () => {
    const dir = await storeDir();
    await makeDump(source.url, dir, 'auditron-5.sql.gz');
    await writeManifest(dir, 'auditron-5.sql.gz', { ...COUNTS, 'public.accounts': 990, 'public.Order Items': 100, 'public.gone': 5 });
    const result = await run(restoreTest, { dir });
    expect(result.status).toBe('critical');
    const mismatches = Object.fromEntries(byCode(result, 'restore_mismatch').map((f) => [f.subject, f]));
    expect(Object.keys(mismatches).sort()).toEqual(['public.Order Items', 'public.accounts', 'public.gone']);
    expect(mismatches['public.accounts']).toMatchObject({ severity: 'warning', details: { expected: 990, restored: 1000, difference: 10 } });
    expect(mismatches['public.Order Items']).toMatchObject({ severity: 'critical', details: { expected: 100, restored: 50, difference: -50 } });
    expect(mismatches['public.gone']).toMatchObject({ severity: 'critical', details: { expected: 5, restored: null } });
    expect(await scratchDatabases()).toEqual([]);
  });

  it('warns about an unreadable manifest and compares with the live source instead', async () => {
    const dir = await storeDir();
    await makeDump(source.url, dir, 'auditron-5b.sql.gz');
    await writeFile(join(dir, manifestName('auditron-5b.sql.gz')), JSON.stringify({ version: 1, file: 'auditron-5b.sql.gz' }));
    const result = await run(restoreTest, { dir });
    expect(result.findings).toEqual([expect.objectContaining({ code: 'manifest_invalid', severity: 'warning', subject: 'auditron-5b.sql.gz' })]);
    expect(result.summary).toContain('checked against the live source');
    expect(result.metrics.restore_rows).toBe(1250);
  });

  it('reports empty or missing key tables, not filled ones', async () => {
    const dir = await storeDir();
    await makeDump(source.url, dir, 'auditron-6.sql.gz');
    const result = await run(restoreTest, { dir, params: { keyTables: ['empty_log', 'public.accounts', 'sales.nope', 'public.Order Items'] } });
    const empty = byCode(result, 'key_table_empty');
    expect(empty.map((f) => f.subject).sort()).toEqual(['public.empty_log', 'sales.nope']);
    expect(empty.every((f) => f.severity === 'critical')).toBe(true);
    expect(empty.find((f) => f.subject === 'public.empty_log')!.details).toMatchObject({ restored: 0 });
    const clean = await run(restoreTest, { dir, params: { keyTables: ['accounts', 'sales.events'] } });
    expect(byCode(clean, 'key_table_empty')).toEqual([]);
  });

  it('runs smoke queries read-only, one statement each, and reports those that fail', async () => {
    const dir = await storeDir();
    await makeDump(source.url, dir, 'auditron-7.sql.gz');
    const queries = [
      'SELECT count(*) FROM public.accounts WHERE id > 10',
      'SELECT * FROM public.no_such_table',
      `INSERT INTO public.accounts (name) VALUES ('smoke')`,
      'SELECT 1; SELECT 2',
      'SELECT pg_sleep(5)',
    ];
    const result = await run(restoreTest, { dir, params: { smokeQueries: queries, smokeTimeoutMs: 200 } });
    const failed = byCode(result, 'smoke_query_failed');
    expect(failed.map((f) => f.details!.query)).toEqual(queries.slice(1));
    expect(failed.map((f) => f.details!.error)).toEqual([
      expect.stringContaining('"public.no_such_table" does not exist'),
      expect.stringContaining('read-only transaction'),
      expect.stringContaining('multiple commands'),
      expect.stringContaining('statement timeout'),
    ]);
    const clean = await run(restoreTest, { dir, params: { smokeQueries: queries.slice(0, 1) } });
    expect(clean.status).toBe('ok');
    expect(clean.findings).toEqual([]);
  });

  it('reports a broken statement with its line, statement and message, and still drops the scratch database', async () => {
    const dir = await storeDir();
    await writeSqlDump(
      dir,
      'auditron-8.sql.gz',
      ['CREATE TABLE public.t1 (id int);', 'INSERT INTO public.t1 VALUES (1);', 'INSERT INTO public.nosuch_table', '  VALUES (1);', 'CREATE TABLE public.t2 (id int);', '-- PostgreSQL database dump complete', ''].join('\n'),
    );
    const result = await run(restoreTest, { dir });
    expect(result.status).toBe('critical');
    const [failed] = byCode(result, 'restore_failed');
    expect(failed).toMatchObject({
      severity: 'critical',
      subject: 'auditron-8.sql.gz',
      details: { tool: 'psql', exitCode: 3, line: 4, statement: 'INSERT INTO public.nosuch_table\n  VALUES (1);' },
    });
    expect(failed!.details!.error).toContain('relation "public.nosuch_table" does not exist');
    expect(failed!.message).toContain('at line 4');
    expect(result.metrics.restore_seconds).toBeUndefined();
    expect(await scratchDatabases()).toEqual([]);
  });

  it('fails a truncated, an empty and a damaged plain dump, and a truncated custom dump', async () => {
    const dir = await storeDir();
    const good = await makeDump(source.url, dir, 'auditron-good.sql.gz');
    const sql = gunzipSync(await readFile(good)).toString();
    await rm(good);

    const cases: [string, Buffer, string][] = [
      ['auditron-truncated.sql.gz', gzipSync(sql.slice(0, sql.lastIndexOf('-- PostgreSQL database dump complete'))), 'completion line'],
      ['auditron-empty.sql.gz', Buffer.alloc(0), 'empty'],
      ['auditron-damaged.sql.gz', Buffer.from(gzipSync(sql).map((b, i) => (i > 40 && i % 50 === 0 ? b ^ 0xff : b))), 'reading the dump failed'],
    ];
    for (const [name, body, expected] of cases) {
      const one = await storeDir();
      await writeFile(join(one, name), body);
      const result = await run(restoreTest, { dir: one });
      expect(byCode(result, 'restore_failed')).toEqual([expect.objectContaining({ subject: name, message: expect.stringContaining(expected) })]);
    }

    const custom = await storeDir();
    const path = await makeDump(source.url, custom, 'auditron-cut.dump', 'custom');
    const bytes = await readFile(path);
    await writeFile(path, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    const result = await run(restoreTest, { dir: custom });
    expect(byCode(result, 'restore_failed')).toEqual([expect.objectContaining({ details: expect.objectContaining({ tool: 'pg_restore', exitCode: 1 }) })]);
    expect(await scratchDatabases()).toEqual([]);
  });

  it('stops a restore past restoreTimeoutMs as restore_failed and drops the database', async () => {
    const dir = await storeDir();
    await writeSqlDump(dir, 'auditron-9.sql.gz', 'CREATE TABLE t (id int);\nSELECT pg_sleep(60);\n-- PostgreSQL database dump complete\n');
    const result = await run(restoreTest, { dir, params: { restoreTimeoutMs: 1_000 } });
    expect(byCode(result, 'restore_failed')).toEqual([expect.objectContaining({ details: expect.objectContaining({ timedOut: true }) })]);
    expect(await scratchDatabases()).toEqual([]);
  });

  it('leaves no scratch database behind when the run is aborted mid-restore', async () => {
    const dir = await storeDir();
    await writeSqlDump(dir, 'auditron-10.sql.gz', 'CREATE TABLE t (id int);\nSELECT pg_sleep(60);\n-- PostgreSQL database dump complete\n');
    const controller = new AbortController();
    const running = run(restoreTest, { dir, signal: controller.signal });
    // Abort once psql is inside the restore (not on a timer: the machine is shared).
    await eventually(async () => {
      const { rows } = await admin.query(`SELECT 1 FROM pg_stat_activity WHERE starts_with(datname, $1) AND query LIKE '%pg_sleep%'`, [OURS]);
      return rows.length > 0 ? true : undefined;
    }, 15_000, 'psql restoring');
    controller.abort(new Error('worker shutting down'));
    const result = await running;
    expect(result.status).toBe('error');
    expect(result.summary).toContain('worker shutting down');
    // The drop finishes after the runner has given up on the run.
    await eventually(async () => ((await scratchDatabases()).length === 0 ? true : undefined), 15_000, 'scratch database dropped');
    const { rows } = await admin.query(`SELECT 1 FROM pg_stat_activity WHERE starts_with(datname, $1)`, [OURS]);
    expect(rows).toEqual([]);
  });

  it("sweeps this target's scratch databases older than a day, never another target's or a younger one", async () => {
    const dayAgo = Date.now() - 2 * 86_400_000;
    const old = scratchDatabaseName(TARGET, new Date(dayAgo));
    const young = scratchDatabaseName(TARGET, new Date(Date.now() - 3600_000));
    const other = scratchDatabaseName(`${TARGET}-2`, new Date(dayAgo));
    for (const name of [old, young, other]) await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(name)}`);
    try {
      const dir = await storeDir();
      await makeDump(source.url, dir, 'auditron-11.sql.gz');
      const dry = await run(restoreTest, { dir, dryRun: true });
      expect(dry.actions.filter((a) => a.kind === 'drop_scratch_database')).toEqual([expect.objectContaining({ subject: old, applied: false })]);
      expect(await scratchDatabases()).toEqual([other, old, young].sort());

      const result = await run(restoreTest, { dir });
      expect(result.actions.filter((a) => a.kind === 'drop_scratch_database' && a.subject === old)).toEqual([expect.objectContaining({ applied: true })]);
      expect(await scratchDatabases()).toEqual([other, young].sort());
    } finally {
      for (const name of [old, young, other]) await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(name)}`);
    }
  });

  it('creates nothing when not allowed or on a dry run', async () => {
    const dir = await storeDir();
    await makeDump(source.url, dir, 'auditron-12.sql.gz');
    const refused = await run(restoreTest, { dir, allow: { restore: false } });
    expect(refused.status).toBe('ok');
    expect(refused.findings).toEqual([expect.objectContaining({ severity: 'info', code: 'restore_not_allowed', subject: TARGET })]);
    expect(refused.actions).toEqual([]);

    const dry = await run(restoreTest, { dir, dryRun: true });
    expect(dry.status).toBe('ok');
    expect(dry.summary).toMatch(new RegExp(`would restore auditron-12\\.sql\\.gz .* into ${OURS}\\d{14} on postgres://`));
    expect(dry.actions).toEqual([expect.objectContaining({ kind: 'restore_dump', applied: false, details: expect.objectContaining({ dump: 'auditron-12.sql.gz', format: 'plain-gzip' }) })]);
    expect(await scratchDatabases()).toEqual([]);
  });

  it('is an error without a scratch server, and backup_missing without a dump', async () => {
    const empty = await storeDir();
    const noScratch = await run(restoreTest, { dir: empty, scratch: null });
    expect(noScratch.status).toBe('error');
    expect(noScratch.summary).toContain('scratch.url');

    const missing = await run(restoreTest, { dir: empty });
    expect(missing.status).toBe('critical');
    expect(missing.findings).toEqual([expect.objectContaining({ code: 'backup_missing', severity: 'critical', subject: 'auditron-*' })]);
    expect(await scratchDatabases()).toEqual([]);
  });

  it("passes the scratch server's password to psql in its environment, never in its arguments", async () => {
    const dir = await storeDir();
    await writeSqlDump(dir, 'auditron-13.sql.gz', 'SELECT pg_sleep(60);\n-- PostgreSQL database dump complete\n');
    const url = new URL(TEST_PG_ADMIN_URL);
    url.password = 'hunter2-secret'; // trust authentication here: accepted and ignored
    const controller = new AbortController();
    const running = run(restoreTest, { dir, scratch: { url: url.toString() }, signal: controller.signal });
    try {
      const pid = await eventually(async () => {
        for (const entry of await readdir('/proc')) {
          if (!/^\d+$/.test(entry)) continue;
          const argv = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
          if (argv.includes('ON_ERROR_STOP') && argv.includes(OURS)) return { pid: entry, argv };
        }
        return undefined;
      }, 15_000, 'psql running');
      expect(pid.argv).not.toContain('hunter2');
      const environ = await readFile(`/proc/${pid.pid}/environ`, 'utf8');
      expect(environ.split('\0')).toContain('PGPASSWORD=hunter2-secret');
    } finally {
      controller.abort();
      const result = await running;
      expect(JSON.stringify(result)).not.toContain('hunter2');
      await eventually(async () => ((await scratchDatabases()).length === 0 ? true : undefined), 15_000, 'scratch database dropped');
    }
  });
});

describe('parseToolError', () => {
  it("reads psql's and pg_restore's error, line and statement", () => {
    expect(
      parseToolError('psql', 'psql:<stdin>:10: ERROR:  relation "x" does not exist\nLINE 2:   x\n          ^\npsql:<stdin>:10: STATEMENT:  INSERT INTO b SELECT * FROM\n  x;\n'),
    ).toEqual({ line: 10, error: 'ERROR:  relation "x" does not exist\nLINE 2:   x\n          ^', statement: 'INSERT INTO b SELECT * FROM\n  x;' });
    expect(parseToolError('pg_restore', 'pg_restore: error: could not execute query: ERROR:  relation "a" already exists\nCommand was: CREATE TABLE public.a (\n    x integer\n);\n')).toEqual({
      error: 'could not execute query: ERROR:  relation "a" already exists',
      statement: 'CREATE TABLE public.a (\n    x integer\n);',
    });
    expect(parseToolError('psql', 'psql: error: connection to server failed\n')).toEqual({ error: 'psql: error: connection to server failed' });
  });
});
