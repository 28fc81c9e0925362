/**
 * The weekly report as data: what the queries produce (src/reports/weekly-data.ts)
 * and what every rendering reads (email HTML, plain text, the /reports page).
 * Worst first everywhere.
 */
import type { Finding, RunStatus, Severity } from '../contract/result';

/** An ISO week, e.g. "2026-W48", with its bounds in the report's timezone. */
export interface ReportWeek {
  id: string;
  /** First instant of Monday 00:00 in the timezone (ISO 8601). */
  start: string;
  /** First instant of the next Monday (exclusive). */
  end: string;
  timezone: string;
}

export interface OpenFinding extends Pick<Finding, 'severity' | 'code' | 'subject' | 'message' | 'suggestion'> {
  task: string;
  target: string;
  /** When it was first seen in the unbroken series of runs that still report it. */
  firstSeen: string;
  lastSeen: string;
}

/**
 * What holds an open finding back from notifying at the report's time: a
 * silence or an open maintenance window. It stays open and listed.
 */
export interface ReportHold {
  kind: 'silence' | 'maintenance';
  /** The silence's id, or the window's name. */
  id: string;
  /** `silenced by alice until ...: reason`, as the alerts say it. */
  text: string;
  /** Who silenced it; undefined for a maintenance window (the config's). */
  by?: string;
  reason?: string;
  /** When the hold ends (ISO 8601). */
  until: string;
}

/** A waiver as the report shows it. */
export interface ReportWaiver {
  /** A stored waiver's id, or `config-1`, `config-2`, ... for the config's. */
  id: string;
  source: 'config' | 'state';
  /** What it matches (exact or glob). */
  match: { task: string; target: string; code: string; subject: string };
  /** The worst severity accepted. */
  severity: Severity;
  reason: string;
  /** Who waived it ("config" for the config's). */
  by: string;
  createdAt?: string;
  /** When it lapses (ISO 8601); undefined: never. */
  expiresAt?: string;
}

/** An open finding in the report: maybe silenced, maybe back because it outgrew its waiver. */
export interface ReportFinding extends OpenFinding {
  silenced?: ReportHold;
  /** A waiver matches it but accepts only a lower severity: it is open again. */
  outgrew?: ReportWaiver;
}

/** A finding a waiver accepts at the report's time: not open, listed apart. */
export interface WaivedFinding extends OpenFinding {
  waiver: ReportWaiver;
}

/** A waiver in force at the report's time that lapses soon: its findings will come back. */
export interface ExpiringWaiver extends ReportWaiver {
  expiresAt: string;
  /** How many of the report's findings it waives. */
  covers: number;
}

export interface TaskRuns {
  task: string;
  target: string;
  runs: number;
  /** Runs that ended `error`. */
  failures: number;
  /** Worst status of the week's runs; undefined when it never ran. */
  worst?: RunStatus;
  /** Last run that did its work (not error, not skipped), any time before the week's end. */
  lastSuccess?: string;
  /** Scheduled for this week but no run at all. */
  neverRan: boolean;
}

export interface MaintenanceDone {
  /** Sum over the week's applied actions, by kind (vacuum_analyze, queue_clean, terminate_backend...). */
  actions: { kind: string; count: number }[];
}

export interface BackupFigures {
  target: string;
  newestBackupAgeSeconds?: number;
  lastRestoreTest?: { at: string; status: RunStatus; restoreSeconds?: number };
  lastDrill?: { at: string; status: RunStatus; rtoSeconds?: number; rpoSeconds?: number };
}

/** One weekly point of a trend: the week id and a value (undefined: no data that week). */
export interface TrendPoint {
  week: string;
  value?: number;
}

export interface Trend {
  /** database_size_bytes, connections_peak, queue_backlog, slow_queries, restore_seconds. */
  metric: string;
  title: string;
  unit: 'bytes' | 'count' | 'seconds' | 'ratio';
  /** One series per target. */
  series: { target: string; points: TrendPoint[] }[];
}

export interface WeeklyReport {
  title: string;
  week: ReportWeek;
  generatedAt: string;
  /**
   * The instant waivers, silences and maintenance windows are judged at:
   * the week's end, or `generatedAt` for a week to date.
   */
  asOf: string;
  /** Open findings only: waived ones are not counted. */
  headline: { critical: number; warning: number; text: string };
  /**
   * Critical and warning findings still open at the end of the week and not
   * waived, worst first, grouped by target then task; silenced ones included
   * (and marked).
   */
  open: ReportFinding[];
  /** The week's findings that waivers accept at `asOf`, worst first. */
  waived: WaivedFinding[];
  /** Waivers in force at `asOf` that lapse within EXPIRING_WAIVER_DAYS of it, soonest first. */
  expiringWaivers: ExpiringWaiver[];
  changes: {
    /** Open now, not reported at the end of the week before. */
    new: ReportFinding[];
    /** Reported at the end of the week before, gone now (a finding now waived is not resolved). */
    resolved: Pick<OpenFinding, 'task' | 'target' | 'code' | 'subject' | 'severity' | 'message'>[];
    stillOpen: number;
  };
  tasks: TaskRuns[];
  maintenance: MaintenanceDone;
  backups: BackupFigures[];
  /** Over the last 12 weeks. */
  trends: Trend[];
  /** Alert deliveries that failed this week (notifier down), so nobody believes silence. */
  notifierFailures: { channel: string; count: number; lastError: string }[];
  /** Missed scheduled runs this week. */
  missedRuns: { schedule: string; task: string; target: string; due: string }[];
  /** The manual runbook lines: what was marked done this week, and what is overdue at `asOf`. */
  checklist: ReportChecklist;
}

export interface ReportChecklist {
  /** Enabled items in the config; 0: the report has no checklist section. */
  items: number;
  /** Oldest first. */
  done: { item: string; title: string; at: string; by: string; note?: string }[];
  /** Overdue longest first. */
  overdue: { item: string; title: string; dueSince: string; overdueAt: string; link?: string }[];
}

export type { Severity };
