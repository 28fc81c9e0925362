/**
 * History of runs in the state database: one row per run (`job_id` unique),
 * one row per finding. Reports, /api/runs and /metrics read from here, so
 * any number of workers and web replicas agree.
 */
import type { Pool } from 'pg';
import type { RunStatus, TaskResult } from '../contract/result';

export interface RunMeta {
  /** BullMQ job id; undefined for CLI runs. */
  jobId?: string;
  /**
   * What makes a job's run unique: its id and creation time (BullMQ's ids
   * restart at 1 when Redis loses its data). Retries keep it, so a job is
   * stored once. Default: the job id.
   */
  jobKey?: string;
  schedule?: string;
  attempt?: number;
}

export interface StoredRun {
  id: number;
  jobId: string | null;
  task: string;
  target: string;
  schedule: string | null;
  status: RunStatus;
  skipped: boolean;
  dryRun: boolean;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  summary: string;
  result: TaskResult;
}

export interface RunQuery {
  task?: string;
  target?: string;
  status?: RunStatus;
  since?: Date;
  limit?: number;
}

/**
 * SQL: the run did its work (any status but `error`, not skipped because
 * another run held the target), so it knows the target's state: what
 * "last success", "latest findings" and "still open" are read from.
 * `alias` qualifies the columns (`r2` → `r2.status ...`).
 */
export function didItsWork(alias?: string): string {
  const c = alias ? `${alias}.` : '';
  return `${c}status <> 'error' AND NOT ${c}skipped`;
}

export const SQL = {
  insertRun: `
    INSERT INTO caretaker.runs
      (job_id, task, target, schedule, status, skipped, dry_run, attempt, started_at, finished_at, duration_ms, summary, result, job_key)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
    ON CONFLICT (job_key) DO NOTHING
    RETURNING id`,
  /** All findings of a run in one statement, whatever their number. */
  insertFindings: `
    INSERT INTO caretaker.findings (run_id, task, target, severity, code, subject, message, suggestion, details, found_at)
    SELECT $1, $2, $3, f.severity, f.code, f.subject, f.message, f.suggestion, f.details, $4
    FROM jsonb_to_recordset($5::jsonb)
      AS f(severity text, code text, subject text, message text, suggestion text, details jsonb)`,
  listRuns: `
    SELECT id, job_id, task, target, schedule, status, skipped, dry_run, started_at, finished_at, duration_ms, summary, result
    FROM caretaker.runs
    WHERE ($1::text IS NULL OR task = $1)
      AND ($2::text IS NULL OR target = $2)
      AND ($3::text IS NULL OR status = $3)
      AND ($4::timestamptz IS NULL OR finished_at >= $4)
    ORDER BY finished_at DESC, id DESC
    LIMIT $5`,
  /** One run by its id. */
  getRun: `
    SELECT id, job_id, task, target, schedule, status, skipped, dry_run, started_at, finished_at, duration_ms, summary, result
    FROM caretaker.runs
    WHERE id = $1`,
  /** The newest stored run of a BullMQ job id (ids restart when Redis loses its data: the newest is the job the board shows). */
  runOfJob: `
    SELECT id FROM caretaker.runs WHERE job_id = $1 ORDER BY finished_at DESC, id DESC LIMIT 1`,
  /** The latest run of a task on a target that did its work (not error, not skipped). */
  lastCompleted: `
    SELECT result
    FROM caretaker.runs
    WHERE task = $1 AND target = $2 AND ${didItsWork()}
    ORDER BY finished_at DESC, id DESC
    LIMIT 1`,
  /** Deletes in batches: a year of history must not become one long lock. */
  pruneBatch: `
    DELETE FROM caretaker.runs
    WHERE id IN (
      SELECT id FROM caretaker.runs
      WHERE finished_at < now() - make_interval(days => $1)
      ORDER BY id
      LIMIT $2
      FOR UPDATE SKIP LOCKED)`,
  /** Notifier failures and missed runs age out with the runs (small tables: one statement each). */
  pruneNotifierFailures: `DELETE FROM caretaker.notifier_failures WHERE failed_at < now() - make_interval(days => $1)`,
  pruneMissedRuns: `DELETE FROM caretaker.missed_runs WHERE detected_at < now() - make_interval(days => $1)`,
} as const;

const PRUNE_BATCH = 5_000;

/** The most runs one `list` returns: a larger limit is cut to it (/api/runs refuses one). */
export const MAX_PAGE = 1_000;
/** The runs `list` returns when no limit is given. */
const DEFAULT_PAGE = 100;

/**
 * PostgreSQL text and jsonb cannot hold a NUL character; a hand-added job can
 * carry one (a task named "de\0frag"). Replaced, so its run is still stored.
 */
function withoutNul(result: TaskResult): TaskResult {
  const json = JSON.stringify(result);
  return json.includes('\\u0000') ? (JSON.parse(json.replace(/\\u0000/g, '\\ufffd')) as TaskResult) : result;
}

/** A row of caretaker.runs as pg returns it (bigserial as text, timestamps as Date). */
interface RunRow {
  id: string;
  job_id: string | null;
  task: string;
  target: string;
  schedule: string | null;
  status: RunStatus;
  skipped: boolean;
  dry_run: boolean;
  started_at: Date;
  finished_at: Date;
  duration_ms: number;
  summary: string;
  result: TaskResult;
}

/** A row of caretaker.runs as the API and the pages show it. */
function storedRun(r: RunRow): StoredRun {
  return {
    id: Number(r.id),
    jobId: r.job_id,
    task: r.task,
    target: r.target,
    schedule: r.schedule,
    status: r.status,
    skipped: r.skipped,
    dryRun: r.dry_run,
    startedAt: r.started_at.toISOString(),
    finishedAt: r.finished_at.toISOString(),
    durationMs: r.duration_ms,
    summary: r.summary,
    result: r.result,
  };
}

export class ResultStore {
  constructor(private readonly pool: Pool) {}

  /** Stores a run and its findings; returns false when this job was already stored. */
  async save(given: TaskResult, meta: RunMeta = {}): Promise<boolean> {
    const result = withoutNul(given);
    const client = await this.pool.connect();
    let failure: Error | undefined;
    try {
      await client.query('BEGIN');
      const inserted = await client.query<{ id: string }>(SQL.insertRun, [
        meta.jobId ?? null,
        result.task,
        result.target,
        meta.schedule ?? null,
        result.status,
        result.skipped === true,
        result.dryRun,
        meta.attempt ?? 1,
        result.startedAt,
        result.finishedAt,
        Math.round(result.durationMs),
        result.summary,
        JSON.stringify(result),
        meta.jobKey ?? meta.jobId ?? null,
      ]);
      const runId = inserted.rows[0]?.id;
      if (runId !== undefined && result.findings.length > 0) {
        await client.query(SQL.insertFindings, [runId, result.task, result.target, result.finishedAt, JSON.stringify(result.findings)]);
      }
      await client.query('COMMIT');
      return runId !== undefined;
    } catch (err) {
      failure = err instanceof Error ? err : new Error(String(err));
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      // A connection that failed mid-transaction (timed out, cut) leaves the pool instead of serving the next save.
      client.release(failure);
    }
  }

  async list(query: RunQuery = {}): Promise<StoredRun[]> {
    const { rows } = await this.pool.query<RunRow>(SQL.listRuns, [
      query.task ?? null,
      query.target ?? null,
      query.status ?? null,
      query.since ?? null,
      Math.min(Math.max(query.limit ?? DEFAULT_PAGE, 1), MAX_PAGE),
    ]);
    return rows.map(storedRun);
  }

  /** One run by its id; undefined when there is none (pruned, or never was). */
  async get(id: number): Promise<StoredRun | undefined> {
    const { rows } = await this.pool.query<RunRow>(SQL.getRun, [id]);
    return rows[0] ? storedRun(rows[0]) : undefined;
  }

  /** The id of the newest stored run of a BullMQ job, or undefined. */
  async runIdOfJob(jobId: string): Promise<number | undefined> {
    const { rows } = await this.pool.query<{ id: string }>(SQL.runOfJob, [jobId]);
    return rows[0] ? Number(rows[0].id) : undefined;
  }

  /**
   * The previous result of a task on a target, for tasks that compare with
   * their last run (growth, new failures); undefined when there is none.
   */
  async lastCompleted(task: string, target: string): Promise<TaskResult | undefined> {
    const { rows } = await this.pool.query<{ result: TaskResult }>(SQL.lastCompleted, [task, target]);
    return rows[0]?.result;
  }

  /** Deletes runs (and, by cascade, their findings), notifier failures and missed runs older than the retention; returns the runs deleted. */
  async prune(retentionDays: number): Promise<number> {
    let total = 0;
    for (;;) {
      const { rowCount } = await this.pool.query(SQL.pruneBatch, [retentionDays, PRUNE_BATCH]);
      total += rowCount ?? 0;
      if ((rowCount ?? 0) < PRUNE_BATCH) break;
    }
    await this.pool.query(SQL.pruneNotifierFailures, [retentionDays]);
    await this.pool.query(SQL.pruneMissedRuns, [retentionDays]);
    return total;
  }
}
