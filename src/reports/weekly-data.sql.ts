/**
 * The weekly report's queries: a fixed number of statements whatever the
 * history's size, each bounded by the week and served by the indexes of
 * migration 1 (runs (task, target, finished_at), runs (finished_at),
 * findings (run_id), findings (task, target, code, subject, found_at)).
 */
import { didItsWork } from '../results/store';
import { firstSeenOf } from '../results/finding-sql';

export const WEEKLY_SQL = {
  /**
   * Warning and critical findings of the latest completed run of each
   * (task, target) before each end ($1 this week's end, $2 the previous
   * week's), tagged `current` / `previous`. For the current ones, `first_seen`
   * is the first report in the unbroken series of runs that still carry the
   * finding: the earliest found_at after the last completed run without it.
   */
  openFindings: `
    WITH ends(which, at) AS (VALUES ('current', $1::timestamptz), ('previous', $2::timestamptz)),
    pairs AS (
      SELECT DISTINCT task, target FROM caretaker.runs WHERE finished_at < $1::timestamptz
    ),
    latest AS (
      SELECT e.which, r.id
      FROM ends e CROSS JOIN pairs p
      CROSS JOIN LATERAL (
        SELECT id FROM caretaker.runs
        WHERE task = p.task AND target = p.target AND finished_at < e.at AND ${didItsWork()}
        ORDER BY finished_at DESC, id DESC
        LIMIT 1
      ) r
    )
    SELECT l.which, f.task, f.target, f.severity, f.code, f.subject, f.message, f.suggestion,
           f.found_at AS last_seen,
           CASE WHEN l.which = 'current' THEN ${firstSeenOf('f')} END AS first_seen
    FROM latest l
    JOIN caretaker.findings f ON f.run_id = l.id
    WHERE f.severity IN ('warning', 'critical')`,

  /** Per (task, target): the week's runs, failures, worst status; the last completed run before the week's end. */
  taskRuns: `
    SELECT task, target,
           count(*) FILTER (WHERE finished_at >= $1) AS runs,
           count(*) FILTER (WHERE finished_at >= $1 AND status = 'error') AS failures,
           max(CASE status WHEN 'ok' THEN 0 WHEN 'warning' THEN 1 WHEN 'critical' THEN 2 ELSE 3 END)
             FILTER (WHERE finished_at >= $1 AND NOT skipped) AS worst,
           max(finished_at) FILTER (WHERE ${didItsWork()}) AS last_success
    FROM caretaker.runs
    WHERE finished_at < $2
    GROUP BY task, target`,

  /** Actions actually applied this week (not dry runs, not refused), by kind. */
  maintenance: `
    SELECT a->>'kind' AS kind, count(*)::int AS count
    FROM caretaker.runs r
    CROSS JOIN LATERAL jsonb_array_elements(COALESCE(r.result->'actions', '[]'::jsonb)) a
    WHERE r.finished_at >= $1 AND r.finished_at < $2 AND NOT r.dry_run
      AND (a->>'applied')::boolean
    GROUP BY 1
    ORDER BY 2 DESC, 1`,

  /** The latest run before the week's end of each backup task on each target. */
  backups: `
    SELECT DISTINCT ON (task, target) task, target, status, finished_at, result->'metrics' AS metrics
    FROM caretaker.runs
    WHERE task IN ('backup-verify', 'restore-test', 'dr-drill') AND finished_at < $1 AND NOT skipped
    ORDER BY task, target, finished_at DESC, id DESC`,

  /**
   * Per trend metric, target and week: the week's maximum of the metric in
   * the runs' results. The weeks come cut (src/reports/week.ts): $3 ids,
   * $4 starts, $5 ends, from $1 (the first start) to $2 (the last end).
   * $6/$7 pair each task with its metric.
   */
  trends: `
    SELECT m.metric, r.target, w.id AS week, max((r.result->'metrics'->>m.metric)::float8) AS value
    FROM unnest($6::text[], $7::text[]) AS m(task, metric)
    JOIN caretaker.runs r ON r.task = m.task AND r.finished_at >= $1 AND r.finished_at < $2
    JOIN unnest($3::text[], $4::timestamptz[], $5::timestamptz[]) AS w(id, starts, ends)
      ON r.finished_at >= w.starts AND r.finished_at < w.ends
    WHERE NOT r.skipped AND jsonb_typeof(r.result->'metrics'->m.metric) = 'number'
    GROUP BY 1, 2, 3`,

  notifierFailures: `
    SELECT channel, count(*)::int AS count, (array_agg(error ORDER BY failed_at DESC))[1] AS last_error
    FROM caretaker.notifier_failures
    WHERE failed_at >= $1 AND failed_at < $2
    GROUP BY channel
    ORDER BY channel`,

  missedRuns: `
    SELECT schedule, task, target, due_at
    FROM caretaker.missed_runs
    WHERE due_at >= $1 AND due_at < $2
    ORDER BY due_at, task, target`,
} as const;
