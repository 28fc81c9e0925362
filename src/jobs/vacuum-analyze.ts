/**
 * vacuum-analyze (daily): the runbook's `VACUUM ANALYZE`, done table by
 * table and only where needed. One catalog query picks the tables past
 * autovacuum-style thresholds (dead tuples, rows modified since the last
 * analyze, stale statistics, xid age); each gets `VACUUM (ANALYZE,
 * SKIP_LOCKED)` under its own statement timeout, worst first, a bounded
 * number per run. A table another session holds locked is skipped, never
 * waited on. Never VACUUM FULL. Changes the target only with
 * `allow.vacuum`, and never in a dry run. Also reports tables nearing
 * transaction ID wraparound and tables autovacuum is not keeping up with.
 */
import { z } from 'zod';
import type { Client } from 'pg';
import { defineTask, type FindingCodes } from '../contract/task';
import type { Action, Finding } from '../contract/result';
import { formatDuration } from '../util/format';
import { SQL } from './vacuum-analyze.sql';

export { SQL };

/** One row of SQL.tables. */
export interface TableStats {
  relid: string;
  schema: string;
  table: string;
  /** pg_class.reltuples: -1 until the table is first vacuumed or analyzed. */
  reltuples: number;
  liveTuples: number;
  deadTuples: number;
  modsSinceAnalyze: number;
  lastVacuum: Date | null;
  lastAutovacuum: Date | null;
  lastAnalyze: Date | null;
  lastAutoanalyze: Date | null;
  analyzedSecondsAgo: number | null;
  autovacuumSecondsAgo: number | null;
  xidAge: number;
  autovacuumOption: string | null;
  autovacuumSetting: string;
}

/** Why a table is vacuumed, worst first (the order of the run). */
export type Reason = 'wraparound' | 'dead_tuples' | 'modified' | 'analyze_stale';
const REASON_ORDER: Reason[] = ['wraparound', 'dead_tuples', 'modified', 'analyze_stale'];

export interface Candidate {
  stats: TableStats;
  reasons: Reason[];
  /** One line an operator reads: the figures against their thresholds. */
  why: string;
}

const OFF = new Set(['false', 'off', 'no', 'n', 'f', '0']);
const XID_MAX = 2 ** 31;

const codes = {
  wraparound_risk: "a table's transaction ID age at or above `wraparoundWarning` (critical at `wraparoundCritical`)",
  autovacuum_stale: 'a table over the vacuum threshold that autovacuum has not vacuumed within `autovacuumMaxAgeHours`, or ever',
  vacuum_skipped_locked: 'a table (or one of its indexes) another session holds locked: skipped without waiting, tried next run',
  vacuum_failed: "a table's VACUUM ANALYZE was refused (not its owner), timed out or errored",
  vacuum_not_allowed: 'tables need VACUUM ANALYZE but the target lacks allow.vacuum: listed, nothing done',
} satisfies FindingCodes;
type Code = keyof typeof codes;

const params = z
  .strictObject({
    /** Dead tuples over `vacuumThreshold + vacuumScaleFactor × reltuples` need a VACUUM (autovacuum's defaults). */
    vacuumThreshold: z.number().int().min(0).default(50),
    vacuumScaleFactor: z.number().min(0).max(100).default(0.2),
    /** Rows modified since the last analyze over `analyzeThreshold + analyzeScaleFactor × reltuples` need an ANALYZE. */
    analyzeThreshold: z.number().int().min(0).default(50),
    analyzeScaleFactor: z.number().min(0).max(100).default(0.1),
    /** A table with rows whose statistics are older than this (or that was never analyzed) is analyzed. */
    analyzeMaxAgeHours: z.number().positive().default(7 * 24),
    /** A table past the vacuum threshold that autovacuum has not vacuumed for this long raises `autovacuum_stale`. */
    autovacuumMaxAgeHours: z.number().positive().default(24),
    /** Transaction ID age of a table that raises `wraparound_risk` as a warning (check_postgres's default)... */
    wraparoundWarning: z.number().int().min(1).max(XID_MAX).default(1_300_000_000),
    /** ...and as critical. */
    wraparoundCritical: z.number().int().min(1).max(XID_MAX).default(1_400_000_000),
    /** At most this many tables are vacuumed per run, worst first; the rest wait for the next run. */
    maxTables: z.number().int().min(1).max(100_000).default(100),
    /**
     * statement_timeout of each VACUUM (the session's, 30 s by default, is
     * too short for a big table). It bounds a paced VACUUM, which is several
     * times slower than an unthrottled one (the README's pgbench bench: 12-18
     * s against 3 s for a 322 MB table); raise it (or costLimit) for big
     * tables, or leave them to autovacuum.
     */
    vacuumTimeoutMs: z.number().int().min(1_000).max(24 * 3600_000).default(3600_000),
    /**
     * vacuum_cost_delay of caretaker's VACUUMs, in ms. A manual VACUUM is
     * unthrottled (0), so its reads and writes compete with the service's
     * at full speed; autovacuum sleeps 2 ms per cost_limit of work, which is
     * what an I/O-bound server needs. Default: the server's
     * autovacuum_vacuum_cost_delay (vacuum_cost_delay when that is -1). 0 runs
     * them unthrottled.
     */
    costDelayMs: z.number().min(0).max(100).optional(),
    /** vacuum_cost_limit of caretaker's VACUUMs. Default: the server's autovacuum_vacuum_cost_limit (vacuum_cost_limit when that is -1). */
    costLimit: z.number().int().min(1).max(10_000).optional(),
  })
  .refine((p) => p.wraparoundWarning <= p.wraparoundCritical, {
    error: 'wraparoundWarning must not be above wraparoundCritical',
    path: ['wraparoundWarning'],
  });

export type VacuumParams = z.infer<typeof params>;

export const vacuumAnalyze = defineTask({
  name: 'vacuum-analyze',
  description: 'VACUUM (ANALYZE, SKIP_LOCKED) on the tables that need it, never FULL; reports xid wraparound risk and stale autovacuum',
  target: 'postgres',
  defaultSchedule: 'daily',
  timeoutMs: 3 * 3600_000,
  changesTarget: true,
  params,
  codes,
  async run(ctx, p) {
    const db = await ctx.clients.postgres();
    const tables = (await db.query<TableStats>(SQL.tables)).rows;
    const findings: Finding<Code>[] = [...wraparoundFindings(tables, p), ...autovacuumStaleFindings(tables, p)];
    const candidates = pickTables(tables, p);
    const selected = candidates.slice(0, p.maxTables);
    const deferred = candidates.length - selected.length;
    const allowed = ctx.target.allow.vacuum;
    const actions: Action[] = [];
    const counts = { vacuumed: 0, locked: 0, failed: 0, notReached: 0 };
    let deadAfter = 0;
    /** The pace the server confirmed for the VACUUMs; undefined when none ran. */
    let pace: Pace | undefined;

    if (!allowed || ctx.dryRun) {
      for (const c of selected) actions.push(vacuumAction(c, false));
      deadAfter = sum(selected.map((c) => c.stats.deadTuples));
      if (!allowed && selected.length > 0) {
        findings.push({
          severity: 'info',
          code: 'vacuum_not_allowed',
          subject: ctx.target.name,
          message: `${candidates.length} tables need VACUUM ANALYZE, but allow.vacuum is not set on target ${ctx.target.name}: nothing was vacuumed`,
          suggestion: `Set \`allow: { vacuum: true }\` on the target ${ctx.target.name} to let caretaker vacuum them`,
          details: { tables: selected.map((c) => subjectOf(c.stats)) },
        });
      }
    } else if (selected.length > 0) {
      const session = (await db.query<SessionSettings>(SQL.session)).rows[0]!;
      await checkClientConnection(db);
      const done: { candidate: Candidate; result: VacuumResult }[] = [];
      // The session runs nothing but the VACUUMs in between: their timeout and pace are set once, the session's put back after the last.
      const wanted = paceOf(session, p);
      const set = (await db.query<SetSession>(SQL.setSession, [`${p.vacuumTimeoutMs}ms`, `${wanted.costDelayMs}ms`, String(wanted.costLimit)])).rows[0]!;
      pace = { costDelayMs: delayMs(set.costDelay), costLimit: Number(set.costLimit) };
      try {
        for (const [i, c] of selected.entries()) {
          if (ctx.signal.aborted) {
            counts.notReached = selected.length - i;
            ctx.log.warn({ notReached: counts.notReached }, 'run aborted: stopping between tables');
            break;
          }
          const result = await vacuumTable(db, c.stats);
          done.push({ candidate: c, result });
          if (result.outcome === 'done') ctx.applied(vacuumAction(c, true, result));
          counts[result.outcome === 'done' ? 'vacuumed' : result.outcome === 'locked' ? 'locked' : 'failed']++;
          await ctx.jobLog(`${subjectOf(c.stats)}: ${result.outcome} in ${formatDuration(result.durationMs)}`);
          await ctx.progress(((i + 1) / selected.length) * 100);
        }
      } finally {
        await db.query(SQL.setSession, [session.statementTimeout, session.costDelay, session.costLimit]);
      }
      const after = await statsAfter(db, done.filter((d) => d.result.outcome === 'done').map((d) => d.candidate.stats.relid));
      for (const { candidate, result } of done) {
        const a = after.get(candidate.stats.relid);
        actions.push(vacuumAction(candidate, result.outcome === 'done', result, a));
        deadAfter += a?.deadTuples ?? candidate.stats.deadTuples;
        const f = outcomeFinding(candidate, result, pace!);
        if (f) findings.push(f);
      }
      for (const c of selected.slice(done.length)) deadAfter += c.stats.deadTuples;
    }

    const deadBefore = sum(selected.map((c) => c.stats.deadTuples));
    const maxXidAge = tables.reduce((max, t) => Math.max(max, t.xidAge), 0);
    return {
      summary: summaryOf({ allowed, dryRun: ctx.dryRun, total: tables.length, selected: selected.length, deferred, maxTables: p.maxTables, counts, deadBefore, deadAfter }),
      findings,
      actions,
      metrics: {
        tables_total: tables.length,
        tables_needing_vacuum: candidates.length,
        tables_vacuumed: counts.vacuumed,
        tables_skipped_locked: counts.locked,
        tables_failed: counts.failed,
        tables_deferred: deferred + counts.notReached,
        dead_tuples_before: deadBefore,
        dead_tuples_after: deadAfter,
        max_xid_age: maxXidAge,
        ...(pace ? { vacuum_cost_delay_ms: pace.costDelayMs, vacuum_cost_limit: pace.costLimit } : {}),
      },
    };
  },
});

/** `VACUUM (ANALYZE, SKIP_LOCKED) "schema"."table"`: never FULL, identifiers quoted by the driver. */
export function vacuumStatement(db: Pick<Client, 'escapeIdentifier'>, schema: string, table: string): string {
  return `VACUUM (ANALYZE, SKIP_LOCKED) ${db.escapeIdentifier(schema)}.${db.escapeIdentifier(table)}`;
}

/**
 * autovacuum's rule: dead tuples over this need a VACUUM. The run's choice
 * and `autovacuum_stale` use the same one. reltuples is -1 until the table is
 * first vacuumed or analyzed: no rows then.
 */
function vacuumLimit(t: TableStats, p: VacuumParams): number {
  return p.vacuumThreshold + p.vacuumScaleFactor * Math.max(t.reltuples, 0);
}

function subjectOf(t: Pick<TableStats, 'schema' | 'table'>): string {
  return `${t.schema}.${t.table}`;
}

/** The tables that need a VACUUM ANALYZE and why, worst first. */
export function pickTables(tables: readonly TableStats[], p: VacuumParams): Candidate[] {
  const out: Candidate[] = [];
  for (const t of tables) {
    const rows = Math.max(t.reltuples, 0);
    const reasons: Reason[] = [];
    const why: string[] = [];
    if (t.xidAge >= p.wraparoundWarning) {
      reasons.push('wraparound');
      why.push(`xid age ${fmt(t.xidAge)} ≥ ${fmt(p.wraparoundWarning)}`);
    }
    const deadLimit = vacuumLimit(t, p);
    if (t.deadTuples > deadLimit) {
      reasons.push('dead_tuples');
      why.push(`${fmt(t.deadTuples)} dead tuples > ${fmt(deadLimit)} (${p.vacuumThreshold} + ${p.vacuumScaleFactor} × ${fmt(rows)} rows)`);
    }
    const analyzeLimit = p.analyzeThreshold + p.analyzeScaleFactor * rows;
    if (t.modsSinceAnalyze > analyzeLimit) {
      reasons.push('modified');
      why.push(`${fmt(t.modsSinceAnalyze)} rows modified since the last analyze > ${fmt(analyzeLimit)} (${p.analyzeThreshold} + ${p.analyzeScaleFactor} × ${fmt(rows)} rows)`);
    }
    const hasRows = t.liveTuples > 0 || t.reltuples > 0;
    if (hasRows && (t.analyzedSecondsAgo === null || t.analyzedSecondsAgo > p.analyzeMaxAgeHours * 3600)) {
      reasons.push('analyze_stale');
      why.push(t.analyzedSecondsAgo === null ? 'never analyzed' : `last analyzed ${formatDuration(t.analyzedSecondsAgo * 1000)} ago (> ${p.analyzeMaxAgeHours} h)`);
    }
    if (reasons.length > 0) out.push({ stats: t, reasons, why: why.join('; ') });
  }
  return out.sort(worstFirst);
}

/** Wraparound first (oldest xid), then most dead tuples, most modified rows, oldest statistics. */
function worstFirst(a: Candidate, b: Candidate): number {
  const tier = (c: Candidate) => REASON_ORDER.indexOf(c.reasons[0]!);
  const byTier = tier(a) - tier(b);
  if (byTier !== 0) return byTier;
  const key = (c: Candidate): number => {
    const s = c.stats;
    switch (c.reasons[0]!) {
      case 'wraparound':
        return s.xidAge;
      case 'dead_tuples':
        return s.deadTuples;
      case 'modified':
        return s.modsSinceAnalyze;
      case 'analyze_stale':
        return s.analyzedSecondsAgo ?? Number.MAX_SAFE_INTEGER;
    }
  };
  return key(b) - key(a) || subjectOf(a.stats).localeCompare(subjectOf(b.stats));
}

export function wraparoundFindings(tables: readonly TableStats[], p: VacuumParams): Finding<Code>[] {
  return tables
    .filter((t) => t.xidAge >= p.wraparoundWarning)
    .sort((a, b) => b.xidAge - a.xidAge)
    .map((t) => {
      const critical = t.xidAge >= p.wraparoundCritical;
      return {
        severity: critical ? 'critical' : 'warning',
        code: 'wraparound_risk',
        subject: subjectOf(t),
        message: `transaction ID age ${fmt(t.xidAge)} (${critical ? 'critical' : 'warning'} at ${fmt(critical ? p.wraparoundCritical : p.wraparoundWarning)}; PostgreSQL stops accepting writes near ${fmt(XID_MAX)})`,
        suggestion:
          'VACUUM the table to freeze it (caretaker does when allow.vacuum is set, first in its run); find what keeps autovacuum from freezing it: long or prepared transactions, stale replication slots, autovacuum disabled or too slow (pg-health\'s database_wraparound_risk names what holds the xmin horizon back)',
        details: { xidAge: t.xidAge, remaining: XID_MAX - t.xidAge, warning: p.wraparoundWarning, critical: p.wraparoundCritical },
      } satisfies Finding<Code>;
    });
}

export function autovacuumStaleFindings(tables: readonly TableStats[], p: VacuumParams): Finding<Code>[] {
  const out: Finding<Code>[] = [];
  const maxAgeSeconds = p.autovacuumMaxAgeHours * 3600;
  for (const t of tables) {
    const limit = vacuumLimit(t, p);
    if (t.deadTuples <= limit) continue;
    if (t.autovacuumSecondsAgo !== null && t.autovacuumSecondsAgo <= maxAgeSeconds) continue;
    const disabledOnTable = t.autovacuumOption !== null && OFF.has(t.autovacuumOption);
    const disabledOnServer = OFF.has(t.autovacuumSetting.toLowerCase());
    const since = t.autovacuumSecondsAgo === null ? 'never autovacuumed' : `not autovacuumed for ${formatDuration(t.autovacuumSecondsAgo * 1000)}`;
    const cause = disabledOnTable ? ' (autovacuum_enabled = false on the table)' : disabledOnServer ? ' (autovacuum is off on the server)' : '';
    out.push({
      severity: 'warning',
      code: 'autovacuum_stale',
      subject: subjectOf(t),
      message: `${since} with ${fmt(t.deadTuples)} dead tuples (threshold ${fmt(limit)})${cause}`,
      suggestion: disabledOnTable
        ? 'ALTER TABLE ... RESET (autovacuum_enabled), unless the table is vacuumed on purpose by other means'
        : disabledOnServer
          ? 'Turn autovacuum on (autovacuum = on in postgresql.conf); caretaker\'s daily VACUUM is not a substitute'
          : 'Check why autovacuum does not reach it: autovacuum_max_workers busy with big tables, long transactions holding back cleanup, or a too high autovacuum_vacuum_cost_delay',
      details: {
        deadTuples: t.deadTuples,
        threshold: limit,
        lastAutovacuum: t.lastAutovacuum,
        maxAgeHours: p.autovacuumMaxAgeHours,
        autovacuumEnabledOnTable: !disabledOnTable,
        autovacuumSetting: t.autovacuumSetting,
      },
    });
  }
  return out;
}

/** The fields of a server notice (pg's NoticeMessage, which pg does not export) this task reads. */
interface Notice {
  severity?: string;
  code?: string;
  message?: string;
}

interface SessionSettings {
  statementTimeout: string;
  costDelay: string;
  costLimit: string;
  autovacuumDelayMs: number;
  autovacuumLimit: number;
  vacuumLimit: number;
}

type SetSession = Pick<SessionSettings, 'statementTimeout' | 'costDelay' | 'costLimit'>;

/** How fast the VACUUMs go: they sleep `costDelayMs` each time they have done `costLimit` of work. */
interface Pace {
  costDelayMs: number;
  costLimit: number;
}

/** The params' pace, else autovacuum's as the server has it (its -1 meaning "vacuum_cost_*"). */
function paceOf(s: SessionSettings, p: VacuumParams): Pace {
  const autovacuumDelay = s.autovacuumDelayMs >= 0 ? s.autovacuumDelayMs : delayMs(s.costDelay);
  const autovacuumLimit = s.autovacuumLimit > 0 ? s.autovacuumLimit : s.vacuumLimit;
  return { costDelayMs: p.costDelayMs ?? autovacuumDelay, costLimit: p.costLimit ?? autovacuumLimit };
}

/** `2ms`, `500us`, `0`: vacuum_cost_delay as the server shows it, in ms. */
function delayMs(shown: string): number {
  const m = /^([0-9.]+)\s*(us|ms|s)?$/.exec(shown.trim());
  if (!m) throw new Error(`unexpected vacuum_cost_delay ${JSON.stringify(shown)}`);
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n;
}

interface VacuumResult {
  outcome: 'done' | 'locked' | 'failed';
  durationMs: number;
  /** The server's WARNING notices (a skip, a permission refusal) or the error. */
  messages: string[];
  errorCode?: string;
}

/**
 * One VACUUM, under the statement timeout the run set for them. SKIP_LOCKED
 * makes the server skip a table it cannot lock at once with a WARNING notice
 * (55P03), not an error: the notices tell what happened.
 */
async function vacuumTable(db: Client, t: TableStats): Promise<VacuumResult> {
  const warnings: Notice[] = [];
  const onNotice = (n: Notice) => {
    if (n.severity === 'WARNING') warnings.push(n);
  };
  const started = Date.now();
  db.on('notice', onNotice);
  try {
    await db.query(vacuumStatement(db, t.schema, t.table));
    const durationMs = Date.now() - started;
    const messages = warnings.map((w) => w.message ?? '');
    if (warnings.some((w) => w.code === '55P03')) return { outcome: 'locked', durationMs, messages, errorCode: '55P03' };
    // Anything else VACUUM skips with a warning ("only table or database owner can vacuum it").
    if (messages.some((m) => /^skipping/i.test(m))) return { outcome: 'failed', durationMs, messages, errorCode: warnings[0]!.code };
    return { outcome: 'done', durationMs, messages };
  } catch (err) {
    const e = err as Error & { code?: string };
    // An index another session holds exclusively makes VACUUM wait on it: lock_timeout ends that wait.
    const outcome = e.code === '55P03' ? 'locked' : 'failed';
    return { outcome, durationMs: Date.now() - started, messages: [...warnings.map((w) => w.message ?? ''), e.message], errorCode: e.code };
  } finally {
    db.removeListener('notice', onNotice);
  }
}

async function checkClientConnection(db: Client): Promise<void> {
  try {
    await db.query(SQL.checkClientConnection);
  } catch (err) {
    // 42704: before PostgreSQL 14 the setting does not exist; the statement timeout still bounds each VACUUM.
    if ((err as { code?: string }).code !== '42704') throw err;
  }
}

interface After {
  deadTuples: number;
  modsSinceAnalyze: number;
  lastVacuum: Date | null;
  lastAnalyze: Date | null;
}

async function statsAfter(db: Client, relids: string[]): Promise<Map<string, After>> {
  if (relids.length === 0) return new Map();
  const { rows } = await db.query<After & { relid: string }>(SQL.after, [relids]);
  return new Map(rows.map((r) => [r.relid, r]));
}

function vacuumAction(c: Candidate, applied: boolean, result?: VacuumResult, after?: After): Action {
  const s = c.stats;
  return {
    kind: 'vacuum_analyze',
    subject: subjectOf(s),
    applied,
    durationMs: result?.durationMs,
    details: {
      reason: c.why,
      reasons: c.reasons,
      deadTuplesBefore: s.deadTuples,
      deadTuplesAfter: after?.deadTuples,
      modsSinceAnalyzeBefore: s.modsSinceAnalyze,
      modsSinceAnalyzeAfter: after?.modsSinceAnalyze,
      reltuples: s.reltuples,
      xidAge: s.xidAge,
      lastVacuum: after?.lastVacuum ?? s.lastVacuum,
      lastAnalyze: after?.lastAnalyze ?? s.lastAnalyze,
      ...(result && result.outcome !== 'done' ? { skipped: result.outcome, messages: result.messages, errorCode: result.errorCode } : {}),
    },
  };
}

function outcomeFinding(c: Candidate, r: VacuumResult, pace: Pace): Finding<Code> | undefined {
  const subject = subjectOf(c.stats);
  if (r.outcome === 'locked') {
    return {
      severity: 'warning',
      code: 'vacuum_skipped_locked',
      subject,
      message: `skipped: another session holds a lock on ${subject} (${fmt(c.stats.deadTuples)} dead tuples left); not waited on`,
      suggestion: 'Find the holder in pg_locks joined to pg_stat_activity (a long transaction, a migration); the next run tries again',
      details: { deadTuples: c.stats.deadTuples, reason: c.why, messages: r.messages },
    };
  }
  if (r.outcome === 'failed') {
    const permission = r.messages.some((m) => /owner can vacuum|permission denied/i.test(m));
    return {
      severity: 'warning',
      code: 'vacuum_failed',
      subject,
      message: `VACUUM ANALYZE of ${subject} did not run: ${r.messages.join('; ')}`,
      suggestion: permission
        ? 'Connect as the table owner (or a role that is a member of it); on PostgreSQL 17+, GRANT pg_maintain to the role caretaker uses'
        : r.errorCode === '57014'
          ? `The VACUUM hit its statement timeout at autovacuum's pace (vacuum_cost_delay ${pace.costDelayMs} ms, vacuum_cost_limit ${pace.costLimit}): raise tasks.vacuum-analyze.vacuumTimeoutMs or costLimit, or leave big tables to autovacuum`
          : undefined,
      details: { errorCode: r.errorCode, messages: r.messages, durationMs: r.durationMs, reason: c.why },
    };
  }
  return undefined;
}

interface SummaryInput {
  allowed: boolean;
  dryRun: boolean;
  total: number;
  selected: number;
  deferred: number;
  maxTables: number;
  counts: { vacuumed: number; locked: number; failed: number; notReached: number };
  deadBefore: number;
  deadAfter: number;
}

function summaryOf(s: SummaryInput): string {
  const parts: string[] = [];
  if (!s.allowed || s.dryRun) {
    const prefix = !s.allowed ? 'vacuum not allowed on this target (allow.vacuum)' : 'dry run';
    parts.push(`${prefix}: would vacuum ${s.selected} of ${s.total} tables`);
  } else {
    parts.push(`vacuumed ${s.counts.vacuumed} of ${s.total} tables`);
    if (s.counts.locked > 0) parts.push(`${s.counts.locked} skipped (locked)`);
    if (s.counts.failed > 0) parts.push(`${s.counts.failed} failed`);
    if (s.counts.notReached > 0) parts.push(`stopped early, ${s.counts.notReached} not reached`);
    if (s.counts.vacuumed > 0) parts.push(`dead tuples ${fmt(s.deadBefore)} → ${fmt(s.deadAfter)}`);
  }
  if (s.deferred > 0) parts.push(`${s.deferred} more left for the next run (maxTables ${s.maxTables})`);
  return parts.join(', ');
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}
