/**
 * Silences, stored in the state database so every replica agrees: from
 * `startsAt` to `endsAt`, problems matching every given matcher (task,
 * target, code, subject; exact or glob) do not notify. They are still
 * shown, as silenced, with who, why and until when. Expiring a silence
 * ends it now; the alerter's sweep then sends what it held back.
 */
import type { Pool } from 'pg';
import type { ProblemMatcher } from '../matchers';

export interface SilenceMatchers {
  task?: string;
  target?: string;
  code?: string;
  subject?: string;
}

export interface Silence {
  id: string;
  matchers: SilenceMatchers;
  startsAt: Date;
  endsAt: Date;
  reason: string;
  createdBy: string;
  createdAt: Date;
  /** Who ended it early, when someone did. */
  expiredBy?: string;
}

export interface NewSilence {
  matchers: SilenceMatchers;
  startsAt: Date;
  endsAt: Date;
  reason: string;
  createdBy: string;
}

const COLUMNS = 'id, task, target, code, subject, starts_at, ends_at, reason, created_by, created_at, expired_by';

export const SILENCE_SQL = {
  /** $1..$4 matchers (NULL: any), $5 starts, $6 ends, $7 reason, $8 who. */
  add: `
    INSERT INTO caretaker.silences (task, target, code, subject, starts_at, ends_at, reason, created_by)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${COLUMNS}`,
  /** In force at $1. */
  activeAt: `SELECT ${COLUMNS} FROM caretaker.silences WHERE starts_at <= $1 AND ends_at > $1 ORDER BY ends_at, id`,
  /** Not yet ended at $1 (in force or to come), and those ended after $2: what the console lists. */
  listSince: `SELECT ${COLUMNS} FROM caretaker.silences WHERE ends_at > $2 ORDER BY (ends_at > $1) DESC, ends_at DESC, id DESC LIMIT $3`,
  /** Ends silence $1 at $2 (by $3), unless it has already ended. */
  expire: `
    UPDATE caretaker.silences SET ends_at = GREATEST($2::timestamptz, starts_at + interval '1 millisecond'), expired_by = $3
    WHERE id = $1 AND ends_at > $2 RETURNING ${COLUMNS}`,
  get: `SELECT ${COLUMNS} FROM caretaker.silences WHERE id = $1`,
} as const;

interface RawSilence {
  id: string;
  task: string | null;
  target: string | null;
  code: string | null;
  subject: string | null;
  starts_at: Date;
  ends_at: Date;
  reason: string;
  created_by: string;
  created_at: Date;
  expired_by: string | null;
}

function toSilence(r: RawSilence): Silence {
  const matchers: SilenceMatchers = {};
  for (const k of ['task', 'target', 'code', 'subject'] as const) if (r[k] !== null) matchers[k] = r[k]!;
  return {
    id: String(r.id),
    matchers,
    startsAt: r.starts_at,
    endsAt: r.ends_at,
    reason: r.reason,
    createdBy: r.created_by,
    createdAt: r.created_at,
    ...(r.expired_by ? { expiredBy: r.expired_by } : {}),
  };
}

export type SilenceState = 'active' | 'pending' | 'expired' | 'ended';

/** In force, to come, ended early by someone (`expired`), or run out (`ended`). */
export function silenceState(s: Pick<Silence, 'startsAt' | 'endsAt' | 'expiredBy'>, now: Date): SilenceState {
  if (s.endsAt <= now) return s.expiredBy ? 'expired' : 'ended';
  return s.startsAt > now ? 'pending' : 'active';
}

/** A silence's matchers as a ProblemMatcher. */
export const silenceMatcher = (s: Silence): ProblemMatcher => s.matchers;

export class SilenceStore {
  constructor(private readonly pool: Pool) {}

  async add(s: NewSilence): Promise<Silence> {
    const m = s.matchers;
    const { rows } = await this.pool.query<RawSilence>(SILENCE_SQL.add, [m.task ?? null, m.target ?? null, m.code ?? null, m.subject ?? null, s.startsAt, s.endsAt, s.reason, s.createdBy]);
    return toSilence(rows[0]!);
  }

  async active(now: Date): Promise<Silence[]> {
    const { rows } = await this.pool.query<RawSilence>(SILENCE_SQL.activeAt, [now]);
    return rows.map(toSilence);
  }

  /** In force or to come, then those that ended in the last `endedWithinMs` (default a week), newest first. */
  async list(now: Date, opts: { endedWithinMs?: number; limit?: number } = {}): Promise<Silence[]> {
    const since = new Date(now.getTime() - (opts.endedWithinMs ?? 7 * 86_400_000));
    const { rows } = await this.pool.query<RawSilence>(SILENCE_SQL.listSince, [now, since, opts.limit ?? 200]);
    return rows.map(toSilence);
  }

  async get(id: string): Promise<Silence | undefined> {
    if (!/^\d{1,18}$/.test(id)) return undefined;
    const { rows } = await this.pool.query<RawSilence>(SILENCE_SQL.get, [id]);
    return rows[0] ? toSilence(rows[0]) : undefined;
  }

  /** Ends it now; undefined when there is no such silence or it had already ended. */
  async expire(id: string, by: string, now: Date): Promise<Silence | undefined> {
    if (!/^\d{1,18}$/.test(id)) return undefined;
    const { rows } = await this.pool.query<RawSilence>(SILENCE_SQL.expire, [id, now, by]);
    return rows[0] ? toSilence(rows[0]) : undefined;
  }
}
