/**
 * Checks a dump without restoring it, in one streaming pass: every byte
 * read once goes into a sha256 and, for gzip'd plain SQL, into gunzip,
 * whose output only feeds a small ring buffer (the completion line is at
 * the very end); a custom-format archive goes into `pg_restore`, which
 * reads its table of contents and every data block and writes the script
 * nowhere. Memory stays constant whatever the dump's size.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createGunzip, type Gunzip } from 'node:zlib';
import type { Readable, Writable } from 'node:stream';
import { formatOf, type DumpFormat } from './manifest';
import { toolMissing, toolVersion } from '../clients/pg-tools';
import { redactSecretsIn } from '../logger';

/** How much of the end of the decompressed SQL is kept to find pg_dump's completion line. */
export const TAIL_BYTES = 4096;
/** gunzip's output chunks: larger means fewer callbacks per GiB. */
const GUNZIP_CHUNK = 256 * 1024;
/** Compressed bytes queued into gunzip (or pg_restore) while the next chunk is read and hashed. */
const QUEUE_BYTES = 1024 * 1024;
const STDERR_KEPT = 2_000;

/** pg_dump's last words; pg_dumpall says "cluster dump complete". */
const COMPLETION_LINE = /^-- PostgreSQL database (?:cluster )?dump complete$/;
/** What may follow it: the comment's closing `--`, blank lines, and (15.14+, 16.10+, 17.6+) `\unrestrict <key>`. */
const AFTER_COMPLETION = /^(?:--|\\unrestrict [A-Za-z0-9]+|\s*)$/;

/** True when the decompressed SQL ends the way pg_dump ends a dump it finished. */
export function endsWithCompletionLine(tail: string): boolean {
  const lines = tail.split('\n').map((l) => l.replace(/\r$/, ''));
  let i = lines.length - 1;
  while (i >= 0 && AFTER_COMPLETION.test(lines[i]!)) i--;
  return i >= 0 && COMPLETION_LINE.test(lines[i]!);
}

/** The last `size` bytes of a stream, in constant memory. */
export class TailBuffer {
  private buf = Buffer.alloc(0);
  constructor(readonly size: number) {}

  push(chunk: Buffer): void {
    if (chunk.length >= this.size) {
      this.buf = Buffer.from(chunk.subarray(chunk.length - this.size));
    } else {
      const keep = Math.min(this.buf.length, this.size - chunk.length);
      this.buf = Buffer.concat([this.buf.subarray(this.buf.length - keep), chunk]);
    }
  }

  toString(): string {
    return this.buf.toString('utf8');
  }
}

export interface ScanOptions {
  /** The dump's name: its format when the name says it (else the first bytes do). */
  name: string;
  /** pg_restore command, for custom-format dumps. */
  pgRestore: string;
  signal: AbortSignal;
}

export interface ScanResult {
  /** Undefined when the first bytes are neither gzip nor a pg_dump archive. */
  format: DumpFormat | undefined;
  /** Compressed bytes read (the whole object). */
  bytes: number;
  sha256: string;
  seconds: number;
  /** Plain: gunzip's error and the compressed offset it stopped at. */
  gzipError?: { message: string; atByte: number };
  /** Plain: decompressed bytes (up to the damage, if any). */
  uncompressedBytes?: number;
  /** Plain: the decompressed SQL ends with pg_dump's completion line. */
  completionLine?: boolean;
  /** Plain: the last lines of the decompressed SQL, for the finding. */
  lastLine?: string;
  /** Custom: pg_restore could not read the archive (its message). */
  archiveError?: string;
}

/** A sink the scan feeds: gunzip or pg_restore. */
interface Checker {
  /** Takes a chunk; returns a promise when it wants the reader to wait. */
  write(chunk: Buffer): Promise<void> | undefined;
  end(): Promise<void>;
  /** Stops it when the read failed (idempotent). */
  dispose(): void;
}

/** Reads `stream` once and checks it; throws only when the stream itself cannot be read. */
export async function scanDump(stream: Readable, opts: ScanOptions): Promise<ScanResult> {
  const began = process.hrtime.bigint();
  const hash = createHash('sha256');
  const result: ScanResult = { format: formatOf(opts.name), bytes: 0, sha256: '', seconds: 0 };
  let checker: Checker | undefined;
  const onAbort = () => stream.destroy(abortError(opts.signal));
  opts.signal.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (!checker) {
        result.format ??= formatOf('', chunk);
        checker = result.format === 'plain-gzip' ? plainChecker(result) : result.format === 'custom' ? await customChecker(result, opts) : idleChecker;
      }
      hash.update(chunk);
      result.bytes += chunk.length;
      const wait = checker.write(chunk);
      if (wait) await wait;
    }
    if (checker) await checker.end();
  } finally {
    opts.signal.removeEventListener('abort', onAbort);
    checker?.dispose();
  }
  result.sha256 = hash.digest('hex');
  result.seconds = Number(process.hrtime.bigint() - began) / 1e9;
  return result;
}

const idleChecker: Checker = { write: () => undefined, end: async () => undefined, dispose: () => undefined };

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('aborted');
}

/** Resolves when `sink` can take more, or will never take more (error, close). */
function drained(sink: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      sink.off('drain', done);
      sink.off('error', done);
      sink.off('close', done);
      resolve();
    };
    sink.on('drain', done);
    sink.on('error', done);
    sink.on('close', done);
  });
}

/** gunzip into a ring buffer; the first gzip error is recorded and the rest is only hashed. */
function plainChecker(result: ScanResult): Checker {
  const tail = new TailBuffer(TAIL_BYTES);
  const gunzip: Gunzip = createGunzip({ chunkSize: GUNZIP_CHUNK, writableHighWaterMark: QUEUE_BYTES } as object);
  let failed = false;
  result.uncompressedBytes = 0;
  gunzip.on('data', (chunk: Buffer) => {
    result.uncompressedBytes! += chunk.length;
    tail.push(chunk);
  });
  const ended = new Promise<void>((resolve) => {
    gunzip.on('end', resolve);
    gunzip.on('error', (err: Error) => {
      failed = true;
      result.gzipError = { message: err.message, atByte: gunzip.bytesWritten };
      resolve();
    });
  });
  return {
    write(chunk) {
      if (failed) return undefined;
      return gunzip.write(chunk) ? undefined : drained(gunzip);
    },
    async end() {
      if (!failed) gunzip.end();
      await ended;
      if (!failed) {
        const text = tail.toString();
        result.completionLine = endsWithCompletionLine(text);
        result.lastLine = text.trimEnd().split('\n').pop()?.slice(0, 200) ?? '';
      }
    },
    dispose() {
      gunzip.destroy();
    },
  };
}

/**
 * `pg_restore -f -` with its output thrown away: reads the archive's
 * header, table of contents and every data block (`--list` alone reads
 * only the table of contents and would pass a dump cut short in its data).
 */
async function customChecker(result: ScanResult, opts: ScanOptions): Promise<Checker> {
  await toolVersion('pg_restore', opts.pgRestore);
  const child = spawn(opts.pgRestore, ['--file=-'], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-STDERR_KEPT)));
  let closed = false;
  child.stdin.on('error', () => (closed = true)); // EPIPE: pg_restore stopped reading; its exit status says why
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? toolMissing('pg_restore', opts.pgRestore) : err));
    child.on('close', (code) => {
      closed = true;
      resolve(code);
    });
  });
  exited.catch(() => undefined);
  const kill = () => child.kill('SIGTERM');
  opts.signal.addEventListener('abort', kill, { once: true });
  return {
    write(chunk) {
      if (closed) return undefined;
      return child.stdin.write(chunk) ? undefined : drained(child.stdin);
    },
    async end() {
      if (!closed) child.stdin.end();
      try {
        const code = await exited;
        if (code !== 0) result.archiveError = redactSecretsIn(stderr.trim()) || `pg_restore exited ${code}`;
      } finally {
        opts.signal.removeEventListener('abort', kill);
      }
    },
    dispose() {
      opts.signal.removeEventListener('abort', kill);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
  };
}

/** The median of some numbers (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
