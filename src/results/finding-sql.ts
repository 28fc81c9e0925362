/**
 * SQL pieces about a finding's life across runs, shared by the weekly
 * report and the console so both say the same "open since".
 */
import type { OpenFinding } from '../reports/model';
import { didItsWork } from './store';

/**
 * SQL: when the finding row `f` (an alias of caretaker.findings) was first
 * seen in the unbroken series of runs that still carry it: the earliest
 * found_at of the same (task, target, code, subject) after the last run
 * that did its work without it. Served by findings_identity_idx and
 * runs_task_target_finished_at_idx.
 */
export function firstSeenOf(f: string): string {
  return `(
      SELECT min(f3.found_at)
      FROM caretaker.findings f3
      WHERE f3.task = ${f}.task AND f3.target = ${f}.target AND f3.code = ${f}.code AND f3.subject = ${f}.subject
        AND f3.found_at > COALESCE((
          SELECT r2.finished_at FROM caretaker.runs r2
          WHERE r2.task = ${f}.task AND r2.target = ${f}.target AND r2.finished_at < ${f}.found_at AND ${didItsWork('r2')}
            AND NOT EXISTS (
              SELECT 1 FROM caretaker.findings f2
              WHERE f2.run_id = r2.id AND f2.code = ${f}.code AND f2.subject = ${f}.subject)
          ORDER BY r2.finished_at DESC
          LIMIT 1), '-infinity')
        AND f3.found_at <= ${f}.found_at)`;
}

/** A finding row as the open-findings queries select it (with `found_at AS last_seen` and `firstSeenOf(...) AS first_seen`). */
export interface SeenFindingRow {
  task: string;
  target: string;
  severity: OpenFinding['severity'];
  code: string;
  subject: string;
  message: string;
  suggestion: string | null;
  last_seen: Date;
  first_seen: Date | null;
}

/** Such a row as the report and the console show it; a finding with no earlier series was first seen when last seen. */
export function openFindingOf(r: SeenFindingRow): OpenFinding {
  return {
    task: r.task,
    target: r.target,
    severity: r.severity,
    code: r.code,
    subject: r.subject,
    message: r.message,
    ...(r.suggestion ? { suggestion: r.suggestion } : {}),
    firstSeen: (r.first_seen ?? r.last_seen).toISOString(),
    lastSeen: r.last_seen.toISOString(),
  };
}
