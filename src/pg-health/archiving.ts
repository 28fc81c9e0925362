/**
 * pg-health's archiving check, server-wide: is WAL archiving failing
 * (`archive_failing`)? Only when this server archives (archive_mode on, or
 * always on a standby), and only with `archiving` on (off on all but one
 * target of a server).
 */
import type { Client } from 'pg';
import type { Finding, Severity } from '../contract/result';
import type { FindingCodes } from '../contract/task';
import { formatDuration } from '../util/format';
import { INSUFFICIENT_PRIVILEGE, sqlState } from '../clients/postgres';
import type { CheckResult, PgSession } from './check';

export const ARCHIVING_CODES = {
  archive_failing: "WAL archiving's last attempt failed (critical once nothing was archived for `archiveFailingCriticalSeconds`)",
} as const satisfies FindingCodes;
type ArchivingCode = keyof typeof ARCHIVING_CODES;

export const SQL = {
  /**
   * WAL archiving: the archive_mode in force, pg_stat_archiver's counters,
   * and whether this role may list pg_wal/archive_status (superuser or
   * pg_monitor), asked first so that an unprivileged role is never refused.
   */
  archiver: `
    SELECT current_setting('archive_mode') AS mode,
           s.archived_count::float8 AS "archivedCount", s.last_archived_wal AS "lastArchivedWal", s.last_archived_time AS "lastArchivedTime",
           s.failed_count::float8 AS "failedCount", s.last_failed_wal AS "lastFailedWal", s.last_failed_time AS "lastFailedTime",
           s.stats_reset AS "statsReset",
           extract(epoch FROM now() - s.last_archived_time)::float8 AS "secondsSinceArchived",
           has_function_privilege('pg_ls_archive_statusdir()', 'EXECUTE') AS "mayListStatus"
    FROM pg_stat_archiver s`,

  /** WAL segments waiting to be archived (a .ready file each in pg_wal/archive_status), and the oldest. */
  archiveReady: `
    SELECT count(*)::int AS ready, min(left(name, -length('.ready'))) AS oldest
    FROM pg_ls_archive_statusdir()
    WHERE name LIKE '%.ready'`,
} as const;

/** pg_stat_archiver's counters and what the role may list, as SQL.archiver returns them. */
export interface Archiver {
  mode: string;
  archivedCount: number;
  lastArchivedWal: string | null;
  lastArchivedTime: Date | null;
  failedCount: number;
  lastFailedWal: string | null;
  lastFailedTime: Date | null;
  statsReset: Date | null;
  secondsSinceArchived: number | null;
  mayListStatus: boolean;
}

/** WAL segments waiting for archive_command, or why they could not be counted. */
export type ArchiveReady = { ready: number; oldest: string | null } | { unreadable: string };

/** What the archiving check reads from pg-health's params. */
export interface ArchivingOptions {
  archiving: boolean;
  archiveFailingCriticalSeconds: number;
}

/** Archiving: nothing at all when not watched; "archiving off" when the server does not archive. */
export async function archiving({ db, server }: PgSession, p: ArchivingOptions): Promise<CheckResult<ArchivingCode>> {
  if (!p.archiving) return { findings: [], metrics: {} };
  const archive = await readArchiver(db, server.inRecovery);
  if (archive === undefined) return { findings: [], metrics: {}, summary: 'archiving off' };
  const failing = archiveFailingFinding(archive.stats, archive.ready, p);
  const metrics: Record<string, number> = { archive_failed_count: archive.stats.failedCount };
  if ('ready' in archive.ready) metrics.archive_ready_files = archive.ready.ready;
  return { findings: failing ? [failing] : [], metrics, summary: failing ? 'archiving failing' : 'archiving ok' };
}

/**
 * The archiver's state when this server archives (archive_mode on, and not
 * a standby, or always); undefined when it does not. The .ready files are
 * counted only with the privilege to list them.
 */
async function readArchiver(db: Client, inRecovery: boolean): Promise<{ stats: Archiver; ready: ArchiveReady } | undefined> {
  const stats = (await db.query(SQL.archiver)).rows[0] as Archiver;
  // A standby archives only with archive_mode = always; with "on" it leaves that to its primary.
  const archives = stats.mode === 'always' || (stats.mode === 'on' && !inRecovery);
  if (!archives) return undefined;
  if (!stats.mayListStatus) return { stats, ready: { unreadable: 'listing pg_wal/archive_status needs pg_monitor (or superuser)' } };
  try {
    return { stats, ready: (await db.query(SQL.archiveReady)).rows[0] as { ready: number; oldest: string | null } };
  } catch (err) {
    // Refused after all (a revoked grant): the counters still tell whether archiving fails.
    if (sqlState(err) === INSUFFICIENT_PRIVILEGE) return { stats, ready: { unreadable: (err as Error).message } };
    throw err;
  }
}

/**
 * archive_failing when the last thing the archiver did was fail: a failure
 * since the statistics reset, later than the last success (or with none).
 */
export function archiveFailingFinding(a: Archiver, ready: ArchiveReady, p: ArchivingOptions): Finding<ArchivingCode> | undefined {
  if (a.failedCount === 0 || !a.lastFailedTime) return undefined;
  if (a.lastArchivedTime && a.lastArchivedTime >= a.lastFailedTime) return undefined;
  const neverArchived = a.secondsSinceArchived === null;
  const severity: Severity = neverArchived || a.secondsSinceArchived! >= p.archiveFailingCriticalSeconds ? 'critical' : 'warning';
  const lastSuccess = neverArchived
    ? `nothing archived since ${a.statsReset ? `the statistics reset at ${a.statsReset.toISOString()}` : 'the statistics reset'}`
    : `last success ${a.lastArchivedWal} at ${a.lastArchivedTime!.toISOString()} (${formatDuration(a.secondsSinceArchived! * 1000)} ago)`;
  const waiting = 'ready' in ready
    ? `${ready.ready} WAL files wait in pg_wal/archive_status${ready.oldest ? ` (oldest ${ready.oldest})` : ''}`
    : `the WAL files waiting are not counted: ${ready.unreadable}`;
  return {
    severity,
    code: 'archive_failing',
    subject: 'archive_command',
    message: `WAL archiving is failing: last failure on ${a.lastFailedWal} at ${a.lastFailedTime.toISOString()}, ${lastSuccess}; ${a.failedCount} failures since the statistics reset; ${waiting}`,
    suggestion:
      'Point-in-time recovery stops at the last archived WAL, and pg_wal keeps every unarchived file until the disk fills: read the archive_command errors in the server log, fix the command or its destination, and check the files are archived (pg_stat_archiver.last_archived_wal moves)',
    details: {
      ...a,
      lastArchivedTime: a.lastArchivedTime?.toISOString() ?? null,
      lastFailedTime: a.lastFailedTime.toISOString(),
      statsReset: a.statsReset?.toISOString() ?? null,
      secondsSinceArchived: a.secondsSinceArchived === null ? null : Math.floor(a.secondsSinceArchived),
      ...('ready' in ready ? { readyFiles: ready.ready, oldestReady: ready.oldest } : { readyFiles: null, readyUnreadable: ready.unreadable }),
    },
  };
}
