/**
 * Against DNS rebinding while the web role serves without credentials
 * (loopback only, everyone is admin). A page on `rebind.example` whose name
 * the attacker re-points at 127.0.0.1 is same-origin with itself, so the
 * cross-site guard lets its writes through; but its requests still name
 * `rebind.example` in `Host`. Without credentials, only a loopback name or
 * the configured public URL's host is answered.
 */
import type { RequestHandler } from 'express';
import { isLoopbackHost } from './loopback';

/** The host name part of a `Host` header (`[::1]:3000` → `[::1]`, `localhost:3000` → `localhost`). */
function hostName(header: string): string {
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  const colon = h.lastIndexOf(':');
  return colon >= 0 ? h.slice(0, colon) : h;
}

export function loopbackHostOnly(publicUrl?: string): RequestHandler {
  const publicHost = publicUrl ? new URL(publicUrl).hostname.toLowerCase() : undefined;
  return (req, res, next) => {
    const name = hostName(req.headers.host ?? '');
    if (isLoopbackHost(name) || (publicHost !== undefined && name === publicHost)) {
      next();
      return;
    }
    // The name is not echoed: it is the attacker's.
    res.status(421).json({ error: 'misdirected request: without credentials, caretaker answers only a loopback Host or web.publicUrl' });
  };
}
