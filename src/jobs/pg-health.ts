/**
 * pg-health (daily): what check_postgres checks that the other tasks do not.
 * Long transactions, sessions stuck behind a lock and who blocks them,
 * sequences near the end of their range (or of their column's type), the
 * block cache hit ratio, replication lag and inactive slots, and prepared
 * transactions left open, the database's transaction ID and multixact ages
 * (with the tables and the xmin holders that keep them from falling), and
 * WAL archiving. Read-only; a constant number of catalog queries.
 *
 * Scope: sessions, locks, prepared transactions and logical slots are the
 * target database's own; replicas and physical slots belong to the whole
 * server, so every target on that server reports them (turn physical slots
 * off with `physicalSlots: false` on all but one); so is WAL archiving
 * (`archiving: false`).
 */
import { z } from 'zod';
import { defineTask, type FindingCodes } from '../contract/task';
import type { Finding } from '../contract/result';
import type { PgHealthCheck, ServerInfo } from '../pg-health/check';
import { LOCK_WAIT_CODES, LONG_TRANSACTION_CODES, lockWaits, longTransactions } from '../pg-health/sessions';
import { SEQUENCE_CODES, sequences } from '../pg-health/sequences';
import { CACHE_HIT_CODES, cacheHit } from '../pg-health/cache-hit';
import { REPLICATION_LAG_CODES, REPLICATION_SLOT_CODES, inactiveSlots, replicas } from '../pg-health/replication';
import { PREPARED_TRANSACTION_CODES, preparedTransactions } from '../pg-health/prepared-transactions';
import { ID_WRAP, WRAPAROUND_CODES, wraparound } from '../pg-health/wraparound';
import { ARCHIVING_CODES, archiving } from '../pg-health/archiving';

export { replicationFindings, type Replica } from '../pg-health/replication';
export { wraparoundFindings } from '../pg-health/wraparound';
export { archiveFailingFinding } from '../pg-health/archiving';

/** The oldest server the checks' queries run on (pg_replication_slots.wal_status). */
const MIN_SERVER_VERSION = 130000;

/** The server every check runs on: its version decides some queries' form. */
const SERVER_SQL = `
    SELECT current_setting('server_version_num')::int AS version,
           current_database() AS database,
           pg_is_in_recovery() AS "inRecovery"`;

/** Every code pg-health's findings may carry, each with its meaning (the union of its checks' codes). */
export const PG_HEALTH_CODES = {
  ...LONG_TRANSACTION_CODES,
  ...LOCK_WAIT_CODES,
  ...SEQUENCE_CODES,
  ...CACHE_HIT_CODES,
  ...REPLICATION_LAG_CODES,
  ...REPLICATION_SLOT_CODES,
  ...PREPARED_TRANSACTION_CODES,
  ...WRAPAROUND_CODES,
  ...ARCHIVING_CODES,
} as const satisfies FindingCodes;
export type PgHealthCode = keyof typeof PG_HEALTH_CODES;

const seconds = z.number().min(0).max(30 * 86_400);
const ratio = z.number().min(0).max(1);
const bytes = z.number().int().min(0);

const params = z
  .strictObject({
    /** A transaction open this long is `long_transaction` (warning)... */
    transactionWarningSeconds: seconds.default(300),
    /** ...and critical from this age. */
    transactionCriticalSeconds: seconds.default(1800),
    /** A session waiting on a lock this long is `lock_wait` (warning)... */
    lockWaitWarningSeconds: seconds.default(30),
    /** ...and critical from this wait. */
    lockWaitCriticalSeconds: seconds.default(300),
    /** Share of a sequence's usable range consumed that raises `sequence_exhaustion` (warning)... */
    sequenceWarning: ratio.default(0.85),
    /** ...and critical. */
    sequenceCritical: ratio.default(0.95),
    /** A cache hit ratio below this is `cache_hit_low`... */
    cacheHitWarning: ratio.default(0.99),
    /** ...once this many blocks were read from outside shared buffers since the statistics reset. */
    minBlocksRead: z.number().int().min(0).default(10_000),
    /** Replica lag (replay_lag) that raises `replication_lag` (warning)... */
    replicationLagWarningSeconds: seconds.default(60),
    /** ...and critical. */
    replicationLagCriticalSeconds: seconds.default(600),
    /** Replica lag in WAL bytes that raises `replication_lag` (warning)... */
    replicationLagWarningBytes: bytes.default(64 * 1024 ** 2),
    /** ...and critical. */
    replicationLagCriticalBytes: bytes.default(1024 ** 3),
    /** An inactive slot is `replication_slot_inactive` (info), a warning once it retains this much WAL. */
    slotRetainedWarningBytes: bytes.default(1024 ** 3),
    /** Report inactive physical slots (server-wide: every target on the server sees them). */
    physicalSlots: z.boolean().default(true),
    /** A prepared transaction this old is `prepared_transaction` (warning)... */
    preparedWarningSeconds: seconds.default(300),
    /** ...and critical. */
    preparedCriticalSeconds: seconds.default(1800),
    /** age(datfrozenxid) or mxid_age(datminmxid) of the database that raises `database_wraparound_risk` / `multixact_wraparound_risk` (warning, check_postgres's txn_wraparound default)... */
    wraparoundWarning: z.number().int().min(1).max(ID_WRAP).default(1_300_000_000),
    /** ...and critical. */
    wraparoundCritical: z.number().int().min(1).max(ID_WRAP).default(1_400_000_000),
    /** Watch WAL archiving (server-wide: every target on the server sees it). */
    archiving: z.boolean().default(true),
    /** `archive_failing` is critical once nothing was archived for this long (or ever since the statistics reset). */
    archiveFailingCriticalSeconds: seconds.default(3600),
    /** Characters of a session's query text kept in details (0: none; the text can hold data). */
    queryTextChars: z.number().int().min(0).max(1000).default(100),
    /** Findings per code at most (the worst first); counts in metrics are always complete. */
    maxListed: z.number().int().min(1).max(1000).default(20),
  })
  .refine((p) => p.transactionWarningSeconds <= p.transactionCriticalSeconds, { error: 'must not be above transactionCriticalSeconds', path: ['transactionWarningSeconds'] })
  .refine((p) => p.lockWaitWarningSeconds <= p.lockWaitCriticalSeconds, { error: 'must not be above lockWaitCriticalSeconds', path: ['lockWaitWarningSeconds'] })
  .refine((p) => p.sequenceWarning <= p.sequenceCritical, { error: 'must not be above sequenceCritical', path: ['sequenceWarning'] })
  .refine((p) => p.replicationLagWarningSeconds <= p.replicationLagCriticalSeconds, { error: 'must not be above replicationLagCriticalSeconds', path: ['replicationLagWarningSeconds'] })
  .refine((p) => p.replicationLagWarningBytes <= p.replicationLagCriticalBytes, { error: 'must not be above replicationLagCriticalBytes', path: ['replicationLagWarningBytes'] })
  .refine((p) => p.preparedWarningSeconds <= p.preparedCriticalSeconds, { error: 'must not be above preparedCriticalSeconds', path: ['preparedWarningSeconds'] })
  .refine((p) => p.wraparoundWarning <= p.wraparoundCritical, { error: 'must not be above wraparoundCritical', path: ['wraparoundWarning'] });

export type PgHealthParams = z.infer<typeof params>;

/**
 * The checks in the order they run, which is the order of the findings and
 * of the summary's parts; `progress` is the share of the run reported once
 * the check is done.
 */
const CHECKS: readonly { check: PgHealthCheck<PgHealthParams, PgHealthCode>; progress?: number }[] = [
  { check: longTransactions },
  { check: lockWaits, progress: 30 },
  { check: sequences, progress: 50 },
  { check: cacheHit, progress: 60 },
  { check: replicas },
  { check: inactiveSlots, progress: 80 },
  { check: preparedTransactions, progress: 90 },
  { check: wraparound },
  { check: archiving },
];

export const pgHealth = defineTask({
  name: 'pg-health',
  description: 'Long transactions, lock waits, sequences near exhaustion, cache hit ratio, replication lag and slots, prepared transactions',
  target: 'postgres',
  defaultSchedule: 'daily',
  timeoutMs: 120_000,
  changesTarget: false,
  params,
  codes: PG_HEALTH_CODES,
  async run(ctx, p) {
    const db = await ctx.clients.postgres();
    const server = (await db.query(SERVER_SQL)).rows[0] as ServerInfo;
    if (server.version < MIN_SERVER_VERSION) {
      throw new Error(`pg-health needs PostgreSQL 13 or newer; ${server.database} runs ${server.version}`);
    }
    const findings: Finding<PgHealthCode>[] = [];
    const metrics: Record<string, number> = {};
    const summary: string[] = [];
    for (const { check, progress } of CHECKS) {
      const result = await check({ db, server }, p);
      findings.push(...result.findings);
      Object.assign(metrics, result.metrics);
      if (result.summary !== undefined) summary.push(result.summary);
      if (progress !== undefined) await ctx.progress(progress);
    }
    ctx.log.info({ findings: findings.length }, 'pg-health checked');
    return { summary: summary.join(', '), findings, metrics };
  },
});
