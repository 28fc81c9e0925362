/**
 * Missed-run detection, the scheduler's dead man's switch (healthchecks.io's
 * grace model): every scheduled (task, target) must have a run that finished
 * at or after its most recent due fire time, once that time plus a grace has
 * passed. A miss is recorded once in `caretaker.missed_runs` (the UNIQUE key
 * makes replicas agree), reported through `onMissed`, and, when the schedule
 * says `catchUp`, the run is enqueued now.
 *
 * Fire times come from BullMQ's own `getNextMillis`, so "due" means exactly
 * what the job scheduler would have fired, DST included. The check reads only
 * the state database, so it holds when the worker is down, when Redis lost
 * the job schedulers, and after the scheduler itself was down across a fire
 * time (the first check runs at start).
 *
 * What counts as "a run happened": a stored run of that (task, target), from
 * any schedule or the CLI, not skipped, not a dry run, finished at or after
 * the due time, whatever its status: a run that ended in `error` did happen
 * and already alerts through the error path, so it is not also a miss.
 *
 * Catch-up: when every worker was down, the job scheduler's next run is
 * still in the queue, already due, and runs as soon as a worker is back.
 * That run is the catch-up; adding another would run the task twice.
 *
 * When nothing was due yet: a due time from before the watch started counts
 * only when the (task, target) has a stored run from before that due time
 * (it used to run, so the scheduler was expected to fire it). A fresh
 * install, or a schedule just added, is not "missed" for a fire time that
 * passed before caretaker watched it; a due time after the watch started
 * always counts.
 */
import type { JobsOptions, Queue } from 'bullmq';
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import type { JobData } from '../queue/queue';
import type { SchedulerEntry } from './resolve';
import { coerceError } from '../errors';
import { outcomeOf, type LoopOutcome } from '../liveness/background';
import { pendingNextRun } from './sync';
import { lastFireAtOrBefore } from './cron';

/** What the check needs of a scheduler entry; `graceSeconds` overrides the default grace. */
export type WatchedEntry = Pick<SchedulerEntry, 'id' | 'schedule' | 'task' | 'target' | 'cron' | 'timezone'> & Pick<Partial<SchedulerEntry>, 'graceSeconds'>;

export interface MissedRun {
  /** The scheduler entry id, `<schedule>:<task>:<target>`. */
  entryId: string;
  schedule: string;
  task: string;
  target: string;
  /** The fire time that has no run. */
  dueAt: Date;
  graceMs: number;
}

export interface RecordedMissedRun extends MissedRun {
  id: number;
  detectedAt: Date;
  /** Set once the catch-up run is enqueued. */
  caughtUp: boolean;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

export const SQL = {
  /**
   * For each (task, target, due_at): did a run finish at or after due_at, and
   * was there any run before it. One statement for all entries; both probes
   * use runs_task_target_finished_at_idx.
   */
  probe: `
    SELECT e.i::int AS i,
      EXISTS (SELECT 1 FROM caretaker.runs r
              WHERE r.task = e.task AND r.target = e.target AND r.finished_at >= e.due_at
                AND NOT r.skipped AND NOT r.dry_run) AS ran,
      EXISTS (SELECT 1 FROM caretaker.runs r
              WHERE r.task = e.task AND r.target = e.target AND r.finished_at < e.due_at) AS had_history
    FROM unnest($1::text[], $2::text[], $3::timestamptz[]) WITH ORDINALITY AS e(task, target, due_at, i)`,
  /** Records misses; returns only the rows new now, so each miss is raised once across replicas. */
  record: `
    INSERT INTO caretaker.missed_runs (schedule, task, target, due_at)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
    ON CONFLICT (schedule, task, target, due_at) DO NOTHING
    RETURNING id, schedule, task, target, due_at, detected_at, caught_up`,
  markCaughtUp: `UPDATE caretaker.missed_runs SET caught_up = true WHERE id = $1`,
} as const;

/**
 * The default grace: 1 h for schedules firing once a day or less often,
 * else 10 % of the period (at least 1 s). The period is the gap between the
 * two latest fire times at or before `now`.
 */
export function defaultGraceMs(entry: Pick<WatchedEntry, 'cron' | 'timezone'>, now: Date = new Date()): number {
  const last = lastFireAtOrBefore(entry.cron, entry.timezone, now);
  const before = last && lastFireAtOrBefore(entry.cron, entry.timezone, new Date(last.getTime() - 1));
  if (!last || !before) return HOUR_MS;
  const period = last.getTime() - before.getTime();
  return period >= DAY_MS ? HOUR_MS : Math.max(1000, Math.round(period / 10));
}

/**
 * The grace of each entry at `now`: its `graceSeconds`, else defaultGraceMs.
 * Computed once per (cron, timezone, graceSeconds): a fleet has thousands of
 * entries but a handful of schedules, and each default costs a few cron
 * evaluations (about 4 ms): 612 entries cost 2.5 s of CPU per check before.
 */
export function graceOf(now: Date): (entry: WatchedEntry) => number {
  const memo = new Map<string, number>();
  return (e) => {
    if (e.graceSeconds !== undefined) return e.graceSeconds * 1000;
    const key = `${e.cron}\u0000${e.timezone}`;
    let grace = memo.get(key);
    if (grace === undefined) memo.set(key, (grace = defaultGraceMs(e, now)));
    return grace;
  };
}

/** One entry's most recent due fire time, and what the history says about it. */
export interface DueProbe {
  due: MissedRun;
  /** A run of that (task, target) finished at or after the due time (not skipped, not a dry run). */
  ran: boolean;
  /** The (task, target) has a stored run from before the due time. */
  hadHistory: boolean;
}

/**
 * For each entry that has a due fire time (the last one at or before
 * now − grace): whether it ran since, and whether it ran before. One
 * statement for all entries. Entries without a due time yet are left out.
 */
export async function probeDueRuns<E extends WatchedEntry>(opts: {
  entries: readonly E[];
  state: Pool;
  now: Date;
  /** Grace in ms; default: the entry's graceSeconds, else defaultGraceMs (graceOf). */
  graceFor?: (entry: E) => number;
}): Promise<DueProbe[]> {
  const graceFor = opts.graceFor ?? graceOf(opts.now);
  // Entries sharing a schedule share their due time: computed once each.
  const dueTimes = new Map<string, Date | undefined>();
  const candidates: MissedRun[] = [];
  for (const entry of opts.entries) {
    const graceMs = graceFor(entry);
    const key = `${entry.cron}\u0000${entry.timezone}\u0000${graceMs}`;
    if (!dueTimes.has(key)) dueTimes.set(key, lastFireAtOrBefore(entry.cron, entry.timezone, new Date(opts.now.getTime() - graceMs)));
    const dueAt = dueTimes.get(key);
    if (!dueAt) continue;
    candidates.push({ entryId: entry.id, schedule: entry.schedule, task: entry.task, target: entry.target, dueAt, graceMs });
  }
  if (candidates.length === 0) return [];
  const { rows } = await opts.state.query<{ i: number; ran: boolean; had_history: boolean }>(SQL.probe, [
    candidates.map((c) => c.task),
    candidates.map((c) => c.target),
    candidates.map((c) => c.dueAt.toISOString()),
  ]);
  return rows.map((row) => ({ due: candidates[row.i - 1]!, ran: row.ran, hadHistory: row.had_history }));
}

/**
 * The entries whose most recent due fire time (the last one at or before
 * now − grace) has no run of that (task, target) finished at or after it.
 * Pure read; see the module comment for what counts.
 */
export async function findMissedRuns<E extends WatchedEntry>(opts: {
  entries: readonly E[];
  state: Pool;
  now: Date;
  /** Grace in ms; default: the entry's graceSeconds, else defaultGraceMs (graceOf). */
  graceFor?: (entry: E) => number;
  /** When the watch started: earlier due times need a run before them to count. Undefined: all count. */
  watchingSince?: Date;
}): Promise<MissedRun[]> {
  const since = opts.watchingSince?.getTime();
  return (await probeDueRuns(opts))
    .filter((p) => !p.ran && (since === undefined || p.due.dueAt.getTime() >= since || p.hadHistory))
    .map((p) => p.due)
    .sort((a, b) => a.entryId.localeCompare(b.entryId));
}

/** Inserts the misses; returns those recorded now (a miss already known is not returned again). */
export async function recordMissedRuns(state: Pool, missed: readonly MissedRun[]): Promise<RecordedMissedRun[]> {
  if (missed.length === 0) return [];
  const { rows } = await state.query<{ id: string; schedule: string; task: string; target: string; due_at: Date; detected_at: Date; caught_up: boolean }>(
    SQL.record,
    [missed.map((m) => m.schedule), missed.map((m) => m.task), missed.map((m) => m.target), missed.map((m) => m.dueAt.toISOString())],
  );
  const key = (schedule: string, task: string, target: string, due: number) => `${schedule}\u0000${task}\u0000${target}\u0000${due}`;
  const byKey = new Map(missed.map((m) => [key(m.schedule, m.task, m.target, m.dueAt.getTime()), m]));
  return rows
    .map((r) => {
      const m = byKey.get(key(r.schedule, r.task, r.target, r.due_at.getTime()))!;
      return { ...m, id: Number(r.id), detectedAt: r.detected_at, caughtUp: r.caught_up };
    })
    .sort((a, b) => a.entryId.localeCompare(b.entryId));
}

/** A BullMQ job id for the catch-up of one miss: the same on every replica, no ':' (BullMQ refuses it). */
export function catchUpJobId(m: Pick<MissedRun, 'schedule' | 'task' | 'target' | 'dueAt'>): string {
  const clean = (s: string) => s.replace(/:/g, '_');
  return `catchup-${clean(m.schedule)}-${clean(m.task)}-${clean(m.target)}-${m.dueAt.getTime()}`;
}

export interface MissedRunWatch {
  /** The check made at start (what was missed while the scheduler was down). */
  initial: Promise<RecordedMissedRun[]>;
  /** Runs one check now (serialized with the loop's); returns the misses recorded by it. */
  check(): Promise<RecordedMissedRun[]>;
  close(): Promise<void>;
}

/** How often the watch checks when the composer gives no `intervalMs`. */
export const MISSED_RUN_INTERVAL_MS = 60_000;

/**
 * Checks at start and then every `intervalMs`: records new misses, calls
 * `onMissed` with them, and enqueues a catch-up run for entries with
 * `catchUpFor(entry)`. Errors are logged and reported (`onChecked`); the
 * loop keeps going. A catch-up that could not be enqueued, or an `onMissed`
 * that failed, is logged but does not fail the check: the miss is recorded.
 */
export function startMissedRunWatch<E extends WatchedEntry>(deps: {
  entries: readonly E[];
  state: Pool;
  queue: Queue<JobData>;
  jobOpts: JobsOptions;
  log: Logger;
  /** Default MISSED_RUN_INTERVAL_MS; tests shorten it. */
  intervalMs?: number;
  /** Grace in ms; default: the entry's graceSeconds, else defaultGraceMs (graceOf). */
  graceFor?: (entry: E) => number;
  catchUpFor?: (entry: E) => boolean;
  onMissed?: (missed: RecordedMissedRun[]) => void | Promise<void>;
  /** The clock; tests pass a fixed one. */
  now?: () => Date;
  /** False while this replica's schedules are not the current ones (a newer config rolls out): checks find nothing. */
  active?: () => boolean;
  /** Called each time a check came round, with whether it worked (the liveness probe's heartbeat, /health's loop state). */
  onChecked?: (outcome: LoopOutcome) => void;
}): MissedRunWatch {
  const { entries, state, queue, jobOpts, log } = deps;
  const clock = deps.now ?? (() => new Date());
  const watchingSince = clock();
  const byId = new Map(entries.map((e) => [e.id, e]));
  let closed = false;

  const once = async (): Promise<RecordedMissedRun[]> => {
    if (deps.active && !deps.active()) return [];
    const now = clock();
    const graceFor = deps.graceFor ?? graceOf(now);
    const found = await findMissedRuns({ entries, state, now, graceFor, watchingSince });
    const recorded = await recordMissedRuns(state, found);
    if (recorded.length === 0) return recorded;
    log.warn({ missed: recorded.map((m) => ({ entry: m.entryId, dueAt: m.dueAt.toISOString() })) }, 'scheduled runs missed');
    for (const m of recorded) {
      const entry = byId.get(m.entryId);
      if (!entry || !deps.catchUpFor?.(entry)) continue;
      try {
        const waiting = await pendingNextRun(queue, m.entryId);
        if (waiting !== undefined && waiting <= now.getTime()) {
          await state.query(SQL.markCaughtUp, [m.id]);
          m.caughtUp = true;
          log.info({ entry: m.entryId, dueAt: m.dueAt.toISOString(), waiting: new Date(waiting).toISOString() }, 'a due run of this schedule is already queued: it is the catch-up');
          continue;
        }
        await queue.add(m.task, { task: m.task, target: m.target, schedule: m.schedule }, { ...jobOpts, jobId: catchUpJobId(m) });
        await state.query(SQL.markCaughtUp, [m.id]);
        m.caughtUp = true;
        log.info({ entry: m.entryId, dueAt: m.dueAt.toISOString() }, 'catch-up run enqueued');
      } catch (err) {
        log.error({ entry: m.entryId, err: coerceError(err).message }, 'could not enqueue the catch-up run');
      }
    }
    try {
      await deps.onMissed?.(recorded);
    } catch (err) {
      log.error({ err: coerceError(err).message }, 'missed-run handler failed');
    }
    return recorded;
  };

  let chain: Promise<unknown> = Promise.resolve();
  const check = (): Promise<RecordedMissedRun[]> => {
    const run = chain.then(once);
    chain = outcomeOf(run)
      .then((outcome) => deps.onChecked?.(outcome))
      // The chain must stay resolved, or every later check would be skipped.
      .catch((err) => log.error({ err: coerceError(err).message }, 'could not report the missed-run check'));
    return run;
  };
  const initial = check();
  initial.catch((err) => log.error({ err: coerceError(err).message }, 'missed-run check failed; will retry'));

  const timer = setInterval(() => {
    if (closed) return;
    check().catch((err) => log.error({ err: coerceError(err).message }, 'missed-run check failed; will retry'));
  }, deps.intervalMs ?? MISSED_RUN_INTERVAL_MS);
  timer.unref();

  return {
    initial,
    check,
    async close() {
      closed = true;
      clearInterval(timer);
      await chain;
    },
  };
}
