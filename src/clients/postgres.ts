/**
 * PostgreSQL connections to a target or to the state database. Every
 * session carries a statement timeout and a lock timeout (the README's
 * Safety section) and the application name `caretaker`, which is how tasks
 * recognise caretaker's own sessions (`otherSessions`).
 */
import { Client, Pool, type ClientConfig } from 'pg';
import type { Logger } from 'pino';
import { redactSecretsIn } from '../logger';
import { withTimeout } from '../util/timeout';
import type { SessionLimits } from '../contract/clients';

export type { SessionLimits };

export const APPLICATION_NAME = 'caretaker';

/**
 * SQL condition on pg_stat_activity (as `alias`): the client sessions of the
 * current database that are not caretaker's own, neither this session nor
 * another whose application name starts with `caretaker` (another run, a
 * pg_dump caretaker started). The tasks that report or end other sessions
 * share it, so they agree on what is ours.
 */
export function otherSessions(alias: string): string {
  return `${alias}.datname = current_database()
      AND ${alias}.backend_type = 'client backend'
      AND ${alias}.pid <> pg_backend_pid()
      AND ${alias}.application_name NOT LIKE '${APPLICATION_NAME}%'`;
}

/** SQLSTATE of a statement cancelled by lock_timeout (or NOWAIT). */
export const LOCK_NOT_AVAILABLE = '55P03';
/** SQLSTATE of a refused privilege. */
export const INSUFFICIENT_PRIVILEGE = '42501';

/** The SQLSTATE of a failed query, if it has one. */
export const sqlState = (err: unknown): string | undefined => {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
};


/** caretaker's own state database: its statements are short, on its own tables. */
export const STATE_LIMITS: SessionLimits = { statementTimeoutMs: 30_000, lockTimeoutMs: 5_000 };

/** The state database's limits with the config's statement timeout (`state.statementTimeoutSeconds`). */
export function stateLimits(state: { statementTimeoutSeconds: number }): SessionLimits {
  return { ...STATE_LIMITS, statementTimeoutMs: state.statementTimeoutSeconds * 1000 };
}

/**
 * How much longer than the server's statement timeout the client waits for
 * an answer. The server's timeout bounds a statement it received; this one
 * bounds one it never did (a half-open connection: a failover, a NAT that
 * forgot the flow, a partition), where the server has nothing to time out.
 */
export const CLIENT_MARGIN_MS = 5_000;

/** TCP keepalive probes start after this much silence, so a dead peer is noticed on an idle pooled connection too. */
const KEEPALIVE_DELAY_MS = 10_000;

function clientConfig(url: string, limits: SessionLimits): ClientConfig {
  return {
    connectionString: url,
    application_name: APPLICATION_NAME,
    statement_timeout: limits.statementTimeoutMs,
    lock_timeout: limits.lockTimeoutMs,
    idle_in_transaction_session_timeout: limits.idleInTransactionTimeoutMs ?? 60_000,
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
  };
}

/** How long ending a session may wait for the server's goodbye before its socket is cut. */
const END_TIMEOUT_MS = 5_000;

/** Drops a session's socket at once. pg has no public way to; its Client keeps the socket at connection.stream. */
function cut(client: unknown): void {
  (client as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}

/**
 * Ends a session, bounded: `end()` of an idle session says goodbye and waits
 * for the server's, which a peer that is gone never sends; the run, and the
 * worker's job, would wait with it. (pg itself cuts a session that still
 * has a query in flight.)
 */
export async function endClient(client: Client): Promise<void> {
  try {
    await withTimeout(client.end(), END_TIMEOUT_MS, 'ending the session');
  } catch {
    cut(client);
  }
}

/** One connected client; an error on an idle connection is logged, never thrown at the process. */
export async function connectClient(url: string, limits: SessionLimits, log: Logger): Promise<Client> {
  const client = new Client(clientConfig(url, limits));
  client.on('error', (err) => log.warn({ err: redactSecretsIn(err.message) }, 'postgres connection lost'));
  try {
    await client.connect();
  } catch (err) {
    throw new Error(`cannot connect to postgres: ${redactSecretsIn((err as Error).message)}`, { cause: err });
  }
  return client;
}

/**
 * A small pool for the state database, shared by a process's roles. Every
 * query is bounded on the client too (`query_timeout`, the statement
 * timeout plus CLIENT_MARGIN_MS), connections carry TCP keepalive (as every session), and a
 * connection released with an error is cut at once: one that timed out
 * may still have its query in flight, and ending it politely would wait
 * on a peer that no longer answers (and hold up the pool's end at shutdown).
 */
export function createPool(url: string, limits: SessionLimits, log: Logger, max = 5): Pool {
  const pool = new Pool({
    ...clientConfig(url, limits),
    max,
    idleTimeoutMillis: 30_000,
    query_timeout: limits.statementTimeoutMs + CLIENT_MARGIN_MS,
  });
  pool.on('error', (err) => log.warn({ err: redactSecretsIn(err.message) }, 'idle state-database connection lost'));
  pool.on('release', (err: Error | undefined, client: unknown) => {
    if (err) cut(client);
  });
  return pool;
}
