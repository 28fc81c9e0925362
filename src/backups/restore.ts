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
 *
 * This file is the flow and the scratch databases' bookkeeping. Running
 * psql / pg_restore is in restore-tools.ts, checking the restored database
 * in restore-verify.ts.
 */
import type { ChildProcess } from 'node:child_process';
import { z } from 'zod';
import type { Client } from 'pg';
import type { FindingCodes, TaskContext } from '../contract/task';
import type { Action, Finding } from '../contract/result';
import { connectClient, type SessionLimits } from '../clients/postgres';
import { redactSecretsIn, redactUrl, type Logger } from '../logger';
import { coerceError } from '../errors';
import { formatBytes, formatDuration, oneLine } from '../util/format';
import { listDumps, type BackupStore, type StoredObject } from './store';
import { formatOf, readManifest, type BackupManifest, type DumpFormat } from './manifest';
import { isScratchName, scratchCreatedAt, scratchDatabaseName, scratchNamePrefix } from './scratch';
import { kill, restoreInto, throwIfAborted, type ToolError } from './restore-tools';
import { RESTORE_VERIFY_CODES, verify } from './restore-verify';
import { SQL } from './restore.sql';

export { parseToolError, type ToolError } from './restore-tools';

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

/** The codes of a restore run's findings, restore-test's and the part of dr-drill's that the restore makes. */
export const RESTORE_CODES = {
  restore_failed: 'psql or pg_restore failed on the newest dump, or ran past `restoreTimeoutMs`: it cannot be restored as it is',
  ...RESTORE_VERIFY_CODES,
  manifest_invalid: "the newest dump's manifest cannot be read: row counts compared with the live source instead",
  backup_missing: "no dump matching the target's pattern in its store: nothing to restore",
  scratch_drop_failed: "the run's scratch database could not be dropped; the sweep drops it once it is a day old",
  restore_not_allowed: 'the backups target lacks allow.restore: nothing restored, no database created',
} satisfies FindingCodes;
export type RestoreCode = keyof typeof RESTORE_CODES;

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
  findings: Finding<RestoreCode>[];
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

  const store = ctx.clients.backupStore();
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
  const ours = scratchNamePrefix(targetName);
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

function restoreFailed(dump: StoredObject, format: DumpFormat | undefined, scratch: string, f: ToolError, timeoutMs: number): Finding<RestoreCode> {
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
