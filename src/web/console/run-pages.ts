/**
 * A check's page (its schedules, open findings, run now, the last runs) and
 * one run's page (its whole result: findings, actions and metrics as
 * tables, not JSON).
 */
import type { Finding, Action } from '../../contract/result';
import type { Task } from '../../contract/task';
import { escapeHtml as e } from '../../reports/render-html';
import type { StoredRun } from '../../results/store';
import type { StatusReport } from '../../status/status';
import { STATE_LABEL } from '../../status/status';
import { formatBytes, formatDuration } from '../../util/format';
import { RUN_NOW_PATH, boardJobPath, checkPath, runPath } from '../paths';
import { badgeHtml, pageHtml, whenHtml, whenText, type FrameContext } from './layout';
import { findingsTableHtml } from './status-page';
import { waivedTableHtml } from './suppress-pages';

/** A run's status as a badge; a skipped run says so instead. */
function runBadge(run: Pick<StoredRun, 'status' | 'skipped'>): string {
  return run.skipped ? badgeHtml('never_ran', 'skipped') : badgeHtml(run.status);
}

/** A details object as a list: scalars as they are, anything nested as compact JSON. */
function detailsHtml(details: Record<string, unknown> | undefined): string {
  if (!details || Object.keys(details).length === 0) return '';
  const items = Object.entries(details).map(([k, v]) => {
    const text = v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v);
    return `<dt>${e(k)}</dt><dd>${e(text.length > 2_000 ? `${text.slice(0, 2_000)}…` : text)}</dd>`;
  });
  return `<details><summary>details</summary><dl class="facts">${items.join('')}</dl></details>`;
}

function findingRows(findings: readonly Finding[]): string {
  if (findings.length === 0) return '<p class="muted">No findings.</p>';
  const order = { critical: 0, warning: 1, info: 2 } as const;
  const rows = [...findings]
    .sort((a, b) => order[a.severity] - order[b.severity])
    .map(
      (f) =>
        `<tr><td data-label="severity">${badgeHtml(f.severity)}</td>` +
        `<td data-label="finding"><b>${e(f.code)}</b> <code>${e(f.subject)}</code><br>${e(f.message)}` +
        (f.suggestion ? `<br><span class="suggestion">&rarr; ${e(f.suggestion)}</span>` : '') +
        detailsHtml(f.details) +
        `</td></tr>`,
    );
  return `<div class="table-wrap"><table class="cards"><thead><tr><th>severity</th><th>finding</th></tr></thead><tbody>${rows.join('')}</tbody></table></div>`;
}

function actionRows(actions: readonly Action[]): string {
  if (actions.length === 0) return '<p class="muted">No actions.</p>';
  const rows = actions.map(
    (a) =>
      `<tr><td data-label="action"><b>${e(a.kind)}</b></td><td data-label="subject"><code>${e(a.subject)}</code>${detailsHtml(a.details)}</td>` +
      `<td data-label="applied">${a.applied ? 'applied' : 'not applied'}</td>` +
      `<td data-label="took" class="num">${a.durationMs !== undefined ? e(formatDuration(a.durationMs)) : ''}</td></tr>`,
  );
  return `<div class="table-wrap"><table class="cards"><thead><tr><th>action</th><th>subject</th><th>applied</th><th>took</th></tr></thead><tbody>${rows.join('')}</tbody></table></div>`;
}

/** A metric's value as stored, and read the way its name says (bytes, seconds, ratio). */
function metricValue(name: string, value: number): string {
  const raw = Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(6)));
  let human = '';
  if (/_bytes(_|$)/.test(name)) human = formatBytes(value);
  else if (/_seconds(_|$)/.test(name)) human = formatDuration(value * 1000);
  else if (/_ms$/.test(name)) human = formatDuration(value);
  else if (/_ratio$/.test(name)) human = `${(value * 100).toFixed(1)} %`;
  return human && human !== raw ? `${e(raw)} <span class="muted">(${e(human)})</span>` : e(raw);
}

function metricRows(metrics: Record<string, number>): string {
  const names = Object.keys(metrics).sort();
  if (names.length === 0) return '<p class="muted">No metrics.</p>';
  const rows = names.map((n) => `<tr><td data-label="metric"><code>${e(n)}</code></td><td data-label="value" class="num">${metricValue(n, metrics[n]!)}</td></tr>`);
  return `<div class="table-wrap"><table class="cards"><thead><tr><th>metric</th><th>value</th></tr></thead><tbody>${rows.join('')}</tbody></table></div>`;
}

/** One run, whole. */
export function renderRunPage(run: StoredRun, ctx: FrameContext): string {
  const r = run.result;
  const facts: [string, string][] = [
    ['status', runBadge(run) + (run.dryRun ? ' <span class="muted">dry run: nothing was changed</span>' : '')],
    ['task', `<a href="${e(checkPath(run.task, run.target))}">${e(run.task)}</a>`],
    ['target', e(run.target)],
    ['schedule', run.schedule ? `<code>${e(run.schedule)}</code>` : '<span class="muted">none</span>'],
    ['started', whenHtml(run.startedAt, ctx)],
    ['finished', whenHtml(run.finishedAt, ctx)],
    ['took', e(formatDuration(run.durationMs))],
    ['job', run.jobId ? `<a href="${e(boardJobPath(run.jobId))}">${e(run.jobId)} in the board</a>` : '<span class="muted">not a queued job (caretaker run)</span>'],
  ];
  const body =
    `<h1>${e(run.task)} on ${e(run.target)}: run ${run.id}</h1>` +
    `<p class="summary-line">${e(run.summary)}</p>` +
    `<dl class="facts">${facts.map(([k, v]) => `<dt>${e(k)}</dt><dd>${v}</dd>`).join('')}</dl>` +
    `<h2>Findings (${(r.findings ?? []).length})</h2>${findingRows(r.findings ?? [])}` +
    `<h2>Actions (${(r.actions ?? []).length})</h2>${actionRows(r.actions ?? [])}` +
    `<h2>Metrics</h2>${metricRows(r.metrics ?? {})}` +
    `<p><a href="${e(checkPath(run.task, run.target))}">&larr; all runs of ${e(run.task)} on ${e(run.target)}</a></p>`;
  return pageHtml(ctx, { title: `${run.task} on ${run.target}, run ${run.id}`, body });
}

/** The run-now form, for the admin; the viewer is told why there is none. */
function runNowHtml(task: Task, target: string, ctx: FrameContext): string {
  if (ctx.role !== 'admin') return '<p class="muted">Run now needs the admin login.</p>';
  const dry = task.changesTarget
    ? `<label><input type="checkbox" name="dryRun" value="1" checked> dry run (report what it would change, change nothing)</label>`
    : '';
  return (
    `<form class="run-now" method="post" action="${RUN_NOW_PATH}">` +
    `<input type="hidden" name="task" value="${e(task.name)}"><input type="hidden" name="target" value="${e(target)}">` +
    `${dry}<button type="submit">Run now</button></form>` +
    `<span class="muted"> queues one run for the workers; the schedule stays as it is.</span>`
  );
}

/** A check: what it is, where it stands, and its last runs. */
export function renderCheckPage(
  check: { task: Task; target: string; status: StatusReport; runs: readonly StoredRun[]; enqueued?: string },
  ctx: FrameContext,
): string {
  const { task, target, status, runs } = check;
  const rows = status.checks;
  const schedules = rows.length
    ? rows
        .map(
          (r) =>
            `<li>${badgeHtml(r.state, STATE_LABEL[r.state])} schedule <code>${e(r.schedule)}</code>, next due ` +
            (r.nextDue ? e(whenText(r.nextDue, ctx)) : status.schedulersRead ? 'not in Redis' : 'unknown (Redis did not answer)') +
            `</li>`,
        )
        .join('')
    : '<li class="muted">not scheduled: it runs only when started by hand</li>';
  const notice = check.enqueued
    ? `<div class="banner done" role="status">Queued: job <a href="${e(boardJobPath(check.enqueued))}">${e(check.enqueued)}</a>. Its run shows here once a worker has finished it.</div>`
    : '';
  const runRows = runs.map(
    (r) =>
      `<tr><td data-label="status">${runBadge(r)}${r.dryRun ? ' <span class="muted">dry run</span>' : ''}</td>` +
      `<td data-label="finished" class="when">${whenHtml(r.finishedAt, ctx)}</td>` +
      `<td data-label="took" class="num">${e(formatDuration(r.durationMs))}</td>` +
      `<td data-label="summary">${e(r.summary)}</td>` +
      `<td data-label="run"><a href="${e(runPath(r.id))}">run ${r.id}</a></td></tr>`,
  );
  const body =
    notice +
    `<h1>${e(task.name)} on ${e(target)}</h1>` +
    `<p>${e(task.description)} <span class="muted">(${task.changesTarget ? 'may change the target, only where allowed' : 'read-only'})</span></p>` +
    `<ul>${schedules}</ul>` +
    runNowHtml(task, target, ctx) +
    `<h2>Open findings</h2>${findingsTableHtml(status.findings, ctx)}` +
    (status.waived.length > 0 ? `<h2>Waived (${status.waived.length})</h2>${waivedTableHtml(status.waived, ctx)}` : '') +
    `<h2>Last ${runs.length} runs</h2>` +
    (runs.length
      ? `<div class="table-wrap"><table class="cards"><thead><tr><th>status</th><th>finished</th><th>took</th><th>summary</th><th>run</th></tr></thead><tbody>${runRows.join('')}</tbody></table></div>`
      : '<p class="muted">No run stored yet.</p>');
  return pageHtml(ctx, { title: `${task.name} on ${target}`, body });
}
