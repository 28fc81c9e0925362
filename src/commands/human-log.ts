/**
 * The log form of a command run by a person (`caretaker run` without
 * `--json`): one readable line per entry on stderr, such as
 * `caretaker: warning: redis unreachable: running without the per-target lock (err=connect ECONNREFUSED 127.0.0.1:1)`.
 *
 * It is a pino destination, not a logger of its own: pino has serialized
 * and redacted each entry before it gets here, so a secret the JSON form
 * hides stays hidden in this one too.
 */
import type { Writable } from 'node:stream';
import type { DestinationStream } from 'pino';
import { redactSecretsIn } from '../logger';

/** pino's numeric levels, named as a person reads them. */
const LEVEL_NAMES: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warning', 50: 'error', 60: 'fatal' };

/** What every entry carries and the line itself says (level, message) or nobody running a command needs (time, service). */
const NOT_SHOWN = new Set(['level', 'time', 'msg', 'service', 'pid', 'hostname']);

/** Options of `humanLogStream`. */
export interface HumanLogOptions {
  /** Fields the command line already names (the task and target of `caretaker run`): left out of each line. */
  omit?: readonly string[];
}

/**
 * A pino destination that writes each JSON entry to `out` as one line:
 * `caretaker: LEVEL: MESSAGE (key=value, ...)`.
 */
export function humanLogStream(out: Writable, opts: HumanLogOptions = {}): DestinationStream {
  const omit = new Set([...NOT_SHOWN, ...(opts.omit ?? [])]);
  let pending = '';
  return {
    write(chunk: string) {
      // pino writes whole entries, one per call; splitting on newlines anyway keeps a line intact if that ever changes.
      pending += chunk;
      let end: number;
      while ((end = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, end);
        pending = pending.slice(end + 1);
        if (line.trim()) out.write(`${humanLine(line, omit)}\n`);
      }
    },
  };
}

/** One pino JSON entry as a readable line; anything that is not one is passed on as text. */
export function humanLine(json: string, omit: ReadonlySet<string> = NOT_SHOWN): string {
  let entry: unknown;
  try {
    entry = JSON.parse(json);
  } catch {
    return redactSecretsIn(`caretaker: ${oneLine(json)}`);
  }
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return redactSecretsIn(`caretaker: ${oneLine(json)}`);
  const fields = entry as Record<string, unknown>;
  const level = typeof fields.level === 'number' ? (LEVEL_NAMES[fields.level] ?? `level ${fields.level}`) : 'log';
  const msg = typeof fields.msg === 'string' ? oneLine(fields.msg) : '';
  const extra = Object.entries(fields)
    .filter(([key, value]) => !omit.has(key) && value !== undefined)
    .map(([key, value]) => `${key}=${valueText(value)}`);
  const text = `caretaker: ${level}: ${msg || '(no message)'}${extra.length > 0 ? ` (${extra.join(', ')})` : ''}`;
  // The JSON form leaves text inside messages as it is; a driver's message may quote a URL with its password.
  return redactSecretsIn(text);
}

function valueText(value: unknown): string {
  if (typeof value === 'string') return oneLine(value);
  if (typeof value !== 'object' || value === null) return String(value);
  // A serialized Error ({ type, message, stack }): the message only. A person's terminal gets no stack trace.
  const message = (value as { message?: unknown }).message;
  if (typeof message === 'string' && ('stack' in value || 'type' in value)) return oneLine(message);
  return oneLine(JSON.stringify(value));
}

/** Newlines and other control characters would break the one-line form (and could fake a line of their own). */
function oneLine(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f]+/g, ' ');
}
