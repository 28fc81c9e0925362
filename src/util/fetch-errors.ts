/**
 * How a failed HTTP call is described in findings, alerts and logs: where
 * it went without what may be secret in its URL, and why fetch failed
 * (its network errors hide the reason, ECONNREFUSED..., in `cause`).
 */
import { coerceError } from '../errors';

/** `scheme://host:port` of a URL: no credentials, path or query (a webhook's path is often its secret). */
export function urlOrigin(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return '[unparsable url]';
  }
}

/** Why fetch failed: `timed out`, `aborted` (our own `signal`), the socket's code, or the message. */
export function fetchFailureReason(err: unknown, signal?: AbortSignal): string {
  const e = coerceError(err);
  if (signal?.aborted) return 'aborted';
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'timed out';
  const cause = (e as { cause?: unknown }).cause;
  if (cause) {
    const c = coerceError(cause);
    const code = (c as { code?: unknown }).code;
    return typeof code === 'string' ? code : c.message || e.message;
  }
  return e.message;
}
