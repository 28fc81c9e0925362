/**
 * How Bull Board shows a caretaker job: its name carries the outcome
 * (`restore-test · nightly · CRITICAL`), because the board files every
 * finished run under Completed with a green dot, `critical` included; and
 * its return value leads with status, summary and findings. Hand-added jobs
 * can hold anything, so nothing here trusts a job's shape or throws.
 */

/** Longest piece of a job's name taken from its data or result (a hand-added job's target can be huge). */
const MAX_PART = 80;

/** Finding fields that `findingLine` shows; a finding with anything else is also kept whole. */
const LINE_FIELDS = new Set(['severity', 'code', 'subject', 'message', 'suggestion']);

/** Where the result's other keys go after status, summary and findings; unknown keys follow. */
const REST_ORDER = ['skipped', 'dryRun', 'actions', 'metrics', 'task', 'target', 'startedAt', 'finishedAt', 'durationMs'];

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `value` as one short line of text, or undefined when it is not a string or number. */
function plain(value: unknown, max = MAX_PART): string | undefined {
  if (typeof value !== 'string' && typeof value !== 'number') return undefined;
  const text = String(value).replace(/\s+/g, ' ').trim();
  if (!text) return undefined;
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** The outcome shown after a finished job's name, or undefined while it has none. */
function outcomeOf(job: Json): string | undefined {
  if (!job.finishedOn) return undefined;
  // A failed job: the task could not do its work (or the job was a user mistake).
  if (job.failedReason) return 'ERROR';
  const result = job.returnvalue;
  if (!isObject(result)) return undefined;
  // A skipped run says `ok` but did nothing: say so rather than OK.
  if (result.skipped === true) return 'SKIPPED';
  return plain(result.status, 20)?.toUpperCase();
}

/**
 * Bull Board's `name` formatter: `task · target · STATUS` for a finished
 * job (`ERROR` when it failed, `SKIPPED` when another run held the target),
 * `task · target` before it finishes, ` (dry run)` after a dry run's. Plain
 * text: the board renders it through React, which escapes it.
 */
export function jobTitle(job: unknown): string {
  const fallback = isObject(job) && typeof job.name === 'string' ? job.name : '';
  try {
    if (!isObject(job)) return fallback;
    const data = isObject(job.data) ? job.data : {};
    const task = plain(data.task) ?? plain(job.name) ?? '?';
    const parts = [task, plain(data.target), outcomeOf(job)].filter((p): p is string => p !== undefined);
    const dryRun = data.dryRun === true || (isObject(job.returnvalue) && job.returnvalue.dryRun === true);
    return `${parts.join(' · ')}${dryRun ? ' (dry run)' : ''}`;
  } catch {
    return fallback;
  }
}

/** A finding as one line, `CRITICAL code · subject: message → suggestion`; undefined when it is not a finding. */
export function findingLine(finding: unknown): string | undefined {
  if (!isObject(finding)) return undefined;
  const { severity, code, subject, message, suggestion } = finding;
  if (typeof severity !== 'string' || typeof code !== 'string' || typeof subject !== 'string' || typeof message !== 'string') return undefined;
  const advice = typeof suggestion === 'string' && suggestion ? ` → ${suggestion}` : '';
  return `${severity.toUpperCase()} ${code} · ${subject}: ${message}${advice}`;
}

/**
 * Bull Board's `returnValue` formatter: a TaskResult reordered to lead with
 * `status`, `summary` and `findings` (each finding as its `findingLine`),
 * then actions, metrics, task, target and timings, then any other key.
 * Findings that carry more than their line shows (`details`) are also kept
 * whole under `findingsInFull`, so the view drops nothing. Anything that is
 * not an object is shown as it is.
 */
export function resultView(returnValue: unknown): unknown {
  try {
    if (!isObject(returnValue)) return returnValue;
    const has = (key: string) => Object.hasOwn(returnValue, key);
    // No prototype: a result key such as `constructor` is then the view's own, never skipped as present.
    const view: Json = Object.create(null) as Json;
    for (const key of ['status', 'summary']) if (has(key)) view[key] = returnValue[key];
    const findings = returnValue.findings;
    let inFull: unknown[] = [];
    if (Array.isArray(findings)) {
      view.findings = findings.map((f) => findingLine(f) ?? f);
      inFull = findings.filter((f) => findingLine(f) !== undefined && Object.keys(f as Json).some((k) => !LINE_FIELDS.has(k)));
    } else if (has('findings')) {
      view.findings = findings;
    }
    for (const key of REST_ORDER) if (has(key)) view[key] = returnValue[key];
    for (const [key, value] of Object.entries(returnValue)) if (!Object.hasOwn(view, key)) view[key] = value;
    if (inFull.length > 0 && !has('findingsInFull')) view.findingsInFull = inFull;
    return view;
  } catch {
    return returnValue;
  }
}
