/**
 * HTTP Basic auth with two roles. The admin may change queues (retry,
 * clean, add a job); the viewer only reads. With no credential configured,
 * auth is off and every caller is admin: `startWeb` allows that on loopback
 * only.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler, Response } from 'express';
import type { Config } from '../config/schema';
import { clientKey, type LoginThrottle } from './login-throttle';

export type Role = 'admin' | 'viewer';

/** `config.web.auth`: each credential is `user:password` or undefined. */
export type Credentials = Config['web']['auth'];

/** The realm browsers show in their login prompt. */
export const REALM = 'caretaker';

/** Methods that never change anything: the only ones a viewer may send to the board. */
const SAFE_METHODS = new Set(['GET', 'HEAD']);

/** True when at least one credential is configured, i.e. callers must log in. */
export function authEnabled(auth: Credentials): boolean {
  return auth.admin !== undefined || auth.viewer !== undefined;
}

/*
 * timingSafeEqual needs equal lengths; comparing SHA-256 digests gives that
 * without revealing the configured credential's length through timing.
 */
function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** `Authorization: Basic base64(user:password)` → `user:password`, or undefined. */
export function basicCredential(header: string | undefined): string | undefined {
  const match = /^Basic[ \t]+([A-Za-z0-9+/=._~-]+)[ \t]*$/i.exec(header ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  return decoded.includes(':') ? decoded : undefined;
}

/**
 * Sets the caller's role (read back with `roleOf`) or answers 401 with a
 * Basic challenge, so a browser prompts for a login. With a `throttle`, a
 * client that failed too often is answered 429 before any check, and each
 * wrong or malformed Authorization header counts against its budget (a
 * request without one is a browser's first, unauthenticated try: not counted).
 */
export function authenticate(auth: Credentials, throttle?: LoginThrottle): RequestHandler {
  if (!authEnabled(auth)) {
    return (_req, res, next) => {
      setRole(res, 'admin', NO_LOGIN_USER);
      next();
    };
  }
  const roleFor = credentialChecker(auth);
  return (req, res, next) => {
    const client = clientKey(req.ip);
    const verdict = throttle?.check(client);
    if (verdict?.locked) {
      // Even the right password waits: a guess during the lockout learns nothing.
      res.set('Retry-After', String(verdict.retryAfterSeconds)).status(429).json({ error: 'too many failed logins, retry later' });
      return;
    }
    const login = roleFor(req.headers.authorization);
    if (login !== undefined) {
      setRole(res, login.role, login.user);
      next();
      return;
    }
    if (req.headers.authorization !== undefined) throttle?.fail(client);
    res.set('WWW-Authenticate', `Basic realm="${REALM}"`).status(401).json({ error: 'authentication required' });
  };
}

/** `Authorization` header → the role whose credential it carries and its user name, or undefined. */
function credentialChecker(auth: Credentials): (header: string | undefined) => { role: Role; user: string } | undefined {
  const admin = auth.admin !== undefined ? digest(auth.admin) : undefined;
  const viewer = auth.viewer !== undefined ? digest(auth.viewer) : undefined;
  return (header) => {
    const given = basicCredential(header);
    if (given === undefined) return undefined;
    const d = digest(given);
    // Both compared every time: the answer's timing says nothing about which matched.
    const isAdmin = admin !== undefined && timingSafeEqual(d, admin);
    const isViewer = viewer !== undefined && timingSafeEqual(d, viewer);
    const role = isAdmin ? 'admin' : isViewer ? 'viewer' : undefined;
    // The user part of the credential that matched: what a silence or waiver records as who.
    return role ? { role, user: given.slice(0, given.indexOf(':')) || role } : undefined;
  };
}

/**
 * Defence in depth for the viewer: bull-board's read-only mode already
 * answers 405 on its mutating routes, but any route it adds later is
 * covered here by method, whatever its path.
 */
export function viewersReadOnly(): RequestHandler {
  return (req, res, next) => {
    if (roleOf(res) === 'viewer' && !SAFE_METHODS.has(req.method)) {
      res.status(403).json({ error: 'forbidden: the viewer is read-only' });
      return;
    }
    next();
  };
}

/** Who a change is recorded as when auth is off (loopback only: nobody logged in). */
export const NO_LOGIN_USER = 'console (no login)';

function setRole(res: Response, role: Role, user: string): void {
  res.locals.role = role;
  res.locals.user = user;
}

/** The signed-in user's name (the user part of the credential); undefined before `authenticate` ran. */
export function userOf(res: Response): string | undefined {
  const user: unknown = res.locals.user;
  return typeof user === 'string' ? user : undefined;
}

/** The role `authenticate` gave this request; undefined before it ran. */
export function roleOf(res: Response): Role | undefined {
  const role: unknown = res.locals.role;
  return role === 'admin' || role === 'viewer' ? role : undefined;
}
