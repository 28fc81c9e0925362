/**
 * The weekly report as HTML that mail clients render: table layout, inline
 * styles only, no script, no SVG; charts are <img> whose source the caller
 * chooses (`cid:` for the email's attachments, `data:` URIs for a file,
 * URLs for the web page). One function for every medium, so they agree.
 */
import type { Severity } from '../contract/result';
import type { WeeklyReport } from './model';
import { formatDuration } from '../util/format';
import { formatValue, formatWhen, groupFindings, openCountText, outgrewText, trendFigures, waiverMatchText, weekSpan } from './render-text';
import { expiresSoon, EXPIRING_WAIVER_DAYS } from './suppressed';

export interface HtmlOptions {
  /** The image source of a trend's chart (by metric), or undefined when there is no chart for it. */
  imageSrc: (metric: string) => string | undefined;
  /** Link to the web version of the report. */
  link?: string;
  /** The web page's extras: tags for its <head> and HTML above the report (the console's header). */
  page?: { head: string; header: string };
}

/** True while the report's week has not ended when it was made: a week to date, not a whole one. */
export function isWeekToDate(report: Pick<WeeklyReport, 'week' | 'generatedAt'>): boolean {
  return Date.parse(report.generatedAt) < Date.parse(report.week.end);
}

/** The reports' font stack, inline (mail clients drop style sheets). */
export const FONT = "font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;";
/** Badge tones: the severities, `ok`, and `muted` for what is held back (silenced). */
type Tone = Severity | 'ok' | 'muted';
const COLORS: Record<Tone, { fg: string; bg: string }> = {
  critical: { fg: '#ffffff', bg: '#c62828' },
  warning: { fg: '#3e2800', bg: '#ffb300' },
  info: { fg: '#ffffff', bg: '#1565c0' },
  ok: { fg: '#ffffff', bg: '#2e7d32' },
  muted: { fg: '#ffffff', bg: '#616161' },
};
const NOTE = 'color:#616161;';
const TH = `style="${FONT}font-size:12px;text-align:left;padding:4px 8px;border-bottom:1px solid #ddd;color:#555;"`;
const TD = `style="${FONT}font-size:13px;padding:4px 8px;border-bottom:1px solid #eee;vertical-align:top;"`;

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function badge(severity: Tone, text: string = severity): string {
  const c = COLORS[severity];
  return `<span style="${FONT}font-size:11px;font-weight:bold;color:${c.fg};background:${c.bg};padding:1px 6px;border-radius:3px;">${escapeHtml(text.toUpperCase())}</span>`;
}

function section(title: string, body: string): string {
  return `<tr><td style="padding:16px 0 4px 0;"><h2 style="${FONT}font-size:16px;margin:0 0 6px 0;color:#222;">${escapeHtml(title)}</h2>${body}</td></tr>`;
}

/** A table with inline styles, as mail clients show it; `rows` are HTML already escaped; "none" when empty. */
export function table(head: string[], rows: string[][]): string {
  if (rows.length === 0) return `<p style="${FONT}font-size:13px;color:#777;margin:0;">none</p>`;
  const th = head.map((h) => `<th ${TH}>${escapeHtml(h)}</th>`).join('');
  const trs = rows.map((r) => `<tr>${r.map((c) => `<td ${TD}>${c}</td>`).join('')}</tr>`).join('');
  return `<table role="presentation" cellpadding="0" cellspacing="0" border="0" width="100%" style="border-collapse:collapse;"><tr>${th}</tr>${trs}</table>`;
}

const e = escapeHtml;

export function renderHtml(report: WeeklyReport, opts: HtmlOptions): string {
  const tz = report.week.timezone;
  const head = report.headline;
  const tone: Severity | 'ok' = head.critical > 0 ? 'critical' : head.warning > 0 ? 'warning' : 'ok';
  const rows: string[] = [];

  const toDate = isWeekToDate(report) ? ' (week to date)' : '';
  rows.push(
    `<tr><td style="padding:0 0 8px 0;"><h1 style="${FONT}font-size:20px;margin:0;color:#222;">${e(report.title)}: week ${e(report.week.id)}${toDate}</h1>` +
      `<p style="${FONT}font-size:12px;color:#666;margin:2px 0 0 0;">${e(weekSpan(report))}</p></td></tr>`,
    `<tr><td style="${FONT}font-size:18px;font-weight:bold;padding:10px 12px;color:${COLORS[tone].fg};background:${COLORS[tone].bg};">${e(head.text)}</td></tr>`,
  );
  if (opts.link) rows.push(`<tr><td style="${FONT}font-size:13px;padding:6px 0;"><a href="${e(opts.link)}" style="color:#1565c0;">View this report on the web</a></td></tr>`);

  if (report.missedRuns.length > 0) {
    rows.push(section(`Missed runs (${report.missedRuns.length})`, table(['task', 'target', 'schedule', 'due'], report.missedRuns.map((m) => [e(m.task), e(m.target), e(m.schedule), e(formatWhen(m.due, tz))]))));
  }
  if (report.notifierFailures.length > 0) {
    rows.push(section('Notifier failures (alerts that did not go out)', table(['channel', 'failures', 'last error'], report.notifierFailures.map((n) => [e(n.channel), String(n.count), e(n.lastError)]))));
  }

  const groups = groupFindings(report.open)
    .map(
      (g) =>
        `<h3 style="${FONT}font-size:14px;margin:10px 0 2px 0;color:#333;">${e(g.target)}</h3>` +
        g.tasks
          .map(
            (t) =>
              `<p style="${FONT}font-size:12px;color:#666;margin:4px 0 2px 0;">${e(t.task)}</p>` +
              table(
                ['severity', 'finding', 'since'],
                t.findings.map((f) => [
                  badge(f.severity) + (f.silenced ? ` ${badge('muted', 'silenced')}` : ''),
                  `<b>${e(f.code)}</b> <code style="font-size:12px;">${e(f.subject)}</code><br>${e(f.message)}` +
                    (f.silenced ? `<br><span style="${NOTE}">${e(f.silenced.text)}</span>` : '') +
                    (f.outgrew ? `<br><span style="${NOTE}">open again: ${e(outgrewText(f.outgrew))}</span>` : '') +
                    (f.suggestion ? `<br><span style="color:#2e7d32;">&rarr; ${e(f.suggestion)}</span>` : ''),
                  e(formatWhen(f.firstSeen, tz)),
                ]),
              ),
          )
          .join(''),
    )
    .join('');
  rows.push(section(`Open findings (${openCountText(report)})`, report.open.length ? groups : table([], [])));

  if (report.waived.length > 0) {
    rows.push(
      section(
        `Waived (${report.waived.length})`,
        table(
          ['severity', 'finding', 'reason', 'waived by', 'expires'],
          report.waived.map((f) => [
            badge(f.severity),
            `<b>${e(f.code)}</b> <code style="font-size:12px;">${e(f.subject)}</code><br>${e(f.message)}<br><span style="${NOTE}">${e(f.task)} on ${e(f.target)}</span>`,
            e(f.waiver.reason),
            `${e(f.waiver.by)}<br><span style="${NOTE}white-space:nowrap;">waiver ${e(f.waiver.id)}</span>`,
            (f.waiver.expiresAt ? e(formatWhen(f.waiver.expiresAt, tz)) : 'never') + (expiresSoon(f.waiver, report.asOf) ? ` ${badge('warning', 'soon')}` : ''),
          ]),
        ),
      ),
    );
  }
  if (report.expiringWaivers.length > 0) {
    rows.push(
      section(
        `Waivers expiring within ${EXPIRING_WAIVER_DAYS} days (${report.expiringWaivers.length})`,
        table(
          ['waiver', 'matches', 'reason', 'by', 'expires', 'waives'],
          report.expiringWaivers.map((w) => [
            e(w.id),
            `<code style="font-size:12px;">${e(waiverMatchText(w))}</code>`,
            e(w.reason),
            e(w.by),
            e(formatWhen(w.expiresAt, tz)),
            `${w.covers} finding${w.covers === 1 ? '' : 's'}`,
          ]),
        ),
      ),
    );
  }

  const c = report.changes;
  const changeRows = [
    ...c.new.map((f) => [badge(f.severity), 'new', e(f.task), e(f.target), `${e(f.code)} <code>${e(f.subject)}</code>`]),
    ...c.resolved.map((f) => [badge('ok', 'resolved'), 'resolved', e(f.task), e(f.target), `${e(f.code)} <code>${e(f.subject)}</code>`]),
  ];
  rows.push(
    section(
      `Since last week: ${c.new.length} new, ${c.resolved.length} resolved, ${c.stillOpen} still open`,
      table(['', 'change', 'task', 'target', 'finding'], changeRows),
    ),
  );

  rows.push(
    section(
      'Runs this week',
      table(
        ['task', 'target', 'runs', 'failed', 'worst', 'last success'],
        report.tasks.map((t) => [
          e(t.task),
          e(t.target),
          t.neverRan ? badge('critical', 'never ran') : String(t.runs),
          String(t.failures),
          t.worst ? (t.worst === 'error' ? badge('critical', 'error') : badge(t.worst)) : '',
          t.lastSuccess ? e(formatWhen(t.lastSuccess, tz)) : 'never',
        ]),
      ),
    ),
  );

  rows.push(section('Maintenance done', table(['action', 'count'], report.maintenance.actions.map((a) => [e(a.kind), String(a.count)]))));

  if (report.checklist.items > 0) {
    const { done, overdue } = report.checklist;
    const titled = (title: string, item: string, link?: string) => `${link ? `<a href="${e(link)}">${e(title)}</a>` : e(title)}<br><span style="color:#777;">${e(item)}</span>`;
    rows.push(
      section(
        `Checklist (${done.length} done this week, ${overdue.length} overdue)`,
        table(
          ['item', 'state', 'when', 'who and note'],
          [
            ...overdue.map((o) => [titled(o.title, o.item, o.link), badge('warning', 'overdue'), e(`overdue since ${formatWhen(o.overdueAt, tz)} (due since ${formatWhen(o.dueSince, tz)})`), '']),
            ...done.map((d) => [titled(d.title, d.item), badge('ok', 'done'), e(formatWhen(d.at, tz)), e(d.note ? `${d.by}: ${d.note}` : d.by)]),
          ],
        ),
      ),
    );
  }

  rows.push(
    section(
      'Backups and DR',
      table(
        ['target', 'newest backup age', 'last restore test', 'last DR drill'],
        report.backups.map((b) => [
          e(b.target),
          b.newestBackupAgeSeconds !== undefined ? e(formatDuration(b.newestBackupAgeSeconds * 1000)) : 'unknown',
          b.lastRestoreTest
            ? `${e(b.lastRestoreTest.status)}, ${e(formatWhen(b.lastRestoreTest.at, tz))}${b.lastRestoreTest.restoreSeconds !== undefined ? `, restore ${e(formatDuration(b.lastRestoreTest.restoreSeconds * 1000))}` : ''}`
            : 'none',
          b.lastDrill
            ? `${e(b.lastDrill.status)}, ${e(formatWhen(b.lastDrill.at, tz))}` +
              (b.lastDrill.rtoSeconds !== undefined ? `, RTO ${e(formatDuration(b.lastDrill.rtoSeconds * 1000))}` : '') +
              (b.lastDrill.rpoSeconds !== undefined ? `, RPO ${e(formatDuration(b.lastDrill.rpoSeconds * 1000))}` : '')
            : 'none',
        ]),
      ),
    ),
  );

  const charts = report.trends
    .map((t) => {
      const src = opts.imageSrc(t.metric);
      const figs = trendFigures(t)
        .filter((f) => f.last !== undefined)
        .map((f) => `${e(f.target)}: ${e(formatValue(f.last!, t.unit))}`)
        .join(' &middot; ');
      if (!src) return `<p style="${FONT}font-size:13px;margin:6px 0;"><b>${e(t.title)}</b>: no data</p>`;
      return (
        `<p style="${FONT}font-size:13px;margin:10px 0 2px 0;"><b>${e(t.title)}</b> ${figs}</p>` +
        `<img src="${e(src)}" alt="${e(t.title)} over 12 weeks" width="600" style="display:block;max-width:100%;height:auto;border:0;">`
      );
    })
    .join('');
  rows.push(section('Trends (12 weeks)', charts));

  rows.push(`<tr><td style="${FONT}font-size:11px;color:#999;padding:16px 0;">Generated ${e(formatWhen(report.generatedAt, tz))} by caretaker.</td></tr>`);

  return (
    `<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">` +
    `<title>${e(report.title)} week ${e(report.week.id)}${toDate}: ${e(head.text)}</title>${opts.page?.head ?? ''}</head>` +
    `<body style="margin:0;padding:0;background:#f4f4f4;">${opts.page?.header ?? ''}` +
    `<table role="presentation" cellpadding="0" cellspacing="0" border="0" width="100%" style="background:#f4f4f4;"><tr><td align="center" style="padding:16px;">` +
    `<table role="presentation" cellpadding="0" cellspacing="0" border="0" width="680" style="max-width:680px;background:#ffffff;padding:16px;"><tr><td style="padding:16px;">` +
    `<table role="presentation" cellpadding="0" cellspacing="0" border="0" width="100%">${rows.join('')}</table>` +
    `</td></tr></table></td></tr></table></body></html>`
  );
}

/** `data:` URIs for the charts: the stand-alone HTML file (`report weekly --out`). */
export function dataUriSource(charts: readonly { metric: string; png: Buffer }[]): (metric: string) => string | undefined {
  const byMetric = new Map(charts.map((c) => [c.metric, `data:image/png;base64,${c.png.toString('base64')}`]));
  return (metric) => byMetric.get(metric);
}

/** `cid:` references for the charts: the email, whose attachments carry those Content-IDs. */
export function cidSource(charts: readonly { metric: string; cid: string }[]): (metric: string) => string | undefined {
  const byMetric = new Map(charts.map((c) => [c.metric, `cid:${c.cid}`]));
  return (metric) => byMetric.get(metric);
}
