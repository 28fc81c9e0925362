/**
 * backup (daily, optional): takes the dump the runbook takes
 * (`pg_dump db | gzip`, or `pg_dump -Fc`), streamed into the target's store
 * with a manifest beside it (size, sha256, server version, row counts in the
 * dump's own snapshot), then deletes the dumps beyond the retention. Off
 * unless the backups target has `allow.backup`; a dry run takes nothing and
 * deletes nothing.
 */
import { z } from 'zod';
import type { Client } from 'pg';
import { Readable } from 'node:stream';
import { defineTask, type FindingCodes, type TaskContext, type TaskOutcome } from '../contract/task';
import type { Action } from '../contract/result';
import { listDumps, type BackupStore, type StoredObject } from '../backups/store';
import { manifestName, type BackupManifest, type DumpFormat } from '../backups/manifest';
import { dumpFormatFor, dumpName, startPgDump, type RunningDump } from '../backups/dump';
import { toolVersion } from '../clients/pg-tools';
import { formatBytes, formatDuration } from '../util/format';

const DAY_MS = 86_400_000;

/**
 * How long the snapshot-exporting transaction may sit idle while pg_dump
 * starts (it imports the snapshot on connecting; the transaction ends at
 * pg_dump's first byte). The session default (60 s) could end it first on
 * a large catalog.
 */
const SNAPSHOT_HOLD_MS = 15 * 60_000;

export const SQL = {
  /** The snapshot pg_dump will use: row counts taken in it agree with the dump. */
  begin: 'BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY',
  /** $1 statement_timeout for the counts, $2 idle time allowed while pg_dump starts (both ms, this transaction only). */
  limits: `SELECT set_config('statement_timeout', $1, true), set_config('idle_in_transaction_session_timeout', $2, true)`,
  snapshot: `SELECT pg_export_snapshot() AS snapshot, current_database() AS database, current_setting('server_version') AS "serverVersion"`,
  /**
   * The tables whose rows pg_dump dumps: ordinary tables and partitions
   * (not partitioned parents, views, materialized views, foreign or
   * temporary tables), outside the system schemas, not owned by an extension.
   */
  tables: `
    SELECT n.nspname AS schema, c.relname AS "table"
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r'
      AND c.relpersistence <> 't'
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%'
      AND n.nspname NOT LIKE 'pg\\_temp\\_%'
      AND NOT EXISTS (
        SELECT 1 FROM pg_depend d
        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
    ORDER BY 1, 2`,
  /** One table's rows; identifiers quoted with escapeIdentifier. */
  count: (db: Pick<Client, 'escapeIdentifier'>, schema: string, table: string) =>
    `SELECT count(*) AS n FROM ${db.escapeIdentifier(schema)}.${db.escapeIdentifier(table)}`,
} as const;

const codes = {
  backup_not_allowed: 'the backups target lacks allow.backup: no dump is taken and none deleted',
} satisfies FindingCodes;
type Code = keyof typeof codes;

const params = z.strictObject({
  /** `auto`: from the pattern's extension (`.sql.gz` plain, `.dump` custom), else plain gzip. */
  format: z.enum(['auto', 'plain-gzip', 'custom']).default('auto'),
  /** gzip level of plain dumps (the runbook's `| gzip` is 6); pg_dump's own for custom ones. */
  compressionLevel: z.number().int().min(0).max(9).default(6),
  /** Retention: a dump is deleted only when it is not among the newest `keep`... */
  keep: z.number().int().min(1).max(100_000).default(7),
  /** ...and older than `keepDays` days. The newest is never deleted. */
  keepDays: z.number().min(0).max(36_500).default(14),
  /** statement_timeout of each row count (counting a large table takes minutes). */
  countTimeoutMs: z.number().int().min(1_000).max(24 * 3600_000).default(30 * 60_000),
  /** pg_dump to run: on PATH, or a path (pg_dump must be at least the server's major version). */
  pgDump: z.string().min(1).default('pg_dump'),
});
type Params = z.infer<typeof params>;
type Ctx = TaskContext<'backups'>;

export const backup = defineTask({
  name: 'backup',
  description: 'pg_dump of the source database into the backup store (gzip or custom format) with a manifest; deletes dumps beyond the retention',
  target: 'backups',
  defaultSchedule: 'daily',
  timeoutMs: 6 * 3600_000,
  changesTarget: true,
  params,
  codes,
  async run(ctx, p): Promise<TaskOutcome<Code>> {
    const t = ctx.target;
    if (!t.allow.backup) {
      return {
        summary: `backups are not taken on ${t.name}: allow.backup is off`,
        findings: [
          {
            severity: 'info',
            code: 'backup_not_allowed',
            subject: t.name,
            message: `the backup task writes dumps into ${ctx.clients.backupStore().description} and deletes old ones only when the target allows it`,
            suggestion: `Set allow.backup: true on backups target ${t.name} to take dumps with caretaker, or leave it off if something else takes them`,
          },
        ],
        metrics: { backups_deleted: 0 },
      };
    }
    const format = dumpFormatFor(t.pattern, p.format);
    const startedAt = new Date();
    const name = dumpName(t.pattern, startedAt);
    const store = ctx.clients.backupStore();
    await toolVersion('pg_dump', p.pgDump);
    if (await store.stat(name)) throw new Error(`${name} already exists in ${store.description}`);

    if (ctx.dryRun) {
      const doomed = expired(await listDumps(store, t.pattern), p, startedAt, 1);
      return {
        summary: `dry run: would dump ${t.source.name} to ${name} (${format}) and delete ${doomed.length} old dumps`,
        findings: [],
        actions: [{ kind: 'take_dump', subject: name, applied: false, details: { format, store: store.description } }, ...doomed.map((d) => deleteAction(d, startedAt, false))],
        metrics: { backups_deleted: 0 },
      };
    }

    const taken = await takeDump(ctx, p, store, name, format);
    const manifest: BackupManifest = {
      version: 1,
      file: name,
      format,
      sizeBytes: taken.stored.sizeBytes,
      sha256: taken.sha256,
      database: taken.database,
      serverVersion: taken.serverVersion,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      tables: taken.tables,
    };
    const dumpMs = Date.parse(manifest.finishedAt) - startedAt.getTime();
    const actions: Action[] = [
      {
        kind: 'take_dump',
        subject: name,
        applied: true,
        durationMs: dumpMs,
        details: { format, sizeBytes: manifest.sizeBytes, sha256: manifest.sha256, tables: Object.keys(manifest.tables).length, store: store.description },
      },
    ];
    // The dump is in the store now, whatever comes next: a failed manifest write still leaves it there, and the run says so.
    ctx.applied(actions[0]!);
    try {
      await store.write(manifestName(name), Readable.from([Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`)]));
    } catch (err) {
      throw new Error(`${name} was written but its manifest was not (${(err as Error).message}): backup-verify cannot check its sha256`, { cause: err });
    }
    await ctx.jobLog(`dumped ${manifest.database} to ${name}: ${formatBytes(manifest.sizeBytes)} in ${formatDuration(dumpMs)}`);
    const now = new Date();
    const doomed = expired(await listDumps(store, t.pattern), p, now, 0, name);
    let deleted = 0;
    for (const d of doomed) {
      if (ctx.signal.aborted) break;
      const began = Date.now();
      await store.remove(d.name);
      await store.remove(manifestName(d.name));
      deleted++;
      actions.push(deleteAction(d, now, true, Date.now() - began));
      ctx.applied(actions[actions.length - 1]!);
    }
    const tables = Object.keys(manifest.tables).length;
    return {
      summary:
        `dumped ${manifest.database} (${tables} tables, ${formatBytes(manifest.sizeBytes)} ${format}) to ${name} in ${formatDuration(dumpMs)}` +
        (deleted > 0 ? `; deleted ${deleted} old dumps` : ''),
      findings: [],
      actions,
      metrics: {
        backup_size_bytes: manifest.sizeBytes,
        backup_seconds: dumpMs / 1000,
        backup_tables: tables,
        backups_deleted: deleted,
      },
    };
  },
});

interface TakenDump {
  stored: StoredObject;
  sha256: string;
  database: string;
  serverVersion: string;
  tables: Record<string, number>;
}

/**
 * Counts every table's rows in a snapshot, has pg_dump take the dump in
 * that same snapshot, and streams it into the store. On any failure the
 * store holds nothing under `name`.
 */
async function takeDump(ctx: Ctx, p: Params, store: BackupStore, name: string, format: DumpFormat): Promise<TakenDump> {
  const source = ctx.target.source;
  const db = await ctx.clients.connect(source.url, source);
  let open = false;
  const end = async () => {
    if (!open) return;
    open = false;
    await db.query('COMMIT');
  };
  let dump: RunningDump | undefined;
  try {
    await db.query(SQL.begin);
    open = true;
    await db.query(SQL.limits, [String(p.countTimeoutMs), String(SNAPSHOT_HOLD_MS)]);
    const snap = (await db.query<{ snapshot: string; database: string; serverVersion: string }>(SQL.snapshot)).rows[0]!;
    const list = (await db.query<{ schema: string; table: string }>(SQL.tables)).rows;
    await ctx.jobLog(`counting the rows of ${list.length} tables in snapshot ${snap.snapshot}`);
    const tables: Record<string, number> = {};
    for (const { schema, table } of list) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      const { rows } = await db.query<{ n: string }>(SQL.count(db, schema, table));
      tables[`${schema}.${table}`] = Number(rows[0]!.n);
    }
    await ctx.progress(10);

    dump = startPgDump({
      command: p.pgDump,
      url: source.url,
      format,
      snapshot: snap.snapshot,
      lockWaitTimeoutMs: source.lockTimeoutMs,
      compressionLevel: p.compressionLevel,
      signal: ctx.signal,
    });
    const writing = store.write(name, dump.output);
    writing.catch(() => undefined); // awaited below, after the snapshot is released
    // pg_dump imports the snapshot as it connects, before its first byte:
    // from then on the exporting transaction may end (and free its locks).
    await dump.started;
    await end();
    await ctx.jobLog('pg_dump is streaming into the store');
    const stored = await writing;
    await dump.done;
    if (stored.sizeBytes !== dump.digest.bytes) {
      throw new Error(`the store holds ${stored.sizeBytes} bytes of ${name}, pg_dump produced ${dump.digest.bytes}`);
    }
    await ctx.progress(90);
    return { stored, sha256: dump.digest.sha256, database: snap.database, serverVersion: snap.serverVersion, tables };
  } catch (err) {
    if (dump) {
      dump.kill();
      await store.remove(name).catch(() => undefined);
    }
    throw err;
  } finally {
    await end().catch(() => undefined);
  }
}

/**
 * The dumps (newest first) that retention deletes: beyond the newest
 * `keep` AND older than `keepDays`. Never the newest one, never `protect`.
 * `reserved` counts dumps about to be added in front (a dry run's new one).
 */
function expired(dumps: StoredObject[], p: Pick<Params, 'keep' | 'keepDays'>, now: Date, reserved: number, protect?: string): StoredObject[] {
  return dumps.filter((d, i) => {
    if (i + reserved === 0 || d.name === protect) return false;
    return i + reserved >= p.keep && now.getTime() - d.modifiedAt.getTime() > p.keepDays * DAY_MS;
  });
}

function deleteAction(d: StoredObject, now: Date, applied: boolean, durationMs?: number): Action {
  return {
    kind: 'delete_dump',
    subject: d.name,
    applied,
    durationMs,
    details: {
      sizeBytes: d.sizeBytes,
      modifiedAt: d.modifiedAt.toISOString(),
      ageDays: Math.round(((now.getTime() - d.modifiedAt.getTime()) / DAY_MS) * 10) / 10,
      manifest: manifestName(d.name),
    },
  };
}
