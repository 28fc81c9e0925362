/**
 * The restore engine shared by restore-test and dr-drill: put the newest
 * dump back into a scratch database on the scratch server, check what came
 * back, and always drop the scratch database again.
 *
 * The flow, each step timed (dr-drill's RTO is create + fetch and restore +
 * verify): sweep leftovers of this target older than a day, create
 * `caretaker_scratch_<target>_<stamp>` from template0, stream the dump from
 * the store into `psql -v ON_ERROR_STOP=1` (through a Node gunzip) or
 * `pg_restore --exit-on-error`, compare the tables with the manifest (or
 * with the live source within a tolerance), check key tables and smoke
 * queries, drop. The drop runs in `finally` on a session of its own, so a
 * failed, timed-out or aborted run leaves nothing behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { z } from 'zod';
import type { Client } from 'pg';
import type { TaskContext } from '../contract/task';
import type { Action, Finding } from '../contract/result';
import { connectClient, type SessionLimits } from '../clients/postgres';
import { toolConnection } from '../clients/pg-tools';
import { redactSecretsIn, redactUrl, type Logger } from '../logger';
import { coerceError } from '../errors';
import { formatBytes, formatDuration } from '../util/format';
import { createStore } from './create-store';
import { listDumps, type BackupStore, type StoredObject } from './store';
import { formatOf, readManifest, type BackupManifest, type DumpFormat } from './manifest';
import { isScratchName, scratchCreatedAt, scratchDatabaseName } from './scratch';
import { countRowsSql, SQL } from '../jobs/restore-test.sql';

/** The longest restore a param may allow; the tasks' timeouts are derived from it. */
export const RESTORE_TIMEOUT_MAX_MS = 4 * 3600_000;
/** The longest a verification statement (row counts of the scratch database) may run. */
export const VERIFY_TIMEOUT_MAX_MS = 3600_000;
/** restore-test's task timeout: the longest restore and verification, plus sweep, create and drop. */
export const RESTORE_TASK_TIMEOUT_MS = RESTORE_TIMEOUT_MAX_MS + VERIFY_TIMEOUT_MAX_MS + 30 * 60_000;
/** Scratch databases of this target older than this are a dead run's leftovers. */
export const SWEEP_AFTER_MS = 24 * 3600_000;
/** Bound on CREATE DATABASE and DROP DATABASE (dropping a big database removes many files). */
const ADMIN_STATEMENT_TIMEOUT_MS = 10 * 60_000;
/** A killed psql / pg_restore that ignores SIGTERM this long gets SIGKILL. */
const KILL_GRACE_MS = 5_000;
/** How much of psql's / pg_restore's stderr is kept (the tail: the error is last). */
const STDERR_KEEP_BYTES = 16 * 1024;
/** The last line of every complete plain dump. */
const COMPLETION_LINE = '-- PostgreSQL database dump complete';

/** Params of both restore-test and dr-drill (dr-drill adds its objectives). */
export const restoreParamFields = {
  /** `schema.table` (or `table` for `public.table`) that must exist and hold rows after the restore. */
  keyTables: z.array(z.string().min(1)).default([]),
  /** One SQL statement each, run in the scratch database in a READ ONLY transaction; each must succeed. */
  smokeQueries: z.array(z.string().min(1)).default([]),
  /** statement_timeout of each smoke query. */
  smokeTimeoutMs: z.number().int().min(100).max(600_000).default(60_000),
  /**
   * Relative row-count difference tolerated against the live source (no
   * manifest); with a manifest, a difference past it is critical instead of warning.
   */
  tolerance: z.number().min(0).max(1).default(0.1),
  /** Absolute row-count difference always tolerated against the live source (small tables move too). */
  toleranceRows: z.number().int().min(0).default(10),
  /** psql / pg_restore are killed past this, and the restore counts as failed. */
  restoreTimeoutMs: z.number().int().min(1_000).max(RESTORE_TIMEOUT_MAX_MS).default(2 * 3600_000),
  /** statement_timeout of the row counts in the scratch database. */
  verifyTimeoutMs: z.number().int().min(1_000).max(VERIFY_TIMEOUT_MAX_MS).default(30 * 60_000),
};
export const restoreParams = z.strictObject(restoreParamFields);
export type RestoreParams = z.infer<typeof restoreParams>;

export interface RestoreStep {
  step: string;
  seconds: number;
}

/** How a restore run ended. */
export type RestoreStatus = 'not_allowed' | 'missing' | 'dry_run' | 'failed' | 'restored';

export interface RestoreRun {
  status: RestoreStatus;
  summary: string;
  findings: Finding[];
  actions: Action[];
  metrics: Record<string, number>;
  steps: RestoreStep[];
  dump?: StoredObject;
  manifest?: BackupManifest;
  format?: DumpFormat;
  scratchDatabase?: string;
  /** create + fetch and restore + verify, when the dump was restored. */
  rtoSeconds?: number;
}

interface TableRef {
  key: string;
  schema: string;
  name: string;
  partition: boolean;
}

/**
 * Restores the newest dump of `ctx.target` into a scratch database, checks
 * it, drops it. Throws (an `error` result) only when it cannot do its work:
 * no scratch server configured, store or scratch server unreachable, psql
 * missing. `task` names the caller in application_name.
 */
export async function runRestore(ctx: TaskContext<'backups'>, p: RestoreParams, task: string): Promise<RestoreRun> {
  const target = ctx.target;
  const run: RestoreRun = { status: 'not_allowed', summary: '', findings: [], actions: [], metrics: {}, steps: [] };
  if (!target.allow.restore) {
    run.findings.push({
      severity: 'info',
      code: 'restore_not_allowed',
      subject: target.name,
      message: `restore tests are not allowed on backups target ${target.name}: nothing restored, no database created`,
      suggestion: `Set allow.restore: true on the backups target (and scratch.url to a server where caretaker may create databases)`,
    });
    run.summary = `restore not allowed on ${target.name} (allow.restore is false)`;
    return run;
  }
  const scratch = target.scratch;
  if (!scratch) {
    throw new Error(`no scratch server configured for backups target ${target.name}: set scratch.url to a server (and its maintenance database, e.g. /postgres) where caretaker may create and drop databases named caretaker_scratch_*`);
  }

  const store = createStore(target.store);
  const limits: SessionLimits = { statementTimeoutMs: ADMIN_STATEMENT_TIMEOUT_MS, lockTimeoutMs: target.source.lockTimeoutMs };
  // Our own session, not ctx.clients: the runner closes those the moment a run
  // is aborted, and the drop in `finally` must still get through.
  const admin = await connectClient(scratch.url, limits, ctx.log);
  const children = new Set<ChildProcess>();
  let verifyDb: Client | undefined;
  const onAbort = () => {
    for (const child of children) kill(child);
    void verifyDb?.end().catch(() => undefined);
  };
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  let created: string | undefined;
  try {
    await timed(run, 'sweep', () => sweep(admin, target.name, ctx.dryRun, run.actions, ctx.log));
    const dump = (await listDumps(store, target.pattern))[0];
    if (!dump) {
      run.status = 'missing';
      run.findings.push({
        severity: 'critical',
        code: 'backup_missing',
        subject: target.pattern,
        message: `no dump matching ${target.pattern} in ${store.description}: nothing to restore`,
        suggestion: 'Check that the backup job runs and writes into this store, and that the pattern matches its file names',
      });
      run.summary = `no dump matching ${target.pattern} in ${store.description}`;
      return run;
    }
    run.dump = dump;
    run.manifest = await manifestOf(run, store, dump.name);
    const name = scratchDatabaseName(target.name, new Date());
    run.scratchDatabase = name;
    const where = `${name} on ${redactUrl(scratch.url)}`;

    if (ctx.dryRun) {
      run.status = 'dry_run';
      run.format = run.manifest?.format ?? formatOf(dump.name);
      run.actions.push({ kind: 'restore_dump', subject: name, applied: false, details: { dump: dump.name, format: run.format, sizeBytes: dump.sizeBytes, scratchServer: redactUrl(scratch.url) } });
      run.summary = `dry run: would restore ${dump.name} (${formatBytes(dump.sizeBytes)}${run.format ? `, ${run.format}` : ''}) into ${where}, verify and drop it`;
      return run;
    }

    throwIfAborted(ctx.signal);
    await ctx.jobLog(`restoring ${dump.name} (${formatBytes(dump.sizeBytes)}) into ${where}`);
    await timed(run, 'create_scratch_database', async () => {
      await admin.query(SQL.createDatabase(admin.escapeIdentifier(name)));
      created = name;
    });
    run.actions.push({ kind: 'create_scratch_database', subject: name, applied: true });
    throwIfAborted(ctx.signal);
    await ctx.progress(5);

    const scratchDbUrl = withDatabase(scratch.url, name);
    const started = Date.now();
    const failure = await timed(run, 'fetch_and_restore', () =>
      restoreInto({ ctx, run, store, dump, url: scratchDbUrl, timeoutMs: p.restoreTimeoutMs, children, application: task }),
    );
    const restoreSeconds = (Date.now() - started) / 1000;
    run.actions.push({ kind: 'restore_dump', subject: name, applied: true, durationMs: Math.round(restoreSeconds * 1000), details: { dump: dump.name, format: run.format, sizeBytes: dump.sizeBytes } });
    if (failure) {
      run.status = 'failed';
      run.findings.push(restoreFailed(dump, run.format, name, failure, p.restoreTimeoutMs));
      run.summary = `restore of ${dump.name} failed${failure.line ? ` at line ${failure.line}` : ''}: ${failure.error}`;
      return run;
    }
    throwIfAborted(ctx.signal);
    await ctx.progress(85);

    verifyDb = await connectClient(scratchDbUrl, { statementTimeoutMs: p.verifyTimeoutMs, lockTimeoutMs: target.source.lockTimeoutMs }, ctx.log);
    const checked = await timed(run, 'verify', () => verify(ctx, verifyDb!, run.manifest, p));
    run.findings.push(...checked.findings);
    run.status = 'restored';
    run.rtoSeconds = run.steps.filter((s) => RTO_STEPS.has(s.step)).reduce((a, s) => a + s.seconds, 0);
    run.metrics = {
      restore_seconds: restoreSeconds,
      verify_seconds: run.steps.find((s) => s.step === 'verify')!.seconds,
      restore_tables: checked.tables,
      restore_rows: checked.rows,
      restore_size_bytes: dump.sizeBytes,
    };
    const problems = run.findings.filter((f) => f.severity !== 'info').length;
    run.summary =
      `restored ${dump.name} (${formatBytes(dump.sizeBytes)}, ${run.format}) in ${formatDuration(restoreSeconds * 1000)}: ` +
      `${checked.tables} tables, ${checked.rows} rows checked against ${checked.against}` +
      (problems > 0 ? `, ${problems} problems` : ', all match');
    return run;
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    for (const child of children) kill(child);
    await verifyDb?.end().catch(() => undefined);
    if (created) await dropOurs(run, admin, scratch.url, limits, created, ctx.log);
    await admin.end().catch(() => undefined);
  }
}

/** The steps whose time a real recovery would spend: dr-drill's RTO. */
const RTO_STEPS = new Set(['create_scratch_database', 'fetch_and_restore', 'verify']);

async function timed<T>(run: RestoreRun, step: string, fn: () => Promise<T>): Promise<T> {
  const started = Date.now();
  try {
    return await fn();
  } finally {
    run.steps.push({ step, seconds: (Date.now() - started) / 1000 });
  }
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw coerceError(signal.reason ?? new Error('aborted'));
}

/** The manifest beside the dump; an invalid one is a warning and the run goes on without it. */
async function manifestOf(run: RestoreRun, store: BackupStore, dump: string): Promise<BackupManifest | undefined> {
  try {
    return await readManifest(store, dump);
  } catch (err) {
    run.findings.push({
      severity: 'warning',
      code: 'manifest_invalid',
      subject: dump,
      message: `the manifest of ${dump} cannot be read (${redactSecretsIn(coerceError(err).message)}): row counts compared with the live source instead`,
      suggestion: 'Check the backup job that writes the manifest; backup-verify reports the same file',
    });
    return undefined;
  }
}

/**
 * Drops this target's scratch databases older than a day: names with the
 * scratch prefix, this target's part and a timestamp only, never anything else.
 */
async function sweep(admin: Client, targetName: string, dryRun: boolean, actions: Action[], log: Logger): Promise<void> {
  const ours = scratchDatabaseName(targetName, new Date(0)).slice(0, -14);
  const { rows } = await admin.query<{ datname: string }>(SQL.scratchDatabases, [ours]);
  const cutoff = Date.now() - SWEEP_AFTER_MS;
  for (const { datname } of rows) {
    if (!/^\d{14}$/.test(datname.slice(ours.length))) continue; // another target whose name starts like ours
    const at = scratchCreatedAt(datname);
    if (!at || at.getTime() > cutoff) continue;
    const details = { createdAt: at.toISOString() };
    if (dryRun) {
      actions.push({ kind: 'drop_scratch_database', subject: datname, applied: false, details });
      continue;
    }
    const started = Date.now();
    await dropScratch(admin, datname);
    log.info({ database: datname }, 'dropped a leftover scratch database');
    actions.push({ kind: 'drop_scratch_database', subject: datname, applied: true, durationMs: Date.now() - started, details });
  }
}

async function dropScratch(admin: Client, name: string): Promise<void> {
  if (!isScratchName(name)) throw new Error(`refusing to drop ${name}: not a scratch database`);
  await admin.query(SQL.dropDatabase(admin.escapeIdentifier(name)));
}

/** Drops the run's scratch database; a dead admin session gets one fresh retry. A failure is a finding, never thrown. */
async function dropOurs(run: RestoreRun, admin: Client, serverUrl: string, limits: SessionLimits, name: string, log: Logger): Promise<void> {
  const started = Date.now();
  let error: unknown;
  for (let attempt = 0; attempt < 2; attempt++) {
    let session: Client | undefined;
    try {
      session = attempt === 0 ? admin : await connectClient(serverUrl, limits, log);
      await dropScratch(session, name);
      error = undefined;
      break;
    } catch (err) {
      error = err;
    } finally {
      if (attempt > 0) await session?.end().catch(() => undefined);
    }
  }
  run.steps.push({ step: 'drop_scratch_database', seconds: (Date.now() - started) / 1000 });
  if (error === undefined) {
    run.actions.push({ kind: 'drop_scratch_database', subject: name, applied: true, durationMs: Date.now() - started });
    return;
  }
  const message = redactSecretsIn(coerceError(error).message);
  log.error({ database: name, err: message }, 'could not drop the scratch database');
  run.findings.push({
    severity: 'warning',
    code: 'scratch_drop_failed',
    subject: name,
    message: `could not drop scratch database ${name}: ${message}`,
    suggestion: `Drop it by hand (DROP DATABASE "${name}" WITH (FORCE)); the next run's sweep drops it once it is a day old`,
  });
}

/** The scratch server's URL, naming another database on it. */
function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

function kill(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }, KILL_GRACE_MS).unref();
}

/** Keeps the last `size` bytes that pass through, for the completion-line check and stderr. */
class Tail {
  private buf = Buffer.alloc(0);
  total = 0;
  constructor(private readonly size: number) {}
  push(chunk: Buffer): void {
    this.total += chunk.length;
    this.buf = chunk.length >= this.size ? Buffer.from(chunk.subarray(chunk.length - this.size)) : Buffer.concat([this.buf, chunk]).subarray(-this.size);
  }
  text(): string {
    return this.buf.toString('utf8');
  }
}

function tap(onChunk: (chunk: Buffer) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      onChunk(chunk);
      done(null, chunk);
    },
  });
}

/** Reads the first chunk without consuming it: the dump's magic bytes. */
async function peek(stream: Readable): Promise<Buffer> {
  const first = stream.read() as Buffer | null;
  if (first) {
    stream.unshift(first);
    return first;
  }
  if (stream.readableEnded) return Buffer.alloc(0);
  await Promise.race([once(stream, 'readable'), once(stream, 'end')]);
  const chunk = stream.read() as Buffer | null;
  if (!chunk) return Buffer.alloc(0);
  stream.unshift(chunk);
  return chunk;
}

interface RestoreRequest {
  ctx: TaskContext<'backups'>;
  run: RestoreRun;
  store: BackupStore;
  dump: StoredObject;
  url: string;
  timeoutMs: number;
  children: Set<ChildProcess>;
  application: string;
}

/**
 * Streams the dump from the store into psql (plain, through gunzip) or
 * pg_restore (custom). Resolves with the failure, or undefined when the
 * dump went in whole; rejects when aborted or when the tool is missing.
 */
async function restoreInto(req: RestoreRequest): Promise<ToolError | undefined> {
  const { ctx, run, dump } = req;
  if (dump.sizeBytes === 0) return { tool: 'store', error: 'the dump is empty (0 bytes)' };
  const source = await req.store.read(dump.name);
  const head = await peek(source);
  const format = formatOf('', head) ?? run.manifest?.format ?? formatOf(dump.name);
  run.format = format;
  if (!format) {
    source.destroy();
    return { tool: 'store', error: `cannot tell the dump's format: neither gzip nor pg_dump custom format (first bytes ${head.subarray(0, 8).toString('hex')})` };
  }
  const tool: 'psql' | 'pg_restore' = format === 'custom' ? 'pg_restore' : 'psql';
  const conn = toolConnection(req.url, req.application);
  const args =
    format === 'custom'
      ? ['--exit-on-error', '--no-owner', '-d', conn.url]
      : ['-v', 'ON_ERROR_STOP=1', '-X', '-q', '--echo-errors', '-f', '-', '-d', conn.url];
  const child = spawn(tool, args, { stdio: ['pipe', 'ignore', 'pipe'], env: conn.env });
  req.children.add(child);
  if (ctx.signal.aborted) kill(child); // aborted while the store was opening: the abort handler has run already
  const stderr = new Tail(STDERR_KEEP_BYTES);
  child.stderr!.on('data', (d: Buffer) => stderr.push(d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; spawnError?: Error }>((resolve) => {
    child.once('error', (err) => resolve({ code: null, signal: null, spawnError: err }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });

  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    kill(child);
    source.destroy();
  }, req.timeoutMs);
  let lastPercent = 5;
  let read = 0;
  const counter = tap((chunk) => {
    read += chunk.length;
    const percent = 5 + Math.floor((80 * read) / Math.max(dump.sizeBytes, 1));
    if (percent >= lastPercent + 5) {
      lastPercent = percent;
      void ctx.progress(percent).catch(() => undefined);
    }
  });
  const sqlTail = new Tail(256);
  const streamed = (format === 'custom' ? pipeline(source, counter, child.stdin!) : pipeline(source, counter, createGunzip({ chunkSize: 64 * 1024 }), tap((c) => sqlTail.push(c)), child.stdin!)).then(
    () => undefined,
    (err: unknown) => coerceError(err),
  );
  const [pipeError, exit] = await Promise.all([streamed, exited]);
  clearTimeout(timer);
  req.children.delete(child);

  throwIfAborted(ctx.signal);
  if (exit.spawnError) {
    const missing = (exit.spawnError as NodeJS.ErrnoException).code === 'ENOENT';
    throw new Error(missing ? `${tool} is not installed (not on PATH): install the PostgreSQL client tools` : `cannot start ${tool}: ${exit.spawnError.message}`);
  }
  const stderrText = redactSecretsIn(stderr.text());
  const base = { tool, exitCode: exit.code, stderrTail: stderrText.slice(-4000) };
  if (timedOut) return { ...base, timedOut: true, error: `${tool} did not finish within ${formatDuration(req.timeoutMs)} (restoreTimeoutMs) and was stopped` };
  // A broken pipe is the tool stopping at its error; any other stream error (gzip, store) is the cause.
  const pipeCaused = pipeError && !['EPIPE', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED'].includes((pipeError as NodeJS.ErrnoException).code ?? '');
  if (pipeCaused) return { ...base, error: `reading the dump failed: ${redactSecretsIn(pipeError.message)}` };
  if (exit.code !== 0 || pipeError) {
    const parsed = parseToolError(tool, stderrText);
    return { ...base, ...parsed, error: parsed.error ?? `${tool} exited with ${exit.code ?? exit.signal}` };
  }
  if (format === 'plain-gzip' && !sqlTail.text().includes(COMPLETION_LINE)) {
    return { ...base, error: `the dump ends without pg_dump's completion line ("${COMPLETION_LINE}"): it is truncated, so the restore is incomplete` };
  }
  return undefined;
}

function restoreFailed(dump: StoredObject, format: DumpFormat | undefined, scratch: string, f: ToolError, timeoutMs: number): Finding {
  return {
    severity: 'critical',
    code: 'restore_failed',
    subject: dump.name,
    message: `restoring ${dump.name} failed${f.line ? ` at line ${f.line}` : ''}: ${f.error}${f.statement ? ` (statement: ${oneLine(f.statement, 200)})` : ''}`,
    suggestion: f.timedOut
      ? `The restore takes longer than ${formatDuration(timeoutMs)}: raise restoreTimeoutMs if that is acceptable as recovery time, or look at why it is slow`
      : 'This dump cannot be restored as it is: fix the backup (a role the dump references must exist on the scratch server, or dump with --no-owner) and take a new one before you need it',
    details: { dump: dump.name, format, scratchDatabase: scratch, ...f },
  };
}

function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** "users" is "public.users". */
function tableKey(name: string): string {
  return name.includes('.') ? name : `public.${name}`;
}

interface Verified {
  findings: Finding[];
  tables: number;
  rows: number;
  against: string;
}

/** Row counts against the manifest (or the live source), key tables, smoke queries. */
async function verify(ctx: TaskContext<'backups'>, db: Client, manifest: BackupManifest | undefined, p: RestoreParams): Promise<Verified> {
  const findings: Finding[] = [];
  const restored = new Map((await db.query<TableRef>(SQL.tables)).rows.map((t) => [t.key, t]));
  const keyTables = [...new Set(p.keyTables.map(tableKey))];

  let expected: Map<string, number>;
  let against: string;
  let method: 'manifest' | 'source' | 'source_estimate' = 'manifest';
  if (manifest) {
    expected = new Map(Object.entries(manifest.tables));
    against = 'the manifest';
  } else {
    const live = await sourceCounts(ctx);
    expected = live.counts;
    method = live.method === 'exact' ? 'source' : 'source_estimate';
    against = live.method === 'exact' ? 'the live source' : 'the live source (estimated counts)';
  }

  const toCount = new Map<string, TableRef>();
  for (const key of [...expected.keys(), ...keyTables]) {
    const t = restored.get(key);
    if (t) toCount.set(key, t);
  }
  const counts = await countRows(db, [...toCount.values()], ctx.signal);

  for (const [key, want] of expected) {
    const got = counts.get(key);
    const subject = key;
    if (got === undefined) {
      findings.push({
        severity: manifest ? 'critical' : 'warning',
        code: 'restore_mismatch',
        subject,
        message: manifest
          ? `${key} is in the manifest (${want} rows) but not in the restored database`
          : `${key} exists in the source (${want} rows) but not in the restored dump: created after the dump, or missing from it`,
        suggestion: 'Check that pg_dump is not told to skip it (-T, -n) and that the dump is complete',
        details: { table: key, expected: want, restored: null, against: method },
      });
      continue;
    }
    const diff = got - want;
    if (diff === 0) continue;
    const ratio = Math.abs(diff) / Math.max(want, 1);
    if (manifest) {
      findings.push({
        severity: ratio > p.tolerance || (got === 0 && want > 0) ? 'critical' : 'warning',
        code: 'restore_mismatch',
        subject,
        message: `${key}: ${got} rows restored, the manifest says ${want} (${diff > 0 ? '+' : ''}${diff})`,
        suggestion: 'The dump does not hold what the backup counted: take a new backup and restore-test it',
        details: { table: key, expected: want, restored: got, difference: diff, ratio, against: method },
      });
    } else if (Math.abs(diff) > Math.max(p.tolerance * want, p.toleranceRows)) {
      findings.push({
        severity: 'warning',
        code: 'restore_mismatch',
        subject,
        message: `${key}: ${got} rows restored, the source has ${method === 'source_estimate' ? 'about ' : ''}${want} now (${diff > 0 ? '+' : ''}${diff}, past ${Math.round(p.tolerance * 100)} % / ${p.toleranceRows} rows)`,
        suggestion: 'Without a manifest the live source is the reference and it moves on; if the table did not change that much since the dump, the dump is missing rows',
        details: { table: key, expected: want, restored: got, difference: diff, ratio, against: method, tolerance: p.tolerance, toleranceRows: p.toleranceRows },
      });
    }
  }

  for (const key of keyTables) {
    const got = counts.get(key);
    if (got !== undefined && got > 0) continue;
    findings.push({
      severity: 'critical',
      code: 'key_table_empty',
      subject: key,
      message: got === undefined ? `key table ${key} is not in the restored database` : `key table ${key} is empty in the restored database`,
      suggestion: 'A restore from this dump would come back without this data: check the backup before you need it',
      details: { table: key, restored: got ?? null },
    });
  }

  for (const query of p.smokeQueries) {
    throwIfAborted(ctx.signal);
    const error = await smokeQuery(db, query, p.smokeTimeoutMs);
    if (error === undefined) continue;
    findings.push({
      severity: 'critical',
      code: 'smoke_query_failed',
      subject: oneLine(query, 80),
      message: `smoke query failed on the restored database: ${error}`,
      suggestion: 'The restored data does not answer a query the application depends on: check the dump, or fix the smoke query in the config',
      details: { query, error },
    });
  }

  const rows = [...counts.values()].reduce((a, b) => a + b, 0);
  return { findings, tables: counts.size, rows, against };
}

/** Exact counts of `tables` in the scratch database, a bounded statement per 500 tables. */
async function countRows(db: Client, tables: TableRef[], signal: AbortSignal): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (let i = 0; i < tables.length; i += 500) {
    throwIfAborted(signal);
    const chunk = tables.slice(i, i + 500);
    const { rows } = await db.query<{ i: number; n: string }>(countRowsSql(chunk, (s) => db.escapeIdentifier(s)));
    for (const r of rows) out.set(chunk[r.i]!.key, Number(r.n));
  }
  return out;
}

/**
 * The source's tables and their counts, in one read-only snapshot, each
 * statement bounded by the source's statement_timeout and lock_timeout.
 * Past either, the statistics' live-row estimates stand in.
 */
async function sourceCounts(ctx: TaskContext<'backups'>): Promise<{ counts: Map<string, number>; method: 'exact' | 'estimate' }> {
  const source = ctx.target.source;
  const db = await ctx.clients.connect(source.url, source);
  const tables = (await db.query<TableRef>(SQL.tables)).rows.filter((t) => !t.partition);
  try {
    await db.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const counts = await countRows(db, tables, ctx.signal);
    await db.query('COMMIT');
    return { counts, method: 'exact' };
  } catch (err) {
    await db.query('ROLLBACK').catch(() => undefined);
    const code = (err as { code?: string }).code;
    if (code !== '57014' && code !== '55P03') throw err; // only a statement or lock timeout falls back
    ctx.log.warn({ err: coerceError(err).message }, 'counting the source took too long; comparing with its statistics');
    const { rows } = await db.query<{ key: string; n: string }>(SQL.estimates);
    const estimates = new Map(rows.map((r) => [r.key, Number(r.n)]));
    return { counts: new Map(tables.map((t) => [t.key, estimates.get(t.key) ?? 0])), method: 'estimate' };
  }
}

/** One statement (extended protocol: a single statement only) in a READ ONLY transaction; the error, or undefined. */
async function smokeQuery(db: Client, query: string, timeoutMs: number): Promise<string | undefined> {
  try {
    await db.query('BEGIN READ ONLY');
    await db.query(SQL.setLocalStatementTimeout, [`${timeoutMs}ms`]);
    await db.query({ text: query, queryMode: 'extended' } as never);
    return undefined;
  } catch (err) {
    return redactSecretsIn(coerceError(err).message);
  } finally {
    await db.query('ROLLBACK').catch(() => undefined);
  }
}

/** Why a restore failed, from psql's / pg_restore's stderr (or the store). */
export interface ToolError {
  tool: 'psql' | 'pg_restore' | 'store';
  error: string;
  /** Line of the plain dump where psql stopped. */
  line?: number;
  /** The statement that failed, as the tool echoed it. */
  statement?: string;
  exitCode?: number | null;
  stderrTail?: string;
  timedOut?: boolean;
}

const MAX_ERROR_CHARS = 1_000;
const MAX_STATEMENT_CHARS = 2_000;

/**
 * The error that stopped the tool: psql (`-f - --echo-errors`) writes
 * `psql:<stdin>:LINE: ERROR:  ...` then `psql:<stdin>:LINE: STATEMENT:  ...`;
 * pg_restore writes `pg_restore: error: ...` then `Command was: ...`.
 */
export function parseToolError(tool: 'psql' | 'pg_restore', stderr: string): { error?: string; line?: number; statement?: string } {
  const lines = stderr.split('\n');
  const isError = tool === 'psql' ? (l: string) => /^psql:.*?:\d+: (ERROR|FATAL|PANIC): /.test(l) : (l: string) => l.startsWith('pg_restore: error: ');
  let at = -1;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (isError(lines[i]!)) {
      at = i;
      break;
    }
  }
  if (at < 0) {
    const last = lines.filter((l) => l.trim() !== '').slice(-3).join('\n');
    return last ? { error: last.slice(0, MAX_ERROR_CHARS) } : {};
  }
  const startsStatement = tool === 'psql' ? (l: string) => /^psql:.*?:\d+: STATEMENT: /.test(l) : (l: string) => l.startsWith('Command was: ');
  const message: string[] = [];
  let i = at;
  for (; i < lines.length && message.length < 6 && !startsStatement(lines[i]!); i++) message.push(lines[i]!);
  const result: { error?: string; line?: number; statement?: string } = {};
  if (tool === 'psql') {
    const m = /^psql:.*?:(\d+): (.*)$/.exec(message[0]!)!;
    result.line = Number(m[1]);
    message[0] = m[2]!;
  } else {
    message[0] = message[0]!.slice('pg_restore: error: '.length);
  }
  result.error = message.join('\n').trim().slice(0, MAX_ERROR_CHARS);
  while (i < lines.length && !startsStatement(lines[i]!)) i++;
  if (i < lines.length) {
    const first = tool === 'psql' ? lines[i]!.replace(/^psql:.*?:\d+: STATEMENT:\s+/, '') : lines[i]!.slice('Command was: '.length);
    const rest: string[] = [];
    for (let j = i + 1; j < lines.length && !/^(psql|pg_restore):/.test(lines[j]!); j++) rest.push(lines[j]!);
    result.statement = [first, ...rest].join('\n').trim().slice(0, MAX_STATEMENT_CHARS);
  }
  return result;
}
