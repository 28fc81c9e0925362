/**
 * A per-client budget of failed Basic-auth logins. HTTP Basic has no
 * lockout of its own, so without this anyone who reaches the port can try
 * passwords as fast as the server answers. After `maxFailures` failed
 * logins within `windowMs`, the client's every login attempt (even with the
 * right password) is answered 429 for `lockoutMs`. In memory, per web
 * process: a restart forgets, and each replica keeps its own budget.
 */
import { isIP } from 'node:net';
import type { Logger } from '../logger';

/** Failed logins one client may make within `WINDOW_MS` before it is locked out. */
export const MAX_FAILURES = 10;
/** The window the failures are counted in; it starts at the client's first failure. */
export const WINDOW_MS = 60_000;
/** How long a locked-out client is answered 429, counted from the failure that used up its budget. */
export const LOCKOUT_MS = 60_000;
/**
 * Clients tracked at once. Each entry is a few dozen bytes; at the cap the
 * oldest window is forgotten, so an attacker with many addresses cannot
 * grow memory without bound (it gains no more than those addresses' own budgets).
 */
export const MAX_TRACKED = 10_000;

export interface LoginThrottleOptions {
  maxFailures: number;
  windowMs: number;
  lockoutMs: number;
  maxTracked: number;
  /** The clock, in ms since the epoch; tests pass their own instead of waiting a minute. */
  now: () => number;
}

export const DEFAULT_THROTTLE: LoginThrottleOptions = {
  maxFailures: MAX_FAILURES,
  windowMs: WINDOW_MS,
  lockoutMs: LOCKOUT_MS,
  maxTracked: MAX_TRACKED,
  now: Date.now,
};

interface Entry {
  windowStart: number;
  failures: number;
  /** Set once the budget is used up; the client is answered 429 until then. */
  lockedUntil?: number;
}

/**
 * The throttle's key for a client address. IPv4-mapped IPv6 is the IPv4
 * address it carries; any other IPv6 address counts as its /64, since one
 * host is usually given a whole /64 and could otherwise change address at
 * every try.
 */
export function clientKey(address: string | undefined): string {
  if (!address) return 'unknown';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  const bare = address.replace(/%.*$/, ''); // a zone id (fe80::1%eth0) is not part of the address
  if (isIP(bare) !== 6) return address;
  return `${expandIPv6(bare).slice(0, 4).join(':')}::/64`;
}

/** The eight hextets of an IPv6 address, `::` and an embedded IPv4 tail written out. */
function expandIPv6(address: string): string[] {
  let text = address.toLowerCase();
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const zeros = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((h) => h.replace(/^0+(?=.)/, ''));
}

export type LoginVerdict = { locked: false } | { locked: true; retryAfterSeconds: number };

/**
 * Counts failed logins per client key and says when a client is locked
 * out. Successful logins are never counted and never reset the count: a
 * holder of the viewer's password must not be able to wipe its failures
 * at the admin's password by logging in as the viewer in between.
 */
export class LoginThrottle {
  private readonly opts: LoginThrottleOptions;
  /** In insertion order, oldest window first: the order eviction uses. */
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly log: Logger,
    options: Partial<LoginThrottleOptions> = {},
  ) {
    this.opts = { ...DEFAULT_THROTTLE, ...options };
  }

  /** Whether `key` is locked out now, and for how many more (whole) seconds. */
  check(key: string): LoginVerdict {
    const now = this.opts.now();
    const entry = this.current(key, now);
    if (entry?.lockedUntil === undefined) return { locked: false };
    return { locked: true, retryAfterSeconds: Math.max(1, Math.ceil((entry.lockedUntil - now) / 1000)) };
  }

  /** Counts one failed login of `key`; the one that uses up the budget starts the lockout and logs it, once. */
  fail(key: string): void {
    const now = this.opts.now();
    let entry = this.current(key, now);
    if (entry?.lockedUntil !== undefined) return; // answered 429 without a check: nothing to count
    if (!entry) {
      entry = { windowStart: now, failures: 0 };
      this.insert(key, entry);
    }
    entry.failures += 1;
    if (entry.failures >= this.opts.maxFailures) {
      entry.lockedUntil = now + this.opts.lockoutMs;
      // The client's address and counts only: never the credential it tried.
      this.log.warn(
        { client: key, failures: entry.failures, windowSeconds: this.opts.windowMs / 1000, lockoutSeconds: this.opts.lockoutMs / 1000 },
        'web: too many failed logins, client locked out',
      );
    }
  }

  /** How many clients are tracked (for tests of the bound). */
  get size(): number {
    return this.entries.size;
  }

  /** The live entry of `key`, after forgetting it when its window and lockout are over. */
  private current(key: string, now: number): Entry | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    const over = entry.lockedUntil !== undefined ? now >= entry.lockedUntil : now - entry.windowStart >= this.opts.windowMs;
    if (!over) return entry;
    this.entries.delete(key);
    return undefined;
  }

  /** Adds a new window at the end of the map, evicting the oldest ones beyond the cap. */
  private insert(key: string, entry: Entry): void {
    while (this.entries.size >= this.opts.maxTracked) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
    this.entries.set(key, entry);
  }
}
