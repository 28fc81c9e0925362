/**
 * pg-health's replication checks, server-wide: replicas streaming from this
 * server and how far behind they are (`replication_lag`), and replication
 * slots nothing consumes, with the WAL they hold back
 * (`replication_slot_inactive`): physical slots unless `physicalSlots` is
 * off, logical slots of this database only.
 */
import type { Client } from 'pg';
import type { Finding, Severity } from '../contract/result';
import type { FindingCodes } from '../contract/task';
import { formatBytes, formatDuration } from '../util/format';
import { severityOf, type CheckResult, type PgSession } from './check';

export const REPLICATION_LAG_CODES = {
  replication_lag: 'a replica `replicationLagWarningSeconds` or `replicationLagWarningBytes` behind (critical from the Critical ones)',
} as const satisfies FindingCodes;

export const REPLICATION_SLOT_CODES = {
  replication_slot_inactive: 'an inactive replication slot: info, a warning once it retains ≥ `slotRetainedWarningBytes` (1 GiB) of WAL or lost it',
} as const satisfies FindingCodes;

type ReplicationLagCode = keyof typeof REPLICATION_LAG_CODES;
type ReplicationSlotCode = keyof typeof REPLICATION_SLOT_CODES;

/** The LSN lag is measured against: the primary's insert position, or a standby's replay position. */
const REFERENCE_LSN = `(SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END AS lsn)`;

export const SQL = {
  /** Replicas streaming from this server (cluster-wide), with their lag; base backups are not replicas. */
  replicas: `
    SELECT r.pid, r.application_name AS application, r.client_addr::text AS "clientAddr", r.state, r.sync_state AS "syncState",
           extract(epoch FROM r.replay_lag)::float8 AS "replayLagSeconds",
           greatest(0, pg_wal_lsn_diff(ref.lsn, coalesce(r.replay_lsn, r.flush_lsn)))::float8 AS "lagBytes",
           CASE WHEN r.replay_lsn IS NULL AND r.flush_lsn IS NOT NULL THEN 'flush' ELSE 'replay' END AS "lagFrom"
    FROM pg_stat_replication r, ${REFERENCE_LSN} ref
    WHERE r.state IS DISTINCT FROM 'backup'
    ORDER BY r.application_name, r.pid`,

  /**
   * Inactive replication slots and the WAL they hold back: physical slots
   * (cluster-wide) when $1, logical slots of this database only.
   */
  inactiveSlots: `
    SELECT s.slot_name AS name, s.slot_type AS type, s.database, s.plugin, s.wal_status AS "walStatus",
           s.restart_lsn::text AS "restartLsn", s.xmin::text AS xmin, s.catalog_xmin::text AS "catalogXmin",
           CASE WHEN s.restart_lsn IS NOT NULL THEN greatest(0, pg_wal_lsn_diff(ref.lsn, s.restart_lsn))::float8 END AS "retainedBytes"
    FROM pg_replication_slots s, ${REFERENCE_LSN} ref
    WHERE NOT s.active
      AND ((s.slot_type = 'physical' AND $1::bool) OR (s.slot_type = 'logical' AND s.database = current_database()))
    ORDER BY "retainedBytes" DESC NULLS LAST, s.slot_name`,
} as const;

/** One replica as pg_stat_replication shows it (figures are null without pg_read_all_stats). */
export interface Replica {
  pid: number;
  application: string;
  clientAddr: string | null;
  state: string | null;
  syncState: string | null;
  replayLagSeconds: number | null;
  lagBytes: number | null;
  lagFrom: 'replay' | 'flush';
}

/** An inactive slot, as SQL.inactiveSlots returns it. */
interface Slot {
  name: string;
  type: 'physical' | 'logical';
  database: string | null;
  plugin: string | null;
  walStatus: string | null;
  restartLsn: string | null;
  xmin: string | null;
  catalogXmin: string | null;
  retainedBytes: number | null;
}

/** What the replica check reads from pg-health's params. */
export interface ReplicationLagOptions {
  replicationLagWarningSeconds: number;
  replicationLagCriticalSeconds: number;
  replicationLagWarningBytes: number;
  replicationLagCriticalBytes: number;
}

/** What the slot check reads from pg-health's params. */
export interface ReplicationSlotOptions {
  slotRetainedWarningBytes: number;
  physicalSlots: boolean;
  maxListed: number;
}

const worst = (a: Severity | undefined, b: Severity | undefined): Severity | undefined =>
  a === 'critical' || b === 'critical' ? 'critical' : a === 'warning' || b === 'warning' ? 'warning' : a ?? b;

/** Replicas: how many, the largest lag in bytes, and those lagging. No replica is no finding. */
export async function replicas({ db }: PgSession, p: ReplicationLagOptions): Promise<CheckResult<ReplicationLagCode>> {
  const rows = (await db.query<Replica>(SQL.replicas)).rows;
  return {
    findings: replicationFindings(rows, p),
    metrics: { replicas: rows.length, max_replication_lag_bytes: Math.max(0, ...rows.map((r) => r.lagBytes ?? 0)) },
    summary: `${rows.length} replicas`,
  };
}

/** Inactive slots: all counted, the most WAL-retaining listed; named in the summary only when there are some. */
export async function inactiveSlots({ db }: PgSession, p: ReplicationSlotOptions): Promise<CheckResult<ReplicationSlotCode>> {
  const slots = (await db.query<Slot>(SQL.inactiveSlots, [p.physicalSlots])).rows;
  return {
    findings: slots.slice(0, p.maxListed).map((s) => slotFinding(db, s, p)),
    metrics: { inactive_replication_slots: slots.length },
    summary: slots.length > 0 ? `${slots.length} inactive slots` : undefined,
  };
}

/** replication_lag findings for the replicas listed (pure: the lag figures decide). */
export function replicationFindings(replicas: readonly Replica[], p: ReplicationLagOptions): Finding<ReplicationLagCode>[] {
  const findings: Finding<ReplicationLagCode>[] = [];
  for (const r of replicas) {
    const bySeconds = r.replayLagSeconds === null ? undefined : severityOf(r.replayLagSeconds, p.replicationLagWarningSeconds, p.replicationLagCriticalSeconds);
    const byBytes = r.lagBytes === null ? undefined : severityOf(r.lagBytes, p.replicationLagWarningBytes, p.replicationLagCriticalBytes);
    const severity = worst(bySeconds, byBytes);
    if (!severity) continue;
    const name = `${r.application || 'replica'}${r.clientAddr ? ` (${r.clientAddr})` : ''}`;
    const lag = [
      r.lagBytes === null ? null : `${formatBytes(r.lagBytes)} of WAL behind (${r.lagFrom})`,
      r.replayLagSeconds === null ? null : `replay lag ${formatDuration(r.replayLagSeconds * 1000)}`,
    ].filter(Boolean);
    findings.push({
      severity,
      code: 'replication_lag',
      subject: name,
      message: `replica ${name} is ${lag.join(', ')} (state ${r.state ?? 'hidden'})`,
      suggestion: 'Check the replica: its disk and CPU, the network, and replay conflicts or a paused replay (pg_stat_database_conflicts, pg_is_wal_replay_paused() on the replica)',
      details: { ...r },
    });
  }
  return findings;
}

function slotFinding(db: Client, s: Slot, p: ReplicationSlotOptions): Finding<ReplicationSlotCode> {
  const lost = s.walStatus === 'lost' || s.walStatus === 'unreserved';
  const big = s.retainedBytes !== null && s.retainedBytes >= p.slotRetainedWarningBytes;
  const retained = s.retainedBytes === null ? 'retains no WAL' : `retains ${formatBytes(s.retainedBytes)} of WAL`;
  return {
    severity: lost || big ? 'warning' : 'info',
    code: 'replication_slot_inactive',
    subject: s.name,
    message: `inactive ${s.type} replication slot ${s.name} ${retained}${s.walStatus ? ` (wal_status ${s.walStatus})` : ''}`,
    suggestion: `If its consumer is gone for good, drop it: SELECT pg_drop_replication_slot(${db.escapeLiteral(s.name)}); otherwise bring the consumer back. max_slot_wal_keep_size bounds what a slot can hold`,
    details: { ...s },
  };
}
