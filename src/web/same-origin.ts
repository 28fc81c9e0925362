/**
 * Refuses cross-site requests that could change something. A browser sends
 * Basic-auth credentials it remembers with every request to this host, so
 * a page on another site could otherwise make a logged-in operator's
 * browser POST or PUT to the board (retry, clean, add a job). Methods that
 * only read pass; so do requests that carry none of the headers below:
 * curl and scripts are not browsers, and every browser sends at least one.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { RequestHandler } from 'express';

/** Methods that change nothing here (bull-board and our routes read on these only). */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * `Sec-Fetch-Site` values that may change things: the board's own page
 * (`same-origin`), and a request the user started by hand (`none`).
 * `same-site` is refused too: it includes sibling subdomains and, on plain
 * http, every other port of this host (another web app there), and the
 * board's own UI never needs it.
 */
const ALLOWED_FETCH_SITES = new Set(['same-origin', 'none']);

export type OriginVerdict = { ok: true } | { ok: false; reason: string };

/**
 * Decides from the request's headers alone. `Sec-Fetch-Site` (which no
 * page can forge) wins when present; older browsers are judged by
 * `Origin`, or `Referer` when there is no Origin, against `Host` or one of
 * `trustedOrigins` (the public URL, when a proxy rewrites Host).
 */
export function judgeOrigin(method: string, headers: IncomingHttpHeaders, trustedOrigins: readonly string[] = []): OriginVerdict {
  if (SAFE_METHODS.has(method.toUpperCase())) return { ok: true };
  const site = single(headers['sec-fetch-site']);
  if (site !== undefined) {
    return ALLOWED_FETCH_SITES.has(site.toLowerCase()) ? { ok: true } : { ok: false, reason: 'Sec-Fetch-Site is not same-origin' };
  }
  const origin = single(headers.origin);
  const referer = single(headers.referer);
  const claimed = origin ?? referer;
  if (claimed === undefined) return { ok: true };
  const source = origin !== undefined ? 'Origin' : 'Referer';
  return matchesHost(claimed, single(headers.host), trustedOrigins) ? { ok: true } : { ok: false, reason: `${source} is another site` };
}

/**
 * True when `claimed` (an Origin or a Referer URL) is the `host` this
 * request was sent to or a trusted origin. Unparsable values, and Origin
 * `null` (sandboxed frames, some redirects), never match.
 */
function matchesHost(claimed: string, host: string | undefined, trustedOrigins: readonly string[]): boolean {
  let url: URL;
  try {
    url = new URL(claimed);
  } catch {
    return false;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  if (trustedOrigins.includes(url.origin)) return true;
  if (!host) return false;
  try {
    // Host carries no scheme: read it with the claimed one, so `:80` / `:443` compare as the default port.
    return new URL(`${url.protocol}//${host}`).host === url.host;
  } catch {
    return false;
  }
}

/** One string per header: repeats joined, so `same-origin, cross-site` matches nothing allowed. */
function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

/**
 * Answers 403 (JSON) to a state-changing request from another site, before
 * any router or login runs. `publicUrl` (config `web.publicUrl`) is trusted
 * as an origin besides the Host header.
 */
export function sameOriginOnly(publicUrl?: string): RequestHandler {
  const trusted = publicUrl ? [new URL(publicUrl).origin] : [];
  return (req, res, next) => {
    const verdict = judgeOrigin(req.method, req.headers, trusted);
    if (verdict.ok) {
      next();
      return;
    }
    // The reason names the header, not its value: nothing the caller sent is echoed.
    res.status(403).json({ error: `forbidden: cross-site request refused (${verdict.reason})` });
  };
}
