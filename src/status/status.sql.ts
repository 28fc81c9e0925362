/**
 * The console's queries (the page, `caretaker status`): a fixed number of
 * statements whatever the fleet's size or the history's length. The pairs
 * come in as arrays; each pair's latest run is one descent of
 * runs_task_target_finished_at_idx, never a scan of the history.
 */
import { didItsWork } from '../results/store';
import { firstSeenOf } from '../results/finding-sql';

export const STATUS_SQL = {
  /** Per (task, target) ($1 tasks, $2 targets): its latest run that was not skipped, if any. */
  latestRuns: `
    SELECT p.task, p.target, r.id, r.job_id, r.status, r.dry_run, r.started_at, r.finished_at, r.duration_ms, r.summary
    FROM unnest($1::text[], $2::text[]) AS p(task, target)
    CROSS JOIN LATERAL (
      SELECT id, job_id, status, dry_run, started_at, finished_at, duration_ms, summary
      FROM caretaker.runs
      WHERE task = p.task AND target = p.target AND NOT skipped
      ORDER BY finished_at DESC, id DESC
      LIMIT 1
    ) r`,

  /**
   * The warning and critical findings of each pair's latest run that did
   * its work (a run that errored knows nothing new about the target), with
   * when each was first seen in the unbroken series of runs carrying it.
   */
  openFindings: `
    WITH latest AS (
      SELECT r.id
      FROM unnest($1::text[], $2::text[]) AS p(task, target)
      CROSS JOIN LATERAL (
        SELECT id FROM caretaker.runs
        WHERE task = p.task AND target = p.target AND ${didItsWork()}
        ORDER BY finished_at DESC, id DESC
        LIMIT 1
      ) r
    )
    SELECT f.run_id, f.task, f.target, f.severity, f.code, f.subject, f.message, f.suggestion,
           f.found_at AS last_seen, ${firstSeenOf('f')} AS first_seen
    FROM latest l
    JOIN caretaker.findings f ON f.run_id = l.id
    WHERE f.severity IN ('warning', 'critical')`,

  /** Which of these due times ($1 schedules, $2 tasks, $3 targets, $4 due times) the missed-run watch recorded. */
  recordedMisses: `
    SELECT m.schedule, m.task, m.target, m.due_at, m.detected_at
    FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) AS c(schedule, task, target, due_at)
    JOIN caretaker.missed_runs m
      ON m.schedule = c.schedule AND m.task = c.task AND m.target = c.target AND m.due_at = c.due_at`,
} as const;
