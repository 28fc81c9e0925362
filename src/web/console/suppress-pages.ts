/**
 * The console's Silences and Waivers pages: what is in force (and, for
 * silences, what ended in the last week), and for the admin a form to add
 * one and a button to end or remove each. The forms post back to the same
 * path; a mistake re-renders the page with the message and every field as
 * it was typed, so nothing is lost.
 */
import { escapeHtml as e } from '../../reports/render-html';
import { matcherText } from '../../alerts/matchers';
import { silenceState, type Silence, type SilenceState } from '../../alerts/suppress/silences';
import { byExpiry, expiresSoon, type Waiver } from '../../alerts/suppress/waivers';
import type { WaivedFindingRow } from '../../status/status';
import { SILENCES_PATH, WAIVERS_PATH, checkPath, runPath } from '../paths';
import { badgeHtml, pageHtml, whenHtml, whenText, type FrameContext } from './layout';

/** What the form shows: the values typed (or prefilled from a finding), and why the last post was refused. */
export interface FormState {
  values: Partial<Record<'task' | 'target' | 'code' | 'subject' | 'for' | 'until' | 'reason' | 'severity', string>>;
  error?: string;
}

/** The names the form's task and target fields offer. */
export interface NameChoices {
  tasks: readonly string[];
  targets: readonly string[];
}

function field(name: keyof FormState['values'], label: string, form: FormState, opts: { list?: string; required?: boolean; placeholder?: string; type?: string } = {}): string {
  const value = form.values[name] ?? '';
  return (
    `<label>${e(label)}<input name="${name}" type="${opts.type ?? 'text'}" value="${e(value)}" maxlength="500"` +
    (opts.list ? ` list="${opts.list}"` : '') +
    (opts.required ? ' required' : '') +
    (opts.placeholder ? ` placeholder="${e(opts.placeholder)}"` : '') +
    `></label>`
  );
}

function datalists(choices: NameChoices): string {
  const list = (id: string, values: readonly string[]) => `<datalist id="${id}">${values.map((v) => `<option value="${e(v)}">`).join('')}</datalist>`;
  return list('task-names', choices.tasks) + list('target-names', choices.targets);
}

function errorBanner(form: FormState): string {
  return form.error ? `<div class="banner alarm" role="alert">${e(form.error)}</div>` : '';
}

function adminOnly(ctx: FrameContext, what: string, html: () => string): string {
  return ctx.role === 'admin' ? html() : `<p class="muted">${e(what)} needs the admin login.</p>`;
}

/** Badge colours: in force reads as a warning (something is quiet), ended as done. */
const SILENCE_BADGE: Record<SilenceState, string> = { active: 'warning', pending: 'info', expired: 'ok', ended: 'ok' };

function silenceRows(silences: readonly Silence[], ctx: FrameContext): string {
  if (silences.length === 0) return '<p class="muted">No silence in force, to come, or ended in the last 7 days.</p>';
  const rows = silences.map((s) => {
    const state = silenceState(s, ctx.now);
    const expire =
      ctx.role === 'admin' && (state === 'active' || state === 'pending')
        ? `<form method="post" action="${SILENCES_PATH}/${e(s.id)}/expire"><button type="submit">Expire</button></form>`
        : '';
    const ended = state === 'expired' ? `<br><span class="muted">expired by ${e(s.expiredBy ?? '')}</span>` : '';
    return (
      `<tr class="silence" data-silence="${e(s.id)}">` +
      `<td data-label="id">${e(s.id)}</td>` +
      `<td data-label="state">${badgeHtml(SILENCE_BADGE[state], state)}</td>` +
      `<td data-label="matchers"><code>${e(matcherText(s.matchers))}</code></td>` +
      `<td data-label="from" class="when">${whenHtml(s.startsAt.toISOString(), ctx)}</td>` +
      `<td data-label="until" class="when">${whenHtml(s.endsAt.toISOString(), ctx)}${ended}</td>` +
      `<td data-label="who">${e(s.createdBy)}</td>` +
      `<td data-label="reason">${e(s.reason)}</td>` +
      `<td data-label="">${expire}</td>` +
      `</tr>`
    );
  });
  return (
    `<div class="table-wrap"><table class="cards silences"><thead><tr>` +
    ['id', 'state', 'matchers', 'from', 'until', 'who', 'reason', ''].map((h) => `<th scope="col">${h}</th>`).join('') +
    `</tr></thead><tbody>${rows.join('')}</tbody></table></div>`
  );
}

export function renderSilencesPage(page: { silences: readonly Silence[]; form: FormState; choices: NameChoices; notice?: string }, ctx: FrameContext): string {
  const { form } = page;
  const formHtml = adminOnly(ctx, 'Adding or expiring a silence', () =>
    `<form class="suppress" id="new" method="post" action="${SILENCES_PATH}">` +
      errorBanner(form) +
      `<p class="muted">Matching problems stop notifying until the silence ends; they stay open and shown, marked as silenced. Each field is exact or a glob (<code>*</code>, <code>?</code>); give at least one. When it ends, what it held alerts within 30 s if still open.</p>` +
      `<div class="fields">` +
      field('task', 'task', form, { list: 'task-names' }) +
      field('target', 'target', form, { list: 'target-names' }) +
      field('code', 'code', form) +
      field('subject', 'subject', form) +
      field('for', 'for', form, { placeholder: '2h, 90m, 1d' }) +
      field('until', 'or until', form, { placeholder: '2026-12-03T18:00:00Z' }) +
      field('reason', 'reason', form, { required: true }) +
      `</div>${datalists(page.choices)}<button type="submit">Add silence</button></form>`,
  );
  const body =
    (page.notice ? `<div class="banner done" role="status">${e(page.notice)}</div>` : '') +
    `<h1>Silences</h1>${silenceRows(page.silences, ctx)}` +
    `<h2>New silence</h2>${formHtml}` +
    `<p class="muted">Recurring quiet hours are maintenance windows in the config (<code>maintenance:</code>); the command line has the same: <code>caretaker silence add|list|expire</code>.</p>`;
  return pageHtml(ctx, { title: 'Silences', current: 'silences', body });
}

function waiverRows(waivers: readonly Waiver[], ctx: FrameContext): string {
  if (waivers.length === 0) return '<p class="muted">No waiver in force.</p>';
  const rows = byExpiry(waivers).map((w) => {
    const soon = expiresSoon(w.expiresAt, ctx.now);
    const until = w.expiresAt ? `${whenHtml(w.expiresAt.toISOString(), ctx)}${soon ? `<br>${badgeHtml('warning', 'expires soon')}` : ''}` : '<span class="muted">never</span>';
    const remove =
      w.source === 'state'
        ? ctx.role === 'admin'
          ? `<form method="post" action="${WAIVERS_PATH}/${e(w.id)}/remove"><button type="submit">Remove</button></form>`
          : ''
        : '<span class="muted">from the config</span>';
    return (
      `<tr class="waiver" data-waiver="${e(w.id)}">` +
      `<td data-label="id">${e(w.id)}</td>` +
      `<td data-label="finding"><a href="${e(checkPath(w.task, w.target))}">${e(w.task)}</a> on ${e(w.target)}: <b>${e(w.code)}</b> <code>${e(w.subject)}</code></td>` +
      `<td data-label="accepts">up to ${badgeHtml(w.severity)}</td>` +
      `<td data-label="until" class="when">${until}</td>` +
      `<td data-label="who">${e(w.createdBy)}</td>` +
      `<td data-label="reason">${e(w.reason)}</td>` +
      `<td data-label="">${remove}</td>` +
      `</tr>`
    );
  });
  return (
    `<div class="table-wrap"><table class="cards waivers"><thead><tr>` +
    ['id', 'finding', 'accepts', 'until', 'who', 'reason', ''].map((h) => `<th scope="col">${h}</th>`).join('') +
    `</tr></thead><tbody>${rows.join('')}</tbody></table></div>`
  );
}

/** The findings waivers accept now, as the status page and the waivers page list them. */
export function waivedTableHtml(waived: readonly WaivedFindingRow[], ctx: FrameContext): string {
  if (waived.length === 0) return '<p class="muted">No open finding is waived.</p>';
  const rows = waived.map(
    (f) =>
      `<tr class="waived">` +
      `<td data-label="severity">${badgeHtml(f.severity)}</td>` +
      `<td data-label="target">${e(f.target)}</td>` +
      `<td data-label="task"><a href="${e(checkPath(f.task, f.target))}">${e(f.task)}</a></td>` +
      `<td data-label="finding"><b>${e(f.code)}</b> <code>${e(f.subject)}</code><br>${e(f.message)}</td>` +
      `<td data-label="waiver">${e(f.waiver.reason)}<br><span class="muted">waiver ${e(f.waiver.id)} by ${e(f.waiver.by)}, ${f.waiver.expiresAt ? `until ${e(whenText(f.waiver.expiresAt, ctx))}` : 'no expiry'}</span></td>` +
      `<td data-label="run"><a href="${e(runPath(f.runId))}">run ${f.runId}</a></td>` +
      `</tr>`,
  );
  return (
    `<div class="table-wrap"><table class="cards findings"><thead><tr>` +
    ['severity', 'target', 'task', 'finding', 'waiver', 'run'].map((h) => `<th scope="col">${h}</th>`).join('') +
    `</tr></thead><tbody>${rows.join('')}</tbody></table></div>`
  );
}

export function renderWaiversPage(
  page: { waivers: readonly Waiver[]; waived: readonly WaivedFindingRow[]; form: FormState; choices: NameChoices; notice?: string },
  ctx: FrameContext,
): string {
  const { form } = page;
  const severity = form.values.severity ?? '';
  const option = (value: string, label: string) => `<option value="${value}"${value === severity ? ' selected' : ''}>${label}</option>`;
  const formHtml = adminOnly(ctx, 'Adding or removing a waiver', () =>
    `<form class="suppress" id="new" method="post" action="${WAIVERS_PATH}">` +
      errorBanner(form) +
      `<p class="muted">A waived finding stops alerting (an open alert is resolved with the reason) and leaves the open findings, the report's open list and the exit code. It comes back when the waiver lapses, is removed, or the finding gets worse than accepted. Each field is exact or a glob (<code>*</code> for any).</p>` +
      `<div class="fields">` +
      field('task', 'task', form, { list: 'task-names', required: true }) +
      field('target', 'target', form, { list: 'target-names', required: true }) +
      field('code', 'code', form, { required: true }) +
      field('subject', 'subject', form, { required: true }) +
      field('reason', 'reason', form, { required: true }) +
      field('until', 'until (date)', form, { type: 'date' }) +
      `<label>accepts up to<select name="severity">${option('', "the finding's severity")}${option('info', 'info')}${option('warning', 'warning')}${option('critical', 'critical')}</select></label>` +
      `</div>${datalists(page.choices)}<button type="submit">Add waiver</button></form>`,
  );
  const body =
    (page.notice ? `<div class="banner done" role="status">${e(page.notice)}</div>` : '') +
    `<h1>Waivers</h1>${waiverRows(page.waivers, ctx)}` +
    `<h2>Waived now (${page.waived.length})</h2>${waivedTableHtml(page.waived, ctx)}` +
    `<h2>New waiver</h2>${formHtml}` +
    `<p class="muted">Waivers can also live in the config (<code>waivers:</code>, removed there) or be managed with <code>caretaker waive</code>, <code>waivers</code>, <code>unwaive</code>.</p>`;
  return pageHtml(ctx, { title: 'Waivers', current: 'waivers', body });
}
