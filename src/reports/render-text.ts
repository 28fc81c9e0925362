/**
 * The weekly report as plain text: the email's text part and the CLI's
 * output. Says the same as the HTML, worst first; trends as figures.
 */
import type { OpenFinding, ReportWaiver, Trend, WeeklyReport } from './model';
import { expiresSoon, EXPIRING_WAIVER_DAYS } from './suppressed';
import { formatBytes, formatDuration } from '../util/format';
import { formatInZone } from '../schedules/cron';

/** A trend value in its unit. */
export function formatValue(value: number, unit: Trend['unit']): string {
  if (unit === 'bytes') return formatBytes(value);
  if (unit === 'seconds') return formatDuration(value * 1000);
  if (unit === 'ratio') return `${(value * 100).toFixed(1)} %`;
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

/** An instant as the report's reader reads it: `2026-11-29 03:00:00 CET`. */
export function formatWhen(iso: string, timezone: string): string {
  return formatInZone(new Date(iso), timezone);
}

/** "2026-11-23 to 2026-11-29 (Europe/Berlin)": the week's days, end inclusive. */
export function weekSpan(report: Pick<WeeklyReport, 'week'>): string {
  const { start, end, timezone } = report.week;
  const first = formatInZone(new Date(start), timezone).slice(0, 10);
  const last = formatInZone(new Date(new Date(end).getTime() - 1), timezone).slice(0, 10);
  return `${first} to ${last} (${timezone})`;
}

/** Open findings grouped by target, then task, in report order. */
export function groupFindings<F extends OpenFinding>(findings: readonly F[]): { target: string; tasks: { task: string; findings: F[] }[] }[] {
  const groups: { target: string; tasks: { task: string; findings: F[] }[] }[] = [];
  for (const f of findings) {
    let g = groups.find((x) => x.target === f.target);
    if (!g) groups.push((g = { target: f.target, tasks: [] }));
    let t = g.tasks.find((x) => x.task === f.task);
    if (!t) g.tasks.push((t = { task: f.task, findings: [] }));
    t.findings.push(f);
  }
  return groups;
}

/** "Open findings (3, 1 silenced)": the open list's count, and how many of them are silenced. */
export function openCountText(report: Pick<WeeklyReport, 'open'>): string {
  const silenced = report.open.filter((f) => f.silenced).length;
  return `${report.open.length}${silenced > 0 ? `, ${silenced} silenced` : ''}`;
}

/** `task=connections target=main code=idle_in_transaction subject=*`: what a waiver matches. */
export function waiverMatchText(w: Pick<ReportWaiver, 'match'>): string {
  return (['task', 'target', 'code', 'subject'] as const).map((k) => `${k}=${w.match[k]}`).join(' ');
}

/** "expires 2026-12-10 00:00:00 UTC", or "never expires". */
export function expiryText(w: Pick<ReportWaiver, 'expiresAt'>, timezone: string): string {
  return w.expiresAt ? `expires ${formatWhen(w.expiresAt, timezone)}` : 'never expires';
}

/** "waiver 3 accepts up to warning": why a finding that matches a waiver is open again. */
export function outgrewText(w: Pick<ReportWaiver, 'id' | 'severity'>): string {
  return `waiver ${w.id} accepts up to ${w.severity}`;
}

/** The last value of each series with data, and the 12-week range. */
export function trendFigures(trend: Trend): { target: string; last?: number; min?: number; max?: number }[] {
  return trend.series.map((s) => {
    const vals = s.points.map((p) => p.value).filter((v): v is number => v !== undefined);
    return { target: s.target, last: vals.at(-1), min: vals.length ? Math.min(...vals) : undefined, max: vals.length ? Math.max(...vals) : undefined };
  });
}

export function renderText(report: WeeklyReport, opts: { link?: string } = {}): string {
  const tz = report.week.timezone;
  const out: string[] = [];
  const line = (s = '') => out.push(s);

  line(`${report.title}: weekly report ${report.week.id}, ${weekSpan(report)}`);
  line(`${report.headline.text.toUpperCase()}`);
  if (opts.link) line(`On the web: ${opts.link}`);
  line();
  if (report.missedRuns.length > 0) {
    line(`Missed runs (${report.missedRuns.length})`);
    for (const m of report.missedRuns) line(`  ${m.task} on ${m.target} (${m.schedule}), due ${formatWhen(m.due, tz)}`);
    line();
  }
  if (report.notifierFailures.length > 0) {
    line('Notifier failures (alerts that did not go out)');
    for (const n of report.notifierFailures) line(`  ${n.channel}: ${n.count} failure${n.count === 1 ? '' : 's'}, last: ${n.lastError}`);
    line();
  }

  line(`Open findings at the end of the week (${openCountText(report)})`);
  if (report.open.length === 0) line('  none');
  for (const g of groupFindings(report.open)) {
    line(`  ${g.target}`);
    for (const t of g.tasks) {
      line(`    ${t.task}`);
      for (const f of t.findings) {
        line(`      [${f.severity.toUpperCase()}]${f.silenced ? ' [SILENCED]' : ''} ${f.code} ${f.subject}: ${f.message} (since ${formatWhen(f.firstSeen, tz)})`);
        if (f.silenced) line(`        ${f.silenced.text}`);
        if (f.outgrew) line(`        open again: ${outgrewText(f.outgrew)}`);
        if (f.suggestion) line(`        -> ${f.suggestion}`);
      }
    }
  }
  line();

  if (report.waived.length > 0) {
    line(`Waived (${report.waived.length})`);
    for (const f of report.waived) {
      const w = f.waiver;
      line(`  [${f.severity}] ${f.task} on ${f.target}: ${f.code} ${f.subject}: ${f.message}`);
      line(`    waived by ${w.by} (waiver ${w.id}), ${expiryText(w, tz)}${expiresSoon(w, report.asOf) ? ' (soon)' : ''}: ${w.reason}`);
    }
    line();
  }
  if (report.expiringWaivers.length > 0) {
    line(`Waivers expiring within ${EXPIRING_WAIVER_DAYS} days (${report.expiringWaivers.length})`);
    for (const w of report.expiringWaivers) {
      line(`  waiver ${w.id} (${waiverMatchText(w)}), by ${w.by}, ${expiryText(w, tz)}, waives ${w.covers} finding${w.covers === 1 ? '' : 's'}: ${w.reason}`);
    }
    line();
  }

  const c = report.changes;
  line(`Since last week: ${c.new.length} new, ${c.resolved.length} resolved, ${c.stillOpen} still open`);
  for (const f of c.new) line(`  new:      [${f.severity}] ${f.task} on ${f.target}: ${f.code} ${f.subject}`);
  for (const f of c.resolved) line(`  resolved: [${f.severity}] ${f.task} on ${f.target}: ${f.code} ${f.subject}`);
  line();

  line('Runs this week');
  if (report.tasks.length === 0) line('  none');
  for (const t of report.tasks) {
    if (t.neverRan) {
      line(`  ${t.task} on ${t.target}: NEVER RAN${t.lastSuccess ? ` (last success ${formatWhen(t.lastSuccess, tz)})` : ''}`);
    } else {
      const last = t.lastSuccess ? `last success ${formatWhen(t.lastSuccess, tz)}` : 'no success yet';
      line(`  ${t.task} on ${t.target}: ${t.runs} run${t.runs === 1 ? '' : 's'}, ${t.failures} failed, worst ${t.worst ?? 'n/a'}, ${last}`);
    }
  }
  line();

  line('Maintenance done');
  if (report.maintenance.actions.length === 0) line('  none');
  for (const a of report.maintenance.actions) line(`  ${a.kind}: ${a.count}`);

  if (report.checklist.items > 0) {
    const { done, overdue } = report.checklist;
    line();
    line(`Checklist (${done.length} done this week, ${overdue.length} overdue)`);
    for (const o of overdue) line(`  [OVERDUE] ${o.title} (${o.item}): due since ${formatWhen(o.dueSince, tz)}, overdue since ${formatWhen(o.overdueAt, tz)}${o.link ? `: ${o.link}` : ''}`);
    for (const d of done) line(`  [DONE] ${d.title} (${d.item}) by ${d.by}, ${formatWhen(d.at, tz)}${d.note ? `: ${d.note}` : ''}`);
    if (done.length === 0 && overdue.length === 0) line('  nothing done, nothing overdue');
  }
  line();

  line('Backups and DR');
  if (report.backups.length === 0) line('  no backup checks recorded');
  for (const b of report.backups) {
    const parts: string[] = [];
    parts.push(b.newestBackupAgeSeconds !== undefined ? `newest backup ${formatDuration(b.newestBackupAgeSeconds * 1000)} old` : 'newest backup: unknown');
    if (b.lastRestoreTest) {
      const t = b.lastRestoreTest;
      parts.push(`restore test ${t.status} ${formatWhen(t.at, tz)}${t.restoreSeconds !== undefined ? ` in ${formatDuration(t.restoreSeconds * 1000)}` : ''}`);
    } else parts.push('no restore test');
    if (b.lastDrill) {
      const d = b.lastDrill;
      const rto = d.rtoSeconds !== undefined ? `, RTO ${formatDuration(d.rtoSeconds * 1000)}` : '';
      const rpo = d.rpoSeconds !== undefined ? `, RPO ${formatDuration(d.rpoSeconds * 1000)}` : '';
      parts.push(`DR drill ${d.status} ${formatWhen(d.at, tz)}${rto}${rpo}`);
    } else parts.push('no DR drill');
    line(`  ${b.target}: ${parts.join('; ')}`);
  }
  line();

  line('Trends (12 weeks: last value, range)');
  for (const t of report.trends) {
    const figs = trendFigures(t).filter((f) => f.last !== undefined);
    if (figs.length === 0) {
      line(`  ${t.title}: no data`);
      continue;
    }
    for (const f of figs) line(`  ${t.title}, ${f.target}: ${formatValue(f.last!, t.unit)} (${formatValue(f.min!, t.unit)} to ${formatValue(f.max!, t.unit)})`);
  }

  line();
  line(`Generated ${formatWhen(report.generatedAt, tz)} by caretaker.`);
  return `${out.join('\n')}\n`;
}
