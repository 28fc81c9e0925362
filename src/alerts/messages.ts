/**
 * The words of an alert and of a "resolved" message, channel-neutral
 * (AlertMessage): a one-line title, a plain-text body that reads the same
 * in an email and in Slack, and structured fields for webhook consumers.
 * Every string from a result goes through redactSecretsIn: a driver's error
 * in an `error` summary may carry a URL with a password.
 */
import type { Finding, TaskResult } from '../contract/result';
import { redactSecretsIn } from '../logger';
import { boardJobPath, publicLink } from '../web/paths';
import { RUN_ERROR_CODE, type AlertRow } from './alert-state';
import type { AlertMessage } from './notifiers';

/** Email subjects longer than this are cut: mail clients show ~80 characters anyway. */
const TITLE_MAX = 200;

/** The job's page in Bull Board, when the web role's public URL is configured. */
export function jobLink(publicUrl: string | undefined, jobId: string | undefined): string | undefined {
  if (!jobId) return undefined;
  return publicLink(publicUrl, boardJobPath(jobId));
}

const clean = (s: string) => redactSecretsIn(s);
const cut = (s: string) => (s.length > TITLE_MAX ? `${s.slice(0, TITLE_MAX - 1)}…` : s);
const key = (code: string, subject: string) => `${code}\u0000${subject}`;

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

/** The alert for a `critical` or `error` run; `claimed` are the problems this message announces. */
export function alertMessage(result: TaskResult, claimed: readonly AlertRow[], link: string | undefined, jobId: string | undefined): AlertMessage {
  const label = result.status.toUpperCase();
  const head = `${label}: ${result.task} on ${result.target}${result.dryRun ? ' (dry run)' : ''}`;
  const lines = [head, clean(result.summary), ''];
  const announced = new Set(claimed.map((a) => key(a.code, a.subject)));
  const critical = result.findings.filter((f) => f.severity === 'critical');
  const warnings = result.findings.filter((f) => f.severity === 'warning');
  if (result.status === 'error') {
    lines.push(`The task could not do its work: ${clean(result.summary)}`);
  }
  if (critical.length > 0) {
    lines.push('Critical:');
    for (const f of critical) lines.push(...findingLines(f, announced.has(key(f.code, f.subject)) ? undefined : 'still open, already notified'));
  }
  if (warnings.length > 0) {
    lines.push('Warnings:');
    for (const f of warnings) lines.push(...findingLines(f));
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
      jobId: jobId ?? null,
      jobUrl: link ?? null,
      alerts: claimed.map(alertField),
      findings: [...critical, ...warnings].map(findingField),
    },
  };
}

/** The "resolved" message: problems a later run of the same (task, target) no longer has. */
export function resolvedMessage(result: TaskResult, resolved: readonly AlertRow[], link: string | undefined, jobId: string | undefined): AlertMessage {
  const what = resolved.map((a) => (a.code === RUN_ERROR_CODE ? 'run error' : `${a.code} ${a.subject}`)).join(', ');
  const lines = [`RESOLVED: ${result.task} on ${result.target}`, `Latest run (${result.status}): ${clean(result.summary)}`, '', 'No longer present:'];
  for (const a of resolved) lines.push(`- [${a.code}] ${clean(a.subject)}: ${clean(a.message)} (open since ${a.openedAt.toISOString()})`);
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
      jobId: jobId ?? null,
      jobUrl: link ?? null,
      resolved: resolved.map(alertField),
    },
  };
}
