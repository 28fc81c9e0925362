/**
 * What is wrong now, across the fleet: one row per scheduled (task, target)
 * with its state, last run, open findings and next due time, and every open
 * warning and critical. The console's page and `caretaker status` both
 * render this, so the browser and the terminal agree.
 *
 * A row's state, in this order:
 * - `missed`: its latest due fire time (plus grace) passed with no run, and
 *   the scheduler's missed-run watch recorded it (the `missed_run` alert
 *   went out);
 * - `late`: the same rule (the watch's own, `probeDueRuns`), not recorded
 *   yet (the watch has not looked, or the scheduler is down), for a check
 *   that ran before that due time; one that never ran is `never_ran`;
 * - otherwise the status of its latest run (`ok`, `warning`, `critical`,
 *   `error`), or `never_ran`; a run whose findings are waived counts as
 *   its worst finding that is not (`ok` when none is left).
 *
 * Waivers and silences (src/alerts/suppress) are read once per build: a
 * waived finding leaves the open findings, the counts and the state, and
 * is listed apart in `waived` with its waiver; a silenced one (a silence or
 * an open maintenance window) stays open, marked with why, who and until
 * when.
 */
import type { Queue } from 'bullmq';
import type { Pool } from 'pg';
import { EXIT_CODE, type RunStatus, type Severity } from '../contract/result';
import type { Config, TargetKind } from '../config/schema';
import { loadSuppressions } from '../alerts/suppress/suppressions';
import { globMatch, isGlob } from '../alerts/matchers';
import { silencedBy, waivedBy, type SilencedBy, type WaivedBy } from './suppressed';

export type { SilencedBy, WaivedBy } from './suppressed';
import type { OpenFinding } from '../reports/model';
import type { SchedulerEntry } from '../schedules/resolve';
import { probeDueRuns, type DueProbe } from '../schedules/missed-runs';
import type { JobData } from '../queue/queue';
import { coerceError } from '../errors';
import { redactSecretsIn } from '../logger';
import { withTimeout } from '../util/timeout';
import { STATUS_SQL } from './status.sql';
import { openFindingOf, type SeenFindingRow } from '../results/finding-sql';

export type CheckState = RunStatus | 'never_ran' | 'late' | 'missed';

/** Worst first: how the grid sorts and what a group of rows shows as its worst. */
export const STATE_RANK: Record<CheckState, number> = { critical: 6, missed: 5, late: 4, error: 3, warning: 2, never_ran: 1, ok: 0 };

/** Every state, the worst first. */
export const STATES_WORST_FIRST = (Object.keys(STATE_RANK) as CheckState[]).sort((a, b) => STATE_RANK[b] - STATE_RANK[a]);

/** The word each state shows as, beside its colour. */
export const STATE_LABEL: Record<CheckState, string> = {
  ok: 'ok',
  warning: 'warning',
  critical: 'critical',
  error: 'error',
  never_ran: 'never ran',
  late: 'late',
  missed: 'missed',
};

export interface LastRun {
  id: number;
  jobId?: string;
  status: RunStatus;
  dryRun: boolean;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  summary: string;
}

export interface CheckRow {
  /** The job scheduler's id, `<schedule>:<task>:<target>`. */
  id: string;
  schedule: string;
  task: string;
  target: string;
  targetKind: TargetKind;
  state: CheckState;
  lastRun?: LastRun;
  /** Open findings of the latest run that did its work (waived ones not counted). */
  open: { critical: number; warning: number };
  /** How many of its findings are waived; absent when none is. */
  waived?: number;
  /** How many of its open findings are silenced; absent when none is. */
  silenced?: number;
  /** The job scheduler's next fire time in Redis; undefined when Redis does not hold it (or could not be read). */
  nextDue?: string;
  /** For `late` and `missed`: the fire time that has no run. */
  dueAt?: string;
}

export interface OpenFindingRow extends OpenFinding {
  /** The stored run that carries it. */
  runId: number;
  /** Set while a silence or a maintenance window holds it back: it is still open. */
  silenced?: SilencedBy;
}

/** A finding a waiver accepts: not open, listed apart. */
export interface WaivedFindingRow extends OpenFinding {
  runId: number;
  waiver: WaivedBy;
}

export interface StatusFilter {
  task?: string;
  target?: string;
  /** Only findings of this severity (the rows are not filtered by it). */
  severity?: Exclude<Severity, 'info'>;
}

export interface StatusReport {
  generatedAt: string;
  checks: CheckRow[];
  findings: OpenFindingRow[];
  /** The findings that waivers accept, worst first (the severity filter applies to them too). */
  waived: WaivedFindingRow[];
  /**
   * Whether Redis answered with the job schedulers. When false, every
   * `nextDue` is unknown and `schedulersError` says why; when true, a row
   * without `nextDue` is a check Redis does not hold (not synced yet).
   */
  schedulersRead: boolean;
  schedulersError?: string;
}

/** Without a config: no maintenance window, no config waiver (the stored silences and waivers still apply). */
const NO_CONFIG_SUPPRESSIONS: Pick<Config, 'maintenance' | 'waivers' | 'timezone'> = { maintenance: [], waivers: [], timezone: 'UTC' };

/** How long the page waits for Redis to list the job schedulers: the page must render when Redis is away. */
const SCHEDULERS_TIMEOUT_MS = 3_000;

const SEVERITY_RANK: Record<Exclude<Severity, 'info'>, number> = { warning: 1, critical: 2 };

/** The key of a (task, target) pair in maps and sets. */
function pairKey(p: { task: string; target: string }): string {
  return `${p.task}\u0000${p.target}`;
}

function iso(value: Date | string): string {
  return (value instanceof Date ? value : new Date(value)).toISOString();
}

/** The scheduler entries a filter keeps. */
export function filterEntries(entries: readonly SchedulerEntry[], filter: StatusFilter = {}): SchedulerEntry[] {
  return entries.filter((e) => (!filter.task || e.task === filter.task) && (!filter.target || e.target === filter.target));
}

/**
 * Up to this many rows, their job schedulers are read one by one; more, and
 * all of them are listed at once (a check's page needs one of 1,204, which
 * listing costs ~40 ms at 200 targets).
 */
const READ_ONE_BY_ONE = 20;

/** Next fire time per scheduler id, from Redis; bounded, so a Redis that does not answer costs the page 3 s, not the page. */
async function nextDueTimes(queue: Queue<JobData> | undefined, ids: readonly string[]): Promise<{ next: Map<string, number>; error?: string }> {
  if (!queue) return { next: new Map(), error: 'redis not consulted' };
  try {
    const read =
      ids.length <= READ_ONE_BY_ONE
        ? Promise.all(ids.map((id) => queue.getJobScheduler(id))).then((all) => all.filter((s) => s !== undefined))
        : queue.getJobSchedulers(0, -1);
    const schedulers = await withTimeout(read, SCHEDULERS_TIMEOUT_MS, 'reading the job schedulers');
    return { next: new Map(schedulers.filter((s) => typeof s.next === 'number').map((s) => [s.key, s.next!])) };
  } catch (err) {
    return { next: new Map(), error: redactSecretsIn(coerceError(err).message) };
  }
}

/** The state of one row from its due-time probe, the recorded misses and its latest run. */
function stateOf(probe: DueProbe | undefined, recorded: boolean, lastRun: LastRun | undefined): CheckState {
  if (probe && !probe.ran) {
    if (recorded) return 'missed';
    if (probe.hadHistory) return 'late';
  }
  return lastRun ? lastRun.status : 'never_ran';
}

/** Rows grouped by target, the worst group first, the worst row first within a group. */
function sortChecks(rows: CheckRow[]): CheckRow[] {
  const worstOfTarget = new Map<string, number>();
  for (const r of rows) worstOfTarget.set(r.target, Math.max(worstOfTarget.get(r.target) ?? 0, STATE_RANK[r.state]));
  return rows.sort(
    (a, b) =>
      worstOfTarget.get(b.target)! - worstOfTarget.get(a.target)! ||
      a.target.localeCompare(b.target) ||
      STATE_RANK[b.state] - STATE_RANK[a.state] ||
      a.task.localeCompare(b.task) ||
      a.schedule.localeCompare(b.schedule),
  );
}

function compareFindings(a: OpenFinding, b: OpenFinding): number {
  return (
    SEVERITY_RANK[b.severity as 'warning' | 'critical'] - SEVERITY_RANK[a.severity as 'warning' | 'critical'] ||
    a.target.localeCompare(b.target) ||
    a.task.localeCompare(b.task) ||
    a.code.localeCompare(b.code) ||
    a.subject.localeCompare(b.subject)
  );
}

/**
 * A row's state once its waived findings are set aside: a finished run's
 * status is its worst finding, so it becomes the worst one left. Late,
 * missed, error and never-ran rows say nothing about findings: unchanged.
 */
function stateWithout(state: CheckState, lastRun: LastRun | undefined, findingsRun: number | undefined, open: { critical: number; warning: number }): CheckState {
  if ((state !== 'critical' && state !== 'warning') || lastRun?.id !== findingsRun) return state;
  const left: CheckState = open.critical > 0 ? 'critical' : open.warning > 0 ? 'warning' : 'ok';
  return STATE_RANK[left] < STATE_RANK[state] ? left : state;
}

/**
 * The fleet's status from the state database (six statements: four of its
 * own, two for the silences and waivers) and the job schedulers in Redis
 * (one call, bounded). Without `queue`, next due times are unknown;
 * without `suppress`, only the stored silences and waivers apply (none
 * from a config).
 */
export async function buildStatus(deps: {
  state: Pool;
  queue?: Queue<JobData>;
  /** Every enabled scheduler entry (`config.schedulers`). */
  entries: readonly SchedulerEntry[];
  filter?: StatusFilter;
  /** Read these (task, target) pairs' runs and findings even when no entry schedules them (a check's page). */
  alsoPairs?: readonly { task: string; target: string }[];
  /** The config's maintenance windows and waivers (and its timezone, for the windows' crons). */
  suppress?: Pick<Config, 'maintenance' | 'waivers' | 'timezone'>;
  now?: Date;
}): Promise<StatusReport> {
  const now = deps.now ?? new Date();
  const entries = filterEntries(deps.entries, deps.filter);
  const pairs = [...new Map([...entries, ...(deps.alsoPairs ?? [])].map((e) => [pairKey(e), { task: e.task, target: e.target }])).values()];
  const tasks = pairs.map((p) => p.task);
  const targets = pairs.map((p) => p.target);

  const [latest, open, probes, schedulers, suppressions] = await Promise.all([
    deps.state.query(STATUS_SQL.latestRuns, [tasks, targets]),
    deps.state.query<SeenFindingRow & { run_id: string }>(STATUS_SQL.openFindings, [tasks, targets]),
    probeDueRuns({ entries, state: deps.state, now }),
    nextDueTimes(deps.queue, entries.map((e) => e.id)),
    loadSuppressions(deps.state, deps.suppress ?? NO_CONFIG_SUPPRESSIONS, now),
  ]);

  const unran = probes.filter((p) => !p.ran).map((p) => p.due);
  const recorded = await deps.state.query<{ schedule: string; task: string; target: string }>(STATUS_SQL.recordedMisses, [
    unran.map((m) => m.schedule),
    unran.map((m) => m.task),
    unran.map((m) => m.target),
    unran.map((m) => m.dueAt.toISOString()),
  ]);
  const recordedIds = new Set(recorded.rows.map((r) => `${r.schedule}:${r.task}:${r.target}`));
  const probeById = new Map(probes.map((p) => [p.due.entryId, p]));

  const lastByPair = new Map<string, LastRun>();
  for (const r of latest.rows) {
    lastByPair.set(pairKey(r), {
      id: Number(r.id),
      ...(r.job_id ? { jobId: r.job_id } : {}),
      status: r.status,
      dryRun: r.dry_run,
      startedAt: iso(r.started_at),
      finishedAt: iso(r.finished_at),
      durationMs: r.duration_ms,
      summary: r.summary,
    });
  }

  const allFindings: OpenFindingRow[] = [];
  const allWaived: WaivedFindingRow[] = [];
  const openByPair = new Map<string, { critical: number; warning: number }>();
  const waivedByPair = new Map<string, number>();
  const silencedByPair = new Map<string, number>();
  /** The run each pair's findings come from (its latest that did its work). */
  const findingsRunByPair = new Map<string, number>();
  const bump = (m: Map<string, number>, key: string) => m.set(key, (m.get(key) ?? 0) + 1);
  for (const r of open.rows) {
    const f = { runId: Number(r.run_id), ...openFindingOf(r) };
    const key = pairKey(f);
    findingsRunByPair.set(key, f.runId);
    const waiver = suppressions.waiverFor(f);
    if (waiver) {
      allWaived.push({ ...f, waiver: waivedBy(waiver) });
      bump(waivedByPair, key);
      continue;
    }
    const hold = suppressions.holdFor(f);
    allFindings.push(hold ? { ...f, silenced: silencedBy(hold) } : f);
    if (hold) bump(silencedByPair, key);
    const counts = openByPair.get(key) ?? { critical: 0, warning: 0 };
    counts[f.severity as 'warning' | 'critical'] += 1;
    openByPair.set(key, counts);
  }

  const checks = entries.map((e): CheckRow => {
    const probe = probeById.get(e.id);
    const key = pairKey(e);
    const lastRun = lastByPair.get(key);
    const counts = openByPair.get(key) ?? { critical: 0, warning: 0 };
    const waived = waivedByPair.get(key) ?? 0;
    const silenced = silencedByPair.get(key) ?? 0;
    const asRun = stateOf(probe, recordedIds.has(e.id), lastRun);
    const state = waived > 0 ? stateWithout(asRun, lastRun, findingsRunByPair.get(key), counts) : asRun;
    const next = schedulers.next.get(e.id);
    return {
      id: e.id,
      schedule: e.schedule,
      task: e.task,
      target: e.target,
      targetKind: e.targetKind,
      state,
      ...(lastRun ? { lastRun } : {}),
      open: counts,
      ...(waived > 0 ? { waived } : {}),
      ...(silenced > 0 ? { silenced } : {}),
      ...(next !== undefined ? { nextDue: new Date(next).toISOString() } : {}),
      ...((state === 'late' || state === 'missed') && probe ? { dueAt: probe.due.dueAt.toISOString() } : {}),
    };
  });

  const severity = deps.filter?.severity;
  return {
    generatedAt: now.toISOString(),
    checks: sortChecks(checks),
    findings: allFindings.filter((f) => !severity || f.severity === severity).sort(compareFindings),
    waived: allWaived.filter((f) => !severity || f.severity === severity).sort(compareFindings),
    schedulersRead: schedulers.error === undefined,
    ...(schedulers.error !== undefined ? { schedulersError: schedulers.error } : {}),
  };
}

/** "2 critical, 1 late, 40 ok": the grid in one line, the worst first. */
export function stateCountsText(checks: readonly CheckRow[]): string {
  const parts = STATES_WORST_FIRST.map((s) => [s, checks.filter((c) => c.state === s).length] as const).filter(([, n]) => n > 0);
  return parts.length ? parts.map(([s, n]) => `${n} ${STATE_LABEL[s]}`).join(', ') : 'nothing scheduled';
}

/**
 * The monitoring-plugin status of the whole fleet, for `caretaker status`:
 * 2 when a finding is critical or a check is late or missed, else 1 when a
 * finding is a warning, else 3 when a check's latest run ended in error
 * (it could not look), else 0. Critical and warning outrank unknown, as in
 * check_multi: a fleet with one critical problem is critical, whatever else
 * could not be checked. Waived findings are not in `open` and do not
 * count; silenced ones still do (a silence quiets notifications, not the
 * check).
 */
export function statusExitCode(report: Pick<StatusReport, 'checks'>): number {
  const rows = report.checks;
  if (rows.some((r) => r.open.critical > 0 || r.state === 'critical' || r.state === 'late' || r.state === 'missed')) return EXIT_CODE.critical;
  if (rows.some((r) => r.open.warning > 0 || r.state === 'warning')) return EXIT_CODE.warning;
  if (rows.some((r) => r.state === 'error')) return EXIT_CODE.error;
  return EXIT_CODE.ok;
}

/**
 * The findings open now that `task` and `target` (exact or glob) cover,
 * waived ones included: what a new waiver on them would accept.
 */
export async function openProblems(deps: { state: Pool; entries: readonly SchedulerEntry[]; suppress?: Pick<Config, 'maintenance' | 'waivers' | 'timezone'>; now?: Date }, task: string, target: string): Promise<OpenFinding[]> {
  const entries = deps.entries.filter((e) => globMatch(task, e.task) && globMatch(target, e.target));
  const alsoPairs = isGlob(task) || isGlob(target) ? [] : [{ task, target }];
  const report = await buildStatus({ state: deps.state, entries, alsoPairs, ...(deps.suppress ? { suppress: deps.suppress } : {}), ...(deps.now ? { now: deps.now } : {}) });
  return [...report.findings, ...report.waived];
}
