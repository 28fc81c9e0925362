/**
 * error-logs' reading of log text: which lines are errors, and the
 * "signature" that groups the same error told with different values.
 *
 * An error line is a pino JSON line with a numeric `level` >= 50 (error,
 * fatal) or a string level `error` / `fatal`; or, for any other line
 * (plain text, JSON without a level), one containing `ERROR` or `FATAL` as
 * a word, `level=error` / `level=fatal` (logfmt) or `"level":"error"`.
 *
 * The signature is the message (pino's `msg`, else `message`, else the
 * error's `type: message`; the whole line for plain text) with secrets
 * redacted and the values that vary replaced by placeholders: timestamps
 * `<ts>`, UUIDs `<uuid>`, quoted strings `<str>`, IP addresses `<ip>`, hex
 * ids `<hex>`, numbers `<n>`.
 */
import { redactSecrets, redactText } from './redact';

/** At most this many distinct signatures are kept per run; later new ones are counted under OTHER_SIGNATURE. */
export const MAX_SIGNATURES = 1_000;
export const OTHER_SIGNATURE = '(other signatures)';
/** Signatures are cut to this length. */
export const SIGNATURE_CHARS = 200;
/** Lines longer than this are not JSON-parsed (a stack trace dump, a huge payload): the text patterns decide. */
const JSON_PARSE_MAX_CHARS = 64 * 1024;
/** pino's numeric level of `error` (fatal is 60). */
export const PINO_ERROR_LEVEL = 50;

const TEXT_ERROR = /\b(?:ERROR|FATAL)\b|\blevel=(?:error|fatal)\b|"level"\s*:\s*"(?:error|fatal)"/;
const STRING_ERROR_LEVEL = /^(?:error|fatal|critical|crit|alert|emerg|emergency|panic)$/i;

const PLACEHOLDERS: [RegExp, string][] = [
  [/\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?/g, '<ts>'],
  [/\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b/g, '<ts>'],
  [/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi, '<uuid>'],
  [/"(?:[^"\\\n]|\\.)*"/g, '<str>'],
  [/(^|[\s(=:,[{])'(?:[^'\\\n]|\\.)*'/g, '$1<str>'],
  [/\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b/g, '<ip>'],
  [/\b0x[0-9a-f]+\b/gi, '<hex>'],
  [/\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b/gi, '<hex>'],
  [/\d+(?:\.\d+)?/g, '<n>'],
  [/\s+/g, ' '],
];

/** The text an error line's signature comes from, or undefined when the line is not an error. */
export function errorMessageOf(line: string): string | undefined {
  const trimmed = line.trim();
  let fallback: string | undefined;
  if (trimmed.startsWith('{') && trimmed.length <= JSON_PARSE_MAX_CHARS) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      parsed = undefined;
    }
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
      const obj = parsed as Record<string, unknown>;
      const message = messageOf(obj);
      if (typeof obj.level === 'number') return obj.level >= PINO_ERROR_LEVEL ? (message ?? trimmed) : undefined;
      if (typeof obj.level === 'string') return STRING_ERROR_LEVEL.test(obj.level) ? (message ?? trimmed) : undefined;
      fallback = message;
    }
  }
  return TEXT_ERROR.test(line) ? (fallback ?? trimmed) : undefined;
}

function messageOf(obj: Record<string, unknown>): string | undefined {
  if (typeof obj.msg === 'string' && obj.msg) return obj.msg;
  if (typeof obj.message === 'string' && obj.message) return obj.message;
  for (const key of ['err', 'error']) {
    const e = obj[key];
    if (typeof e === 'string' && e) return e;
    if (e && typeof e === 'object') {
      const { type, message } = e as { type?: unknown; message?: unknown };
      if (typeof message === 'string' && message) return typeof type === 'string' ? `${type}: ${message}` : message;
    }
  }
  return undefined;
}

/** The message with secrets redacted and varying values replaced by placeholders, cut to SIGNATURE_CHARS. */
export function signatureOf(message: string): string {
  let s = redactSecrets(message.length > SIGNATURE_CHARS * 10 ? message.slice(0, SIGNATURE_CHARS * 10) : message);
  for (const [re, to] of PLACEHOLDERS) s = s.replace(re, to);
  s = s.trim();
  return (s.length > SIGNATURE_CHARS ? s.slice(0, SIGNATURE_CHARS) : s) || '(empty message)';
}

/** One signature's tally. */
export interface SignatureCount {
  signature: string;
  count: number;
  /** The first line seen with this signature, redacted and cut. */
  sample: string;
  /** The deployments whose pods logged it. */
  deployments: string[];
}

/** What one log text added to the tally. */
export interface TextTally {
  lines: number;
  errors: number;
}

/**
 * Counts error lines by signature over many log texts, in bounded memory:
 * at most MAX_SIGNATURES entries, each holding one cut sample.
 */
export class ErrorTally {
  errors = 0;
  lines = 0;
  private readonly signatures = new Map<string, { count: number; sample: string; deployments: Set<string> }>();

  constructor(private readonly sampleChars: number) {}

  /**
   * Counts the lines of `text` without splitting it into an array. When the
   * text was cut by `limitBytes`, its last line is partial: `dropPartialLast`
   * leaves it out.
   */
  addText(text: string, deployment: string, opts: { dropPartialLast: boolean }): TextTally {
    let lines = 0;
    let errors = 0;
    let start = 0;
    while (start < text.length) {
      let end = text.indexOf('\n', start);
      if (end === -1) {
        if (opts.dropPartialLast) break;
        end = text.length;
      }
      const line = text.charCodeAt(end - 1) === 13 ? text.slice(start, end - 1) : text.slice(start, end);
      start = end + 1;
      if (line.length === 0) continue;
      lines++;
      const message = errorMessageOf(line);
      if (message === undefined) continue;
      errors++;
      this.count(signatureOf(message), line, deployment);
    }
    this.lines += lines;
    this.errors += errors;
    return { lines, errors };
  }

  /** Distinct signatures seen (OTHER_SIGNATURE included when the cap was reached). */
  get distinct(): number {
    return this.signatures.size;
  }

  /** The `n` most frequent signatures, ties by signature. */
  top(n: number): SignatureCount[] {
    return [...this.signatures.entries()]
      .sort((a, b) => b[1].count - a[1].count || a[0].localeCompare(b[0]))
      .slice(0, n)
      .map(([signature, s]) => ({ signature, count: s.count, sample: s.sample, deployments: [...s.deployments].sort() }));
  }

  private count(signature: string, line: string, deployment: string): void {
    let key = signature;
    if (!this.signatures.has(key) && this.signatures.size >= MAX_SIGNATURES) key = OTHER_SIGNATURE;
    let entry = this.signatures.get(key);
    if (!entry) {
      entry = { count: 0, sample: redactText(line, this.sampleChars), deployments: new Set() };
      this.signatures.set(key, entry);
    }
    entry.count++;
    entry.deployments.add(deployment);
  }
}
