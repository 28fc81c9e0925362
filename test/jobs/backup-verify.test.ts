import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { backupVerify } from '../../src/jobs/backup-verify';
import { backup } from '../../src/jobs/backup';
import { endsWithCompletionLine, median, TailBuffer } from '../../src/backups/verify';
import type { Finding, TaskResult } from '../../src/contract/result';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { makeDump, runOnBackups } from '../support/backups';

const HOUR = 3_600_000;
const PLAIN = 'seed-20260101T000000Z.sql.gz';
const CUSTOM = 'seed-20260101T000000Z.dump';
let db: TestDatabase;
let root: string;
let dirs = 0;
/** A real `pg_dump | gzip` of the seeded database, a real `pg_dump -Fc`, and one taken by the backup task (with its manifest). */
let plain: Buffer;
let custom: Buffer;
let taken: { name: string; dump: Buffer; manifest: Record<string, unknown> };

interface Planted {
  name: string;
  data: Buffer | string;
  /** File modification time, hours ago (default: now). */
  hoursAgo?: number;
}

/** A fresh directory store holding these files. */
async function store(files: Planted[]): Promise<string> {
  const dir = join(root, `s${++dirs}`);
  await mkdir(dir);
  for (const f of files) {
    await writeFile(join(dir, f.name), f.data);
    if (f.hoursAgo !== undefined) {
      const at = new Date(Date.now() - f.hoursAgo * HOUR);
      await utimes(join(dir, f.name), at, at);
    }
  }
  return dir;
}

function verify(dir: string, params: Record<string, unknown> = {}, pattern = 'seed-*'): Promise<TaskResult> {
  return runOnBackups(backupVerify, {
    sourceUrl: db.url,
    state: db.pool,
    backups: { store: { kind: 'directory', path: dir }, pattern },
    params,
  });
}

const codes = (r: TaskResult): string[] => r.findings.map((f) => `${f.code}:${f.severity}`).sort();
const one = (r: TaskResult, code: string): Finding => {
  const found = r.findings.filter((f) => f.code === code);
  expect(found).toHaveLength(1);
  return found[0]!;
};

/** The dump's SQL with its last `lines` lines dropped, gzip'd again: a dump pg_dump did not finish. */
function withoutLastLines(gz: Buffer, lines: number): Buffer {
  const sql = gunzipSync(gz).toString('utf8').split('\n');
  return gzipSync(sql.slice(0, sql.length - lines).join('\n'));
}

beforeAll(async () => {
  db = await createTestDatabase('bverify');
  await db.pool.query(`CREATE TABLE items (id int PRIMARY KEY, code text, note text)`);
  await db.pool.query(`INSERT INTO items SELECT g, md5(g::text), repeat('note ', g % 20) FROM generate_series(1, 3000) g`);
  await db.pool.query(`CREATE TABLE "Odd Name" (id int)`);
  await db.pool.query(`INSERT INTO "Odd Name" SELECT generate_series(1, 10)`);
  root = await mkdtemp(join(tmpdir(), 'caretaker-bverify-'));
  const made = join(root, 'made');
  await mkdir(made);
  plain = await readFile(await makeDump(db.url, made, PLAIN));
  custom = await readFile(await makeDump(db.url, made, CUSTOM, 'custom'));
  const byTask = join(root, 'by-task');
  await mkdir(byTask);
  const result = await runOnBackups(backup, {
    sourceUrl: db.url,
    state: db.pool,
    backups: { store: { kind: 'directory', path: byTask }, pattern: 'seed-*.sql.gz', allow: { backup: true } },
  });
  if (result.status !== 'ok') throw new Error(result.summary);
  const [name, manifestFile] = (await readdir(byTask)).sort();
  taken = { name: name!, dump: await readFile(join(byTask, name!)), manifest: JSON.parse(await readFile(join(byTask, manifestFile!), 'utf8')) };
});

afterAll(async () => {
  await db.drop();
  await rm(root, { recursive: true, force: true });
});

describe('backup-verify', () => {
  it('passes a real pg_dump | gzip, with exact size and uncompressed size, and says the sha256 was not checked without a manifest', async () => {
    const result = await verify(await store([{ name: PLAIN, data: plain, hoursAgo: 2 }]));
    expect(result.status).toBe('ok');
    expect(result.findings).toEqual([]);
    expect(result.metrics).toMatchObject({ backup_size_bytes: plain.length, backup_uncompressed_bytes: gunzipSync(plain).length, backup_count: 1 });
    expect(result.metrics.backup_age_seconds).toBeGreaterThanOrEqual(2 * 3600);
    expect(result.metrics.backup_age_seconds).toBeLessThan(2 * 3600 + 120);
    expect(result.metrics.verify_throughput_bytes_per_second).toBeGreaterThan(0);
    expect(result.summary).toMatch(new RegExp(`^${PLAIN} \\(.*, 2 h 0 min old\\): gzip intact, completion line present; no manifest: sha256 not checked$`));
  });

  it('warns when the newest dump has no manifest though the one before has: its writer failed after the dump', async () => {
    const newer = 'seed-20260102T000000Z.sql.gz';
    const dir = await store([
      { name: PLAIN, data: plain, hoursAgo: 4 },
      { name: `${PLAIN}.manifest.json`, data: JSON.stringify(taken.manifest), hoursAgo: 4 },
      { name: newer, data: plain, hoursAgo: 2 },
    ]);
    const result = await verify(dir);
    expect(codes(result)).toEqual(['backup_manifest_missing:warning']);
    expect(one(result, 'backup_manifest_missing')).toMatchObject({ subject: `${newer}.manifest.json`, details: { dump: newer, previous: PLAIN } });
    expect(result.summary).toMatch(/: backup_manifest_missing; no manifest: sha256 not checked$/);
  });

  it('passes a dump taken by the backup task and checks its sha256 against the manifest', async () => {
    const dir = await store([
      { name: taken.name, data: taken.dump },
      { name: `${taken.name}.manifest.json`, data: JSON.stringify(taken.manifest) },
    ]);
    const result = await verify(dir);
    expect(result.status).toBe('ok');
    expect(result.findings).toEqual([]);
    expect(result.metrics.backup_size_bytes).toBe(taken.dump.length);
    expect(result.summary).toMatch(/sha256 matches the manifest$/);
  });

  it('passes a real custom-format dump (pg_restore reads its whole archive)', async () => {
    const result = await verify(await store([{ name: CUSTOM, data: custom }]));
    expect(result.status).toBe('ok');
    expect(result.findings).toEqual([]);
    expect(result.metrics.backup_size_bytes).toBe(custom.length);
    expect(result.summary).toMatch(/: archive readable; no manifest/);
  });

  it('raises backup_missing when no dump matches the pattern (other files do not count)', async () => {
    const dir = await store([
      { name: 'other-20260101T000000Z.sql.gz', data: plain },
      { name: `${PLAIN}.manifest.json`, data: JSON.stringify(taken.manifest) },
    ]);
    const result = await verify(dir);
    expect(result.status).toBe('critical');
    expect(codes(result)).toEqual(['backup_missing:critical']);
    expect(one(result, 'backup_missing')).toMatchObject({ subject: 'seed-*', message: `no dump matching seed-* in directory ${dir}` });
  });

  it('raises backup_corrupt for a truncated copy', async () => {
    const cut = plain.subarray(0, Math.floor(plain.length / 2));
    const result = await verify(await store([{ name: PLAIN, data: cut }]));
    expect(result.status).toBe('critical');
    expect(codes(result)).toEqual(['backup_corrupt:critical']);
    expect(one(result, 'backup_corrupt').message).toMatch(/gzip stream of .* is damaged at byte \d+ of \d+: unexpected end of file/);
  });

  it('says a damaged dump modified moments ago may still be being written', async () => {
    const cut = plain.subarray(0, Math.floor(plain.length / 2));
    const result = await verify(await store([{ name: PLAIN, data: cut }]));
    expect(one(result, 'backup_corrupt').message).toMatch(/\(it was modified \d+ s ago: is the backup job still writing it\?\)$/);
    const older = await verify(await store([{ name: PLAIN, data: cut, hoursAgo: 1 }]));
    expect(one(older, 'backup_corrupt').message).not.toMatch(/still writing/);
  });

  it('goes by the first bytes when the name does not say the format', async () => {
    const sniffed = await verify(await store([
      { name: 'seed-20260101T000000Z', data: plain, hoursAgo: 1 },
      { name: 'seed-20250101T000000Z', data: custom, hoursAgo: 2 },
    ]));
    expect(sniffed.status).toBe('ok');
    expect(sniffed.summary).toMatch(/gzip intact, completion line present/);
    const customFirst = await verify(await store([{ name: 'seed-20260101T000000Z', data: custom, hoursAgo: 1 }]));
    expect(customFirst.summary).toMatch(/archive readable/);
    const neither = await verify(await store([{ name: 'seed-20260101T000000Z', data: 'SELECT 1;\n'.repeat(100), hoursAgo: 1 }]));
    expect(codes(neither)).toEqual(['backup_corrupt:critical']);
    expect(one(neither, 'backup_corrupt').message).toMatch(/neither gzip'd SQL nor a pg_dump custom-format archive/);
  });

  it('raises backup_corrupt for flipped bytes', async () => {
    const flipped = Buffer.from(plain);
    for (let i = 0; i < 16; i++) flipped[Math.floor(plain.length / 3) + i]! ^= 0xff;
    const result = await verify(await store([{ name: PLAIN, data: flipped }]));
    expect(result.status).toBe('critical');
    expect(codes(result)).toEqual(['backup_corrupt:critical']);
    expect(one(result, 'backup_corrupt').details).toMatchObject({ sizeBytes: plain.length });
  });

  it('raises backup_corrupt when the bytes differ from the manifest, even with a valid gzip stream', async () => {
    const other = gzipSync(gunzipSync(taken.dump), { level: 1 }); // same SQL, other bytes
    const dir = await store([
      { name: taken.name, data: other },
      { name: `${taken.name}.manifest.json`, data: JSON.stringify(taken.manifest) },
    ]);
    const result = await verify(dir);
    expect(codes(result)).toEqual(['backup_corrupt:critical']);
    expect(one(result, 'backup_corrupt').message).toMatch(/is \d+ bytes, its manifest says \d+/);
    const forged = { ...taken.manifest, sha256: 'ab'.repeat(32) };
    const result2 = await verify(await store([
      { name: taken.name, data: taken.dump },
      { name: `${taken.name}.manifest.json`, data: JSON.stringify(forged) },
    ]));
    expect(codes(result2)).toEqual(['backup_corrupt:critical']);
    expect(one(result2, 'backup_corrupt')).toMatchObject({ subject: taken.name, message: expect.stringMatching(/sha256 .* differs from its manifest/) });
    expect(result2.summary).toMatch(/sha256 differs from the manifest$/);
    // Cut short, with its manifest: one finding, with the gzip error and the checksum figures.
    const result3 = await verify(await store([
      { name: taken.name, data: taken.dump.subarray(0, taken.dump.length - 100), hoursAgo: 1 },
      { name: `${taken.name}.manifest.json`, data: JSON.stringify(taken.manifest) },
    ]));
    expect(codes(result3)).toEqual(['backup_corrupt:critical']);
    expect(one(result3, 'backup_corrupt').details).toMatchObject({ sizeBytes: taken.dump.length - 100, manifestSizeBytes: taken.dump.length, manifestSha256: taken.manifest.sha256 });
  });

  it('treats an invalid manifest as backup_corrupt, not a crash, and still checks the dump', async () => {
    const dir = await store([
      { name: taken.name, data: taken.dump },
      { name: `${taken.name}.manifest.json`, data: '{"version": 1, "file": ' },
    ]);
    const result = await verify(dir);
    expect(result.status).toBe('critical');
    expect(codes(result)).toEqual(['backup_corrupt:critical']);
    expect(one(result, 'backup_corrupt').subject).toBe(`${taken.name}.manifest.json`);
    expect(result.summary).toMatch(/: backup_corrupt; manifest invalid: sha256 not checked$/);
    expect(result.metrics.backup_uncompressed_bytes).toBe(gunzipSync(taken.dump).length);
  });

  it('raises backup_stale from the file time: warning past 26 h, critical past 50 h, with the age as the RPO', async () => {
    const warn = await verify(await store([{ name: PLAIN, data: plain, hoursAgo: 30 }]));
    expect(codes(warn)).toEqual(['backup_stale:warning']);
    expect(one(warn, 'backup_stale').details).toMatchObject({ ageFrom: 'file modification time', warningHours: 26, criticalHours: 50 });
    expect(warn.metrics.backup_age_seconds).toBeGreaterThanOrEqual(30 * 3600);
    expect(warn.metrics.backup_age_seconds).toBeLessThan(30 * 3600 + 120);
    const crit = await verify(await store([{ name: PLAIN, data: plain, hoursAgo: 51 }]));
    expect(codes(crit)).toEqual(['backup_stale:critical']);
    const lowered = await verify(await store([{ name: PLAIN, data: plain, hoursAgo: 3 }]), { staleWarningHours: 1, staleCriticalHours: 2 });
    expect(codes(lowered)).toEqual(['backup_stale:critical']);
  });

  it('takes the age from the manifest\'s finishedAt when there is one', async () => {
    const fresh = await verify(await store([
      { name: taken.name, data: taken.dump, hoursAgo: 100 },
      { name: `${taken.name}.manifest.json`, data: JSON.stringify(taken.manifest) },
    ]));
    expect(fresh.findings).toEqual([]);
    const old = { ...taken.manifest, finishedAt: new Date(Date.now() - 30 * HOUR).toISOString() };
    const stale = await verify(await store([
      { name: taken.name, data: taken.dump },
      { name: `${taken.name}.manifest.json`, data: JSON.stringify(old) },
    ]));
    expect(codes(stale)).toEqual(['backup_stale:warning']);
    expect(one(stale, 'backup_stale').details).toMatchObject({ ageFrom: 'manifest finishedAt', madeAt: old.finishedAt });
  });

  it('raises backup_size_anomaly and backup_incomplete for an empty dump', async () => {
    const result = await verify(await store([{ name: PLAIN, data: '' }]));
    expect(result.status).toBe('critical');
    expect(codes(result)).toEqual(['backup_incomplete:critical', 'backup_size_anomaly:warning']);
    expect(one(result, 'backup_size_anomaly').message).toMatch(/is empty \(0 bytes\)/);
    expect(result.metrics.backup_size_bytes).toBe(0);
  });

  it('raises backup_incomplete for a dump without pg_dump\'s completion line', async () => {
    const cut = withoutLastLines(plain, 8);
    expect(gunzipSync(cut).toString()).not.toContain('dump complete');
    const result = await verify(await store([{ name: PLAIN, data: cut }]));
    expect(result.status).toBe('critical');
    expect(codes(result)).toEqual(['backup_incomplete:critical']);
    expect(one(result, 'backup_incomplete').message).toMatch(/does not end with pg_dump's "-- PostgreSQL database dump complete"/);
  });

  it('raises backup_incomplete for a custom-format dump whose table of contents is damaged, or cut short in its data', async () => {
    const toc = Buffer.from(custom);
    const at = toc.indexOf('ENCODING');
    toc.writeUInt32LE(2 * custom.length, at - 4); // the first entry's tag length: past the end of the file
    const damaged = await verify(await store([{ name: CUSTOM, data: toc, hoursAgo: 1 }]));
    expect(codes(damaged)).toEqual(['backup_incomplete:critical']);
    expect(one(damaged, 'backup_incomplete').message).toMatch(/^pg_restore cannot read seed-.*\.dump: pg_restore: error: could not read from input file: end of file$/);
    const cut = await verify(await store([{ name: CUSTOM, data: custom.subarray(0, custom.length - 1000) }]));
    expect(codes(cut)).toEqual(['backup_incomplete:critical']);
    expect(one(cut, 'backup_incomplete').details!.pgRestore).toMatch(/end of file/);
  });

  it('raises backup_size_anomaly against the median of the previous 7 dumps, and only those', async () => {
    const s = plain.length;
    const older = (sizes: number[]) => sizes.map((size, i) => ({ name: `seed-old${i}.sql.gz`, data: Buffer.alloc(size, 1), hoursAgo: 24 * (i + 1) }));
    // The 7 before the newest: median 3s (the newest is 33 %); older ones (size s) are out of the window.
    const shrunk = await verify(await store([{ name: PLAIN, data: plain }, ...older([3 * s, 3 * s, 3 * s, 3 * s, s, s, s, s, s, s])]));
    expect(codes(shrunk)).toEqual(['backup_size_anomaly:warning']);
    expect(one(shrunk, 'backup_size_anomaly').details).toEqual({ sizeBytes: s, medianBytes: 3 * s, previous: 7, thresholdPercent: 50 });
    // Median s over the last 7 (the 3s ones further back do not count): no anomaly.
    const usual = await verify(await store([{ name: PLAIN, data: plain }, ...older([s, s, s, s, 3 * s, 3 * s, 3 * s, 3 * s, 3 * s, 3 * s])]));
    expect(usual.findings).toEqual([]);
    // The threshold is a param: 33 % of the median is fine at 30 %.
    const tolerant = await verify(await store([{ name: PLAIN, data: plain }, ...older([3 * s, 3 * s, 3 * s, 3 * s])]), { sizeAnomalyPercent: 30 });
    expect(tolerant.findings).toEqual([]);
  });

  it('finds the completion line with or without \\unrestrict after it, in a ring buffer of the last bytes', () => {
    expect(endsWithCompletionLine('COPY ...\n\\.\n\n\n--\n-- PostgreSQL database dump complete\n--\n\n')).toBe(true);
    expect(endsWithCompletionLine('--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abC123\n\n')).toBe(true);
    expect(endsWithCompletionLine('--\n-- PostgreSQL database dump complete\n--\n\nSELECT 1;\n')).toBe(false);
    expect(endsWithCompletionLine('INSERT INTO t VALUES (1);\n')).toBe(false);
    const tail = new TailBuffer(8);
    for (const part of ['abc', 'defghij', 'k', '0123456789xyz']) tail.push(Buffer.from(part));
    expect(tail.toString()).toBe('456789xyz'.slice(-8));
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });
});
