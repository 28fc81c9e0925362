/**
 * Taking a dump the way the runbook does (`pg_dump db | gzip > file`), as a
 * stream: pg_dump's output goes through gzip (plain format) and a sha256
 * into the store, never whole in memory.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { createHash } from 'node:crypto';
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import { createGzip } from 'node:zlib';
import { toolConnection, toolMissing } from '../clients/pg-tools';
import { redactSecretsIn } from '../logger';
import { formatOf, type DumpFormat } from './manifest';

/** How much of a tool's stderr a message quotes (its last bytes: where the error is). */
const STDERR_KEPT = 2_000;

/** A UTC timestamp for file names: 2026-11-27T03:00:00.123Z → 20261127T030000Z. */
export function fileTimestamp(at: Date): string {
  return at.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
}

/**
 * The name of a new dump: the target's pattern with its one `*` replaced
 * by the UTC time (`auditron-*.sql.gz` → `auditron-20261127T030000Z.sql.gz`).
 * Throws when the pattern cannot name a file.
 */
export function dumpName(pattern: string, at: Date): string {
  const stars = pattern.split('*').length - 1;
  if (stars !== 1 || pattern.includes('?')) {
    throw new Error(`the backup target's pattern ${JSON.stringify(pattern)} must contain exactly one "*" (replaced by the dump's UTC time) and no "?" to name new dumps`);
  }
  return pattern.replace('*', fileTimestamp(at));
}

/**
 * The format a new dump is taken in: the one asked for, else the one its
 * name implies (`.sql.gz` plain, `.dump` custom), else gzip'd plain SQL.
 * Refuses a format its name contradicts: backup-verify reads the name first.
 */
export function dumpFormatFor(pattern: string, requested: DumpFormat | 'auto'): DumpFormat {
  const implied = formatOf(pattern.replace(/\*/g, 'x'));
  if (requested === 'auto') return implied ?? 'plain-gzip';
  if (implied && implied !== requested) {
    throw new Error(`format ${requested} contradicts the pattern ${JSON.stringify(pattern)} (a ${implied} name)`);
  }
  return requested;
}

export interface PgDumpOptions {
  /** pg_dump command (name on PATH or a path). */
  command: string;
  url: string;
  format: DumpFormat;
  /** A snapshot exported by a transaction still open on the source. */
  snapshot?: string;
  /** pg_dump waits at most this long for each table lock (then fails rather than queue). */
  lockWaitTimeoutMs: number;
  /** 0-9; gzip's level for plain dumps, pg_dump's own for custom ones. */
  compressionLevel: number;
  signal: AbortSignal;
}

export interface RunningDump {
  /** The dump's bytes: gzip'd plain SQL or a custom-format archive. */
  output: Readable;
  /** Resolves when the first byte came out (pg_dump has imported the snapshot by then), or at exit. */
  started: Promise<void>;
  /** sha256 and byte count of `output`, final once it has ended. */
  digest: DigestStream;
  /** Rejects when pg_dump failed, with its message. */
  exited: Promise<void>;
  /** Resolves when pg_dump exited cleanly and its output went all the way through. */
  done: Promise<void>;
  kill(): void;
}

/**
 * Passes bytes through, hashing and counting them. `beforeEnd` runs before
 * the stream ends: it lets the producer's exit status decide whether the
 * consumer sees a clean end or an error (so a failing pg_dump never leaves
 * what looks like a complete dump).
 */
export class DigestStream extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;
  sha256 = '';

  constructor(private readonly beforeEnd: () => Promise<void> = async () => undefined) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.bytes === 0) this.emit('first-byte');
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.beforeEnd().then(() => {
      this.sha256 = this.hash.digest('hex');
      callback();
    }, callback);
  }
}

/** Starts pg_dump; its output is gzip'd (plain format) and hashed on the way out. */
export function startPgDump(opts: PgDumpOptions): RunningDump {
  const conn = toolConnection(opts.url, 'pg_dump');
  const args = [
    opts.format === 'custom' ? '--format=custom' : '--format=plain',
    `--lock-wait-timeout=${opts.lockWaitTimeoutMs}`,
    '--no-password',
  ];
  if (opts.format === 'custom') args.push(`--compress=${opts.compressionLevel}`);
  if (opts.snapshot) args.push(`--snapshot=${opts.snapshot}`);
  args.push(`--dbname=${conn.url}`);
  const child: ChildProcessByStdio<null, Readable, Readable> = spawn(opts.command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: conn.env });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-STDERR_KEPT)));
  const exited = new Promise<void>((resolve, reject) => {
    child.on('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? toolMissing('pg_dump', opts.command) : err));
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else {
        const why = opts.signal.aborted ? 'stopped: the run was aborted' : signal ? `killed by ${signal}` : `exit ${code}`;
        reject(new Error(`pg_dump failed (${why}): ${redactSecretsIn(stderr.trim()) || 'no message'}`));
      }
    });
  });
  exited.catch(() => undefined); // observed through `done` and the digest
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  };
  opts.signal.addEventListener('abort', kill, { once: true });
  void exited.finally(() => opts.signal.removeEventListener('abort', kill)).catch(() => undefined);

  const digest = new DigestStream(() => exited);
  const started = new Promise<void>((resolve) => {
    digest.once('first-byte', resolve);
    exited.then(resolve, resolve);
  });
  // pipeline destroys every stage on any error; the digest then errors, and
  // the store's write (which consumes it) fails and removes its partial file.
  const done = new Promise<void>((resolve, reject) => {
    const settle = (err: Error | null) => (err ? reject(err) : resolve());
    if (opts.format === 'plain-gzip') pipeline(child.stdout, createGzip({ level: opts.compressionLevel }), digest, settle);
    else pipeline(child.stdout, digest, settle);
  });
  const all = Promise.all([done, exited]).then(() => undefined);
  all.catch(() => undefined); // a caller that failed earlier (the store's write) does not await it
  return { output: digest, started, digest, exited, done: all, kill };
}
