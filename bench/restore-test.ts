/**
 * restore-test beside the runbook's restore, in the same run: a ~200 MB
 * database (pgbench scale 10 plus a table of hashes, so gunzip has real
 * work), dumped once with `pg_dump | gzip`; then, rounds alternating,
 * `gunzip -c dump | psql` into a fresh database (the baseline) and
 * restore-test's restore + verification of the same dump. Best of 3 each.
 * The goal: restore + verify within 1.1 × the bare restore. Every database
 * made here is dropped, also on failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Client, Pool } from 'pg';
import pino from 'pino';
import { TASKS } from '../src/jobs';
import { validateConfig } from '../src/config/load';
import { runTask } from '../src/worker/run-task';
import { restoreTest } from '../src/jobs/restore-test';
import { manifestName, type BackupManifest } from '../src/backups/manifest';
import { scratchDatabaseName } from '../src/backups/scratch';

const ROUNDS = 3;
const SCALE = 10;
const HASH_ROWS = 400_000;
const TARGET = `bench-${randomBytes(3).toString('hex')}`;

function urlOf(adminUrl: string, database: string): string {
  const u = new URL(adminUrl);
  u.pathname = `/${database}`;
  return u.toString();
}

/** Resolves when the child exits 0; rejects with its stderr otherwise. */
function exited(child: ChildProcess, what: string): Promise<void> {
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`${what} exited ${code}: ${stderr.slice(-2000)}`))));
  });
}

/** The runbook's backup: `pg_dump db | gzip > file`. */
async function dump(url: string, path: string): Promise<void> {
  const pgDump = spawn('pg_dump', ['--no-owner', '-d', url], { stdio: ['ignore', 'pipe', 'pipe'] });
  const gzip = spawn('gzip', ['-c'], { stdio: ['pipe', 'pipe', 'pipe'] });
  pgDump.stdout!.pipe(gzip.stdin!);
  await Promise.all([pipeline(gzip.stdout!, createWriteStream(path)), exited(pgDump, 'pg_dump'), exited(gzip, 'gzip')]);
}

/** The runbook's restore: `gunzip -c file | psql`; resolves with its seconds. */
async function runbookRestore(path: string, url: string): Promise<number> {
  const started = process.hrtime.bigint();
  const gunzip = spawn('gunzip', ['-c', path], { stdio: ['ignore', 'pipe', 'pipe'] });
  const psql = spawn('psql', ['-q', '-X', '-d', url], { stdio: ['pipe', 'ignore', 'pipe'] });
  gunzip.stdout!.pipe(psql.stdin!);
  await Promise.all([exited(gunzip, 'gunzip'), exited(psql, 'psql')]);
  return Number(process.hrtime.bigint() - started) / 1e9;
}

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

export async function benchRestoreTest(env: { pgAdminUrl: string }): Promise<void> {
  const sourceDb = `ct_bench_restore_${randomBytes(4).toString('hex')}`;
  const sourceUrl = urlOf(env.pgAdminUrl, sourceDb);
  const dir = await mkdtemp(join(tmpdir(), 'ct-bench-restore-'));
  const admin = new Client({ connectionString: env.pgAdminUrl });
  await admin.connect();
  const made: string[] = [sourceDb];
  try {
    await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(sourceDb)}`);
    const u = new URL(sourceUrl);
    const pgbenchArgs = ['-i', '-q', '-s', String(SCALE), '-h', u.hostname, '-p', u.port || '5432', '-U', decodeURIComponent(u.username) || 'postgres', sourceDb];
    await exited(spawn('pgbench', pgbenchArgs, { stdio: ['ignore', 'ignore', 'pipe'] }), 'pgbench -i');
    const source = new Client({ connectionString: sourceUrl });
    await source.connect();
    let tables: Record<string, number>;
    let sizeBytes: number;
    try {
      await source.query(`CREATE TABLE public.events AS
        SELECT g AS id, md5(g::text) AS a, md5((g * 7)::text) AS b, now() - g * interval '1 s' AS at
        FROM generate_series(1, ${HASH_ROWS}) g`);
      await source.query('ALTER TABLE public.events ADD PRIMARY KEY (id)');
      sizeBytes = Number((await source.query<{ size: string }>('SELECT pg_database_size(current_database()) AS size')).rows[0]!.size);
      // What the backup task's manifest holds: every table's rows, counted with the dump.
      const names = ['pgbench_accounts', 'pgbench_branches', 'pgbench_history', 'pgbench_tellers', 'events'];
      const counts = await source.query<{ t: string; n: string }>(names.map((n) => `SELECT '${n}' AS t, count(*) AS n FROM public.${n}`).join(' UNION ALL '));
      tables = Object.fromEntries(counts.rows.map((r) => [`public.${r.t}`, Number(r.n)]));
    } finally {
      await source.end();
    }

    const file = 'auditron-bench.sql.gz';
    const path = join(dir, file);
    const dumpStarted = Date.now();
    await dump(sourceUrl, path);
    const dumpBytes = (await stat(path)).size;
    const manifest: BackupManifest = {
      version: 1,
      file,
      format: 'plain-gzip',
      sizeBytes: dumpBytes,
      sha256: await sha256(path),
      database: sourceDb,
      serverVersion: '',
      startedAt: new Date(dumpStarted).toISOString(),
      finishedAt: new Date().toISOString(),
      tables,
    };
    await writeFile(join(dir, manifestName(file)), JSON.stringify(manifest));
    console.log(`  source ${(sizeBytes / 2 ** 20).toFixed(0)} MB (pgbench scale ${SCALE} + ${HASH_ROWS} rows of hashes), dump ${(dumpBytes / 2 ** 20).toFixed(1)} MB gzip'd`);

    const config = validateConfig(
      {
        redis: { url: 'redis://127.0.0.1:6379' },
        state: { url: sourceUrl },
        targets: {
          postgres: [{ name: 'source', url: sourceUrl }],
          backups: [{ name: TARGET, database: 'source', store: { kind: 'directory', path: dir }, pattern: 'auditron-*', scratch: { url: env.pgAdminUrl }, allow: { restore: true } }],
        },
      },
      'bench',
      TASKS,
    );
    const target = config.targets.backups[0]!;
    const prepared = restoreTest.prepare(config, { targetName: target.name });
    if (!prepared.ok) throw new Error(prepared.problems.join('; '));
    const log = pino({ level: 'silent' });
    const state = new Pool({ connectionString: sourceUrl, max: 1 });

    const best = { baseline: Infinity, baselineWhole: Infinity, caretaker: Infinity, caretakerWhole: Infinity, restoreOnly: Infinity, verify: Infinity, noManifest: Infinity, noManifestVerify: Infinity };
    const restoreTestRun = async () => {
      const result = await runTask({ run: prepared.run, dryRun: false, log, state });
      if (result.status !== 'ok') throw new Error(`restore-test: ${result.status}: ${result.summary} ${JSON.stringify(result.findings)}`);
      return { restore: result.metrics.restore_seconds!, verify: result.metrics.verify_seconds!, whole: result.durationMs / 1000 };
    };
    const withManifest = join(dir, manifestName(file));
    const aside = join(dir, 'manifest-aside.json');
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const fresh = `ct_bench_runbook_${randomBytes(4).toString('hex')}`;
        made.push(fresh);
        const wholeStarted = process.hrtime.bigint();
        await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(fresh)}`);
        const seconds = await runbookRestore(path, urlOf(env.pgAdminUrl, fresh));
        await admin.query(`DROP DATABASE ${admin.escapeIdentifier(fresh)} WITH (FORCE)`);
        best.baseline = Math.min(best.baseline, seconds);
        best.baselineWhole = Math.min(best.baselineWhole, Number(process.hrtime.bigint() - wholeStarted) / 1e9);

        const m = await restoreTestRun();
        best.caretaker = Math.min(best.caretaker, m.restore + m.verify);
        best.restoreOnly = Math.min(best.restoreOnly, m.restore);
        best.verify = Math.min(best.verify, m.verify);
        best.caretakerWhole = Math.min(best.caretakerWhole, m.whole);

        // The runbook's dumps have no manifest: then the live source is counted too.
        await rename(withManifest, aside);
        try {
          const n = await restoreTestRun();
          best.noManifest = Math.min(best.noManifest, n.restore + n.verify);
          best.noManifestVerify = Math.min(best.noManifestVerify, n.verify);
        } finally {
          await rename(aside, withManifest);
        }
      }
    } finally {
      await state.end();
    }
    const s = (x: number) => `${x.toFixed(2).padStart(6)} s`;
    console.log(`  gunzip -c | psql (baseline)                        ${s(best.baseline)}`);
    console.log(`  restore-test restore + verify                      ${s(best.caretaker)}   ratio ${(best.caretaker / best.baseline).toFixed(2)} (goal <= 1.1)`);
    console.log(`    of which restore (Node gunzip -> psql)           ${s(best.restoreOnly)}   ratio ${(best.restoreOnly / best.baseline).toFixed(2)}`);
    console.log(`    of which verify (row counts of ${Object.keys(tables).length} tables)         ${s(best.verify)}`);
    console.log(`  restore + verify, no manifest (source counted too) ${s(best.noManifest)}   ratio ${(best.noManifest / best.baseline).toFixed(2)} (verify ${best.noManifestVerify.toFixed(2)} s)`);
    console.log(`  createdb + gunzip | psql + dropdb                  ${s(best.baselineWhole)}`);
    console.log(`  restore-test whole run (sweep, create, drop)       ${s(best.caretakerWhole)}   ratio ${(best.caretakerWhole / best.baselineWhole).toFixed(2)}`);
  } finally {
    const { rows } = await admin.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname = ANY($1) OR starts_with(datname, $2)`, [
      made,
      scratchDatabaseName(TARGET, new Date(0)).slice(0, -14),
    ]);
    for (const { datname } of rows) await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(datname)} WITH (FORCE)`);
    await admin.end();
    await rm(dir, { recursive: true, force: true });
  }
}
