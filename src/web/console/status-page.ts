/**
 * The console's front page: the status grid (one row per scheduled task and
 * target, grouped by target, worst first) and the open findings across the
 * fleet, filterable by severity, task and target through the query string,
 * so a filter is a bookmark.
 */
import { escapeHtml as e } from '../../reports/render-html';
import { STATE_LABEL, stateCountsText, type CheckRow, type OpenFindingRow, type StatusFilter, type StatusReport } from '../../status/status';
import { formatDuration } from '../../util/format';
import { silencedText } from '../../status/suppressed';
import { CONSOLE_PATH, WAIVERS_PATH, boardJobPath, checkPath, runPath, silenceFormPath, waiverFormPath } from '../paths';
import { waivedTableHtml } from './suppress-pages';
import { badgeHtml, pageHtml, whenHtml, whenText, type FrameContext } from './layout';

function countsHtml(row: CheckRow): string {
  const { open } = row;
  const parts: string[] = [];
  if (open.critical > 0) parts.push(badgeHtml('critical', `${open.critical} critical`));
  if (open.warning > 0) parts.push(badgeHtml('warning', `${open.warning} warning${open.warning === 1 ? '' : 's'}`));
  const quiet = [row.silenced ? `${row.silenced} silenced` : '', row.waived ? `${row.waived} waived` : ''].filter(Boolean).join(', ');
  const counts = parts.length ? `<span class="counts">${parts.join(' ')}</span>` : '<span class="muted">none</span>';
  return quiet ? `${counts}<br><span class="muted">${e(quiet)}</span>` : counts;
}

function nextDueHtml(row: CheckRow, report: StatusReport, ctx: FrameContext): string {
  if (row.nextDue) return whenHtml(row.nextDue, ctx);
  if (!report.schedulersRead) return '<span class="muted">unknown (Redis did not answer)</span>';
  return '<span class="muted">not in Redis: the scheduler has not set it up</span>';
}

function lastRunHtml(row: CheckRow, ctx: FrameContext): string {
  const run = row.lastRun;
  if (!run) return '<span class="muted">never</span>';
  return `${whenHtml(run.finishedAt, ctx)}<br><span class="muted">took ${e(formatDuration(run.durationMs))}${run.dryRun ? ', dry run' : ''}</span>`;
}

function stateCell(row: CheckRow, ctx: FrameContext): string {
  const badge = badgeHtml(row.state, STATE_LABEL[row.state]);
  if ((row.state === 'late' || row.state === 'missed') && row.dueAt) {
    return `${badge}<br><span class="muted">due ${e(whenText(row.dueAt, ctx))}</span>`;
  }
  return badge;
}

function summaryCell(row: CheckRow): string {
  if (row.state === 'late' || row.state === 'missed') {
    const last = row.lastRun ? ` Last run: ${badgeHtml(row.lastRun.status)} ${e(row.lastRun.summary)}` : '';
    return `No run since it was due.${last}`;
  }
  return row.lastRun ? e(row.lastRun.summary) : '<span class="muted">no run stored yet</span>';
}

function gridHtml(report: StatusReport, ctx: FrameContext): string {
  if (report.checks.length === 0) return '<p class="muted">No scheduled check matches.</p>';
  const head = ['status', 'task', 'last run', 'summary', 'open findings', 'next due', 'schedule', ''];
  const rows: string[] = [];
  let target: string | undefined;
  for (const r of report.checks) {
    if (r.target !== target) {
      target = r.target;
      rows.push(`<tr class="group"><th colspan="${head.length}" scope="rowgroup">${e(r.target)} <span class="muted">(${e(r.targetKind)})</span></th></tr>`);
    }
    const links = [`<a href="${e(checkPath(r.task, r.target))}">history</a>`];
    if (r.lastRun) links.push(`<a href="${e(runPath(r.lastRun.id))}">last run</a>`);
    if (r.lastRun?.jobId) links.push(`<a href="${e(boardJobPath(r.lastRun.jobId))}">job</a>`);
    rows.push(
      `<tr class="check state-${e(r.state)}" data-check="${e(r.id)}">` +
        `<td data-label="status">${stateCell(r, ctx)}</td>` +
        `<td data-label="task"><a href="${e(checkPath(r.task, r.target))}"><b>${e(r.task)}</b></a></td>` +
        `<td data-label="last run" class="when">${lastRunHtml(r, ctx)}</td>` +
        `<td data-label="summary">${summaryCell(r)}</td>` +
        `<td data-label="open findings">${countsHtml(r)}</td>` +
        `<td data-label="next due" class="when">${nextDueHtml(r, report, ctx)}</td>` +
        `<td data-label="schedule"><code>${e(r.schedule)}</code></td>` +
        `<td data-label="links">${links.join(' · ')}</td>` +
        `</tr>`,
    );
  }
  return (
    `<div class="table-wrap"><table class="cards grid"><thead><tr>${head.map((h) => `<th scope="col">${e(h)}</th>`).join('')}</tr></thead>` +
    `<tbody>${rows.join('')}</tbody></table></div>`
  );
}

/** The admin's way from a finding to silencing or waiving it: the forms, filled in for it. */
function findingActions(f: OpenFindingRow, ctx: FrameContext): string {
  if (ctx.role !== 'admin') return '';
  return `<br><span class="finding-actions"><a href="${e(silenceFormPath(f))}">Silence…</a> · <a href="${e(waiverFormPath(f))}">Waive…</a></span>`;
}

/** The open findings as a table; shared by the front page and a check's history page. */
export function findingsTableHtml(findings: readonly OpenFindingRow[], ctx: FrameContext): string {
  if (findings.length === 0) return '<p class="muted">No open warning or critical finding.</p>';
  const rows = findings.map(
    (f) =>
      `<tr class="finding">` +
      `<td data-label="severity">${badgeHtml(f.severity)}</td>` +
      `<td data-label="target">${e(f.target)}</td>` +
      `<td data-label="task"><a href="${e(checkPath(f.task, f.target))}">${e(f.task)}</a></td>` +
      `<td data-label="finding"><b>${e(f.code)}</b> <code>${e(f.subject)}</code><br>${e(f.message)}` +
      (f.suggestion ? `<br><span class="suggestion">&rarr; ${e(f.suggestion)}</span>` : '') +
      (f.silenced ? `<br><span class="silenced">${e(silencedText(f.silenced, (iso) => whenText(iso, ctx)))}</span>` : '') +
      `</td>` +
      `<td data-label="open since" class="when">${whenHtml(f.firstSeen, ctx)}</td>` +
      `<td data-label="run"><a href="${e(runPath(f.runId))}">run ${f.runId}</a>${findingActions(f, ctx)}</td>` +
      `</tr>`,
  );
  return (
    `<div class="table-wrap"><table class="cards findings"><thead><tr>` +
    ['severity', 'target', 'task', 'finding', 'open since', 'run'].map((h) => `<th scope="col">${h}</th>`).join('') +
    `</tr></thead><tbody>${rows.join('')}</tbody></table></div>`
  );
}

function option(value: string, label: string, selected: string | undefined): string {
  return `<option value="${e(value)}"${value === (selected ?? '') ? ' selected' : ''}>${e(label)}</option>`;
}

/** The filter: a plain GET form (a bookmark), submitted on change by the page's script. */
function filterFormHtml(filter: StatusFilter, choices: { tasks: string[]; targets: string[] }): string {
  const select = (name: string, label: string, values: string[], selected: string | undefined) =>
    `<label>${e(label)}<select name="${name}">${option('', 'all', selected)}${values.map((v) => option(v, v, selected)).join('')}</select></label>`;
  return (
    `<form class="filter" method="get" action="${CONSOLE_PATH}">` +
    select('severity', 'severity', ['critical', 'warning'], filter.severity) +
    select('task', 'task', choices.tasks, filter.task) +
    select('target', 'target', choices.targets, filter.target) +
    `<button type="submit">Filter</button>` +
    (filter.severity || filter.task || filter.target ? ` <a href="${CONSOLE_PATH}">clear</a>` : '') +
    `</form>`
  );
}

export function renderStatusPage(
  report: StatusReport,
  ctx: FrameContext,
  opts: { filter: StatusFilter; choices: { tasks: string[]; targets: string[] } },
): string {
  const filtered = opts.filter.task || opts.filter.target ? ' (filtered)' : '';
  const notice = report.schedulersRead
    ? ''
    : `<div class="banner note">Redis did not answer (${e(report.schedulersError ?? 'unknown error')}): next due times are unknown; everything else comes from the history.</div>`;
  const body =
    `<h1>Status${e(filtered)}</h1>` +
    `<p class="summary-line">${e(stateCountsText(report.checks))} &middot; ${report.findings.length} open finding${report.findings.length === 1 ? '' : 's'} shown` +
    (report.waived.length > 0 ? ` &middot; <a href="#waived">${report.waived.length} waived</a>` : '') +
    `</p>` +
    notice +
    `<h2 id="findings">Open findings</h2>` +
    filterFormHtml(opts.filter, opts.choices) +
    findingsTableHtml(report.findings, ctx) +
    (report.waived.length > 0 ? `<h2 id="waived">Waived (${report.waived.length})</h2>${waivedTableHtml(report.waived, ctx)}<p class="muted">Not open: accepted until the waiver lapses or the finding gets worse. <a href="${WAIVERS_PATH}">All waivers</a></p>` : '') +
    `<h2 id="checks">Checks</h2>` +
    gridHtml(report, ctx) +
    `<p class="muted">Generated ${e(whenText(report.generatedAt, ctx))}.</p>`;
  return pageHtml(ctx, { title: 'Status', current: 'console', body });
}
