import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { pgHealth, replicationFindings, type PgHealthParams, type Replica } from '../../src/jobs/pg-health';
import { connections } from '../../src/jobs/connections';
import type { Finding, TaskResult } from '../../src/contract/result';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { runOnPostgres } from '../support/run-task';
import { eventually } from '../support/jobs';
import { TEST_PG_ADMIN_URL } from '../support/env';

const suffix = randomBytes(4).toString('hex');
/** Replication slots are cluster-wide: ours carry a random name, and assertions filter on it. */
const slotName = `ct_slot_${suffix}`;
const gid = `ct_test_${suffix}`;

let db: TestDatabase;
let clean: TestDatabase;
let admin: Client;
const sessions: Client[] = [];

/** A real session on the test database (not named caretaker unless asked). */
async function session(application?: string): Promise<{ client: Client; pid: number }> {
  const url = new URL(db.url);
  if (application) url.searchParams.set('application_name', application);
  const client = new Client({ connectionString: url.toString() });
  client.on('error', () => undefined);
  await client.connect();
  sessions.push(client);
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  return { client, pid: rows[0]!.pid };
}

function run(params: Record<string, unknown> = {}, on: TestDatabase = db, target: Record<string, unknown> = {}): Promise<TaskResult> {
  return runOnPostgres(pgHealth, { url: on.url, state: on.pool, params, target });
}

const withCode = (r: TaskResult, code: string): Finding[] => r.findings.filter((f) => f.code === code);

beforeAll(async () => {
  db = await createTestDatabase('pghealth');
  clean = await createTestDatabase('pghealth_clean');
  admin = new Client({ connectionString: TEST_PG_ADMIN_URL });
  await admin.connect();
});

afterAll(async () => {
  // A leftover prepared transaction holds locks and blocks DROP DATABASE: always roll it back.
  await db.pool.query(`SELECT 1 FROM pg_prepared_xacts WHERE gid = $1`, [gid]).then(async ({ rowCount }) => {
    if (rowCount) await db.pool.query(`ROLLBACK PREPARED '${gid}'`);
  }).catch(() => undefined);
  await admin.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [slotName]).catch(() => undefined);
  await admin.end();
  await Promise.all(sessions.map((c) => c.end().catch(() => undefined)));
  await db.drop();
  await clean.drop();
});

describe('pg-health', () => {
  it('finds nothing wrong on a fresh database with the defaults', async () => {
    await clean.pool.query('CREATE TABLE items (id serial PRIMARY KEY, name text)');
    await clean.pool.query(`INSERT INTO items (name) SELECT 'n' || g FROM generate_series(1, 100) g`);
    const result = await run({}, clean);
    expect(result.status).toBe('ok');
    expect(result.findings.filter((f) => f.severity !== 'info')).toEqual([]);
    // Info findings can only be other tests' inactive physical slots (server-wide).
    expect(result.findings.filter((f) => f.code !== 'replication_slot_inactive')).toEqual([]);
    expect(result.metrics).toMatchObject({
      long_transactions: 0,
      lock_waits: 0,
      replicas: 0,
      max_replication_lag_bytes: 0,
      prepared_transactions: 0,
    });
    expect(result.metrics.max_sequence_used_ratio).toBeCloseTo(99 / (2 ** 31 - 2), 12);
    expect(result.metrics.database_xid_age).toBeGreaterThan(0);
    expect(result.metrics.database_mxid_age).toBeGreaterThanOrEqual(0);
    expect(result.summary).toMatch(/longest transaction .*, 0 lock waits, sequences at most 0\.0 % used, .*0 replicas.*0 prepared transactions, database xid age [\d,]+, archiving (off|ok)$/);
  });

  it('reports transactions open past the thresholds, warning then critical, never caretaker\'s own', async () => {
    const open = await session();
    const own = await session('caretaker-test');
    await open.client.query('BEGIN');
    await open.client.query('SELECT 1');
    await own.client.query('BEGIN');
    await own.client.query('SELECT 1');
    try {
      await eventually(async () => {
        const { rows } = await db.pool.query('SELECT now() - xact_start >= interval \'1 second\' AS old FROM pg_stat_activity WHERE pid = $1', [open.pid]);
        return rows[0]?.old ? true : undefined;
      }, 10_000, 'the planted transaction to be 1 s old');

      const warning = await run({ transactionWarningSeconds: 1, transactionCriticalSeconds: 3600 });
      const found = withCode(warning, 'long_transaction');
      expect(found.map((f) => f.subject)).toEqual([`pid ${open.pid}`]);
      expect(found[0]).toMatchObject({ severity: 'warning', details: { pid: open.pid, user: 'postgres', state: 'idle in transaction', query: 'SELECT 1' } });
      expect(found[0]!.details!.ageSeconds).toBeGreaterThanOrEqual(1);
      expect(found[0]!.message).toMatch(new RegExp(`^transaction of pid ${open.pid} \\(user postgres, .*\\) open for \\d+ s, idle in transaction$`));
      expect(warning.metrics.long_transactions).toBe(1);
      expect(warning.metrics.longest_transaction_seconds).toBeGreaterThanOrEqual(1);

      const critical = await run({ transactionWarningSeconds: 0.5, transactionCriticalSeconds: 1 });
      expect(withCode(critical, 'long_transaction').map((f) => [f.subject, f.severity])).toEqual([[`pid ${open.pid}`, 'critical']]);
      expect(critical.status).toBe('critical');

      // The default (5 min) is far off: counted in the metric, no finding.
      const defaults = await run();
      expect(withCode(defaults, 'long_transaction')).toEqual([]);
      expect(defaults.metrics.longest_transaction_seconds).toBeGreaterThanOrEqual(1);
      expect(defaults.metrics.long_transactions).toBe(0);
    } finally {
      await open.client.query('COMMIT');
      await own.client.query('COMMIT');
    }
  });

  it('a session idle in a failed transaction is idle_in_aborted_transaction (info) in connections, not idle_in_transaction nor long_transaction', async () => {
    await db.pool.query('CREATE TABLE aborted_t (id int)');
    const failed = await session();
    await failed.client.query('BEGIN');
    await failed.client.query('INSERT INTO aborted_t VALUES (1)');
    await expect(failed.client.query('SELECT 1/0')).rejects.toThrow(/division by zero/);
    // A failed subtransaction keeps the outer transaction's xid and locks: still idle in a transaction.
    const savepoint = await session();
    await savepoint.client.query('BEGIN');
    await savepoint.client.query('INSERT INTO aborted_t VALUES (2)');
    await savepoint.client.query('SAVEPOINT s');
    await expect(savepoint.client.query('SELECT 1/0')).rejects.toThrow(/division by zero/);
    try {
      await eventually(async () => {
        const { rows } = await db.pool.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ANY($1) AND state = 'idle in transaction (aborted)' AND state_change <= now() - interval '1.5 seconds'`,
          [[failed.pid, savepoint.pid]],
        );
        return rows[0].n === 2 ? true : undefined;
      }, 15_000, 'both sessions to be idle in a failed transaction for 1.5 s');

      const conn = await runOnPostgres(connections, { url: db.url, state: db.pool, params: { idleSeconds: 1 } });
      const pidsOf = (code: string) => withCode(conn, code).flatMap((f) => (f.details!.sessions as { pid: number }[]).map((s) => s.pid));
      const aborted = withCode(conn, 'idle_in_aborted_transaction');
      expect(aborted).toEqual([expect.objectContaining({ severity: 'info', subject: 'main' })]);
      expect(pidsOf('idle_in_aborted_transaction')).toEqual([failed.pid]);
      expect(aborted[0]!.message).toMatch(/^1 sessions idle in a failed transaction for more than 1 s \(oldest \d+ s\): they hold no lock/);
      expect(pidsOf('idle_in_transaction')).toEqual([savepoint.pid]);
      expect(conn.metrics).toMatchObject({ connections_idle_in_transaction: 1, connections_idle_in_aborted_transaction: 1 });
      expect(conn.summary).toMatch(/1 idle in transaction, 1 idle in a failed transaction$/);

      const health = await run({ transactionWarningSeconds: 1, transactionCriticalSeconds: 3600 });
      expect(withCode(health, 'long_transaction').map((f) => f.subject)).toEqual([`pid ${savepoint.pid}`]);
    } finally {
      await failed.client.query('ROLLBACK');
      await savepoint.client.query('ROLLBACK');
    }
  });

  it('names the session waiting on a lock and the one blocking it', async () => {
    await db.pool.query('CREATE TABLE locked (id int)');
    const a = await session();
    const b = await session();
    await a.client.query('BEGIN');
    await a.client.query('LOCK TABLE locked IN ACCESS EXCLUSIVE MODE');
    const waiting = b.client.query('SELECT * FROM locked'); // resolves when A commits
    try {
      await eventually(async () => {
        const { rows } = await db.pool.query('SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted AND waitstart IS NOT NULL', [b.pid]);
        return rows.length > 0 ? true : undefined;
      }, 10_000, 'session B to wait on the lock');

      const result = await run({ lockWaitWarningSeconds: 0, lockWaitCriticalSeconds: 3600, queryTextChars: 8 });
      const found = withCode(result, 'lock_wait');
      expect(found.map((f) => f.subject)).toEqual([`pid ${b.pid}`]);
      expect(found[0]).toMatchObject({
        severity: 'warning',
        details: {
          pid: b.pid,
          state: 'active',
          waitEventType: 'Lock',
          waitEvent: 'relation',
          lockType: 'relation',
          mode: 'AccessShareLock',
          relation: 'locked',
          blockedBy: [a.pid],
          query: 'SELECT *',
        },
      });
      const blockers = found[0]!.details!.blockers as { pid: number; state: string; query: string }[];
      expect(blockers).toEqual([expect.objectContaining({ pid: a.pid, state: 'idle in transaction', query: 'LOCK TAB' })]);
      expect(found[0]!.message).toMatch(new RegExp(`^pid ${b.pid} \\(user postgres\\) has waited .* for AccessShareLock on locked, blocked by pid ${a.pid}$`));
      expect(result.metrics.lock_waits).toBe(1);

      const critical = await run({ lockWaitWarningSeconds: 0, lockWaitCriticalSeconds: 0 });
      expect(withCode(critical, 'lock_wait').map((f) => f.severity)).toEqual(['critical']);

      // Defaults (30 s): the wait is counted, not reported.
      const defaults = await run();
      expect(withCode(defaults, 'lock_wait')).toEqual([]);
      expect(defaults.metrics.lock_waits).toBe(1);
    } finally {
      await a.client.query('COMMIT');
      await waiting;
    }
  });

  it('flags sequences near the end of their range or of their column\'s type', async () => {
    await db.pool.query(`
      CREATE SEQUENCE s_warn MAXVALUE 100;  SELECT setval('s_warn', 90);
      CREATE SEQUENCE s_crit MAXVALUE 100;  SELECT setval('s_crit', 96);
      CREATE SEQUENCE s_low MAXVALUE 100;   SELECT setval('s_low', 50);
      CREATE SEQUENCE s_desc INCREMENT -1 MINVALUE -100 MAXVALUE -1; SELECT setval('s_desc', -96);
      CREATE SEQUENCE s_unused MAXVALUE 100 START 99;
      CREATE SEQUENCE s_cycle MAXVALUE 100 CYCLE; SELECT setval('s_cycle', 99);
      CREATE TABLE narrow (id serial PRIMARY KEY);
      ALTER SEQUENCE narrow_id_seq AS bigint;
      SELECT setval('narrow_id_seq', 2147483647 - 100);
      CREATE TABLE wide (id bigserial PRIMARY KEY);
      SELECT setval('wide_id_seq', 2147483647 - 100);
      CREATE SEQUENCE free_seq;
      CREATE TABLE free_ids (id int4 DEFAULT nextval('free_seq'));
      SELECT setval('free_seq', 2000000000);
    `);
    const result = await run();
    const found = withCode(result, 'sequence_exhaustion');
    expect(Object.fromEntries(found.map((f) => [f.subject, f.severity]))).toEqual({
      'public.narrow_id_seq': 'critical',
      'public.s_crit': 'critical',
      'public.s_desc': 'critical',
      'public.free_seq': 'warning',
      'public.s_warn': 'warning',
    });
    const bySubject = (s: string) => found.find((f) => f.subject === s)!;
    expect(bySubject('public.s_warn').details).toMatchObject({ lastValue: '90', minValue: '1', maxValue: '100', columnNarrower: false, remaining: 10 });
    expect(bySubject('public.s_warn').details!.ratio).toBeCloseTo(89 / 99, 12);
    expect(bySubject('public.s_desc').details!.ratio).toBeCloseTo(95 / 99, 12);
    expect(bySubject('public.s_desc').message).toMatch(/^sequence public\.s_desc has used 95\.9 % of the range allowed by the sequence \(bigint\): last value -96, limit -100, 4 values left$/);

    // A bigint sequence on an int4 column: the column's limit counts.
    const narrow = bySubject('public.narrow_id_seq');
    expect(narrow.details).toMatchObject({
      type: 'bigint',
      table: 'narrow',
      column: 'id',
      columnType: 'integer',
      columnNarrower: true,
      maxValue: '2147483647',
      sequenceMaxValue: '9223372036854775807',
      remaining: 100,
    });
    expect(narrow.message).toMatch(/allowed by its column public\.narrow\.id \(integer\)/);
    expect(narrow.suggestion).toMatch(/^Widen the column before it overflows: ALTER TABLE "public"\."narrow" ALTER COLUMN "id" TYPE bigint;/);
    expect(bySubject('public.free_seq').details).toMatchObject({ table: 'free_ids', columnType: 'integer', columnNarrower: true });
    expect(bySubject('public.free_seq').details!.ratio).toBeCloseTo((2_000_000_000 - 1) / (2 ** 31 - 2), 12);
    expect(result.metrics.max_sequence_used_ratio).toBeCloseTo((2147483547 - 1) / (2147483647 - 1), 12);

    // Raised thresholds: nothing but the int4 column at 99.99999 %.
    const raised = await run({ sequenceWarning: 0.99, sequenceCritical: 0.999 });
    expect(withCode(raised, 'sequence_exhaustion').map((f) => f.subject)).toEqual(['public.narrow_id_seq']);
  });

  it('reports the other checks when a sequence is locked, with sequence_check_incomplete', async () => {
    // A sequence of its own, held by an uncommitted ALTER: the sequence check's lock times out.
    await db.pool.query('CREATE SEQUENCE IF NOT EXISTS s_locked MAXVALUE 100');
    const holder = await session();
    await holder.client.query('BEGIN');
    await holder.client.query('ALTER SEQUENCE s_locked MAXVALUE 1000');
    try {
      const result = await run({}, db, { lockTimeoutMs: 100 });
      expect(result.status).toBe('warning');
      expect(withCode(result, 'sequence_check_incomplete')).toEqual([
        expect.objectContaining({ severity: 'warning', subject: 'sequences', message: expect.stringMatching(/lock timeout/) }),
      ]);
      expect(withCode(result, 'sequence_exhaustion')).toEqual([]);
      expect(result.metrics.max_sequence_used_ratio).toBeUndefined();
      expect(result.metrics.replicas).toBe(0);
      expect(result.summary).toMatch(/sequences not checked/);
    } finally {
      await holder.client.query('ROLLBACK');
    }
  });

  it('computes the cache hit ratio and flags it only past the threshold with enough reads', async () => {
    const stats = async () =>
      (await db.pool.query<{ hit: number; read: number }>('SELECT blks_hit::float8 AS hit, blks_read::float8 AS read FROM pg_stat_database WHERE datname = current_database()')).rows[0]!;
    // Reads of its own: a table written through CREATE TABLE AS's small ring of buffers is mostly
    // not in shared buffers when scanned, so the scan reads blocks (a fresh database may have none).
    // Its statistics are flushed before the task looks (pg_stat_force_next_flush), so both read the same counts.
    const reader = await db.pool.connect();
    try {
      await reader.query(`CREATE TABLE IF NOT EXISTS cache_probe AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 100000) g`);
      await reader.query('SELECT count(*) FROM cache_probe');
      await reader.query('SELECT pg_stat_force_next_flush()');
      await reader.query('SELECT 1');
    } finally {
      reader.release();
    }
    await eventually(async () => ((await stats()).read > 0 ? true : undefined), 15_000, 'blocks read in the test database');

    // The run's own session adds to the counts as it goes: its ratio lies between those read before and after it.
    const ratio = (s: { hit: number; read: number }) => s.hit / (s.hit + s.read);
    const before = ratio(await stats());
    const result = await run({ cacheHitWarning: 1, minBlocksRead: 0 });
    const after = ratio(await stats());
    expect(result.metrics.cache_hit_ratio!).toBeGreaterThanOrEqual(Math.min(before, after) - 0.01);
    expect(result.metrics.cache_hit_ratio!).toBeLessThanOrEqual(Math.max(before, after) + 0.01);
    const found = withCode(result, 'cache_hit_low');
    expect(found).toEqual([expect.objectContaining({ severity: 'warning', subject: db.name })]);
    expect(found[0]!.details!.ratio).toBe(result.metrics.cache_hit_ratio);
    expect(found[0]!.details!.blocksRead).toBeGreaterThan(0);

    // Too few reads to mean anything: no finding, the ratio is still measured.
    const quiet = await run({ cacheHitWarning: 1, minBlocksRead: 1_000_000_000 });
    expect(withCode(quiet, 'cache_hit_low')).toEqual([]);
    expect(quiet.metrics.cache_hit_ratio).toBeLessThan(1);
  });

  it('reports a prepared transaction left open, warning then critical', async () => {
    const max = Number((await db.pool.query('SHOW max_prepared_transactions')).rows[0].max_prepared_transactions);
    if (max === 0) {
      console.warn('pg-health prepared_transaction test SKIPPED: max_prepared_transactions is 0 on this server');
      return;
    }
    await db.pool.query('CREATE TABLE pt (id int)');
    const s = await session();
    await s.client.query('BEGIN');
    await s.client.query('INSERT INTO pt VALUES (1)');
    await s.client.query(`PREPARE TRANSACTION '${gid}'`);
    try {
      const result = await run({ preparedWarningSeconds: 0, preparedCriticalSeconds: 3600 });
      const found = withCode(result, 'prepared_transaction');
      expect(found.map((f) => [f.subject, f.severity])).toEqual([[gid, 'warning']]);
      expect(found[0]!.details).toMatchObject({ gid, owner: 'postgres' });
      expect(found[0]!.suggestion).toContain(`ROLLBACK PREPARED '${gid}'`);
      expect(result.metrics.prepared_transactions).toBe(1);

      const critical = await run({ preparedWarningSeconds: 0, preparedCriticalSeconds: 0 });
      expect(withCode(critical, 'prepared_transaction').map((f) => f.severity)).toEqual(['critical']);

      const defaults = await run();
      expect(withCode(defaults, 'prepared_transaction')).toEqual([]);
      expect(defaults.metrics.prepared_transactions).toBe(1);
    } finally {
      await db.pool.query(`ROLLBACK PREPARED '${gid}'`);
    }
  });

  it('without replicas: no replication_lag and replicas = 0; an inactive physical slot is reported', async () => {
    const before = await run();
    expect(withCode(before, 'replication_lag')).toEqual([]);
    expect(before.metrics.replicas).toBe(0);
    expect(before.metrics.max_replication_lag_bytes).toBe(0);

    await admin.query('SELECT pg_create_physical_replication_slot($1, true)', [slotName]);
    const result = await run();
    const ours = withCode(result, 'replication_slot_inactive').filter((f) => f.subject === slotName);
    expect(ours).toEqual([expect.objectContaining({ severity: 'info', details: expect.objectContaining({ name: slotName, type: 'physical', database: null, walStatus: 'reserved' }) })]);
    expect(ours[0]!.details!.retainedBytes).toEqual(expect.any(Number));
    expect(ours[0]!.suggestion).toContain(`pg_drop_replication_slot('${slotName}')`);
    expect(result.metrics.inactive_replication_slots).toBeGreaterThanOrEqual(1);

    const warned = await run({ slotRetainedWarningBytes: 0 });
    expect(withCode(warned, 'replication_slot_inactive').find((f) => f.subject === slotName)?.severity).toBe('warning');
    // Physical slots are server-wide: a target can leave them to another.
    const off = await run({ physicalSlots: false });
    expect(withCode(off, 'replication_slot_inactive').find((f) => f.subject === slotName)).toBeUndefined();
  });

  it('grades replica lag by seconds and by bytes, the worse of the two', () => {
    const p = pgHealth.params.parse({}) as PgHealthParams;
    const replica = (lagBytes: number | null, replayLagSeconds: number | null): Replica => ({
      pid: 1, application: 'standby1', clientAddr: '10.0.0.2', state: 'streaming', syncState: 'async', replayLagSeconds, lagBytes, lagFrom: 'replay',
    });
    const grade = (r: Replica) => replicationFindings([r], p).map((f) => f.severity);
    expect(grade(replica(0, null))).toEqual([]);
    expect(grade(replica(1024, 59))).toEqual([]);
    expect(grade(replica(1024, 60))).toEqual(['warning']);
    expect(grade(replica(64 * 1024 ** 2, 1))).toEqual(['warning']);
    expect(grade(replica(1024 ** 3, 1))).toEqual(['critical']);
    expect(grade(replica(1024, 600))).toEqual(['critical']);
    expect(grade(replica(null, null))).toEqual([]);
    const [f] = replicationFindings([replica(100 * 1024 ** 2, 90)], p);
    expect(f).toMatchObject({ code: 'replication_lag', subject: 'standby1 (10.0.0.2)' });
    expect(f!.message).toBe('replica standby1 (10.0.0.2) is 100 MB of WAL behind (replay), replay lag 1 min 30 s (state streaming)');
  });
});
