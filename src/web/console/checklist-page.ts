/**
 * The console's Checklist page: each manual runbook line with its state
 * (done for its period, due, overdue), when it was last done, by whom and
 * why, and for the admin a "Mark done" button with a note field. A refused
 * post re-renders the page with the message and the note as typed.
 */
import { escapeHtml as e } from '../../reports/render-html';
import type { ItemReport } from '../../checklist/standings';
import type { ChecklistState } from '../../checklist/periods';
import { CHECKLIST_PATH } from '../paths';
import { badgeHtml, pageHtml, whenHtml, whenText, type FrameContext } from './layout';

/** Overdue reads as a warning, due as info, done as done. */
const BADGE: Record<ChecklistState, string> = { overdue: 'warning', due: 'info', done: 'ok' };

export interface ChecklistPage {
  items: readonly ItemReport[];
  /** How many items the config has, enabled or not. */
  configured: number;
  notice?: string;
  /** A refused "done": which item, why, and the note as it was typed. */
  refused?: { item: string; error: string; note: string };
}

function when(r: ItemReport, ctx: FrameContext): string {
  const { standing } = r;
  if (standing.state === 'done') return standing.nextPeriodAt ? `next due ${whenHtml(standing.nextPeriodAt.toISOString(), ctx)}` : '';
  return standing.state === 'overdue'
    ? `overdue since ${whenHtml(standing.overdueAt!.toISOString(), ctx)}`
    : `due since ${whenHtml(standing.dueSince!.toISOString(), ctx)}<br><span class="muted">overdue from ${e(whenText(standing.overdueAt!.toISOString(), ctx))}</span>`;
}

function doneForm(r: ItemReport, page: ChecklistPage, ctx: FrameContext): string {
  if (ctx.role !== 'admin') return '';
  const refused = page.refused?.item === r.item.id ? page.refused : undefined;
  return (
    `<form class="done" method="post" action="${CHECKLIST_PATH}/${encodeURIComponent(r.item.id)}/done">` +
    (refused ? `<div class="banner alarm" role="alert">${e(refused.error)}</div>` : '') +
    `<label>note<input name="note" type="text" maxlength="500" value="${e(refused?.note ?? '')}" placeholder="what was done"></label>` +
    `<button type="submit">Mark done</button></form>`
  );
}

function rows(page: ChecklistPage, ctx: FrameContext): string {
  if (page.items.length === 0) {
    return page.configured === 0
      ? '<p class="muted">No checklist item is configured. Add the runbook\'s manual lines under <code>checklist:</code> in the config.</p>'
      : '<p class="muted">Every checklist item is disabled.</p>';
  }
  const body = page.items.map((r) => {
    const title = r.item.link ? `<a href="${e(r.item.link)}" rel="noopener noreferrer">${e(r.item.title)}</a>` : e(r.item.title);
    const last = r.lastDone
      ? `${whenHtml(r.lastDone.at.toISOString(), ctx)}<br>by ${e(r.lastDone.by)}${r.lastDone.note ? `: ${e(r.lastDone.note)}` : ''}`
      : '<span class="muted">never</span>';
    return (
      `<tr class="checklist-item" data-item="${e(r.item.id)}">` +
      `<td data-label="item">${title}<br><code>${e(r.item.id)}</code></td>` +
      `<td data-label="state">${badgeHtml(BADGE[r.standing.state], r.standing.state)}</td>` +
      `<td data-label="when" class="when">${when(r, ctx)}</td>` +
      `<td data-label="last done" class="when">${last}</td>` +
      `<td data-label="">${doneForm(r, page, ctx)}</td>` +
      `</tr>`
    );
  });
  return (
    `<div class="table-wrap"><table class="cards checklist"><thead><tr>` +
    ['item', 'state', 'when', 'last done', ''].map((h) => `<th scope="col">${h}</th>`).join('') +
    `</tr></thead><tbody>${body.join('')}</tbody></table></div>`
  );
}

export function renderChecklistPage(page: ChecklistPage, ctx: FrameContext): string {
  const body =
    (page.notice ? `<div class="banner done" role="status">${e(page.notice)}</div>` : '') +
    `<h1>Checklist</h1>` +
    `<p class="muted">The runbook's lines that need a person. Each is due when its period starts and overdue once its grace has passed; marking it done covers the period (and any missed before it).</p>` +
    rows(page, ctx) +
    (ctx.role === 'admin' ? '' : '<p class="muted">Marking an item done needs the admin login.</p>') +
    `<p class="muted">The command line has the same: <code>caretaker checklist</code>, <code>caretaker done ITEM --note "..."</code>.</p>`;
  return pageHtml(ctx, { title: 'Checklist', current: 'checklist', body });
}
