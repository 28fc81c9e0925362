/**
 * Waivers: accepted findings ("this unused index is intentional"). A
 * waived finding leaves alerts and the report's open list, and is counted
 * apart with its reason and expiry. It comes back when the waiver expires,
 * is removed, or the finding's severity rises above the one accepted.
 *
 * Waivers come from two places: the state database (`caretaker waive`, the
 * console), with who and when, and the config's `waivers:` (ids
 * `config-1`, `config-2`, ... in file order; who is "config").
 */
import type { Pool } from 'pg';
import type { WaiverConfig } from '../../config/alerting-schema';
import type { Severity } from '../../contract/result';
import { globMatch, type ProblemIdentity } from '../matchers';

export interface Waiver {
  id: string;
  task: string;
  target: string;
  code: string;
  subject: string;
  /** The worst severity accepted. */
  severity: Severity;
  reason: string;
  createdBy: string;
  createdAt?: Date;
  expiresAt?: Date;
  source: 'config' | 'state';
}

export interface NewWaiver {
  task: string;
  target: string;
  code: string;
  subject: string;
  severity: Severity;
  reason: string;
  createdBy: string;
  expiresAt?: Date;
}

const COLUMNS = 'id, task, target, code, subject, severity, reason, created_by, created_at, expires_at';

export const WAIVER_SQL = {
  /** $1 task, $2 target, $3 code, $4 subject, $5 severity, $6 reason, $7 who, $8 expires (NULL: never). */
  add: `
    INSERT INTO caretaker.waivers (task, target, code, subject, severity, reason, created_by, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${COLUMNS}`,
  /** Not removed and not expired at $1. */
  liveAt: `
    SELECT ${COLUMNS} FROM caretaker.waivers
    WHERE removed_at IS NULL AND (expires_at IS NULL OR expires_at > $1)
    ORDER BY task, target, code, subject, id`,
  /** Removes waiver $1 at $2 by $3, unless already removed. */
  remove: `
    UPDATE caretaker.waivers SET removed_at = $2, removed_by = $3
    WHERE id = $1 AND removed_at IS NULL RETURNING ${COLUMNS}`,
} as const;

interface RawWaiver {
  id: string;
  task: string;
  target: string;
  code: string;
  subject: string;
  severity: Severity;
  reason: string;
  created_by: string;
  created_at: Date;
  expires_at: Date | null;
}

function toWaiver(r: RawWaiver): Waiver {
  return {
    id: String(r.id),
    task: r.task,
    target: r.target,
    code: r.code,
    subject: r.subject,
    severity: r.severity,
    reason: r.reason,
    createdBy: r.created_by,
    createdAt: r.created_at,
    ...(r.expires_at ? { expiresAt: r.expires_at } : {}),
    source: 'state',
  };
}

/** `2027-03-01` lapses as that day begins (UTC); a full timestamp at that instant. */
export function waiverExpiry(until: string): Date {
  return new Date(/^\d{4}-\d{2}-\d{2}$/.test(until) ? `${until}T00:00:00Z` : until);
}

/** The config's waivers as Waivers. */
export function configWaivers(list: readonly WaiverConfig[]): Waiver[] {
  return list.map((w, i) => ({
    id: `config-${i + 1}`,
    task: w.task,
    target: w.target,
    code: w.code,
    subject: w.subject,
    severity: w.severity,
    reason: w.reason,
    createdBy: 'config',
    ...(w.until ? { expiresAt: waiverExpiry(w.until) } : {}),
    source: 'config',
  }));
}

/** How far ahead a waiver's expiry is called out (the console, the CLI, the weekly report), in days. */
export const EXPIRING_WAIVER_DAYS = 14;

/** True when `expiresAt` falls within EXPIRING_WAIVER_DAYS of `now`. */
export function expiresSoon(expiresAt: Date | undefined, now: Date): boolean {
  return expiresAt !== undefined && expiresAt.getTime() <= now.getTime() + EXPIRING_WAIVER_DAYS * 86_400_000;
}

/** Those lapsing first first (the ones someone must decide on), those that never lapse last. */
export function byExpiry<W extends Pick<Waiver, 'id' | 'expiresAt'>>(waivers: readonly W[]): W[] {
  return [...waivers].sort((a, b) => (a.expiresAt?.getTime() ?? Infinity) - (b.expiresAt?.getTime() ?? Infinity) || a.id.localeCompare(b.id));
}

const RANK: Record<Severity, number> = { info: 0, warning: 1, critical: 2 };

/** The waiver that covers `p` at `now`, if any: matching, not expired, and `p` no worse than accepted. */
export function waiverFor(waivers: readonly Waiver[], p: ProblemIdentity, now: Date): Waiver | undefined {
  return waivers.find(
    (w) =>
      (w.expiresAt === undefined || w.expiresAt > now) &&
      RANK[p.severity] <= RANK[w.severity] &&
      globMatch(w.task, p.task) &&
      globMatch(w.target, p.target) &&
      globMatch(w.code, p.code) &&
      globMatch(w.subject, p.subject),
  );
}

export class WaiverStore {
  private readonly fromConfig: Waiver[];

  constructor(private readonly pool: Pool, config: readonly WaiverConfig[] = []) {
    this.fromConfig = configWaivers(config);
  }

  async add(w: NewWaiver): Promise<Waiver> {
    const { rows } = await this.pool.query<RawWaiver>(WAIVER_SQL.add, [w.task, w.target, w.code, w.subject, w.severity, w.reason, w.createdBy, w.expiresAt ?? null]);
    return toWaiver(rows[0]!);
  }

  /** Every waiver in force at `now`: the config's, then the stored ones. */
  async live(now: Date): Promise<Waiver[]> {
    const { rows } = await this.pool.query<RawWaiver>(WAIVER_SQL.liveAt, [now]);
    return [...this.fromConfig.filter((w) => w.expiresAt === undefined || w.expiresAt > now), ...rows.map(toWaiver)];
  }

  /** Removes a stored waiver; undefined when there is none by that id (config waivers are removed from the config). */
  async remove(id: string, by: string, now: Date): Promise<Waiver | undefined> {
    if (!/^\d{1,18}$/.test(id)) return undefined;
    const { rows } = await this.pool.query<RawWaiver>(WAIVER_SQL.remove, [id, now, by]);
    return rows[0] ? toWaiver(rows[0]) : undefined;
  }
}
