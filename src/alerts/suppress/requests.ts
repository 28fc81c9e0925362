/**
 * A silence or a waiver as a person asks for one, on the command line or
 * in the console's forms: checked the same way in both, so a typo says
 * what is wrong in one line instead of quietly matching nothing.
 */
import { UsageError } from '../../errors';
import type { Config } from '../../config/schema';
import { allTargetNames } from '../../config/targets';
import type { Severity } from '../../contract/result';
import { parseDurationSeconds, durationText } from '../../util/duration';
import { globMatch, isGlob, type ProblemIdentity } from '../matchers';
import type { NewSilence, SilenceMatchers } from './silences';
import { waiverExpiry, type NewWaiver } from './waivers';

/** What a matcher's task and target may name: a misspelt exact name matches nothing, so it is refused. */
export interface KnownNames {
  tasks: readonly string[];
  targets: readonly string[];
}

/** The task names given, and every target the config names (and `caretaker`). */
export function knownNames(config: Pick<Config, 'targets'>, taskNames: Iterable<string>): KnownNames {
  return { tasks: [...taskNames], targets: allTargetNames(config) };
}

export interface SilenceRequest {
  task?: string;
  target?: string;
  code?: string;
  subject?: string;
  /** How long from now: `2h`, `90m`, `1d`. */
  for?: string;
  /** Or until when (ISO 8601). */
  until?: string;
  reason?: string;
}

export interface WaiverRequest {
  task?: string;
  target?: string;
  code?: string;
  subject?: string;
  reason?: string;
  /** A date (lapses as that day begins, UTC) or a timestamp; none: until removed. */
  until?: string;
  severity?: string;
}

/** How a message names a field: `--for` on the command line, `"for"` in a form. */
export type FieldName = (field: string) => string;
const CLI_FLAG: FieldName = (f) => `--${f}`;

const MAX_TEXT = 500;
const SEVERITIES: readonly Severity[] = ['info', 'warning', 'critical'];
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/;

/** Blank form fields are not given. */
function given(value: string | undefined): string | undefined {
  const v = value?.trim();
  return v ? v : undefined;
}

function checkText(name: string, value: string, n: FieldName): void {
  if (value.length > MAX_TEXT) throw new UsageError(`${n(name)} is longer than ${MAX_TEXT} characters`);
  if (/[\u0000-\u001f\u007f]/.test(value)) throw new UsageError(`${n(name)} holds a control character`);
}

function checkKnown(kind: 'task' | 'target', value: string | undefined, known: readonly string[], n: FieldName): void {
  if (value === undefined) return;
  const hit = isGlob(value) ? known.some((k) => globMatch(value, k)) : known.includes(value);
  if (!hit) throw new UsageError(`${n(kind)} ${JSON.stringify(value)} matches no ${kind} (known: ${known.join(', ')})`);
}

function instant(name: string, text: string, n: FieldName): Date {
  if (!ISO_DATE.test(text) && !ISO_TIME.test(text)) throw new UsageError(`${n(name)} ${JSON.stringify(text)} is not an ISO 8601 date or time with a zone (e.g. 2027-03-01 or 2026-12-03T18:00:00Z)`);
  const at = ISO_DATE.test(text) ? waiverExpiry(text) : new Date(text);
  if (Number.isNaN(at.getTime())) throw new UsageError(`${n(name)} ${JSON.stringify(text)} is not a valid date`);
  return at;
}

/** The matchers, start and end of a new silence; a UsageError naming what is wrong. */
export function silenceFromRequest(req: SilenceRequest, who: string, known: KnownNames, now: Date, n: FieldName = CLI_FLAG): NewSilence {
  const matchers: SilenceMatchers = {};
  for (const k of ['task', 'target', 'code', 'subject'] as const) {
    const v = given(req[k]);
    if (v !== undefined) {
      checkText(k, v, n);
      matchers[k] = v;
    }
  }
  if (Object.keys(matchers).length === 0) throw new UsageError(`a silence needs at least one of ${['task', 'target', 'code', 'subject'].map(n).join(', ')} (a silence of everything is a maintenance window: put it in the config)`);
  checkKnown('task', matchers.task, known.tasks, n);
  checkKnown('target', matchers.target, known.targets, n);
  const reason = given(req.reason);
  if (!reason) throw new UsageError(`a silence needs ${n('reason')}: the next person reads it`);
  checkText('reason', reason, n);
  const forText = given(req.for);
  const untilText = given(req.until);
  if ((forText === undefined) === (untilText === undefined)) throw new UsageError(`give exactly one of ${n('for')} (e.g. 2h) and ${n('until')} (ISO 8601)`);
  let endsAt: Date;
  if (forText !== undefined) {
    const seconds = parseDurationSeconds(forText);
    if (seconds === undefined) throw new UsageError(`${n('for')} ${JSON.stringify(forText)} is not a duration (e.g. 90m, 2h, 1d)`);
    endsAt = new Date(now.getTime() + seconds * 1000);
  } else {
    endsAt = instant('until', untilText!, n);
    if (endsAt <= now) throw new UsageError(`${n('until')} ${untilText} is in the past`);
  }
  if (endsAt.getTime() - now.getTime() > 366 * 86_400_000) throw new UsageError(`a silence lasts at most a year (asked: ${durationText((endsAt.getTime() - now.getTime()) / 1000)}); a finding that is fine for good wants a waiver`);
  return { matchers, startsAt: now, endsAt, reason, createdBy: who };
}

/**
 * A new waiver. Its severity, unless given, is the worst of the open
 * findings it covers (so it accepts them as they are and no more), or
 * `warning` when none is open.
 */
export function waiverFromRequest(req: WaiverRequest, who: string, known: KnownNames, open: readonly ProblemIdentity[], now: Date, n: FieldName = CLI_FLAG): NewWaiver {
  const fields = {} as Record<'task' | 'target' | 'code' | 'subject', string>;
  for (const k of ['task', 'target', 'code', 'subject'] as const) {
    const v = given(req[k]);
    if (v === undefined) throw new UsageError(`a waiver needs ${n(k)} (a glob such as "*" for any)`);
    checkText(k, v, n);
    fields[k] = v;
  }
  checkKnown('task', fields.task, known.tasks, n);
  checkKnown('target', fields.target, known.targets, n);
  const reason = given(req.reason);
  if (!reason) throw new UsageError(`a waiver needs ${n('reason')}: why this finding is fine`);
  checkText('reason', reason, n);
  const untilText = given(req.until);
  let expiresAt: Date | undefined;
  if (untilText !== undefined) {
    expiresAt = instant('until', untilText, n);
    if (expiresAt <= now) throw new UsageError(`${n('until')} ${untilText} is in the past`);
  }
  const severityText = given(req.severity);
  if (severityText !== undefined && !SEVERITIES.includes(severityText as Severity)) throw new UsageError(`${n('severity')} ${JSON.stringify(severityText)} is not one of ${SEVERITIES.join(', ')}`);
  const covered = open.filter((p) => globMatch(fields.task, p.task) && globMatch(fields.target, p.target) && globMatch(fields.code, p.code) && globMatch(fields.subject, p.subject));
  const severity = (severityText as Severity | undefined) ?? worstOf(covered.map((p) => p.severity)) ?? 'warning';
  return { ...fields, severity, reason, createdBy: who, ...(expiresAt ? { expiresAt } : {}) };
}

function worstOf(list: readonly Severity[]): Severity | undefined {
  return list.length === 0 ? undefined : list.reduce((a, b) => (SEVERITIES.indexOf(b) > SEVERITIES.indexOf(a) ? b : a));
}
