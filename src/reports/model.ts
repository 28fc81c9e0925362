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
  headline: { critical: number; warning: number; text: string };
  /** Critical and warning findings still open at the end of the week, worst first, grouped by target then task. */
  open: OpenFinding[];
  changes: {
    new: OpenFinding[];
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
}

export type { Severity };
