/**
 * What each of security-audit's per-kind checks returns, and the finding
 * codes it may raise. Each check (postgres, redis, tls, kubernetes) is a
 * plain function taking exactly what it needs, so it can be tested and
 * reused on its own; src/jobs/security-audit.ts composes them over the
 * configured targets.
 */
import type { Finding } from '../contract/result';
import type { FindingCodes } from '../contract/task';

/** Findings and metrics of one check on one target (or one set of endpoints); `C`, the codes the check declares. */
export interface AuditResult<C extends string = string> {
  findings: Finding<C>[];
  metrics: Record<string, number>;
}

/**
 * A check that could not be made (missing privilege, a refused command, an
 * unreachable endpoint). `info` when the limitation is expected (a
 * non-superuser cannot read pg_authid), `warning` when something the
 * operator asked for could not be done.
 */
export const AUDIT_INCOMPLETE = 'audit_incomplete' as const;
export type AuditIncomplete = typeof AUDIT_INCOMPLETE;

/** Every check may raise it; security-audit declares it once, after the checks' own codes. */
export const AUDIT_INCOMPLETE_CODES = {
  [AUDIT_INCOMPLETE]: 'a target, endpoint or check that could not be audited: unreachable, or a privilege or command refused',
} satisfies FindingCodes;

/**
 * `<code>_count` metrics for the codes a check can raise (its codes object,
 * in its order), zeros included, so a trend shows a problem going away.
 */
export function countsByCode(codes: FindingCodes, findings: readonly Finding[]): Record<string, number> {
  const metrics: Record<string, number> = {};
  for (const code of Object.keys(codes)) metrics[`${code}_count`] = 0;
  for (const f of findings) {
    const key = `${f.code}_count`;
    if (key in metrics) metrics[key]! += 1;
  }
  return metrics;
}

/** Days between two instants, rounded down (9 when 9.9 days have passed). */
export function wholeDaysBetween(earlier: Date, later: Date): number {
  return Math.floor((later.getTime() - earlier.getTime()) / 86_400_000);
}
