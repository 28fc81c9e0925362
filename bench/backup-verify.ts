/**
 * backup-verify on generated dumps (~100 MiB and ~1 GiB of gzip'd plain
 * SQL, COPY rows of an audit-log table) beside `gzip -t` on the same file:
 * throughput ratio (goal >= 0.9) and the verification's peak RSS, read in a
 * child process (goal: flat in the dump's size).
 *
 * Generation: rows are built from a pool of realistic rows (ids,
 * tenants, e-mails, actions, paths, IPs, timestamps, JSON payloads) and
 * gzip'd at level 6 (`| gzip`'s default) in 32 MiB members on the thread
 * pool, so both cores work; a multi-member gzip file is what `cat a.gz b.gz`
 * makes, and gunzip, gzip -t and backup-verify read it like one member. The
 * ~1 GiB file repeats the ~100 MiB file's body members ten times between
 * the same header and footer (generating 4 GiB of SQL at level 6 would take
 * minutes on two cores); every byte of both files is decompressed by both
 * tools. The files are deleted afterwards.
 */
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync, readFileSync, type WriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { Pool } from 'pg';
import pino from 'pino';
import { validateConfig } from '../src/config/load';
import { backupVerify } from '../src/jobs/backup-verify';
import { runTask } from '../src/worker/run-task';

const gzip = promisify(gzipCallback);
const MiB = 1024 * 1024;
const SMALL_BYTES = 100 * MiB;
const REPEAT = 10;
const MEMBER_RAW_BYTES = 32 * MiB;
const LEVEL = 6;
const PATTERN = 'bench-*.sql.gz';

// ---- a dump-like file -------------------------------------------------------

const HEADER = `--
-- PostgreSQL database dump
--

-- Dumped from database version 15.20
-- Dumped by pg_dump version 15.20

SET statement_timeout = 0;
SET lock_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);

CREATE TABLE public.audit_events (
    id bigint NOT NULL,
    tenant_id integer NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    resource text NOT NULL,
    ip inet,
    created_at timestamp with time zone NOT NULL,
    payload jsonb
);

COPY public.audit_events (id, tenant_id, actor, action, resource, ip, created_at, payload) FROM stdin;
`;

const FOOTER = `\\.


ALTER TABLE ONLY public.audit_events
    ADD CONSTRAINT audit_events_pkey PRIMARY KEY (id);

CREATE INDEX audit_events_tenant_created ON public.audit_events USING btree (tenant_id, created_at);


--
-- PostgreSQL database dump complete
--

`;

/** A pool of distinct rows (all but the id), built once; chunks cycle through it in a scattered order. */
function rowPool(count: number): string[] {
  let seed = 12345;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const hex = () => rnd(0x7fffffff).toString(16).padStart(8, '0');
  const words = 'alpha beta gamma delta invoice order payment refund user account login logout export report audit admin settings profile token session'.split(' ');
  const domains = ['example.com', 'acme.io', 'mail.test', 'corp.example'];
  const actions = ['user.login', 'user.logout', 'invoice.created', 'invoice.paid', 'report.exported', 'settings.changed', 'token.rotated', 'file.uploaded'];
  const rows: string[] = [];
  for (let i = 0; i < count; i++) {
    const at = new Date(Date.UTC(2026, 0, 1) + i * 2_917).toISOString().replace('T', ' ').replace('Z', '+00');
    rows.push(
      `\t${rnd(500)}\tuser${rnd(20_000)}@${domains[rnd(4)]}\t${actions[rnd(8)]}\t/${words[rnd(21)]}/${rnd(100_000)}\t10.${rnd(256)}.${rnd(256)}.${rnd(256)}\t${at}\t` +
        `{"request_id": "${hex()}${hex()}${hex()}${hex()}", "note": "${words[rnd(21)]} ${words[rnd(21)]} ${words[rnd(21)]}", "amount": ${rnd(100_000) / 100}}\n`,
    );
  }
  return rows;
}

async function write(out: WriteStream, data: Buffer): Promise<void> {
  if (!out.write(data)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
}

interface Generated {
  path: string;
  rawBytes: number;
  bytes: number;
  /** Byte range of the body members (between the header and footer members). */
  body: { start: number; end: number };
}

/** ~`targetBytes` of gzip'd SQL: a header member, body members of COPY rows, a footer member. */
async function generate(path: string, targetBytes: number): Promise<Generated> {
  const pool = rowPool(100_000);
  const out = createWriteStream(path);
  const header = await gzip(HEADER, { level: LEVEL });
  await write(out, header);
  let bytes = header.length;
  let rawBytes = HEADER.length;
  let id = 1;
  const chunk = (): Buffer => {
    const parts: string[] = [];
    let n = 0;
    while (n < MEMBER_RAW_BYTES) {
      const row = `${id}${pool[(id * 7919) % pool.length]}`;
      id++;
      n += row.length;
      parts.push(row);
    }
    return Buffer.from(parts.join(''), 'latin1');
  };
  const inFlight: Promise<Buffer>[] = [];
  let queued = 0;
  // Two members compress on the thread pool while the next chunk is built.
  while (bytes + queued * (MEMBER_RAW_BYTES / 4) < targetBytes) {
    const raw = chunk();
    rawBytes += raw.length;
    inFlight.push(gzip(raw, { level: LEVEL }));
    queued++;
    if (inFlight.length >= 2) {
      const member = await inFlight.shift()!;
      queued--;
      await write(out, member);
      bytes += member.length;
    }
  }
  for (const p of inFlight) {
    const member = await p;
    await write(out, member);
    bytes += member.length;
  }
  const footer = await gzip(FOOTER, { level: LEVEL });
  const body = { start: header.length, end: bytes };
  await write(out, footer);
  bytes += footer.length;
  rawBytes += FOOTER.length;
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return { path, rawBytes, bytes, body };
}

/** The same header and footer around `times` copies of `from`'s body members. */
async function repeatBody(from: Generated, path: string, times: number): Promise<Generated> {
  const out = createWriteStream(path);
  const copy = async (start: number, end: number) => {
    if (end <= start) return;
    for await (const chunk of createReadStream(from.path, { start, end: end - 1, highWaterMark: MiB })) await write(out, chunk as Buffer);
  };
  await copy(0, from.body.start);
  for (let i = 0; i < times; i++) await copy(from.body.start, from.body.end);
  await copy(from.body.end, from.bytes);
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  const bodyBytes = from.body.end - from.body.start;
  const bytes = (await stat(path)).size;
  const bodyRaw = from.rawBytes - HEADER.length - FOOTER.length;
  return { path, bytes, rawBytes: HEADER.length + FOOTER.length + bodyRaw * times, body: { start: from.body.start, end: from.body.start + bodyBytes * times } };
}

// ---- measuring ----------------------------------------------------------------

interface Measured {
  seconds: number;
  maxRssKiB?: number;
  ok: boolean;
  note?: string;
}

/** `gzip -t FILE`, under /usr/bin/time for its peak RSS when that is installed. */
function gzipT(path: string): Promise<Measured> {
  const timed = existsSync('/usr/bin/time');
  const [cmd, args] = timed ? ['/usr/bin/time', ['-f', '%M', 'gzip', '-t', path]] : ['gzip', ['-t', path]];
  return new Promise((resolve, reject) => {
    const began = process.hrtime.bigint();
    const child = spawn(cmd, args as string[], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - began) / 1e9;
      const rss = timed ? Number(/(\d+)\s*$/.exec(stderr.trim())?.[1]) : undefined;
      resolve({ seconds, maxRssKiB: Number.isFinite(rss) ? rss : undefined, ok: code === 0, note: code === 0 ? undefined : stderr.trim() });
    });
  });
}

/** backup-verify in a child process: the task's own duration, and the child's peak RSS. */
function verifyInChild(dir: string, mode: '--verify-child' | '--idle-child' = '--verify-child'): Promise<Measured & { throughput?: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [__filename, mode, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`verification child exited ${code}`));
      const r = JSON.parse(stdout.trim().split('\n').pop()!) as { status: string; durationMs: number; summary: string; throughput?: number; maxRssKiB: number };
      resolve({ seconds: r.durationMs / 1000, maxRssKiB: r.maxRssKiB, ok: r.status === 'ok', note: r.status === 'ok' ? undefined : r.summary, throughput: r.throughput });
    });
  });
}

/**
 * This process's peak RSS in KiB. Linux's getrusage maxrss survives
 * fork+exec (a child starts with its parent's high-water mark), so read the
 * process's own VmHWM where /proc has it.
 */
function peakRssKiB(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]);
  } catch {
    /* not Linux */
  }
  return process.resourceUsage().maxRSS;
}

/** Child process: runs backup-verify on a directory store and prints its figures as one JSON line. */
async function childMain(mode: string, dir: string): Promise<void> {
  if (mode === '--idle-child') {
    console.log(JSON.stringify({ status: 'ok', durationMs: 0, summary: '', maxRssKiB: peakRssKiB() }));
    return;
  }
  // The registry holds backup-verify alone: the child's peak RSS is the task's, not every task's modules'.
  const config = validateConfig(
    {
      targets: {
        postgres: [{ name: 'bench', url: 'postgres://127.0.0.1:5432/postgres' }],
        backups: [{ name: 'bench', database: 'bench', store: { kind: 'directory', path: dir }, pattern: PATTERN }],
      },
    },
    'bench',
    new Map([[backupVerify.name, backupVerify]]),
  );
  const prepared = backupVerify.prepare(config, { targetName: 'bench' });
  if (!prepared.ok) throw new Error(prepared.problems.join('; '));
  const state = new Pool({ connectionString: 'postgres://127.0.0.1:5432/postgres', max: 1 }); // never used by backup-verify
  const result = await runTask({ run: prepared.run, dryRun: false, log: pino({ level: 'silent' }), state });
  await state.end();
  console.log(
    JSON.stringify({
      status: result.status,
      durationMs: result.durationMs,
      summary: result.summary,
      throughput: result.metrics.verify_throughput_bytes_per_second,
      maxRssKiB: peakRssKiB(),
    }),
  );
}

const best = (xs: Measured[]): Measured => xs.reduce((a, b) => (b.seconds < a.seconds ? b : a));

export async function benchBackupVerify(env: { dir?: string }): Promise<void> {
  const root = await mkdtemp(join(env.dir ?? tmpdir(), 'caretaker-bench-verify-'));
  try {
    const smallDir = join(root, 'small');
    const bigDir = join(root, 'big');
    await mkdir(smallDir);
    await mkdir(bigDir);
    const t0 = Date.now();
    const small = await generate(join(smallDir, 'bench-20260101T000000Z.sql.gz'), SMALL_BYTES);
    const big = await repeatBody(small, join(bigDir, 'bench-20260101T000000Z.sql.gz'), REPEAT);
    const mb = (b: number) => `${(b / MiB).toFixed(0)} MiB`;
    console.log(
      `  generated ${mb(small.bytes)} (${mb(small.rawBytes)} of SQL) and ${mb(big.bytes)} (${mb(big.rawBytes)} of SQL, the small body x${REPEAT}), gzip -${LEVEL}, in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
    const idle = await verifyInChild(smallDir, '--idle-child');
    const rows: { label: string; gzip: Measured; ours: Measured; bytes: number }[] = [];
    for (const [label, dir, file, runs] of [
      ['~100 MiB', smallDir, small, 3],
      ['~1 GiB', bigDir, big, 2],
    ] as const) {
      const g: Measured[] = [];
      const o: Measured[] = [];
      // Alternate, so a noisy neighbour hits both alike.
      for (let i = 0; i < runs; i++) {
        g.push(await gzipT(file.path));
        o.push(await verifyInChild(dir));
      }
      for (const m of [...g, ...o]) if (!m.ok) throw new Error(`${label}: verification failed: ${m.note}`);
      rows.push({ label, gzip: best(g), ours: best(o), bytes: file.bytes });
    }
    const rate = (bytes: number, s: number) => `${(bytes / MiB / s).toFixed(0).padStart(4)} MiB/s`;
    const rss = (k?: number) => (k === undefined ? '   n/a' : `${(k / 1024).toFixed(0).padStart(4)} MiB`);
    for (const r of rows) {
      console.log(
        `  ${r.label.padEnd(9)} gzip -t ${r.gzip.seconds.toFixed(2).padStart(6)} s ${rate(r.bytes, r.gzip.seconds)} (RSS ${rss(r.gzip.maxRssKiB)})   ` +
          `backup-verify ${r.ours.seconds.toFixed(2).padStart(6)} s ${rate(r.bytes, r.ours.seconds)} (peak RSS ${rss(r.ours.maxRssKiB)})   ` +
          `throughput ratio ${(r.gzip.seconds / r.ours.seconds).toFixed(2)} (goal >= 0.9)`,
      );
    }
    const [s, b] = rows;
    console.log(
      `  peak RSS of the verification: ${rss(s!.ours.maxRssKiB)} for ${mb(s!.bytes)}, ${rss(b!.ours.maxRssKiB)} for ${mb(b!.bytes)}: ratio ${(b!.ours.maxRssKiB! / s!.ours.maxRssKiB!).toFixed(2)} for ${(b!.bytes / s!.bytes).toFixed(1)}x the bytes (goal: flat); the same child without verifying: ${rss(idle.maxRssKiB)}`,
    );
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

if (require.main === module && process.argv[2]?.endsWith('-child')) {
  childMain(process.argv[2], process.argv[3]!).catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
