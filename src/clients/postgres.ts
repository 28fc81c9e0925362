/**
 * PostgreSQL connections to a target or to the state database. Every
 * session carries a statement timeout and a lock timeout (DESIGN.md,
 * "Safety") and the application name `caretaker`, which is how tasks
 * recognise caretaker's own sessions (`otherSessions`).
 */
import { Client, Pool, type ClientConfig } from 'pg';
import type { Logger } from 'pino';
import { redactSecretsIn } from '../logger';

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

export interface SessionLimits {
  statementTimeoutMs: number;
  lockTimeoutMs: number;
  /** Sessions left idle in a transaction by a bug of ours are ended by the server. */
  idleInTransactionTimeoutMs?: number;
}

/** caretaker's own state database: its statements are short, on its own tables. */
export const STATE_LIMITS: SessionLimits = { statementTimeoutMs: 30_000, lockTimeoutMs: 5_000 };

function clientConfig(url: string, limits: SessionLimits): ClientConfig {
  return {
    connectionString: url,
    application_name: APPLICATION_NAME,
    statement_timeout: limits.statementTimeoutMs,
    lock_timeout: limits.lockTimeoutMs,
    idle_in_transaction_session_timeout: limits.idleInTransactionTimeoutMs ?? 60_000,
    connectionTimeoutMillis: 10_000,
  };
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

/** A small pool for the state database, shared by a process's roles. */
export function createPool(url: string, limits: SessionLimits, log: Logger, max = 5): Pool {
  const pool = new Pool({ ...clientConfig(url, limits), max, idleTimeoutMillis: 30_000 });
  pool.on('error', (err) => log.warn({ err: redactSecretsIn(err.message) }, 'idle state-database connection lost'));
  return pool;
}
