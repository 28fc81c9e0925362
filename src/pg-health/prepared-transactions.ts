/**
 * pg-health's prepared-transaction check: two-phase transactions of this
 * database left open (`prepared_transaction`), which hold their locks and
 * keep vacuum from cleaning up.
 */
import type { Client } from 'pg';
import type { Finding } from '../contract/result';
import type { FindingCodes } from '../contract/task';
import { formatDuration } from '../util/format';
import { severityOf, type CheckResult, type PgSession } from './check';

export const PREPARED_TRANSACTION_CODES = {
  prepared_transaction: 'a prepared transaction older than `preparedWarningSeconds` (300 s; critical from `preparedCriticalSeconds`, 1800 s)',
} as const satisfies FindingCodes;
type PreparedTransactionCode = keyof typeof PREPARED_TRANSACTION_CODES;

export const SQL = {
  /** Prepared transactions of this database: how many, and those older than $1 seconds (at most $2, oldest first). */
  prepared: `
    SELECT (SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database())::int AS total,
           coalesce((
             SELECT json_agg(x ORDER BY x."ageSeconds" DESC)
             FROM (
               SELECT p.gid, p.transaction::text AS xid, p.owner, p.prepared,
                      extract(epoch FROM now() - p.prepared)::float8 AS "ageSeconds"
               FROM pg_prepared_xacts p
               WHERE p.database = current_database() AND p.prepared <= now() - make_interval(secs => $1)
               ORDER BY p.prepared
               LIMIT $2
             ) x), '[]') AS transactions`,
} as const;

interface Prepared {
  gid: string;
  xid: string;
  owner: string;
  prepared: string;
  ageSeconds: number;
}

interface PreparedRow {
  /** Prepared transactions of this database, however young. */
  total: number;
  transactions: Prepared[];
}

/** What the prepared-transaction check reads from pg-health's params. */
export interface PreparedTransactionOptions {
  preparedWarningSeconds: number;
  preparedCriticalSeconds: number;
  maxListed: number;
}

/** Prepared transactions: all counted, the old ones listed, oldest first. */
export async function preparedTransactions({ db, server }: PgSession, p: PreparedTransactionOptions): Promise<CheckResult<PreparedTransactionCode>> {
  const prepared = (await db.query(SQL.prepared, [p.preparedWarningSeconds, p.maxListed])).rows[0] as PreparedRow;
  return {
    findings: prepared.transactions.map((x) => preparedFinding(db, x, server.database, p)),
    metrics: { prepared_transactions: prepared.total },
    summary: `${prepared.total} prepared transactions`,
  };
}

function preparedFinding(db: Client, x: Prepared, database: string, p: PreparedTransactionOptions): Finding<PreparedTransactionCode> {
  const severity = severityOf(x.ageSeconds, p.preparedWarningSeconds, p.preparedCriticalSeconds) ?? 'warning';
  return {
    severity,
    code: 'prepared_transaction',
    subject: x.gid,
    message: `prepared transaction ${x.gid} (owner ${x.owner}) open for ${formatDuration(x.ageSeconds * 1000)}: it holds its locks and keeps vacuum from cleaning up`,
    suggestion: `Let the transaction manager that prepared it finish it; if it is orphaned, in database ${database}: COMMIT PREPARED ${db.escapeLiteral(x.gid)} or ROLLBACK PREPARED ${db.escapeLiteral(x.gid)}`,
    details: { ...x, ageSeconds: Math.floor(x.ageSeconds) },
  };
}
