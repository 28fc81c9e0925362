/**
 * pg-health's WAL archiving check on a PostgreSQL instance of this file's
 * own (the shared server has archive_mode off): initdb in a temp dir, a free
 * port, archive_mode = on with archive_command = 'false', so every WAL
 * segment fails to archive. Stopped and removed after.
 */
import { execFile, execFileSync } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { pgHealth } from '../../src/jobs/pg-health';
import type { Finding, TaskResult } from '../../src/contract/result';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { runOnPostgres } from '../support/run-task';
import { eventually } from '../support/jobs';
import { freePort } from '../support/ports';

const run = promisify(execFile);

/** The directory holding initdb and pg_ctl: on PATH, or Debian's newest /usr/lib/postgresql/N/bin. */
function postgresBinDir(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) if (dir && existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))) return dir;
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base).filter((v) => existsSync(join(base, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(base, versions[0], 'bin') : undefined;
}

/** initdb refuses to run as root: then the instance runs as the postgres account. */
function serverAccount(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

interface Instance {
  url: string;
  /** Restarts the server with these settings added to postgresql.conf (the later line wins). */
  restartWith(settings: string): Promise<void>;
  stop(): Promise<void>;
}

async function startInstance(binDir: string, settings: string): Promise<Instance> {
  const account = serverAccount();
  const dir = mkdtempSync(join(tmpdir(), 'ct-archiver-'));
  if (account) chownSync(dir, account.uid, account.gid);
  const data = join(dir, 'data');
  const port = await freePort();
  const as = { ...(account ?? {}), timeout: 120_000 };
  const pgCtl = (...args: string[]) => run(join(binDir, 'pg_ctl'), ['-D', data, '-w', '-t', '90', ...args], as);
  await run(join(binDir, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8'], as);
  const conf = (text: string) => appendFileSync(join(data, 'postgresql.conf'), `\n${text}\n`);
  conf(`port = ${port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '${dir}'\nfsync = off\nshared_buffers = 16MB\nmax_connections = 20\n${settings}`);
  let running = false;
  const start = async () => {
    await pgCtl('-l', join(dir, 'server.log'), 'start');
    running = true;
  };
  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async restartWith(more) {
      // A clean stop: the cumulative statistics (pg_stat_archiver) are kept across it.
      await pgCtl('-m', 'fast', 'stop');
      running = false;
      conf(more);
      await start();
    },
    async stop() {
      if (running) await pgCtl('-m', 'immediate', 'stop').catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function query<T = Record<string, unknown>>(url: string, sql: string): Promise<T[]> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(sql)).rows as T[];
  } finally {
    await c.end();
  }
}

const withCode = (r: TaskResult, code: string): Finding[] => r.findings.filter((f) => f.code === code);
const binDir = postgresBinDir();
const describeWithServer = binDir ? describe : describe.skip;

let state: TestDatabase;
let instance: Instance | undefined;
/** The WAL segment switched away from, which archive_command then fails on. */
let wal: string;

beforeAll(async () => {
  state = await createTestDatabase('pghealth_archiver');
  if (!binDir) return;
  instance = await startInstance(binDir, `archive_mode = on\narchive_command = 'false'`);
  await query(instance.url, 'CREATE TABLE t AS SELECT 1 AS x');
  [{ wal }] = await query<{ wal: string }>(instance.url, 'SELECT pg_walfile_name(pg_switch_wal()) AS wal');
  await eventually(async () => {
    const [a] = await query<{ failed: number }>(instance!.url, 'SELECT failed_count::int AS failed FROM pg_stat_archiver');
    return a!.failed > 0 ? true : undefined;
  }, 90_000, 'the archiver to fail on the switched WAL');
}, 240_000);

afterAll(async () => {
  await instance?.stop();
  await state.drop();
}, 120_000);

describeWithServer(binDir ? 'pg-health WAL archiving' : 'pg-health WAL archiving [SKIPPED: no initdb/pg_ctl on PATH or in /usr/lib/postgresql]', () => {
  const health = (url: string, params: Record<string, unknown> = {}) => runOnPostgres(pgHealth, { url, state: state.pool, params });

  it('reports archive_failing with the WAL that failed while archive_command fails, and the .ready files waiting', async () => {
    const url = instance!.url;
    const [archiver] = await query<{ lastFailedWal: string }>(url, 'SELECT last_failed_wal AS "lastFailedWal" FROM pg_stat_archiver');
    expect(archiver!.lastFailedWal).toBe(wal);

    const result = await health(url);
    const found = withCode(result, 'archive_failing');
    // Nothing was ever archived: point-in-time recovery is impossible, critical.
    expect(found).toEqual([expect.objectContaining({ severity: 'critical', subject: 'archive_command' })]);
    expect(found[0]!.details).toMatchObject({ mode: 'on', lastFailedWal: wal, lastArchivedWal: null, archivedCount: 0 });
    expect(found[0]!.details!.failedCount).toBeGreaterThanOrEqual(1);
    expect(found[0]!.details!.readyFiles).toBeGreaterThanOrEqual(1);
    expect(found[0]!.details!.oldestReady).toBe(wal);
    expect(found[0]!.message).toMatch(new RegExp(`^WAL archiving is failing: last failure on ${wal} at \\S+, nothing archived since the statistics reset.*; \\d+ failures since the statistics reset; \\d+ WAL files wait in pg_wal/archive_status \\(oldest ${wal}\\)$`));
    expect(result.metrics.archive_failed_count).toBeGreaterThanOrEqual(1);
    expect(result.metrics.archive_ready_files).toBeGreaterThanOrEqual(1);
    expect(result.summary).toMatch(/archiving failing$/);

    // archiving: false leaves the server-wide check to another target.
    const off = await health(url, { archiving: false });
    expect(withCode(off, 'archive_failing')).toEqual([]);
    expect(off.metrics.archive_failed_count).toBeUndefined();
  }, 180_000);

  it('without the privilege to list pg_wal/archive_status, still reports archive_failing and says the files are not counted', async () => {
    const url = instance!.url;
    await query(url, 'DROP ROLE IF EXISTS plain; CREATE ROLE plain LOGIN');
    const asPlain = new URL(url);
    asPlain.username = 'plain';
    const result = await health(asPlain.toString());
    expect(result.status).not.toBe('error');
    const found = withCode(result, 'archive_failing');
    expect(found).toHaveLength(1);
    expect(found[0]!.message).toMatch(/the WAL files waiting are not counted: listing pg_wal\/archive_status needs pg_monitor \(or superuser\)$/);
    expect(found[0]!.details).toMatchObject({ readyFiles: null });
    expect(result.metrics.archive_ready_files).toBeUndefined();

    // With pg_monitor it counts them.
    await query(url, 'GRANT pg_monitor TO plain');
    const granted = await health(asPlain.toString());
    expect(withCode(granted, 'archive_failing')[0]!.details!.readyFiles).toBeGreaterThanOrEqual(1);
  }, 120_000);

  it('reports nothing once archive_mode is off, though pg_stat_archiver still shows the failures', async () => {
    await instance!.restartWith('archive_mode = off');
    const url = instance!.url;
    const [stats] = await query<{ failed: number; mode: string }>(url, `SELECT failed_count::int AS failed, current_setting('archive_mode') AS mode FROM pg_stat_archiver`);
    expect(stats).toEqual({ failed: expect.any(Number), mode: 'off' });
    expect(stats!.failed).toBeGreaterThan(0);
    const result = await health(url);
    expect(withCode(result, 'archive_failing')).toEqual([]);
    expect(result.metrics.archive_failed_count).toBeUndefined();
    expect(result.summary).toMatch(/archiving off$/);
  }, 180_000);

  it('reports nothing on the shared server (archive_mode off)', async () => {
    const [{ mode }] = await query<{ mode: string }>(state.url, `SELECT current_setting('archive_mode') AS mode`);
    expect(mode).toBe('off');
    const result = await health(state.url);
    expect(withCode(result, 'archive_failing')).toEqual([]);
    expect(result.summary).toMatch(/archiving off$/);
  });
});
