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
 *
 * A problem a silence or maintenance window holds back is stored by `hold`
 * with `held_by` (why) and is not sent; the sweep takes it with `claimHeld`
 * once nothing holds it any more, so it alerts when the hold ends, not at
 * its next repeat. Each row keeps the channels its route chose: the
 * "resolved" message and Alertmanager's re-posts go there.
 */
import type { Pool } from 'pg';
import type { Severity } from '../contract/result';

/** The identity of a problem that alerts. */
export interface AlertKey {
  task: string;
  target: string;
  code: string;
  subject: string;
}

/** The code of the problem "the task could not do its work" (an `error` run; its subject is the target). */
export const RUN_ERROR_CODE = 'run_error';

/** One problem of a run, to claim or hold, with the route's channels and repeat interval. */
export interface AlertProblem {
  code: string;
  subject: string;
  severity: Severity;
  message: string;
  suggestion?: string;
  channels: readonly string[];
  repeatSeconds: number;
}

export interface AlertRow extends AlertKey {
  severity: Severity;
  message: string;
  suggestion: string | null;
  openedAt: Date;
  lastSentAt: Date | null;
  resolvedAt: Date | null;
  lastJobId: string | null;
  /** The channels its route chose when it was last claimed or held (empty on rows older than routes). */
  channels: string[];
  /** Why a silence or window holds it back; null when nothing does. */
  heldBy: string | null;
}

const COLUMNS = `task, target, code, subject, severity, message, suggestion, opened_at, last_sent_at, resolved_at, last_job_id, channels, held_by`;

/** Severity as a number in SQL: a problem that got worse is sent again at once. */
const rank = (col: string) => `(CASE ${col} WHEN 'critical' THEN 2 WHEN 'warning' THEN 1 ELSE 0 END)`;
/** The per-problem arrays of `claim` and `hold`: channels travel as comma-joined text (names cannot hold a comma). */
const PROBLEMS = `unnest($3::text[], $4::text[], $5::text[], $6::text[], $9::text[], $10::int[], $11::text[]) AS p(code, subject, severity, message, channels, repeat_seconds, suggestion)`;

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
    INSERT INTO caretaker.alerts AS a (task, target, code, subject, severity, message, opened_at, last_sent_at, resolved_at, last_job_id, channels, repeat_seconds, suggestion, held_by)
    SELECT $1, $2, p.code, p.subject, p.severity, p.message, $7, $7, NULL, $8, string_to_array(p.channels, ','), p.repeat_seconds, p.suggestion, NULL
    FROM ${PROBLEMS}
    ORDER BY p.code, p.subject
    ON CONFLICT (task, target, code, subject) DO UPDATE SET
      severity       = EXCLUDED.severity,
      message        = EXCLUDED.message,
      suggestion     = EXCLUDED.suggestion,
      opened_at      = CASE WHEN a.resolved_at IS NOT NULL THEN EXCLUDED.opened_at ELSE a.opened_at END,
      last_sent_at   = EXCLUDED.last_sent_at,
      resolved_at    = NULL,
      last_job_id    = EXCLUDED.last_job_id,
      channels       = EXCLUDED.channels,
      repeat_seconds = EXCLUDED.repeat_seconds,
      held_by        = NULL
    WHERE a.resolved_at IS NOT NULL
       OR a.last_sent_at IS NULL
       OR a.held_by IS NOT NULL
       OR ${rank('EXCLUDED.severity')} > ${rank('a.severity')}
       OR a.last_sent_at <= $7::timestamptz - make_interval(secs => EXCLUDED.repeat_seconds)
    RETURNING ${COLUMNS}`,
  /**
   * Stores problems a silence or window holds back (same parameters as
   * claim; $12 why, one text for all): opened if new or reopened, never
   * marked sent. A row already sent keeps its last_sent_at.
   */
  hold: `
    INSERT INTO caretaker.alerts AS a (task, target, code, subject, severity, message, opened_at, last_sent_at, resolved_at, last_job_id, channels, repeat_seconds, suggestion, held_by)
    SELECT $1, $2, p.code, p.subject, p.severity, p.message, $7, NULL, NULL, $8, string_to_array(p.channels, ','), p.repeat_seconds, p.suggestion, $12
    FROM ${PROBLEMS}
    ORDER BY p.code, p.subject
    ON CONFLICT (task, target, code, subject) DO UPDATE SET
      severity       = EXCLUDED.severity,
      message        = EXCLUDED.message,
      suggestion     = EXCLUDED.suggestion,
      opened_at      = CASE WHEN a.resolved_at IS NOT NULL THEN EXCLUDED.opened_at ELSE a.opened_at END,
      last_sent_at   = CASE WHEN a.resolved_at IS NOT NULL THEN NULL ELSE a.last_sent_at END,
      resolved_at    = NULL,
      last_job_id    = EXCLUDED.last_job_id,
      channels       = EXCLUDED.channels,
      repeat_seconds = EXCLUDED.repeat_seconds,
      held_by        = EXCLUDED.held_by
    RETURNING ${COLUMNS}`,
  /** Every open problem a hold kept back, oldest first ($1 limit). */
  held: `SELECT ${COLUMNS} FROM caretaker.alerts WHERE held_by IS NOT NULL AND resolved_at IS NULL ORDER BY opened_at LIMIT $1`,
  /** Takes a held problem to send it now ($1..$4 key, $5 now); nothing when another replica took it first. */
  claimHeld: `
    UPDATE caretaker.alerts SET held_by = NULL, last_sent_at = $5
    WHERE task = $1 AND target = $2 AND code = $3 AND subject = $4 AND held_by IS NOT NULL AND resolved_at IS NULL
    RETURNING ${COLUMNS}`,
  /** Open, delivered, not held, routed to channel $1: what Alertmanager must keep hearing about ($2 limit). */
  openOn: `
    SELECT ${COLUMNS} FROM caretaker.alerts
    WHERE resolved_at IS NULL AND held_by IS NULL AND last_sent_at IS NOT NULL AND $1 = ANY (channels)
    ORDER BY opened_at LIMIT $2`,
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
  severity: Severity;
  message: string;
  suggestion: string | null;
  opened_at: Date;
  last_sent_at: Date | null;
  resolved_at: Date | null;
  last_job_id: string | null;
  channels: string[];
  held_by: string | null;
}

function toRow(r: RawRow): AlertRow {
  return {
    task: r.task,
    target: r.target,
    code: r.code,
    subject: r.subject,
    severity: r.severity,
    message: r.message,
    suggestion: r.suggestion,
    openedAt: r.opened_at,
    lastSentAt: r.last_sent_at,
    resolvedAt: r.resolved_at,
    lastJobId: r.last_job_id,
    channels: r.channels,
    heldBy: r.held_by,
  };
}

/** The per-problem parameters shared by claim and hold. */
function problemParams(task: string, target: string, problems: readonly AlertProblem[], now: Date, jobId: string | undefined): unknown[] {
  return [
    task,
    target,
    problems.map((p) => p.code),
    problems.map((p) => p.subject),
    problems.map((p) => p.severity),
    problems.map((p) => p.message),
    now,
    jobId ?? null,
    problems.map((p) => p.channels.join(',')),
    problems.map((p) => p.repeatSeconds),
    problems.map((p) => p.suggestion ?? null),
  ];
}

/** The most rows one sweep reads: a backlog is worked off over several sweeps. */
const SWEEP_LIMIT = 1_000;

const keyValues = (k: AlertKey) => [k.task, k.target, k.code, k.subject];

/** The typed face of ALERT_SQL. */
export class AlertState {
  constructor(private readonly pool: Pool) {}

  /**
   * The problems (of one task and target, no duplicate code+subject) this
   * caller must send now; the others were sent by someone else or are
   * within the repeat interval.
   */
  async claim(task: string, target: string, problems: readonly AlertProblem[], opts: { now: Date; jobId?: string }): Promise<AlertRow[]> {
    if (problems.length === 0) return [];
    const { rows } = await this.pool.query<RawRow>(ALERT_SQL.claim, problemParams(task, target, problems, opts.now, opts.jobId));
    return rows.map(toRow);
  }

  /** Stores problems held back by `why` (a silence or a window), unsent. */
  async hold(task: string, target: string, problems: readonly AlertProblem[], why: string, opts: { now: Date; jobId?: string }): Promise<void> {
    if (problems.length === 0) return;
    await this.pool.query(ALERT_SQL.hold, [...problemParams(task, target, problems, opts.now, opts.jobId), why]);
  }

  /** Open problems a hold kept back. */
  async held(): Promise<AlertRow[]> {
    const { rows } = await this.pool.query<RawRow>(ALERT_SQL.held, [SWEEP_LIMIT]);
    return rows.map(toRow);
  }

  /** The held problem, marked sent at `now`, if this caller took it. */
  async claimHeld(key: AlertKey, now: Date): Promise<AlertRow | undefined> {
    const { rows } = await this.pool.query<RawRow>(ALERT_SQL.claimHeld, [...keyValues(key), now]);
    return rows[0] ? toRow(rows[0]) : undefined;
  }

  /** Open, delivered alerts routed to `channel`. */
  async openOn(channel: string): Promise<AlertRow[]> {
    const { rows } = await this.pool.query<RawRow>(ALERT_SQL.openOn, [channel, SWEEP_LIMIT]);
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
