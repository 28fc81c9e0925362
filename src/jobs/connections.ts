/**
 * connections (daily): the runbook's "database connections < 80 % of max"
 * and "kill idle connections > 5 min". Counts client sessions against
 * max_connections, lists sessions of the target's database idle (or idle in
 * a transaction, or in one that failed) past the threshold, and ends them
 * only when the target's config allows it, only for the configured roles,
 * never caretaker's own.
 */
import { z } from 'zod';
import type { Client } from 'pg';
import { defineTask, type FindingCodes } from '../contract/task';
import type { Action, Finding } from '../contract/result';
import { otherSessions } from '../clients/postgres';

/** States of a session that holds a connection without doing anything. */
const IDLE_STATES = ['idle', 'idle in transaction', 'idle in transaction (aborted)'];
/**
 * A transaction that failed and awaits its ROLLBACK. When the whole
 * transaction failed, the server has released its locks, xid and snapshot;
 * when only a subtransaction (after a SAVEPOINT) failed, the outer
 * transaction still holds them, so the query says which.
 */
const ABORTED = 'idle in transaction (aborted)';

/**
 * Others' client sessions of this database in one of the states `$states`
 * for more than `$seconds` seconds (placeholders): the listing and the
 * termination test the same.
 */
const idleOthers = (seconds: string, states: string) => `${otherSessions('a')}
      AND a.state = ANY(${states}::text[])
      AND a.state_change < now() - make_interval(secs => ${seconds})`;

export const SQL = {
  usage: `
    SELECT
      (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int AS used,
      (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND state IS NULL)::int AS hidden,
      current_setting('max_connections')::int AS max,
      current_setting('superuser_reserved_connections')::int AS reserved`,
  /**
   * Client sessions of this database idle longer than $1 seconds, oldest
   * first; never ours. For a failed transaction, "holdsNothing" says it
   * keeps no lock, xid or snapshot (asked of that state only: pg_locks is
   * read once per such session).
   */
  idleSessions: `
    SELECT pid, usename AS "user", application_name AS application, state,
           client_addr::text AS "clientAddr",
           floor(extract(epoch FROM now() - state_change))::int AS "idleSeconds",
           CASE WHEN a.state = '${ABORTED}' THEN
             a.backend_xid IS NULL AND a.backend_xmin IS NULL
             AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.granted)
           END AS "holdsNothing"
    FROM pg_stat_activity a
    WHERE ${idleOthers('$1', '$2')}
    ORDER BY state_change`,
  /**
   * Terminates the listed pids, re-checking every condition at that moment:
   * a session that woke up, changed role or is ours since the listing is spared.
   */
  terminate: `
    SELECT pid, pg_terminate_backend(pid) AS terminated
    FROM pg_stat_activity a
    WHERE pid = ANY($1::int[])
      AND usename = ANY($2::text[])
      AND ${idleOthers('$3', '$4')}`,
} as const;

interface IdleSession {
  pid: number;
  user: string | null;
  application: string;
  state: string;
  clientAddr: string | null;
  idleSeconds: number;
  /** Only for a failed transaction; null otherwise. */
  holdsNothing: boolean | null;
}

const codes = {
  connections_high: 'client sessions on the server at or above `warning` (critical at `critical`) of max_connections',
  idle_connections: 'sessions of the database idle for more than `idleSeconds` (severity `idleSeverity`)',
  idle_in_transaction: 'sessions idle in a transaction (or a failed subtransaction) past `idleSeconds`: they hold locks',
  idle_in_aborted_transaction: 'sessions idle in a failed transaction past `idleSeconds`, holding only a connection',
  connections_hidden: "sessions of other roles whose state the role may not see (it lacks pg_read_all_stats)",
} satisfies FindingCodes;
type Code = keyof typeof codes;

const params = z
  .strictObject({
    /** Share of max_connections in use that raises `connections_high` as a warning... */
    warning: z.number().gt(0).max(1).default(0.8),
    /** ...and as critical. */
    critical: z.number().gt(0).max(1).default(0.9),
    /** A session idle this long is reported (and, when allowed, terminated). */
    idleSeconds: z.number().int().min(1).max(30 * 86_400).default(300),
    /** Idle sessions are normal for connection pools: `info` unless you want them flagged. */
    idleSeverity: z.enum(['info', 'warning']).default('info'),
    /** Roles whose idle sessions may be terminated when `allow.terminateIdle` is set. */
    terminateRoles: z.array(z.string().min(1)).default([]),
    /** How many sessions a finding lists in its details. */
    maxListed: z.number().int().min(1).max(1000).default(50),
  })
  .refine((p) => p.warning <= p.critical, { error: 'warning must not be above critical', path: ['warning'] });

export const connections = defineTask({
  name: 'connections',
  description: 'Connections in use vs max_connections; idle and idle-in-transaction sessions, terminated only when allowed',
  target: 'postgres',
  defaultSchedule: 'daily',
  timeoutMs: 60_000,
  changesTarget: true,
  params,
  codes,
  async run(ctx, p) {
    const db = await ctx.clients.postgres();
    const findings: Finding<Code>[] = [];
    const actions: Action[] = [];

    const usage = (await db.query(SQL.usage)).rows[0] as { used: number; hidden: number; max: number; reserved: number };
    const ratio = usage.used / usage.max;
    const pct = Math.round(ratio * 100);
    if (ratio >= p.warning) {
      findings.push({
        severity: ratio >= p.critical ? 'critical' : 'warning',
        code: 'connections_high',
        subject: 'max_connections',
        message: `${usage.used} of ${usage.max} connections in use (${pct} %, ${ratio >= p.critical ? 'critical' : 'warning'} at ${Math.round((ratio >= p.critical ? p.critical : p.warning) * 100)} %)`,
        suggestion: 'Find who holds them (pg_stat_activity by usename, application_name); put a pooler (PgBouncer) in front, or lower pool sizes, before raising max_connections',
        details: { used: usage.used, max: usage.max, superuserReserved: usage.reserved, ratio },
      });
    }
    if (usage.hidden > 0) {
      findings.push({
        severity: 'info',
        code: 'connections_hidden',
        subject: 'pg_stat_activity',
        message: `cannot see the state of ${usage.hidden} sessions of other roles`,
        suggestion: 'GRANT pg_read_all_stats TO the role caretaker connects as',
      });
    }

    const idle = (await db.query<IdleSession>(SQL.idleSessions, [p.idleSeconds, IDLE_STATES])).rows;
    const plainIdle = idle.filter((s) => s.state === 'idle');
    const abortedEmpty = idle.filter((s) => s.state === ABORTED && s.holdsNothing);
    // An aborted subtransaction leaves the outer transaction's locks held: that session counts here.
    const idleInTx = idle.filter((s) => s.state !== 'idle' && !abortedEmpty.includes(s));
    const allowed = ctx.target.allow.terminateIdle && p.terminateRoles.length > 0;
    const suggestion = allowed
      ? undefined
      : 'Set allow.terminateIdle on the target and tasks.connections.terminateRoles to let caretaker end them; or set idle_session_timeout / idle_in_transaction_session_timeout for the role';
    const list = (sessions: IdleSession[]) => ({ count: sessions.length, sessions: sessions.slice(0, p.maxListed).map(({ holdsNothing: _, ...s }) => s) });
    if (plainIdle.length > 0) {
      findings.push({
        severity: p.idleSeverity,
        code: 'idle_connections',
        subject: ctx.target.name,
        message: `${plainIdle.length} sessions idle for more than ${p.idleSeconds} s (oldest ${plainIdle[0]!.idleSeconds} s)`,
        suggestion,
        details: list(plainIdle),
      });
    }
    if (idleInTx.length > 0) {
      findings.push({
        severity: 'warning',
        code: 'idle_in_transaction',
        subject: ctx.target.name,
        message: `${idleInTx.length} sessions idle in a transaction for more than ${p.idleSeconds} s (oldest ${idleInTx[0]!.idleSeconds} s): they hold locks and block vacuum`,
        suggestion,
        details: list(idleInTx),
      });
    }
    if (abortedEmpty.length > 0) {
      findings.push({
        severity: 'info',
        code: 'idle_in_aborted_transaction',
        subject: ctx.target.name,
        message: `${abortedEmpty.length} sessions idle in a failed transaction for more than ${p.idleSeconds} s (oldest ${abortedEmpty[0]!.idleSeconds} s): they hold no lock and do not block vacuum, only a connection, until their client sends ROLLBACK`,
        suggestion: allowed
          ? 'Find the client that leaves failed transactions open (application, user) and make it roll back on error'
          : `Find the client that leaves failed transactions open (application, user) and make it roll back on error; ${suggestion}`,
        details: list(abortedEmpty),
      });
    }

    let terminated = 0;
    if (allowed) {
      const eligible = idle.filter((s) => s.user !== null && p.terminateRoles.includes(s.user));
      if (ctx.dryRun) {
        for (const s of eligible) actions.push(terminateAction(s, false));
      } else if (eligible.length > 0) {
        terminated = await terminate(db, eligible, p.terminateRoles, p.idleSeconds, actions);
        for (const a of actions) if (a.applied) ctx.applied(a);
        ctx.log.info({ terminated, eligible: eligible.length }, 'terminated idle sessions');
      }
    }

    const parts = [`${usage.used}/${usage.max} connections (${pct} %)`, `${plainIdle.length} idle`, `${idleInTx.length} idle in transaction`];
    if (abortedEmpty.length > 0) parts.push(`${abortedEmpty.length} idle in a failed transaction`);
    if (allowed) parts.push(ctx.dryRun ? `would terminate ${actions.length}` : `terminated ${terminated}`);
    return {
      summary: parts.join(', '),
      findings,
      actions,
      metrics: {
        connections_used: usage.used,
        connections_max: usage.max,
        connections_used_ratio: ratio,
        connections_idle: plainIdle.length,
        connections_idle_in_transaction: idleInTx.length,
        connections_idle_in_aborted_transaction: abortedEmpty.length,
        connections_terminated: terminated,
      },
    };
  },
});

function terminateAction(s: IdleSession, applied: boolean, durationMs?: number): Action {
  return {
    kind: 'terminate_backend',
    subject: `pid ${s.pid}`,
    applied,
    durationMs,
    details: { pid: s.pid, user: s.user, application: s.application, state: s.state, idleSeconds: s.idleSeconds },
  };
}

async function terminate(db: Client, sessions: IdleSession[], roles: string[], idleSeconds: number, actions: Action[]): Promise<number> {
  const started = Date.now();
  const { rows } = await db.query<{ pid: number; terminated: boolean }>(SQL.terminate, [sessions.map((s) => s.pid), roles, idleSeconds, IDLE_STATES]);
  const durationMs = Date.now() - started;
  const done = new Set(rows.filter((r) => r.terminated).map((r) => r.pid));
  for (const s of sessions) actions.push(terminateAction(s, done.has(s.pid), durationMs));
  return done.size;
}
