/**
 * backup-verify (daily): the runbook's "check backup success". For the
 * newest dump of a backups target, without restoring it: is there one, how
 * old is it (the measured RPO), is its gzip stream intact and does its
 * sha256 match the manifest, did pg_dump finish it (completion line, or a
 * readable custom-format archive), and is it much smaller than the
 * previous ones. One streaming pass over the dump, constant memory.
 */
import { z } from 'zod';
import { defineTask, type FindingCodes } from '../contract/task';
import type { Finding } from '../contract/result';
import { listDumps, type StoredObject } from '../backups/store';
import { backupTime, manifestName, readManifest, type BackupManifest } from '../backups/manifest';
import { median, scanDump, type ScanResult } from '../backups/verify';
import { formatBytes, formatDuration } from '../util/format';

const HOUR_MS = 3_600_000;
/** A damaged dump modified this recently may be one the backup job is still writing (the runbook's `> file` writes in place). */
const STILL_WRITING_MS = 120_000;

const codes = {
  backup_missing: "no dump matching the target's pattern in its store",
  backup_stale: 'the newest dump is older than `staleWarningHours` (critical past `staleCriticalHours`): the RPO',
  backup_corrupt: 'the newest dump is damaged (gzip, format), unlike its manifest (sha256, size), or its manifest is unreadable',
  backup_incomplete: "the newest dump is empty, lacks pg_dump's completion line, or is an archive pg_restore cannot read whole",
  backup_manifest_missing: 'the newest dump has no manifest though the one before it has: its writer failed after the dump',
  backup_size_anomaly: 'the newest dump is empty or under `sizeAnomalyPercent` of the median of the previous `sizeWindow` dumps',
} satisfies FindingCodes;
type Code = keyof typeof codes;

const params = z
  .strictObject({
    /** The newest dump older than this (hours) is a warning `backup_stale`... */
    staleWarningHours: z.number().positive().max(100_000).default(26),
    /** ...and critical past this. */
    staleCriticalHours: z.number().positive().max(100_000).default(50),
    /** `backup_size_anomaly` when the newest dump is smaller than this % of the previous ones' median. */
    sizeAnomalyPercent: z.number().min(0).max(100).default(50),
    /** How many previous dumps the median is taken over. */
    sizeWindow: z.number().int().min(1).max(1_000).default(7),
    /** pg_restore to read custom-format dumps with: on PATH, or a path. */
    pgRestore: z.string().min(1).default('pg_restore'),
  })
  .refine((p) => p.staleWarningHours <= p.staleCriticalHours, { error: 'staleWarningHours must not be above staleCriticalHours', path: ['staleWarningHours'] });
type Params = z.infer<typeof params>;

const RETAKE = 'Do not count on this dump: take a new one now (caretaker run backup, or the backup job), then find out what damaged it (storage, transfer, a job killed mid-write)';

export const backupVerify = defineTask({
  name: 'backup-verify',
  description: 'Newest dump of a backup target: present, fresh (RPO), gzip intact, sha256 as in its manifest, finished by pg_dump, not much smaller than the previous ones',
  target: 'backups',
  defaultSchedule: 'daily',
  timeoutMs: 2 * 3600_000,
  changesTarget: false,
  params,
  codes,
  async run(ctx, p) {
    const t = ctx.target;
    const store = ctx.clients.backupStore();
    const dumps = await listDumps(store, t.pattern);
    const newest = dumps[0];
    if (!newest) {
      return {
        summary: `no dump matching ${t.pattern} in ${store.description}`,
        findings: [
          {
            severity: 'critical',
            code: 'backup_missing',
            subject: t.pattern,
            message: `no dump matching ${t.pattern} in ${store.description}`,
            suggestion: `Check that the backup job runs and writes into ${store.description} with names matching ${t.pattern} (or let caretaker take them: allow.backup and the backup task)`,
            details: { store: store.description, pattern: t.pattern },
          },
        ],
        metrics: { backup_count: 0 },
      };
    }

    const findings: Finding<Code>[] = [];
    let manifest: BackupManifest | undefined;
    let manifestProblem: string | undefined;
    try {
      manifest = await readManifest(store, newest.name);
    } catch (err) {
      manifestProblem = (err as Error).message;
      findings.push({
        severity: 'critical',
        code: 'backup_corrupt',
        subject: manifestName(newest.name),
        message: `the manifest of ${newest.name} cannot be read: ${manifestProblem}`,
        suggestion: 'The dump\'s checksum cannot be checked: take a new dump with its manifest, and find out what wrote over this one',
        details: { dump: newest.name, manifest: manifestName(newest.name), reason: manifestProblem },
      });
    }

    // Dumps that never had manifests (`pg_dump | gzip` from cron) are normal; a newest one without, after ones with, is a writer that failed after the dump.
    const before = dumps[1];
    if (!manifest && !manifestProblem && before && (await store.stat(manifestName(before.name)))) {
      findings.push({
        severity: 'warning',
        code: 'backup_manifest_missing',
        subject: manifestName(newest.name),
        message: `${newest.name} has no manifest, though ${before.name} before it has one: whatever wrote it failed after the dump (a full disk?), so its sha256 cannot be checked`,
        suggestion: 'Look at the last backup run and the store\'s free space, then take a new backup (the task writes the dump and its manifest)',
        details: { dump: newest.name, previous: before.name },
      });
    }

    const now = Date.now();
    const made = backupTime(newest, manifest);
    const ageMs = Math.max(0, now - made.at.getTime());
    const stale = staleFinding(newest, made.at, ageMs, made.fromManifest, p);
    if (stale) findings.push(stale);
    const small = sizeFinding(newest, dumps.slice(1, 1 + p.sizeWindow), p);
    if (small) findings.push(small);

    let scan: ScanResult | undefined;
    if (newest.sizeBytes === 0) {
      findings.push({
        severity: 'critical',
        code: 'backup_incomplete',
        subject: newest.name,
        message: `${newest.name} is empty: it holds no dump at all`,
        suggestion: 'The backup job wrote nothing: check its log (pg_dump failed, no disk space, wrong credentials) and take a new dump',
        details: { sizeBytes: 0 },
      });
    } else {
      await ctx.jobLog(`reading ${newest.name} (${formatBytes(newest.sizeBytes)}) from ${store.description}`);
      scan = await scanDump(await store.read(newest.name), { name: newest.name, pgRestore: p.pgRestore, signal: ctx.signal });
      findings.push(...contentFindings(newest, scan).map((f) => (now - newest.modifiedAt.getTime() < STILL_WRITING_MS ? stillWriting(f, newest, now) : f)));
      const damaged = findings.find((f) => f.code === 'backup_corrupt' && f.subject === newest.name);
      if (manifest && (manifest.sha256 !== scan.sha256 || manifest.sizeBytes !== scan.bytes)) {
        const checksum = { sha256: scan.sha256, manifestSha256: manifest.sha256, sizeBytes: scan.bytes, manifestSizeBytes: manifest.sizeBytes };
        // One finding per dump: a damaged gzip stream carries the checksum figures too.
        if (damaged) damaged.details = { ...damaged.details, ...checksum };
        else findings.push({
          severity: 'critical',
          code: 'backup_corrupt',
          subject: newest.name,
          message:
            manifest.sizeBytes !== scan.bytes
              ? `${newest.name} is ${scan.bytes} bytes, its manifest says ${manifest.sizeBytes}: not the file pg_dump wrote`
              : `the sha256 of ${newest.name} differs from its manifest's: the bytes changed after pg_dump wrote them`,
          suggestion: RETAKE,
          details: checksum,
        });
      }
    }

    const checksum = manifest
      ? scan && manifest.sha256 === scan.sha256 && manifest.sizeBytes === scan.bytes
        ? 'sha256 matches the manifest'
        : scan
          ? 'sha256 differs from the manifest'
          : 'sha256 not checked'
      : manifestProblem
        ? 'manifest invalid: sha256 not checked'
        : 'no manifest: sha256 not checked';
    const raised = [...new Set(findings.filter((f) => f.severity !== 'info').map((f) => f.code))];
    const content = scan?.format === 'custom' ? 'archive readable' : 'gzip intact, completion line present';
    const metrics: Record<string, number> = {
      backup_age_seconds: Math.round(ageMs / 1000),
      backup_size_bytes: newest.sizeBytes,
      backup_count: dumps.length,
    };
    if (scan) {
      metrics.verify_throughput_bytes_per_second = scan.seconds > 0 ? Math.round(scan.bytes / scan.seconds) : 0;
      if (scan.uncompressedBytes !== undefined && !scan.gzipError) metrics.backup_uncompressed_bytes = scan.uncompressedBytes;
    }
    return {
      summary: `${newest.name} (${formatBytes(newest.sizeBytes)}, ${formatDuration(ageMs)} old): ${raised.length > 0 ? raised.join(', ') : content}; ${checksum}`,
      findings,
      metrics,
    };
  },
});

function stillWriting(f: Finding<Code>, dump: StoredObject, now: number): Finding<Code> {
  const seconds = Math.round((now - dump.modifiedAt.getTime()) / 1000);
  return {
    ...f,
    message: `${f.message} (it was modified ${seconds} s ago: is the backup job still writing it?)`,
    suggestion: `If a backup job writes this file in place, schedule backup-verify after it ends; otherwise: ${f.suggestion}`,
    details: { ...f.details, modifiedSecondsAgo: seconds },
  };
}

function staleFinding(dump: StoredObject, madeAt: Date, ageMs: number, fromManifest: boolean, p: Params): Finding<Code> | undefined {
  const hours = ageMs / HOUR_MS;
  if (hours <= p.staleWarningHours) return undefined;
  const critical = hours > p.staleCriticalHours;
  return {
    severity: critical ? 'critical' : 'warning',
    code: 'backup_stale',
    subject: dump.name,
    message: `the newest dump is ${formatDuration(ageMs)} old (${critical ? 'critical' : 'warning'} past ${critical ? p.staleCriticalHours : p.staleWarningHours} h): losing the database now loses everything since ${madeAt.toISOString()}`,
    suggestion: 'Check that the backup job still runs (its schedule, its last run\'s log, the space left in the store)',
    details: {
      ageSeconds: Math.round(ageMs / 1000),
      madeAt: madeAt.toISOString(),
      ageFrom: fromManifest ? 'manifest finishedAt' : 'file modification time',
      warningHours: p.staleWarningHours,
      criticalHours: p.staleCriticalHours,
    },
  };
}

function sizeFinding(dump: StoredObject, previous: StoredObject[], p: Params): Finding<Code> | undefined {
  const typical = median(previous.map((d) => d.sizeBytes));
  const details = { sizeBytes: dump.sizeBytes, medianBytes: previous.length > 0 ? typical : null, previous: previous.length, thresholdPercent: p.sizeAnomalyPercent };
  const suggestion = 'Compare it with the previous dump (a dropped table, a failed COPY, the wrong database make a dump shrink); restore-test it before relying on it';
  if (dump.sizeBytes === 0) {
    return { severity: 'warning', code: 'backup_size_anomaly', subject: dump.name, message: `${dump.name} is empty (0 bytes)`, suggestion, details };
  }
  if (previous.length === 0 || dump.sizeBytes >= (typical * p.sizeAnomalyPercent) / 100) return undefined;
  return {
    severity: 'warning',
    code: 'backup_size_anomaly',
    subject: dump.name,
    message: `${dump.name} is ${formatBytes(dump.sizeBytes)}, ${Math.round((dump.sizeBytes / typical) * 100)} % of the median of the previous ${previous.length} dumps (${formatBytes(typical)}; warning under ${p.sizeAnomalyPercent} %)`,
    suggestion,
    details,
  };
}

function contentFindings(dump: StoredObject, scan: ScanResult): Finding<Code>[] {
  if (scan.format === undefined) {
    return [
      {
        severity: 'critical',
        code: 'backup_corrupt',
        subject: dump.name,
        message: `${dump.name} is neither gzip'd SQL nor a pg_dump custom-format archive (its first bytes are neither)`,
        suggestion: RETAKE,
        details: { sizeBytes: scan.bytes },
      },
    ];
  }
  if (scan.gzipError) {
    return [
      {
        severity: 'critical',
        code: 'backup_corrupt',
        subject: dump.name,
        message: `the gzip stream of ${dump.name} is damaged at byte ${scan.gzipError.atByte} of ${scan.bytes}: ${scan.gzipError.message}`,
        suggestion: RETAKE,
        details: { error: scan.gzipError.message, atByte: scan.gzipError.atByte, sizeBytes: scan.bytes, uncompressedBytesRead: scan.uncompressedBytes },
      },
    ];
  }
  if (scan.format === 'plain-gzip' && !scan.completionLine) {
    return [
      {
        severity: 'critical',
        code: 'backup_incomplete',
        subject: dump.name,
        message: `${dump.name} does not end with pg_dump's "-- PostgreSQL database dump complete": the dump was cut short`,
        suggestion: 'pg_dump stopped before the end (killed, timed out, out of disk, a failed COPY): check the backup job\'s log and take a new dump',
        details: { uncompressedBytes: scan.uncompressedBytes, lastLine: scan.lastLine },
      },
    ];
  }
  if (scan.format === 'custom' && scan.archiveError) {
    return [
      {
        severity: 'critical',
        code: 'backup_incomplete',
        subject: dump.name,
        message: `pg_restore cannot read ${dump.name}: ${scan.archiveError.split('\n')[0]}`,
        suggestion: 'The archive is cut short or its table of contents is damaged: check the backup job\'s log and take a new dump',
        details: { pgRestore: scan.archiveError },
      },
    ];
  }
  return [];
}
