/**
 * CVSS v3.x base scores from a vector (`CVSS:3.1/AV:N/AC:L/...`), computed
 * with the specification's formulas and its integer round-up, and the
 * qualitative rating of a score: how an OSV advisory without a database
 * rating of its own gets a severity.
 */
/** An advisory's severity: the database's rating, else its CVSS score's; unknown when neither is there. */
export type AdvisorySeverity = 'low' | 'moderate' | 'high' | 'critical' | 'unknown';

/** CVSS's qualitative rating, with 0.0 ("none") as low: an advisory still says something is wrong. */
export function severityOfScore(score: number): AdvisorySeverity {
  if (score >= 9) return 'critical';
  if (score >= 7) return 'high';
  if (score >= 4) return 'moderate';
  return 'low';
}

/** CVSS v3.x base metric weights (specification section 7.4). */
const AV = { N: 0.85, A: 0.62, L: 0.55, P: 0.2 };
const AC = { L: 0.77, H: 0.44 };
const PR_UNCHANGED = { N: 0.85, L: 0.62, H: 0.27 };
/** Privileges weigh less when the scope changes. */
const PR_CHANGED = { N: 0.85, L: 0.68, H: 0.5 };
const UI = { N: 0.85, R: 0.62 };
const CIA = { H: 0.56, L: 0.22, N: 0 };

/**
 * The CVSS v3.0/v3.1 base score of a vector (`CVSS:3.1/AV:N/AC:L/...`), per
 * the v3.1 specification's formulas and Roundup; temporal and environmental
 * metrics in the vector are ignored. Undefined when it is not a complete
 * v3 vector.
 */
export function cvss3BaseScore(vector: string): number | undefined {
  const parts = vector.trim().split('/');
  if (!/^CVSS:3\.[01]$/.test(parts[0] ?? '')) return undefined;
  const m = new Map<string, string>();
  for (const part of parts.slice(1)) {
    const [key, value, extra] = part.split(':');
    if (!key || !value || extra !== undefined || m.has(key)) return undefined;
    m.set(key, value);
  }
  const pick = <T extends Record<string, number>>(table: T, key: string): number | undefined => {
    const value = m.get(key);
    return value !== undefined && Object.hasOwn(table, value) ? table[value as keyof T] : undefined;
  };
  const scope = m.get('S');
  if (scope !== 'U' && scope !== 'C') return undefined;
  const changed = scope === 'C';
  const av = pick(AV, 'AV');
  const ac = pick(AC, 'AC');
  const pr = pick(changed ? PR_CHANGED : PR_UNCHANGED, 'PR');
  const ui = pick(UI, 'UI');
  const c = pick(CIA, 'C');
  const i = pick(CIA, 'I');
  const a = pick(CIA, 'A');
  if (av === undefined || ac === undefined || pr === undefined || ui === undefined || c === undefined || i === undefined || a === undefined) return undefined;

  const iss = 1 - (1 - c) * (1 - i) * (1 - a);
  const impact = changed ? 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15 : 6.42 * iss;
  const exploitability = 8.22 * av * ac * pr * ui;
  if (impact <= 0) return 0;
  return roundUp(Math.min((changed ? 1.08 : 1) * (impact + exploitability), 10));
}

/**
 * The smallest one-decimal number at or above `x`, computed on integers as
 * CVSS v3.1 (Appendix A) prescribes, so float noise (4.000000000001) does
 * not round 4.0 up to 4.1.
 */
function roundUp(x: number): number {
  const scaled = Math.round(x * 100_000);
  return scaled % 10_000 === 0 ? scaled / 100_000 : (Math.floor(scaled / 10_000) + 1) / 10;
}
