/**
 * What each of pg-health's checks is: a plain function over the target's
 * session and the params it needs, returning its findings, its metrics and
 * its part of the summary. src/jobs/pg-health.ts runs them in order and
 * joins what they return; each file here holds one check (or a group of
 * related ones) with its SQL, the rows that SQL returns and its finding codes.
 */
import type { Client } from 'pg';
import type { Finding, Severity } from '../contract/result';

/** The server the checks run on, read once by the task before any check. */
export interface ServerInfo {
  /** server_version_num, e.g. 170002. */
  version: number;
  database: string;
  inRecovery: boolean;
}

/** What every check gets: the run's session on the target (with its statement and lock timeouts) and its server. */
export interface PgSession {
  db: Client;
  server: ServerInfo;
}

/** One check's share of the run. */
export interface CheckResult<C extends string = string> {
  findings: Finding<C>[];
  metrics: Record<string, number>;
  /** Its part of the run's summary; none when it has nothing to say (no inactive slot, archiving not watched). */
  summary?: string;
}

/** A check: its options are the params it reads (pg-health's params satisfy every check's). */
export type PgHealthCheck<O, C extends string = string> = (session: PgSession, options: O) => Promise<CheckResult<C>>;

/** `critical` from the critical threshold, `warning` from the warning one, nothing below. */
export const severityOf = (value: number, warning: number, critical: number): Severity | undefined =>
  value >= critical ? 'critical' : value >= warning ? 'warning' : undefined;
