/**
 * SQL pieces about a finding's life across runs, shared by the weekly
 * report and the console so both say the same "open since".
 */
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
