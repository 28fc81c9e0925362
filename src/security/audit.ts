/**
 * What each of security-audit's per-kind checks returns, and the finding
 * codes it may raise. Each check (postgres, redis, tls, kubernetes) is a
 * plain function taking exactly what it needs, so it can be tested and
 * reused on its own; src/jobs/security-audit.ts composes them over the
 * configured targets.
 */
import type { Finding } from '../contract/result';

/** Findings and metrics of one check on one target (or one set of endpoints). */
export interface AuditResult {
  findings: Finding[];
  metrics: Record<string, number>;
}

/**
 * A check that could not be made (missing privilege, a refused command, an
 * unreachable endpoint). `info` when the limitation is expected (a
 * non-superuser cannot read pg_authid), `warning` when something the
 * operator asked for could not be done.
 */
export const AUDIT_INCOMPLETE = 'audit_incomplete';

/**
 * `<code>_count` metrics for the codes a check can raise, zeros included, so
 * a trend shows a problem going away.
 */
export function countsByCode(codes: readonly string[], findings: readonly Finding[]): Record<string, number> {
  const metrics: Record<string, number> = {};
  for (const code of codes) metrics[`${code}_count`] = 0;
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
