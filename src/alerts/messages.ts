/**
 * The words of an alert and of a "resolved" message, channel-neutral
 * (AlertMessage): a one-line title, a plain-text body that reads the same
 * in an email and in Slack, structured fields for webhook consumers, and
 * one event per problem for Alertmanager and PagerDuty. Every string from
 * a result goes through redactSecretsIn: a driver's error in an `error`
 * summary may carry a URL with a password.
 */
import type { Finding, Severity, TaskResult } from '../contract/result';
import { redactSecretsIn } from '../logger';
import { boardJobPath, checkPath, publicLink, runOfJobPath } from '../web/paths';
import { RUN_ERROR_CODE, type AlertRow } from './alert-state';
import type { AlertEvent, AlertMessage } from './notifier';

/** Email subjects longer than this are cut: mail clients show ~80 characters anyway. */
const TITLE_MAX = 200;

/** The job's page in Bull Board, when the web role's public URL is configured. */
export function jobLink(publicUrl: string | undefined, jobId: string | undefined): string | undefined {
  if (!jobId) return undefined;
  return publicLink(publicUrl, boardJobPath(jobId));
}

/** Where a message links: the job in the board, and the console's pages of the run and the check. */
export interface MessageLinks {
  publicUrl?: string;
  jobId?: string;
}

const clean = (s: string) => redactSecretsIn(s);
const cut = (s: string) => (s.length > TITLE_MAX ? `${s.slice(0, TITLE_MAX - 1)}…` : s);
const key = (code: string, subject: string) => `${code}\u0000${subject}`;
const RANK: Record<Severity, number> = { info: 0, warning: 1, critical: 2 };

function findingLines(f: Finding, note?: string): string[] {
  const lines = [`- [${f.code}] ${clean(f.subject)}: ${clean(f.message)}${note ? ` (${note})` : ''}`];
  if (f.suggestion) lines.push(`  Suggestion: ${clean(f.suggestion)}`);
  return lines;
}

const findingField = (f: Finding) => ({
  severity: f.severity,
  code: f.code,
  subject: clean(f.subject),
  message: clean(f.message),
  suggestion: f.suggestion === undefined ? undefined : clean(f.suggestion),
});

const alertField = (a: AlertRow) => ({
  code: a.code,
  subject: clean(a.subject),
  severity: a.severity,
  message: clean(a.message),
  openedAt: a.openedAt.toISOString(),
});

/** One problem as an event (Alertmanager, PagerDuty). */
export function alertEvent(a: AlertRow, links: MessageLinks): AlertEvent {
  const jobId = links.jobId ?? a.lastJobId ?? undefined;
  const subject = clean(a.subject);
  return {
    task: a.task,
    target: a.target,
    code: a.code,
    subject,
    severity: a.severity,
    summary: cut(`${a.task} on ${a.target}: [${a.code}] ${subject}: ${clean(a.message)}`),
    message: clean(a.message),
    ...(a.suggestion ? { suggestion: clean(a.suggestion) } : {}),
    openedAt: a.openedAt,
    ...(a.resolvedAt ? { resolvedAt: a.resolvedAt } : {}),
    ...(jobId && links.publicUrl ? { runUrl: publicLink(links.publicUrl, runOfJobPath(jobId)) } : {}),
    ...(links.publicUrl ? { checkUrl: publicLink(links.publicUrl, checkPath(a.task, a.target)) } : {}),
  };
}

/** ERROR for a run that could not do its work, else the worst severity announced. */
function labelOf(rows: readonly AlertRow[]): string {
  if (rows.some((r) => r.code === RUN_ERROR_CODE)) return 'ERROR';
  const worst = rows.reduce<Severity>((w, r) => (RANK[r.severity] > RANK[w] ? r.severity : w), 'info');
  return worst.toUpperCase();
}

/**
 * The alert of one run on one channel: `claimed` are the problems this
 * message announces; `shown` the result's findings worth listing beside
 * them (not waived).
 */
export function alertMessage(result: TaskResult, claimed: readonly AlertRow[], shown: readonly Finding[], links: MessageLinks): AlertMessage {
  const label = labelOf(claimed);
  const link = jobLink(links.publicUrl, links.jobId);
  const head = `${label}: ${result.task} on ${result.target}${result.dryRun ? ' (dry run)' : ''}`;
  const lines = [head, clean(result.summary), ''];
  const announced = new Set(claimed.map((a) => key(a.code, a.subject)));
  const critical = shown.filter((f) => f.severity === 'critical');
  const warnings = shown.filter((f) => f.severity === 'warning');
  const info = shown.filter((f) => f.severity === 'info' && announced.has(key(f.code, f.subject)));
  if (result.status === 'error') {
    lines.push(`The task could not do its work: ${clean(result.summary)}`);
  }
  const note = (f: Finding) => (announced.has(key(f.code, f.subject)) ? undefined : 'still open, already notified or sent elsewhere');
  for (const [heading, list] of [['Critical:', critical], ['Warnings:', warnings], ['Info:', info]] as const) {
    if (list.length === 0) continue;
    lines.push(heading);
    for (const f of list) lines.push(...findingLines(f, f.severity === 'critical' ? note(f) : undefined));
  }
  if (link) lines.push('', `Job: ${link}`);
  return {
    kind: 'alert',
    title: cut(`[caretaker] ${label} ${result.task} on ${result.target}: ${clean(result.summary)}`),
    text: lines.join('\n').trimEnd(),
    fields: {
      task: result.task,
      target: result.target,
      status: result.status,
      summary: clean(result.summary),
      dryRun: result.dryRun,
      finishedAt: result.finishedAt,
      jobId: links.jobId ?? null,
      jobUrl: link ?? null,
      alerts: claimed.map(alertField),
      findings: [...critical, ...warnings, ...info].map(findingField),
    },
    events: claimed.map((a) => alertEvent(a, links)),
  };
}

/**
 * The alert for problems a silence or maintenance window held back and
 * that are still open now the hold has ended (no run in hand: the rows
 * carry what the run said).
 */
export function heldAlertMessage(rows: readonly AlertRow[], publicUrl: string | undefined): AlertMessage {
  const first = rows[0]!;
  const label = labelOf(rows);
  const lines = [`${label}: ${first.task} on ${first.target} (still open now that its silence or maintenance window has ended)`, '', 'Open:'];
  for (const a of rows) {
    lines.push(`- [${a.code}] ${clean(a.subject)}: ${clean(a.message)} (open since ${a.openedAt.toISOString()})`);
    if (a.suggestion) lines.push(`  Suggestion: ${clean(a.suggestion)}`);
  }
  const link = jobLink(publicUrl, first.lastJobId ?? undefined);
  if (link) lines.push('', `Job: ${link}`);
  const what = rows.map((a) => (a.code === RUN_ERROR_CODE ? 'run error' : `${a.code} ${clean(a.subject)}`)).join(', ');
  return {
    kind: 'alert',
    title: cut(`[caretaker] ${label} ${first.task} on ${first.target}: still open after its silence: ${what}`),
    text: lines.join('\n'),
    fields: { task: first.task, target: first.target, jobId: first.lastJobId, jobUrl: link ?? null, held: true, alerts: rows.map(alertField) },
    events: rows.map((a) => alertEvent(a, { publicUrl })),
  };
}

/**
 * The "resolved" message: problems a later run of the same (task, target)
 * no longer has, or that a waiver now accepts (`waived`, their reasons).
 */
export function resolvedMessage(result: TaskResult, resolved: readonly AlertRow[], links: MessageLinks, waived: ReadonlyMap<string, string> = new Map()): AlertMessage {
  const link = jobLink(links.publicUrl, links.jobId);
  const what = resolved.map((a) => (a.code === RUN_ERROR_CODE ? 'run error' : `${a.code} ${a.subject}`)).join(', ');
  const lines = [`RESOLVED: ${result.task} on ${result.target}`, `Latest run (${result.status}): ${clean(result.summary)}`, '', 'No longer present:'];
  for (const a of resolved) {
    const reason = waived.get(key(a.code, a.subject));
    lines.push(`- [${a.code}] ${clean(a.subject)}: ${clean(a.message)} (open since ${a.openedAt.toISOString()}${reason === undefined ? '' : `; waived: ${clean(reason)}`})`);
  }
  if (link) lines.push('', `Job: ${link}`);
  return {
    kind: 'resolved',
    title: cut(`[caretaker] RESOLVED ${result.task} on ${result.target}: ${clean(what)}`),
    text: lines.join('\n'),
    fields: {
      task: result.task,
      target: result.target,
      status: result.status,
      summary: clean(result.summary),
      finishedAt: result.finishedAt,
      jobId: links.jobId ?? null,
      jobUrl: link ?? null,
      resolved: resolved.map(alertField),
    },
    events: resolved.map((a) => alertEvent(a, links)),
  };
}

export { key as problemKey };
