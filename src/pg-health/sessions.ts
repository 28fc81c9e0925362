/**
 * pg-health's session checks, on the target database's own sessions
 * (caretaker's never counted): transactions open too long
 * (`long_transaction`), and sessions waiting on a lock (`lock_wait`) with
 * who blocks them.
 */
import { otherSessions } from '../clients/postgres';
import type { Finding } from '../contract/result';
import type { FindingCodes } from '../contract/task';
import { formatDuration } from '../util/format';
import { severityOf, type CheckResult, type PgSession } from './check';

export const LONG_TRANSACTION_CODES = {
  long_transaction: 'a transaction open for `transactionWarningSeconds` or more (critical from `transactionCriticalSeconds`)',
} as const satisfies FindingCodes;

export const LOCK_WAIT_CODES = {
  lock_wait: 'a session waiting on a lock for `lockWaitWarningSeconds` or more (critical from `lockWaitCriticalSeconds`)',
} as const satisfies FindingCodes;

/** Since 14, pg_locks.waitstart says when a wait began; before, the statement start is the best guess. */
const WAITSTART_VERSION = 140000;

/** `$n` characters of a query text, none when `$n` is 0 (the text can hold data). */
const queryText = (column: string, param: string) => `CASE WHEN ${param}::int > 0 THEN left(${column}, ${param}::int) END`;

export const SQL = {
  /**
   * Open transactions: the longest of all, and those open for at least $1
   * seconds (at most $2, oldest first, query text cut to $3 characters).
   */
  transactions: `
    WITH tx AS (
      SELECT a.pid, a.usename AS "user", a.application_name AS application, a.client_addr::text AS "clientAddr",
             a.state, a.wait_event_type AS "waitEventType", a.wait_event AS "waitEvent",
             extract(epoch FROM now() - a.xact_start)::float8 AS "ageSeconds",
             CASE WHEN a.state = 'active' THEN extract(epoch FROM now() - a.query_start)::float8 END AS "queryAgeSeconds",
             ${queryText('a.query', '$3')} AS query
      FROM pg_stat_activity a
      WHERE ${otherSessions('a')}
        AND a.xact_start IS NOT NULL
    )
    SELECT coalesce((SELECT max("ageSeconds") FROM tx), 0)::float8 AS longest,
           (SELECT count(*) FROM tx WHERE "ageSeconds" >= $1)::int AS count,
           coalesce((SELECT json_agg(t ORDER BY t."ageSeconds" DESC)
                     FROM (SELECT * FROM tx WHERE "ageSeconds" >= $1 ORDER BY "ageSeconds" DESC LIMIT $2) t), '[]') AS sessions`,

  /**
   * Sessions waiting on a heavyweight lock: how many, and those waiting for
   * at least $1 seconds (at most $2, longest first) with the lock they want
   * and who holds it (pg_blocking_pids; pid 0 is a prepared transaction).
   */
  lockWaits(serverVersion: number): string {
    const waitStart = serverVersion >= WAITSTART_VERSION ? 'l.waitstart' : 'a.query_start';
    return `
    WITH w AS (
      SELECT a.pid, a.usename AS "user", a.application_name AS application, a.state,
             a.wait_event_type AS "waitEventType", a.wait_event AS "waitEvent",
             l.locktype AS "lockType", l.mode,
             CASE WHEN l.relation IS NOT NULL THEN l.relation::regclass::text END AS relation,
             extract(epoch FROM now() - ${waitStart})::float8 AS "waitSeconds",
             pg_blocking_pids(a.pid) AS "blockedBy",
             ${queryText('a.query', '$3')} AS query
      FROM pg_stat_activity a
      LEFT JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted
      WHERE ${otherSessions('a')}
        AND a.wait_event_type = 'Lock'
    )
    SELECT (SELECT count(*) FROM w)::int AS total,
           coalesce((
             SELECT json_agg(x ORDER BY x."waitSeconds" DESC)
             FROM (
               SELECT w.*,
                      coalesce((SELECT json_agg(json_build_object(
                                  'pid', b.pid, 'user', b.usename, 'application', b.application_name, 'state', b.state,
                                  'transactionSeconds', extract(epoch FROM now() - b.xact_start)::float8,
                                  'query', ${queryText('b.query', '$3')}) ORDER BY b.pid)
                                FROM pg_stat_activity b WHERE b.pid = ANY (w."blockedBy")), '[]') AS blockers
               FROM w
               WHERE w."waitSeconds" >= $1
               ORDER BY w."waitSeconds" DESC
               LIMIT $2
             ) x), '[]') AS sessions`;
  },
} as const;

/** A transaction open at least transactionWarningSeconds, as SQL.transactions returns it. */
interface Transaction {
  pid: number;
  user: string | null;
  application: string;
  clientAddr: string | null;
  state: string | null;
  waitEventType: string | null;
  waitEvent: string | null;
  ageSeconds: number;
  queryAgeSeconds: number | null;
  query: string | null;
}

interface TransactionsRow {
  /** The longest open transaction's age (0 when none is open). */
  longest: number;
  /** Transactions open at least transactionWarningSeconds: all of them, not only those listed. */
  count: number;
  sessions: Transaction[];
}

/** A session holding a lock another waits for. */
interface Blocker {
  pid: number;
  user: string | null;
  application: string | null;
  state: string | null;
  transactionSeconds: number | null;
  query: string | null;
}

interface LockWait {
  pid: number;
  user: string | null;
  application: string;
  state: string | null;
  waitEventType: string;
  waitEvent: string;
  lockType: string | null;
  mode: string | null;
  relation: string | null;
  waitSeconds: number;
  blockedBy: number[];
  blockers: Blocker[];
  query: string | null;
}

interface LockWaitsRow {
  /** Sessions waiting on a lock, however briefly. */
  total: number;
  sessions: LockWait[];
}

/** What the long-transaction check reads from pg-health's params. */
export interface LongTransactionOptions {
  transactionWarningSeconds: number;
  transactionCriticalSeconds: number;
  maxListed: number;
  queryTextChars: number;
}

/** What the lock-wait check reads from pg-health's params. */
export interface LockWaitOptions {
  lockWaitWarningSeconds: number;
  lockWaitCriticalSeconds: number;
  maxListed: number;
  queryTextChars: number;
}

type LongTransactionCode = keyof typeof LONG_TRANSACTION_CODES;
type LockWaitCode = keyof typeof LOCK_WAIT_CODES;

/** Long transactions: the longest one's age in the summary, the oldest listed. */
export async function longTransactions({ db }: PgSession, p: LongTransactionOptions): Promise<CheckResult<LongTransactionCode>> {
  const tx = (await db.query(SQL.transactions, [p.transactionWarningSeconds, p.maxListed, p.queryTextChars])).rows[0] as TransactionsRow;
  return {
    findings: tx.sessions.map((s) => transactionFinding(s, p)),
    metrics: { longest_transaction_seconds: Math.floor(tx.longest), long_transactions: tx.count },
    summary: `longest transaction ${formatDuration(tx.longest * 1000)}`,
  };
}

/** Lock waits: how many sessions wait, those waiting long listed with their blockers. */
export async function lockWaits({ db, server }: PgSession, p: LockWaitOptions): Promise<CheckResult<LockWaitCode>> {
  const locks = (await db.query(SQL.lockWaits(server.version), [p.lockWaitWarningSeconds, p.maxListed, p.queryTextChars])).rows[0] as LockWaitsRow;
  return {
    findings: locks.sessions.map((w) => lockWaitFinding(w, p)),
    metrics: { lock_waits: locks.total },
    summary: `${locks.total} lock waits`,
  };
}

function transactionFinding(s: Transaction, p: LongTransactionOptions): Finding<LongTransactionCode> {
  const severity = severityOf(s.ageSeconds, p.transactionWarningSeconds, p.transactionCriticalSeconds) ?? 'warning';
  const doing = s.state === 'active' ? `running a query for ${formatDuration((s.queryAgeSeconds ?? 0) * 1000)}` : (s.state ?? 'state hidden');
  return {
    severity,
    code: 'long_transaction',
    subject: `pid ${s.pid}`,
    message: `transaction of pid ${s.pid} (user ${s.user ?? '?'}, ${s.application || 'no application name'}) open for ${formatDuration(s.ageSeconds * 1000)}, ${doing}`,
    suggestion: `Ask its owner what it is doing; if stuck, SELECT pg_terminate_backend(${s.pid}). Long transactions hold locks and keep vacuum from removing dead rows: set idle_in_transaction_session_timeout / statement_timeout for the role`,
    details: { ...s, ageSeconds: Math.floor(s.ageSeconds), queryAgeSeconds: s.queryAgeSeconds === null ? null : Math.floor(s.queryAgeSeconds) },
  };
}

function lockWaitFinding(w: LockWait, p: LockWaitOptions): Finding<LockWaitCode> {
  const severity = severityOf(w.waitSeconds, p.lockWaitWarningSeconds, p.lockWaitCriticalSeconds) ?? 'warning';
  const who = w.blockedBy.map((pid) => (pid === 0 ? 'a prepared transaction' : `pid ${pid}`)).join(', ') || 'an unknown session';
  const what = w.relation ? `${w.mode ?? 'a lock'} on ${w.relation}` : `${w.mode ?? 'a lock'} (${w.lockType ?? w.waitEvent})`;
  return {
    severity,
    code: 'lock_wait',
    subject: `pid ${w.pid}`,
    message: `pid ${w.pid} (user ${w.user ?? '?'}) has waited ${formatDuration(w.waitSeconds * 1000)} for ${what}, blocked by ${who}`,
    suggestion: `See what the blocker is doing (pg_stat_activity WHERE pid IN (${w.blockedBy.join(', ')})); a blocker idle in a transaction or stuck can be ended with pg_terminate_backend(pid)`,
    details: { ...w, waitSeconds: Math.floor(w.waitSeconds) },
  };
}
