import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Client } from 'pg';
import { drDrill, recoveryFindings } from '../../src/jobs/dr-drill';
import { scratchNamePrefix } from '../../src/backups/scratch';
import { manifestName, type BackupManifest } from '../../src/backups/manifest';
import type { Finding, TaskResult } from '../../src/contract/result';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { makeDump, runOnBackups } from '../support/backups';
import { TEST_PG_ADMIN_URL } from '../support/env';

/** This file's own target: scratch names and the sweep are per target, and test files run in parallel. */
const TARGET = `dr-${randomBytes(3).toString('hex')}`;
const OURS = scratchNamePrefix(TARGET);
const HOUR = 3600;

let source: TestDatabase;
let admin: Client;
const dirs: string[] = [];

function run(dir: string, opts: { params?: Record<string, unknown>; allow?: boolean } = {}): Promise<TaskResult> {
  return runOnBackups(drDrill, {
    sourceUrl: source.url,
    state: source.pool,
    name: TARGET,
    backups: { store: { kind: 'directory', path: dir }, pattern: 'auditron-*', scratch: { url: TEST_PG_ADMIN_URL }, allow: { restore: opts.allow ?? true } },
    params: opts.params,
  });
}

/** A real dump whose file time is `ageSeconds` ago. */
async function agedDump(ageSeconds: number): Promise<{ dir: string; name: string; path: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'ct-drill-'));
  dirs.push(dir);
  const name = 'auditron-1.sql.gz';
  const path = await makeDump(source.url, dir, name);
  const at = new Date(Date.now() - ageSeconds * 1000);
  await utimes(path, at, at);
  return { dir, name, path };
}

async function scratchDatabases(): Promise<string[]> {
  const { rows } = await admin.query<{ datname: string }>('SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [OURS]);
  return rows.map((r) => r.datname);
}

const one = (r: TaskResult, code: string): Finding | undefined => r.findings.find((f) => f.code === code);

beforeAll(async () => {
  source = await createTestDatabase('drill');
  admin = new Client({ connectionString: TEST_PG_ADMIN_URL });
  await admin.connect();
  await source.pool.query(`
    CREATE TABLE public.accounts (id serial PRIMARY KEY, name text);
    INSERT INTO public.accounts (name) SELECT 'a' || g FROM generate_series(1, 500) g;
    CREATE TABLE public."Audit Log" (id int);
    INSERT INTO public."Audit Log" SELECT generate_series(1, 20);`);
});

afterAll(async () => {
  for (const name of await scratchDatabases()) await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(name)} WITH (FORCE)`);
  await admin.end();
  await source.drop();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('dr-drill', () => {
  it('measures RTO and RPO within the objectives and records every step', async () => {
    const { dir, name } = await agedDump(2 * HOUR);
    const result = await run(dir);
    expect(result.status).toBe('ok');
    expect(result.metrics).toMatchObject({ restore_tables: 2, restore_rows: 520 });
    const { rto_seconds: rto, rpo_seconds: rpo, restore_seconds: restore, verify_seconds: verify } = result.metrics;
    expect(rto).toBeGreaterThanOrEqual(restore! + verify!);
    expect(rpo).toBeGreaterThanOrEqual(2 * HOUR);
    expect(rpo).toBeLessThan(2 * HOUR + 600);
    expect(one(result, 'rto_exceeded')).toBeUndefined();
    expect(one(result, 'rpo_exceeded')).toBeUndefined();

    const record = one(result, 'dr_drill_record')!;
    expect(record).toMatchObject({ severity: 'info', subject: TARGET });
    const details = record.details as { dump: string; restoredInto: string; rtoSeconds: number; rpoSeconds: number; objectives: unknown; steps: { step: string; seconds: number }[] };
    expect(details).toMatchObject({ dump: name, rtoSeconds: rto, rpoSeconds: rpo, objectives: { rtoSeconds: 4 * HOUR, rpoSeconds: 26 * HOUR, recoveryObjectiveSeconds: 300 } });
    expect(details.restoredInto.startsWith(OURS)).toBe(true);
    expect(details.steps.map((s) => s.step)).toEqual(['sweep', 'create_scratch_database', 'fetch_and_restore', 'verify', 'drop_scratch_database']);
    const rtoSteps = details.steps.filter((s) => ['create_scratch_database', 'fetch_and_restore', 'verify'].includes(s.step));
    expect(rto).toBeCloseTo(rtoSteps.reduce((a, s) => a + s.seconds, 0), 6);
    expect(result.summary).toMatch(/^DR drill: RTO .* RPO 2 h/);
    expect(await scratchDatabases()).toEqual([]);
  });

  it('raises rto_exceeded and rpo_exceeded past tiny objectives', async () => {
    const { dir, name } = await agedDump(2 * HOUR);
    const result = await run(dir, { params: { rtoSeconds: 0.000001, rpoSeconds: 60 } });
    expect(result.status).toBe('warning');
    expect(one(result, 'rto_exceeded')).toMatchObject({ severity: 'warning', subject: name, details: { objectiveSeconds: 0.000001, rtoSeconds: result.metrics.rto_seconds } });
    expect(one(result, 'rpo_exceeded')).toMatchObject({ severity: 'warning', subject: name, details: { objectiveSeconds: 60, rpoSeconds: result.metrics.rpo_seconds } });
  });

  it("takes the RPO from the manifest's finish time when there is one", async () => {
    const { dir, name, path } = await agedDump(60);
    const body = await readFile(path);
    const finishedAt = new Date(Date.now() - 72 * HOUR * 1000).toISOString();
    const manifest: BackupManifest = {
      version: 1,
      file: name,
      format: 'plain-gzip',
      sizeBytes: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
      database: source.name,
      serverVersion: '15',
      startedAt: finishedAt,
      finishedAt,
      tables: { 'public.accounts': 500, 'public.Audit Log': 20 },
    };
    await writeFile(join(dir, manifestName(name)), JSON.stringify(manifest));
    const result = await run(dir);
    expect(result.metrics.rpo_seconds).toBeGreaterThanOrEqual(72 * HOUR);
    expect(result.metrics.rpo_seconds).toBeLessThan(72 * HOUR + 600);
    expect(one(result, 'rpo_exceeded')).toMatchObject({ details: { backupAt: finishedAt } });
    expect(one(result, 'restore_mismatch')).toBeUndefined();
  });

  it('records a failed restore without an RTO', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ct-drill-'));
    dirs.push(dir);
    await writeFile(join(dir, 'auditron-broken.sql.gz'), gzipSync('CREATE TABLE t (id int);\nSELEC 1;\n-- PostgreSQL database dump complete\n'));
    const result = await run(dir);
    expect(result.status).toBe('critical');
    expect(one(result, 'restore_failed')).toMatchObject({ details: { line: 2, statement: 'SELEC 1;' } });
    expect(result.metrics.rto_seconds).toBeUndefined();
    expect(result.metrics.rpo_seconds).toBeGreaterThanOrEqual(0);
    expect(one(result, 'dr_drill_record')!.details).toMatchObject({ dump: 'auditron-broken.sql.gz', outcome: 'failed', rtoSeconds: null });
    expect(await scratchDatabases()).toEqual([]);
  });

  it('still measures the RPO when restores are not allowed, and creates nothing', async () => {
    const { dir } = await agedDump(30 * HOUR);
    const result = await run(dir, { allow: false });
    expect(one(result, 'restore_not_allowed')).toBeDefined();
    expect(one(result, 'rpo_exceeded')).toMatchObject({ severity: 'warning' });
    expect(result.metrics.rpo_seconds).toBeGreaterThanOrEqual(30 * HOUR);
    expect(result.metrics.rto_seconds).toBeUndefined();
    expect(one(result, 'dr_drill_record')!.details).toMatchObject({ outcome: 'not_allowed', rtoSeconds: null, restoredInto: null });
    expect(result.actions).toEqual([]);
    expect(await scratchDatabases()).toEqual([]);
  });
});

describe('recoveryFindings', () => {
  const base = { subject: 'shop/api', objectiveSeconds: 60 };
  const codes = (f: Finding[]) => f.map((x) => `${x.code}:${x.severity}`);

  it('maps a refusal in a namespace that is not allowed to pod_kill_not_allowed (info), other refusals to recovery_failed (warning)', () => {
    expect(codes(recoveryFindings({ ...base, result: { healthy: false, steps: [], refused: 'namespace shop is not in allow.podKillNamespaces', notAllowed: true } }))).toEqual([
      'pod_kill_not_allowed:info',
    ]);
    expect(codes(recoveryFindings({ ...base, result: { healthy: false, steps: [], refused: 'deployment shop/api is not fully available before the drill' } }))).toEqual([
      'recovery_failed:warning',
    ]);
  });

  it('is critical when a deleted pod was not replaced, recovery_slow past the objective, nothing when on time', () => {
    expect(codes(recoveryFindings({ ...base, result: { podDeleted: 'api-1', healthy: false, steps: [], error: 'timed out' } }))).toEqual(['recovery_failed:critical']);
    expect(codes(recoveryFindings({ ...base, result: { podDeleted: 'api-1', recoverySeconds: 61, healthy: true, steps: [] } }))).toEqual(['recovery_slow:warning']);
    expect(recoveryFindings({ ...base, result: { podDeleted: 'api-1', recoverySeconds: 59, healthy: true, steps: [] } })).toEqual([]);
  });
});
