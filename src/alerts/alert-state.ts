/**
 * Alert state in the state database (caretaker.alerts), shared by every
 * worker: one row per problem (task, target, code, subject).
 *
 * Sending is claim, deliver, confirm-or-release:
 * - `claim` is one INSERT ... ON CONFLICT DO UPDATE ... WHERE ... RETURNING
 *   for all the problems of a run: it returns the rows this caller should
 *   send (new problem, reopened problem, never delivered, or the repeat
 *   interval has passed) and sets `last_sent_at` in the same statement.
 *   Two workers claiming the same problem at once serialize on the row: the
 *   second sees the first's `last_sent_at` and gets nothing back.
 * - when no channel delivered, `release` clears `last_sent_at` (only if it is
 *   still ours), so the next run claims it again.
 * Resolving works the same way (`resolveGone` then `unresolve` on failure).
 */
import type { Pool } from 'pg';

/** The identity of a problem that alerts. */
export interface AlertKey {
  task: string;
  target: string;
  code: string;
  subject: string;
}

/** The code of the problem "the task could not do its work" (an `error` run; its subject is the target). */
export const RUN_ERROR_CODE = 'run_error';

/** One problem of a run, to claim. */
export interface AlertProblem {
  code: string;
  subject: string;
  severity: string;
  message: string;
}

export interface AlertRow extends AlertKey {
  severity: string;
  message: string;
  openedAt: Date;
  lastSentAt: Date | null;
  resolvedAt: Date | null;
  lastJobId: string | null;
}

const COLUMNS = `task, target, code, subject, severity, message, opened_at, last_sent_at, resolved_at, last_job_id`;

export const ALERT_SQL = {
  /**
   * Claims the problems of one run in one statement: $1 task, $2 target,
   * $3 codes[], $4 subjects[], $5 severities[], $6 messages[] (pairwise),
   * $7 now, $8 job id, $9 repeat interval in seconds. Returns the rows this
   * caller must send now. Rows are taken in (code, subject) order, so a
   * concurrent claim of the same run waits on the first row and then finds
   * them all sent: one message, not one per worker.
   */
  claim: `
    INSERT INTO caretaker.alerts AS a (task, target, code, subject, severity, message, opened_at, last_sent_at, resolved_at, last_job_id)
    SELECT $1, $2, p.code, p.subject, p.severity, p.message, $7, $7, NULL, $8
    FROM unnest($3::text[], $4::text[], $5::text[], $6::text[]) AS p(code, subject, severity, message)
    ORDER BY p.code, p.subject
    ON CONFLICT (task, target, code, subject) DO UPDATE SET
      severity     = EXCLUDED.severity,
      message      = EXCLUDED.message,
      opened_at    = CASE WHEN a.resolved_at IS NOT NULL THEN EXCLUDED.opened_at ELSE a.opened_at END,
      last_sent_at = EXCLUDED.last_sent_at,
      resolved_at  = NULL,
      last_job_id  = EXCLUDED.last_job_id
    WHERE a.resolved_at IS NOT NULL
       OR a.last_sent_at IS NULL
       OR a.last_sent_at <= $7::timestamptz - make_interval(secs => $9)
    RETURNING ${COLUMNS}`,
  /** $1..$4 key, $5 the `last_sent_at` our claim set: undo it when nothing was delivered. */
  release: `
    UPDATE caretaker.alerts SET last_sent_at = NULL
    WHERE task = $1 AND target = $2 AND code = $3 AND subject = $4 AND last_sent_at = $5`,
  /**
   * Resolves the open alerts of (task, target) whose (code, subject) is not
   * in the still-present lists: $1 task, $2 target, $3 codes[], $4 subjects[]
   * (pairwise), $5 now. A row resolved by a concurrent worker is re-checked
   * after its lock and not returned twice.
   */
  resolveGone: `
    UPDATE caretaker.alerts a SET resolved_at = $5
    WHERE a.task = $1 AND a.target = $2 AND a.resolved_at IS NULL
      AND NOT EXISTS (
        SELECT 1 FROM unnest($3::text[], $4::text[]) AS p(code, subject)
        WHERE p.code = a.code AND p.subject = a.subject)
    RETURNING ${COLUMNS}`,
  /** $1..$4 key, $5 the `resolved_at` we set: reopen when the resolved message was not delivered. */
  unresolve: `
    UPDATE caretaker.alerts SET resolved_at = NULL
    WHERE task = $1 AND target = $2 AND code = $3 AND subject = $4 AND resolved_at = $5`,
  /** $1 channel, $2 error (already redacted), $3 when. */
  recordFailure: `INSERT INTO caretaker.notifier_failures (channel, error, failed_at) VALUES ($1, $2, $3)`,
  /** The newest failure per channel (for /health in a process that did not send). */
  lastFailures: `
    SELECT DISTINCT ON (channel) channel, error, failed_at
    FROM caretaker.notifier_failures ORDER BY channel, failed_at DESC`,
} as const;

interface RawRow {
  task: string;
  target: string;
  code: string;
  subject: string;
  severity: string;
  message: string;
  opened_at: Date;
  last_sent_at: Date | null;
  resolved_at: Date | null;
  last_job_id: string | null;
}

function toRow(r: RawRow): AlertRow {
  return {
    task: r.task,
    target: r.target,
    code: r.code,
    subject: r.subject,
    severity: r.severity,
    message: r.message,
    openedAt: r.opened_at,
    lastSentAt: r.last_sent_at,
    resolvedAt: r.resolved_at,
    lastJobId: r.last_job_id,
  };
}

const keyValues = (k: AlertKey) => [k.task, k.target, k.code, k.subject];

/** The typed face of ALERT_SQL. */
export class AlertState {
  constructor(private readonly pool: Pool) {}

  /**
   * The problems (of one task and target, no duplicate code+subject) this
   * caller must send now; the others were sent by someone else or are
   * within the repeat interval.
   */
  async claim(task: string, target: string, problems: readonly AlertProblem[], opts: { now: Date; jobId?: string; repeatSeconds: number }): Promise<AlertRow[]> {
    if (problems.length === 0) return [];
    const { rows } = await this.pool.query<RawRow>(ALERT_SQL.claim, [
      task,
      target,
      problems.map((p) => p.code),
      problems.map((p) => p.subject),
      problems.map((p) => p.severity),
      problems.map((p) => p.message),
      opts.now,
      opts.jobId ?? null,
      opts.repeatSeconds,
    ]);
    return rows.map(toRow);
  }

  async release(key: AlertKey, claimedAt: Date): Promise<void> {
    await this.pool.query(ALERT_SQL.release, [...keyValues(key), claimedAt]);
  }

  /** Resolves and returns the open alerts of (task, target) not in `present`. */
  async resolveGone(task: string, target: string, present: readonly { code: string; subject: string }[], now: Date): Promise<AlertRow[]> {
    const { rows } = await this.pool.query<RawRow>(ALERT_SQL.resolveGone, [task, target, present.map((p) => p.code), present.map((p) => p.subject), now]);
    return rows.map(toRow);
  }

  async unresolve(key: AlertKey, resolvedAt: Date): Promise<void> {
    await this.pool.query(ALERT_SQL.unresolve, [...keyValues(key), resolvedAt]);
  }

  async recordFailure(channel: string, error: string, at: Date): Promise<void> {
    await this.pool.query(ALERT_SQL.recordFailure, [channel, error, at]);
  }

  async lastFailures(): Promise<Record<string, { at: string; error: string }>> {
    const { rows } = await this.pool.query<{ channel: string; error: string; failed_at: Date }>(ALERT_SQL.lastFailures);
    return Object.fromEntries(rows.map((r) => [r.channel, { at: r.failed_at.toISOString(), error: r.error }]));
  }
}
