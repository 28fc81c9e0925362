/**
 * Builds the WeeklyReport of one ISO week from the results store: a fixed
 * number of queries (src/reports/weekly-data.sql.ts, and two for the
 * silences and waivers), whatever the history's or the fleet's size.
 * Everything the report needs beyond the state database is passed in.
 */
import type { Pool } from 'pg';
import type { RunStatus, Severity } from '../contract/result';
import type { BackupFigures, OpenFinding, ReportChecklist, ReportWeek, TaskRuns, Trend, WeeklyReport } from './model';
import { judgeFindings, loadReportSuppressions, reportInstant, type ReportSuppressConfig } from './suppressed';
import { WEEKLY_SQL } from './weekly-data.sql';
import { openFindingOf, type SeenFindingRow } from '../results/finding-sql';
import { weeksBefore } from './week';
import { nextFireTimes } from '../schedules/cron';
import { redactSecretsIn } from '../logger';
import type { ChecklistItem, Config } from '../config/schema';
import { ChecklistStore } from '../checklist/store';
import { checklistStandings } from '../checklist/standings';
import type { EmailSettings } from '../clients/smtp';

/** How many weeks the trend charts cover, the report's week included. */
export const TREND_WEEKS = 12;

/** The trend charts: which task's metric, under which name. */
export const TREND_METRICS: readonly { metric: string; task: string; source: string; title: string; unit: Trend['unit'] }[] = [
  { metric: 'database_size_bytes', task: 'disk-check', source: 'database_size_bytes', title: 'Database size', unit: 'bytes' },
  { metric: 'connections_peak', task: 'connections', source: 'connections_used', title: 'Connections (peak)', unit: 'count' },
  { metric: 'queue_backlog', task: 'queue-health', source: 'queue_waiting_total', title: 'Queue backlog (waiting jobs)', unit: 'count' },
  { metric: 'slow_queries', task: 'slow-queries', source: 'slow_queries', title: 'Slow queries', unit: 'count' },
  { metric: 'restore_seconds', task: 'restore-test', source: 'restore_seconds', title: 'Restore time', unit: 'seconds' },
];

export interface ExpectedRun {
  task: string;
  target: string;
}

export interface BuildOptions {
  week: ReportWeek;
  title: string;
  /** The (task, target) pairs scheduled to run in the week (see expectedInWeek). */
  expected: readonly ExpectedRun[];
  /**
   * The config's maintenance windows and waivers (and its timezone, for the
   * windows' crons). Without it only the stored silences and waivers apply.
   */
  suppress?: ReportSuppressConfig;
  /** The config's checklist items: the report lists what was done in the week and what is overdue. */
  checklist?: readonly ChecklistItem[];
  now?: Date;
}

const SEVERITY_RANK: Record<Severity, number> = { info: 0, warning: 1, critical: 2 };
const STATUS_BY_RANK: RunStatus[] = ['ok', 'warning', 'critical', 'error'];

/**
 * What the weekly report needs from the config besides the state database.
 * The caretaker self-target carries it (as `report`), so the scheduled task
 * sees the same settings as `caretaker report weekly`.
 */
export interface ReportSettings {
  title: string;
  /** The zone the ISO weeks are cut in. */
  timezone: string;
  /** The web role's public URL: the email links to `${publicUrl}/reports/<week>`. */
  publicUrl?: string;
  email?: EmailSettings;
  /** Every enabled scheduler (task, target, cron), to tell which runs were due in a week. */
  schedulers: { task: string; target: string; cron: string; timezone: string }[];
  /** The config's waivers: their findings leave the open list. */
  waivers: Config['waivers'];
  /** The config's maintenance windows: their findings are shown silenced. */
  maintenance: Config['maintenance'];
  /** The config's checklist items. */
  checklist: ChecklistItem[];
}

/** The report settings of a validated config. */
export function reportSettingsOf(config: Config): ReportSettings {
  return {
    title: config.report.title,
    timezone: config.timezone,
    ...(config.web.publicUrl ? { publicUrl: config.web.publicUrl } : {}),
    ...(config.notifications.email ? { email: config.notifications.email } : {}),
    // Resolved once, when the config was loaded.
    schedulers: config.schedulers,
    waivers: config.waivers,
    maintenance: config.maintenance,
    checklist: config.checklist,
  };
}

/** The key of a (task, target) pair in maps and sets. */
function pairKey(p: { task: string; target: string }): string {
  return `${p.task}\u0000${p.target}`;
}

/** The scheduled (task, target) pairs whose cron fires inside the week (and before `now`). */
export function expectedInWeek(
  entries: readonly { task: string; target: string; cron: string; timezone: string }[],
  week: ReportWeek,
  now: Date = new Date(),
): ExpectedRun[] {
  const until = Math.min(new Date(week.end).getTime(), now.getTime());
  const seen = new Set<string>();
  const out: ExpectedRun[] = [];
  for (const e of entries) {
    const key = pairKey(e);
    if (seen.has(key)) continue;
    const [next] = nextFireTimes(e.cron, e.timezone, 1, new Date(new Date(week.start).getTime() - 1));
    if (next && next.getTime() < until) {
      seen.add(key);
      out.push({ task: e.task, target: e.target });
    }
  }
  return out;
}

function identity(f: { task: string; target: string; code: string; subject: string }): string {
  return [f.task, f.target, f.code, f.subject].join('\u0000');
}

/** Worst first, then grouped by target and task, then code and subject. */
function compareFindings(a: OpenFinding, b: OpenFinding): number {
  return (
    SEVERITY_RANK[b.severity] - SEVERITY_RANK[a.severity] ||
    a.target.localeCompare(b.target) ||
    a.task.localeCompare(b.task) ||
    a.code.localeCompare(b.code) ||
    a.subject.localeCompare(b.subject)
  );
}

function iso(value: Date | string | null | undefined): string | undefined {
  if (value === null || value === undefined) return undefined;
  return (value instanceof Date ? value : new Date(value)).toISOString();
}

function num(metrics: Record<string, unknown> | null | undefined, key: string): number | undefined {
  const v = metrics?.[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** "all clear", "1 warning", "2 critical, 5 warnings". */
export function headlineText(critical: number, warning: number): string {
  const parts: string[] = [];
  if (critical > 0) parts.push(`${critical} critical`);
  if (warning > 0) parts.push(`${warning} warning${warning === 1 ? '' : 's'}`);
  return parts.length === 0 ? 'all clear' : parts.join(', ');
}

/** The report of `week` from the state database. */
export async function buildWeeklyReport(pool: Pool, opts: BuildOptions): Promise<WeeklyReport> {
  const { week } = opts;
  const previous = weeksBefore(week, 1);
  const trendWeeks = Array.from({ length: TREND_WEEKS }, (_, i) => weeksBefore(week, TREND_WEEKS - 1 - i));
  const start = new Date(week.start);
  const end = new Date(week.end);
  const now = opts.now ?? new Date();
  const asOf = reportInstant(week, now);

  const [open, runs, maintenance, backups, trends, notifier, missed, suppressions, checklist] = await Promise.all([
    pool.query<SeenFindingRow & { which: 'current' | 'previous' }>(WEEKLY_SQL.openFindings, [end, new Date(previous.end)]),
    pool.query(WEEKLY_SQL.taskRuns, [start, end]),
    pool.query<{ kind: string; count: number }>(WEEKLY_SQL.maintenance, [start, end]),
    pool.query(WEEKLY_SQL.backups, [end]),
    pool.query(WEEKLY_SQL.trends, [
      new Date(trendWeeks[0]!.start),
      end,
      trendWeeks.map((w) => w.id),
      trendWeeks.map((w) => w.start),
      trendWeeks.map((w) => w.end),
      TREND_METRICS.map((t) => t.task),
      TREND_METRICS.map((t) => t.source),
    ]),
    pool.query<{ channel: string; count: number; last_error: string }>(WEEKLY_SQL.notifierFailures, [start, end]),
    pool.query<{ schedule: string; task: string; target: string; due_at: Date }>(WEEKLY_SQL.missedRuns, [start, end]),
    loadReportSuppressions(pool, opts.suppress ?? { maintenance: [], waivers: [], timezone: week.timezone }, asOf),
    reportChecklist(pool, opts.checklist ?? [], start, end, asOf),
  ]);

  // Findings now and a week ago; the waived ones set apart; the difference.
  const reported: OpenFinding[] = [];
  const before = new Map<string, OpenFinding>();
  for (const r of open.rows) {
    const f = openFindingOf(r);
    if (r.which === 'current') reported.push(f);
    else before.set(identity(f), f);
  }
  reported.sort(compareFindings);
  const { open: current, waived, expiring } = judgeFindings(reported, suppressions);
  // A finding still reported but waived now has not been resolved.
  const currentIds = new Set(reported.map(identity));
  const newOnes = current.filter((f) => !before.has(identity(f)));
  const resolved = [...before.values()]
    .filter((f) => !currentIds.has(identity(f)))
    .sort(compareFindings)
    .map(({ task, target, code, subject, severity, message }) => ({ task, target, code, subject, severity, message }));

  const critical = current.filter((f) => f.severity === 'critical').length;
  const warning = current.length - critical;

  // Runs per (task, target): every pair that ran this week, and every pair that was due.
  const expected = new Set(opts.expected.map(pairKey));
  const byPair = new Map<string, TaskRuns>();
  for (const r of runs.rows) {
    const ran = Number(r.runs);
    const key = pairKey(r);
    if (ran === 0 && !expected.has(key)) continue;
    byPair.set(key, {
      task: r.task,
      target: r.target,
      runs: ran,
      failures: Number(r.failures),
      ...(r.worst !== null ? { worst: STATUS_BY_RANK[r.worst as number] } : {}),
      ...(r.last_success ? { lastSuccess: iso(r.last_success) } : {}),
      neverRan: ran === 0,
    });
  }
  for (const e of opts.expected) {
    const key = pairKey(e);
    if (!byPair.has(key)) byPair.set(key, { task: e.task, target: e.target, runs: 0, failures: 0, neverRan: true });
  }
  const tasks = [...byPair.values()].sort(
    (a, b) => Number(b.neverRan) - Number(a.neverRan) || b.failures - a.failures || a.task.localeCompare(b.task) || a.target.localeCompare(b.target),
  );

  // Backup and DR figures per backups target.
  const figures = new Map<string, BackupFigures>();
  for (const r of backups.rows) {
    const fig: BackupFigures = figures.get(r.target) ?? { target: r.target };
    figures.set(r.target, fig);
    const at = iso(r.finished_at)!;
    if (r.task === 'backup-verify') {
      const age = num(r.metrics, 'backup_age_seconds');
      if (age !== undefined) fig.newestBackupAgeSeconds = age;
    } else if (r.task === 'restore-test') {
      const restoreSeconds = num(r.metrics, 'restore_seconds');
      fig.lastRestoreTest = { at, status: r.status, ...(restoreSeconds !== undefined ? { restoreSeconds } : {}) };
    } else {
      const rtoSeconds = num(r.metrics, 'rto_seconds');
      const rpoSeconds = num(r.metrics, 'rpo_seconds');
      fig.lastDrill = { at, status: r.status, ...(rtoSeconds !== undefined ? { rtoSeconds } : {}), ...(rpoSeconds !== undefined ? { rpoSeconds } : {}) };
    }
  }

  // Trends: one point per week (undefined where nothing ran), one series per target.
  const values = new Map<string, Map<string, Map<string, number>>>();
  for (const r of trends.rows) {
    const byTarget = values.get(r.metric) ?? new Map<string, Map<string, number>>();
    values.set(r.metric, byTarget);
    const byWeek = byTarget.get(r.target) ?? new Map<string, number>();
    byTarget.set(r.target, byWeek);
    byWeek.set(r.week, Number(r.value));
  }
  const trendList: Trend[] = TREND_METRICS.map((t) => ({
    metric: t.metric,
    title: t.title,
    unit: t.unit,
    series: [...(values.get(t.source)?.entries() ?? [])]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([target, byWeek]) => ({ target, points: trendWeeks.map(({ id }) => ({ week: id, ...(byWeek.has(id) ? { value: byWeek.get(id) } : {}) })) })),
  }));

  return {
    title: opts.title,
    week,
    generatedAt: now.toISOString(),
    asOf: asOf.toISOString(),
    headline: { critical, warning, text: headlineText(critical, warning) },
    open: current,
    waived,
    expiringWaivers: expiring,
    changes: { new: newOnes, resolved, stillOpen: current.length - newOnes.length },
    tasks,
    maintenance: { actions: maintenance.rows.map((r) => ({ kind: r.kind, count: Number(r.count) })) },
    backups: [...figures.values()].sort((a, b) => a.target.localeCompare(b.target)),
    trends: trendList,
    notifierFailures: notifier.rows.map((r) => ({ channel: r.channel, count: Number(r.count), lastError: redactSecretsIn(r.last_error) })),
    missedRuns: missed.rows.map((r) => ({ schedule: r.schedule, task: r.task, target: r.target, due: iso(r.due_at)! })),
    checklist,
  };
}

/** What was marked done in [start, end), and what is overdue at `asOf`, of the enabled items. */
async function reportChecklist(pool: Pool, items: readonly ChecklistItem[], start: Date, end: Date, asOf: Date): Promise<ReportChecklist> {
  const enabled = items.filter((i) => i.enabled);
  if (enabled.length === 0) return { items: 0, done: [], overdue: [] };
  const titles = new Map(items.map((i) => [i.id, i.title]));
  const [done, standings] = await Promise.all([new ChecklistStore(pool).doneBetween(start, end), checklistStandings(pool, enabled, asOf, { record: false })]);
  return {
    items: enabled.length,
    // An item since removed from the config keeps its id as its title.
    done: done.map((d) => ({ item: d.item, title: titles.get(d.item) ?? d.item, at: d.at.toISOString(), by: d.by, ...(d.note ? { note: d.note } : {}) })),
    overdue: standings
      .filter((r) => r.standing.state === 'overdue')
      .sort((a, b) => a.standing.dueSince!.getTime() - b.standing.dueSince!.getTime())
      .map((r) => ({ item: r.item.id, title: r.item.title, dueSince: r.standing.dueSince!.toISOString(), overdueAt: r.standing.overdueAt!.toISOString(), ...(r.item.link ? { link: r.item.link } : {}) })),
  };
}
