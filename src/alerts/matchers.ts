/**
 * Matching problems to routes, silences, maintenance windows and waivers.
 * A value matches exactly, or as a glob: `*` any run of characters, `?`
 * one; nothing else is special (a subject like `public.orders_idx` or
 * `pod/web-7d9f` needs no escaping).
 */
import type { Severity } from '../contract/result';

/** What every matcher looks at. */
export interface ProblemIdentity {
  task: string;
  target: string;
  code: string;
  subject: string;
  severity: Severity;
}

/** Every field given must match; an absent field matches anything. */
export interface ProblemMatcher {
  severity?: Severity | readonly Severity[];
  task?: string;
  target?: string;
  code?: string;
  subject?: string;
}

const GLOBS = new Map<string, RegExp>();

function globRegExp(pattern: string): RegExp {
  let re = GLOBS.get(pattern);
  if (!re) {
    const body = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
    re = new RegExp(`^${body}$`, 's');
    if (GLOBS.size > 1_000) GLOBS.clear();
    GLOBS.set(pattern, re);
  }
  return re;
}

export const isGlob = (pattern: string) => /[*?]/.test(pattern);

/** `pattern` (exact or glob) matches `value`. */
export function globMatch(pattern: string, value: string): boolean {
  return isGlob(pattern) ? globRegExp(pattern).test(value) : pattern === value;
}

export function problemMatches(m: ProblemMatcher, p: ProblemIdentity): boolean {
  if (m.severity !== undefined) {
    const wanted = typeof m.severity === 'string' ? [m.severity] : m.severity;
    if (!wanted.includes(p.severity)) return false;
  }
  return (['task', 'target', 'code', 'subject'] as const).every((k) => m[k] === undefined || globMatch(m[k]!, p[k]));
}

/** `task=x target=y` for messages: the fields a matcher sets. */
export function matcherText(m: ProblemMatcher): string {
  const parts = (['severity', 'task', 'target', 'code', 'subject'] as const)
    .filter((k) => m[k] !== undefined)
    .map((k) => `${k}=${Array.isArray(m[k]) ? (m[k] as string[]).join('|') : String(m[k])}`);
  return parts.join(' ') || 'everything';
}
