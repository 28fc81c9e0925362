/**
 * capacity-plan (monthly): the runbook's "Capacity planning". Reads the
 * stored history (the metrics other tasks recorded), fits a least-squares
 * line per series over the last `days`, and projects when each reaches its
 * limit:
 *
 *   series          task          metric                    limit
 *   database_size   disk-check    database_size_bytes       disk_total_bytes (latest known)
 *   disk_used       disk-check    disk_used_ratio           1.0
 *   connections     connections   connections_used          connections_max (latest)
 *   queue_backlog   queue-health  queue_waiting_total       param backlogLimit
 *   redis_memory    redis-health  redis_used_memory_bytes   redis_maxmemory_bytes (latest, when set)
 *
 * One point per UTC day per series: that day's peak. Reads only caretaker's
 * state database, in one query; changes nothing.
 */
import { z } from 'zod';
import { defineTask, type FindingCodes } from '../contract/task';
import type { Finding } from '../contract/result';
import { formatBytes, formatPercent } from '../util/format';
import { didItsWork } from '../results/store';

export const SQL = {
  /** Every run of the listed tasks on the listed targets in the window, oldest first (runs_task_target_finished_at_idx). */
  history: `
    SELECT task, target, finished_at, result->'metrics' AS metrics
    FROM caretaker.runs
    WHERE task = ANY($1::text[]) AND target = ANY($2::text[])
      AND finished_at >= $3 AND finished_at <= $4
      AND ${didItsWork()}
    ORDER BY finished_at, id`,
} as const;

const DAY_MS = 86_400_000;

export interface SeriesPoint {
  at: Date;
  value: number;
}

export interface Projection {
  points: number;
  spanDays: number;
  /** Fitted change per day (units of the series). */
  slopePerDay: number;
  /** The fitted value at the last point's time. */
  fittedLast: number;
  /** When the fitted line reaches the limit; undefined when flat or falling. */
  projectedAt?: Date;
}

/**
 * Least-squares line through the points (value against time) and where it
 * crosses `limit`. Pure: the task and its tests share it. Undefined with
 * fewer than two distinct times.
 */
export function projectExhaustion(points: readonly SeriesPoint[], limit: number): Projection | undefined {
  if (points.length < 2) return undefined;
  const t0 = points[0]!.at.getTime();
  const xs = points.map((p) => (p.at.getTime() - t0) / DAY_MS);
  const ys = points.map((p) => p.value);
  const n = points.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i < n; i++) {
    sxx += (xs[i]! - mx) ** 2;
    sxy += (xs[i]! - mx) * (ys[i]! - my);
  }
  if (sxx === 0) return undefined;
  const slope = sxy / sxx;
  const intercept = my - slope * mx;
  const lastX = xs[n - 1]!;
  const projection: Projection = {
    points: n,
    spanDays: lastX - xs[0]!,
    slopePerDay: slope,
    fittedLast: intercept + slope * lastX,
  };
  // Rising by less than a millionth of the limit a day is flat (> 2700 years to go).
  if (slope > Math.abs(limit) * 1e-6) {
    const x = (limit - intercept) / slope;
    const at = t0 + x * DAY_MS;
    if (Number.isFinite(at) && Math.abs(at) < 8.64e15) projection.projectedAt = new Date(at);
  }
  return projection;
}

/** One point per UTC day: the day's highest value, at the time it was seen. */
export function dailyPeaks(points: readonly SeriesPoint[]): SeriesPoint[] {
  const byDay = new Map<number, SeriesPoint>();
  for (const p of points) {
    const day = Math.floor(p.at.getTime() / DAY_MS);
    const seen = byDay.get(day);
    if (!seen || p.value > seen.value) byDay.set(day, p);
  }
  return [...byDay.values()].sort((a, b) => a.at.getTime() - b.at.getTime());
}

interface SeriesSpec {
  series: string;
  label: string;
  task: string;
  metric: string;
  /** The limit from the latest run's metrics, or a fixed one; undefined: unknown. */
  limit: (latest: Record<string, number> | undefined, p: Params) => number | undefined;
  format: (v: number) => string;
  limitName: string;
  suggestion: string;
}

const bytes = (v: number) => formatBytes(Math.round(v));
const count = (v: number) => String(Math.round(v * 10) / 10);
const pct = (ratio: number) => formatPercent(ratio, 1);
const positive = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : undefined);

const POSTGRES_SERIES: SeriesSpec[] = [
  {
    series: 'database_size', label: 'database size', task: 'disk-check', metric: 'database_size_bytes', format: bytes,
    limit: (m) => positive(m?.disk_total_bytes), limitName: 'the disk size',
    suggestion: 'Grow the volume, archive or partition the largest tables, or check for bloat (disk-check, vacuum-analyze)',
  },
  {
    series: 'disk_used', label: 'disk usage', task: 'disk-check', metric: 'disk_used_ratio', format: pct,
    limit: () => 1, limitName: 'a full disk',
    suggestion: 'Grow the volume before it fills; PostgreSQL stops accepting writes on a full disk',
  },
  {
    series: 'connections', label: 'connections peak', task: 'connections', metric: 'connections_used', format: count,
    limit: (m) => positive(m?.connections_max), limitName: 'max_connections',
    suggestion: 'Put a pooler (PgBouncer) in front or lower pool sizes before raising max_connections',
  },
];
const QUEUE_SERIES: SeriesSpec[] = [
  {
    series: 'queue_backlog', label: 'queue backlog', task: 'queue-health', metric: 'queue_waiting_total', format: count,
    limit: (_m, p) => p.backlogLimit, limitName: 'the backlog bound',
    suggestion: 'Add worker capacity (replicas, concurrency) or find the slow job types before the backlog bound is reached',
  },
];
const REDIS_SERIES: SeriesSpec[] = [
  {
    series: 'redis_memory', label: 'Redis memory', task: 'redis-health', metric: 'redis_used_memory_bytes', format: bytes,
    limit: (m) => positive(m?.redis_maxmemory_bytes), limitName: 'maxmemory',
    suggestion: 'Raise maxmemory (and the pod/instance memory), or set TTLs / an eviction policy on cache keys',
  },
];

const codes = {
  capacity_exhausted_soon: "a series' trend reaches its limit within `warningDays` (critical within `criticalDays`)",
  capacity_insufficient_history: 'a series with fewer than `minPoints` daily points over `minDays` days: not projected',
} satisfies FindingCodes;
type Code = keyof typeof codes;

const params = z
  .strictObject({
    /** How much history the trend is fitted over. */
    days: z.number().int().min(7).max(3650).default(90),
    /** A series needs at least this many daily points... */
    minPoints: z.number().int().min(2).max(1000).default(4),
    /** ...spanning at least this many days, or it gets `capacity_insufficient_history` instead of a guess. */
    minDays: z.number().min(1).max(3650).default(14),
    /** Exhaustion projected within this many days is critical... */
    criticalDays: z.number().min(0).max(3650).default(30),
    /** ...and within this many a warning. */
    warningDays: z.number().min(0).max(3650).default(90),
    /** The queue backlog bound (the runbook's "queue length < 100"). */
    backlogLimit: z.number().int().min(1).default(100),
  })
  .refine((p) => p.criticalDays <= p.warningDays, { error: 'criticalDays must not be above warningDays', path: ['criticalDays'] });
type Params = z.infer<typeof params>;

interface Row {
  task: string;
  target: string;
  finished_at: Date;
  metrics: Record<string, number> | null;
}

const runsKey = (task: string, target: string) => `${task}\u0000${target}`;

/** `database_size`, `Main-DB` → `days_to_exhaustion_database_size_main_db` (a metric name). */
const metricKey = (series: string, target: string) => `days_to_exhaustion_${series}_${target.toLowerCase().replace(/[^a-z0-9]+/g, '_')}`;

export const capacityPlan = defineTask({
  name: 'capacity-plan',
  description: 'Projects database size, disk, connections, queue backlog and Redis memory to their limits from the stored history',
  target: 'caretaker',
  defaultSchedule: 'monthly',
  timeoutMs: 5 * 60_000,
  changesTarget: false,
  params,
  codes,
  async run(ctx, p) {
    const now = new Date();
    const wanted: { target: string; spec: SeriesSpec }[] = [
      ...ctx.target.targets.postgres.flatMap((t) => POSTGRES_SERIES.map((spec) => ({ target: t.name, spec }))),
      ...ctx.target.targets.queues.flatMap((t) => QUEUE_SERIES.map((spec) => ({ target: t.name, spec }))),
      ...ctx.target.targets.redis.flatMap((t) => REDIS_SERIES.map((spec) => ({ target: t.name, spec }))),
    ];
    if (wanted.length === 0) return { summary: 'no postgres, queues or redis targets configured: nothing to plan', findings: [] };

    const tasks = [...new Set(wanted.map((w) => w.spec.task))];
    const targets = [...new Set(wanted.map((w) => w.target))];
    const { rows } = await ctx.clients.state.query<Row>(SQL.history, [tasks, targets, new Date(now.getTime() - p.days * DAY_MS), now]);
    // Each series reads its task's runs on its target: grouped once (oldest first still), not filtered out of every row per series.
    const runsOf = new Map<string, { at: Date; metrics: Record<string, number> }[]>();
    for (const r of rows) {
      if (!r.metrics) continue;
      const key = runsKey(r.task, r.target);
      if (!runsOf.has(key)) runsOf.set(key, []);
      runsOf.get(key)!.push({ at: new Date(r.finished_at), metrics: r.metrics });
    }

    const findings: Finding<Code>[] = [];
    const metrics: Record<string, number> = {};
    let soon = 0;
    let rising = 0;
    let steady = 0;
    let needHistory = 0;
    const noLimit: string[] = [];
    let minDays = Infinity;

    for (const { target, spec } of wanted) {
      const subject = `${target}/${spec.series}`;
      const runs = runsOf.get(runsKey(spec.task, target)) ?? [];
      const raw = runs.flatMap((r) => {
        const v = r.metrics[spec.metric];
        return typeof v === 'number' && Number.isFinite(v) ? [{ at: r.at, value: v }] : [];
      });
      const points = dailyPeaks(raw);
      const latest = runs.findLast((r) => spec.limit(r.metrics, p) !== undefined)?.metrics;
      const limit = spec.limit(latest, p);

      const span = points.length > 1 ? (points[points.length - 1]!.at.getTime() - points[0]!.at.getTime()) / DAY_MS : 0;
      if (points.length < p.minPoints || span < p.minDays) {
        needHistory++;
        const moreDays = Math.max(0, Math.ceil(p.minDays - span));
        const morePoints = Math.max(0, p.minPoints - points.length);
        const need = [morePoints > 0 ? `${morePoints} more daily ${spec.task} runs` : '', moreDays > 0 ? `about ${moreDays} more days` : '']
          .filter(Boolean)
          .join(' and ');
        findings.push({
          severity: 'info',
          code: 'capacity_insufficient_history',
          subject,
          message: `${target} ${spec.label}: ${points.length} daily points over ${span.toFixed(1)} days of ${spec.task} history; a projection needs ${p.minPoints} points over ${p.minDays} days (${need})`,
          suggestion: points.length === 0 ? `Schedule ${spec.task} on ${target} (and keep state.retentionDays above ${p.days})` : undefined,
          details: { task: spec.task, metric: spec.metric, points: points.length, spanDays: span, minPoints: p.minPoints, minDays: p.minDays, morePoints, moreDays },
        });
        continue;
      }
      if (limit === undefined) {
        noLimit.push(subject);
        continue;
      }
      const proj = projectExhaustion(points, limit);
      if (!proj || proj.projectedAt === undefined) {
        steady++;
        continue;
      }
      rising++;
      const days = Math.max(0, (proj.projectedAt.getTime() - now.getTime()) / DAY_MS);
      metrics[metricKey(spec.series, target)] = round(days);
      minDays = Math.min(minDays, days);
      if (days >= p.warningDays) continue;
      soon++;
      const severity = days < p.criticalDays ? 'critical' : 'warning';
      const last = points[points.length - 1]!;
      const date = proj.projectedAt.toISOString().slice(0, 10);
      findings.push({
        severity,
        code: 'capacity_exhausted_soon',
        subject,
        message: `${target} ${spec.label} reaches ${spec.limitName} (${spec.format(limit)}) around ${date}, in ${Math.floor(days)} days: now ${spec.format(last.value)}, growing ${spec.format(proj.slopePerDay)} a day`,
        suggestion: spec.suggestion,
        details: {
          task: spec.task,
          metric: spec.metric,
          limit,
          lastValue: last.value,
          lastAt: last.at.toISOString(),
          slopePerDay: proj.slopePerDay,
          fittedLast: proj.fittedLast,
          projectedAt: proj.projectedAt.toISOString(),
          daysToExhaustion: round(days),
          points: proj.points,
          spanDays: round(proj.spanDays),
          criticalDays: p.criticalDays,
          warningDays: p.warningDays,
        },
      });
    }
    if (Number.isFinite(minDays)) metrics.days_to_exhaustion_min = round(minDays);
    metrics.capacity_series_checked = wanted.length;

    const parts = [`${wanted.length} series over ${p.days} days`];
    parts.push(soon > 0 ? `${soon} reach their limit within ${p.warningDays} days` : 'none reaches its limit within ' + `${p.warningDays} days`);
    if (rising - soon > 0) parts.push(`${rising - soon} rising slowly`);
    if (steady > 0) parts.push(`${steady} flat or falling`);
    if (needHistory > 0) parts.push(`${needHistory} need more history`);
    if (noLimit.length > 0) parts.push(`${noLimit.length} without a known limit`);
    return { summary: parts.join(', '), findings, metrics };
  },
});

const round = (v: number) => Math.round(v * 100) / 100;
