/**
 * Text from the cluster that ends up in findings (log lines, event messages,
 * termination messages) is the monitored application's, not caretaker's: it
 * may carry the application's secrets. `redactText` hides what looks like
 * one before the text is stored, shown in Bull Board or mailed.
 */
import { redactSecretsIn } from '../logger';

/** What replaces a secret. */
export const REDACTED = '[redacted]';

/** `Authorization: Bearer eyJ...`, `Basic dXNlcjpwYXNz`. */
const AUTH_SCHEME = /\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}/gi;
/** A bare JWT anywhere (header.payload.signature, base64url). */
const JWT = /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/g;
/** AWS access key ids. */
const AWS_KEY = /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g;
/**
 * `password=...`, `"token": "..."`, `api_key: ...`, `client_secret=...`:
 * a secret-sounding key, `=` or `:`, and its value up to a delimiter.
 */
const KEY_VALUE = /((?:pass(?:word|wd)?|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?|authorization|cookie|session[_-]?id)["']?\s*[:=]\s*["']?)(?!\[redacted\]|(?:bearer|basic)\s)([^\s"'&,;)}\]]+)/gi;

/** Replaces secret-looking values in free text; URLs keep their host, lose their password. */
export function redactSecrets(text: string): string {
  return redactSecretsIn(text)
    .replace(AUTH_SCHEME, (_m, scheme: string) => `${scheme} ${REDACTED}`)
    .replace(JWT, REDACTED)
    .replace(AWS_KEY, REDACTED)
    .replace(KEY_VALUE, (_m, key: string) => `${key}${REDACTED}`);
}

/** Redacted first, then cut to `maxChars` (with an ellipsis), so a cut never exposes half a secret. */
export function redactText(text: string, maxChars: number): string {
  // A very long text is cut before redaction too; at a space near the cut when there is one, so no half-token survives it.
  let head = text;
  if (text.length > maxChars * 4) {
    const space = text.lastIndexOf(' ', maxChars * 4);
    head = text.slice(0, space > maxChars * 3 ? space : maxChars * 4);
  }
  const clean = redactSecrets(head).trim();
  return clean.length > maxChars ? `${clean.slice(0, Math.max(0, maxChars - 1))}…` : clean;
}
