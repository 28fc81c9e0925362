/**
 * Running psql / pg_restore for the restore engine (restore.ts): stream a
 * dump from the store into the tool as a child process, with progress,
 * a timeout that kills it (SIGTERM, then SIGKILL), and the tail of its
 * stderr parsed into the error that stopped it.
 *
 * Kept apart from the flow so that the process handling (pipes, exit codes,
 * broken pipes, what a truncated dump looks like) can be read and changed
 * without the scratch-database bookkeeping around it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { TaskContext } from '../contract/task';
import { toolConnection, toolMissing } from '../clients/pg-tools';
import { redactSecretsIn } from '../logger';
import { coerceError } from '../errors';
import { formatDuration } from '../util/format';
import type { BackupStore, StoredObject } from './store';
import { formatOf, type BackupManifest, type DumpFormat } from './manifest';
import { endsWithCompletionLine, TailBuffer } from './verify';

/** A killed psql / pg_restore that ignores SIGTERM this long gets SIGKILL. */
const KILL_GRACE_MS = 5_000;
/** How much of psql's / pg_restore's stderr is kept (the tail: the error is last). */
const STDERR_KEEP_BYTES = 16 * 1024;
/** Throws the abort reason once the run is aborted: checked between the steps of the flow, the restore and verification. */
export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw coerceError(signal.reason ?? new Error('aborted'));
}

/** Stops a running psql / pg_restore: SIGTERM, then SIGKILL if it is still there after KILL_GRACE_MS. */
export function kill(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }, KILL_GRACE_MS).unref();
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

/** What restoreInto needs: the run, where the dump is, where it goes, how long it may take. */
export interface RestoreRequest {
  ctx: TaskContext<'backups'>;
  /** The run in progress: its manifest's format is a fallback, and the format found is written back. */
  run: { manifest?: BackupManifest; format?: DumpFormat };
  store: BackupStore;
  dump: StoredObject;
  url: string;
  timeoutMs: number;
  /** Holds the tool while it runs, for the flow's abort handler and `finally` to kill. */
  children: Set<ChildProcess>;
  /** application_name of the tool's session: the calling task. */
  application: string;
}

/**
 * Streams the dump from the store into psql (plain, through gunzip) or
 * pg_restore (custom). Resolves with the failure, or undefined when the
 * dump went in whole; rejects when aborted or when the tool is missing.
 */
export async function restoreInto(req: RestoreRequest): Promise<ToolError | undefined> {
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
  const stderr = new TailBuffer(STDERR_KEEP_BYTES);
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
  const sqlTail = new TailBuffer(256);
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
    throw missing ? toolMissing(tool, tool) : new Error(`cannot start ${tool}: ${exit.spawnError.message}`);
  }
  const stderrText = redactSecretsIn(stderr.toString());
  const base = { tool, exitCode: exit.code, stderrTail: stderrText.slice(-4000) };
  if (timedOut) return { ...base, timedOut: true, error: `${tool} did not finish within ${formatDuration(req.timeoutMs)} (restoreTimeoutMs) and was stopped` };
  // A broken pipe is the tool stopping at its error; any other stream error (gzip, store) is the cause.
  const pipeCaused = pipeError && !['EPIPE', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED'].includes((pipeError as NodeJS.ErrnoException).code ?? '');
  if (pipeCaused) return { ...base, error: `reading the dump failed: ${redactSecretsIn(pipeError.message)}` };
  if (exit.code !== 0 || pipeError) {
    const parsed = parseToolError(tool, stderrText);
    return { ...base, ...parsed, error: parsed.error ?? `${tool} exited with ${exit.code ?? exit.signal}` };
  }
  // The same judgement as backup-verify's: a restore test and a verify never disagree on a dump.
  if (format === 'plain-gzip' && !endsWithCompletionLine(sqlTail.toString())) {
    return { ...base, error: `the dump ends without pg_dump's completion line ("-- PostgreSQL database dump complete"): it is truncated, so the restore is incomplete` };
  }
  return undefined;
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

/** The longest error message kept from the tool's stderr. */
const MAX_ERROR_CHARS = 1_000;
/** The longest failed statement kept, as the tool echoed it. */
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
