/**
 * pg-health's database-level wraparound check: age(datfrozenxid) and
 * mxid_age(datminmxid), the tables that hold them back (catalogs and toast
 * included) and what keeps VACUUM from freezing (the xmin horizon).
 * A fresh database already has a small, non-zero age: thresholds of 1 make
 * it fire.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { pgHealth } from '../../src/jobs/pg-health';
import type { Finding, TaskResult } from '../../src/contract/result';
import { createTestDatabase, dropRoles, randomRoleName, urlFor, type TestDatabase } from '../support/db';
import { runOnPostgres } from '../support/run-task';
import { TEST_PG_ADMIN_URL } from '../support/env';

interface OldTable {
  name: string;
  age: number;
  frozenId: string;
  kind: string;
  toastOf: string | null;
  mayVacuum: boolean;
}

/** Read before the tests are declared: a server without prepared transactions skips that test, and says so in its name. */
const maxPrepared = Number(execFileSync('psql', [TEST_PG_ADMIN_URL, '-Atc', 'SHOW max_prepared_transactions'], { encoding: 'utf8', timeout: 15_000 }).trim());
const gid = `ct_wrap_${randomBytes(4).toString('hex')}`;
const role = randomRoleName('wrap');

let db: TestDatabase;
const sessions: Client[] = [];

async function session(user?: string): Promise<{ client: Client; pid: number }> {
  const client = new Client({ connectionString: urlFor(db.name, user) });
  client.on('error', () => undefined);
  await client.connect();
  sessions.push(client);
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  return { client, pid: rows[0]!.pid };
}

function run(params: Record<string, unknown> = {}, url = db.url): Promise<TaskResult> {
  return runOnPostgres(pgHealth, { url, state: db.pool, params });
}

const withCode = (r: TaskResult, code: string): Finding[] => r.findings.filter((f) => f.code === code);
const fmt = (n: number) => n.toLocaleString('en-US');
/** Warning at any age, critical never: the fresh database's own age is enough. */
const LOW = { wraparoundWarning: 1, wraparoundCritical: 2 ** 31 };

beforeAll(async () => {
  db = await createTestDatabase('pghealth_wrap');
  await db.pool.query(`CREATE ROLE ${role} LOGIN`);
  // A table with a toast table, and one multixact (two sessions sharing a row lock) so mxid_age(datminmxid) is above 0.
  await db.pool.query(`CREATE TABLE docs (id int PRIMARY KEY, body text); INSERT INTO docs VALUES (1, 'x')`);
  const a = await session();
  const b = await session();
  await a.client.query('BEGIN');
  await a.client.query('SELECT * FROM docs WHERE id = 1 FOR SHARE');
  await b.client.query('BEGIN');
  await b.client.query('SELECT * FROM docs WHERE id = 1 FOR SHARE');
  await a.client.query('COMMIT');
  await b.client.query('COMMIT');
});

afterAll(async () => {
  await db.pool.query(`SELECT 1 FROM pg_prepared_xacts WHERE gid = $1`, [gid]).then(async ({ rowCount }) => {
    if (rowCount) await db.pool.query(`ROLLBACK PREPARED '${gid}'`);
  }).catch(() => undefined);
  await Promise.all(sessions.map((c) => c.end().catch(() => undefined)));
  await db.drop();
  await dropRoles(role);
});

describe('pg-health database wraparound', () => {
  it('reports age(datfrozenxid) and mxid_age(datminmxid) of the database, naming the oldest tables, catalogs and toast included', async () => {
    const before = (await db.pool.query('SELECT age(datfrozenxid) AS xid, mxid_age(datminmxid) AS mxid FROM pg_database WHERE datname = current_database()')).rows[0];
    expect(before.mxid).toBeGreaterThan(0);
    const result = await run(LOW);
    const oldest = (await db.pool.query(`SELECT relfrozenxid::text AS x FROM pg_class WHERE relkind IN ('r', 't', 'm') ORDER BY age(relfrozenxid) DESC LIMIT 1`)).rows[0];

    const [xid] = withCode(result, 'database_wraparound_risk');
    expect(xid).toMatchObject({ severity: 'warning', subject: db.name });
    // Ages grow with every transaction on the server: bounded by what was read before and after.
    const after = (await db.pool.query('SELECT age(datfrozenxid) AS xid FROM pg_database WHERE datname = current_database()')).rows[0];
    expect(xid!.details!.age).toBeGreaterThanOrEqual(before.xid);
    expect(xid!.details!.age).toBeLessThanOrEqual(after.xid);
    expect(result.metrics.database_xid_age).toBe(xid!.details!.age);

    const tables = xid!.details!.oldestTables as OldTable[];
    expect(tables.length).toBe(20); // maxListed
    expect(tables[0]!.frozenId).toBe(oldest.x);
    for (let i = 1; i < tables.length; i++) expect(tables[i]!.age).toBeLessThanOrEqual(tables[i - 1]!.age);
    // In a fresh database the catalogs (copied from the template) are what holds it back.
    expect(tables[0]!.name).toMatch(/^(pg_catalog|pg_toast|information_schema)\./);
    expect(xid!.message).toMatch(new RegExp(`^database ${db.name} has transaction ID age [\\d,]+ \\(age\\(datfrozenxid\\); warning at 1; PostgreSQL stops assigning new IDs shortly before 2,147,483,648\\); held back by `));
    for (const t of tables.slice(0, 5)) expect(xid!.message).toContain(`${t.name} (age ${fmt(t.age)}`);
    expect(xid!.message).toContain('pg_catalog.');

    const [mxid] = withCode(result, 'multixact_wraparound_risk');
    expect(mxid).toMatchObject({ severity: 'warning', subject: db.name });
    expect(mxid!.details!.age).toBeGreaterThanOrEqual(before.mxid);
    expect(mxid!.message).toMatch(new RegExp(`^database ${db.name} has multixact ID age [\\d,]+ \\(mxid_age\\(datminmxid\\); warning at 1;`));
    expect((mxid!.details!.oldestTables as OldTable[]).length).toBeGreaterThan(0);
    expect(result.metrics.database_mxid_age).toBe(mxid!.details!.age);

    const critical = await run({ wraparoundWarning: 1, wraparoundCritical: 1 });
    expect(withCode(critical, 'database_wraparound_risk').map((f) => f.severity)).toEqual(['critical']);
    expect(critical.status).toBe('critical');

    // The defaults (1.3 and 1.4 billion, as check_postgres) are far off.
    const defaults = await run();
    expect(withCode(defaults, 'database_wraparound_risk')).toEqual([]);
    expect(withCode(defaults, 'multixact_wraparound_risk')).toEqual([]);
  });

  it('names a toast table with the table it belongs to, and says which tables the role may not vacuum', async () => {
    const result = await run({ ...LOW, maxListed: 1000 }, urlFor(db.name, role));
    const tables = withCode(result, 'database_wraparound_risk')[0]!.details!.oldestTables as OldTable[];
    const docsToast = (await db.pool.query(`SELECT t.relnamespace::regnamespace::text || '.' || t.relname AS name FROM pg_class c JOIN pg_class t ON t.oid = c.reltoastrelid WHERE c.relname = 'docs'`)).rows[0].name;
    expect(tables.find((t) => t.name === docsToast)).toMatchObject({ kind: 'toast', toastOf: 'public.docs', mayVacuum: false });
    // Owned by the bootstrap superuser: a plain role may vacuum none of the catalogs.
    expect(tables.find((t) => t.name === 'pg_catalog.pg_class')).toMatchObject({ kind: 'table', mayVacuum: false });
    const message = withCode(result, 'database_wraparound_risk')[0]!.message;
    expect(message).toMatch(/pg_catalog\.\w+ \(age [\d,]+, (shared catalog, )?this role may not vacuum it\)/);
    expect(withCode(result, 'database_wraparound_risk')[0]!.suggestion).toMatch(/as their owner or a superuser/);

    // As the superuser everything may be vacuumed.
    const superuser = await run({ ...LOW, maxListed: 1000 });
    const all = withCode(superuser, 'database_wraparound_risk')[0]!.details!.oldestTables as OldTable[];
    expect(all.every((t) => t.mayVacuum)).toBe(true);
  });

  it('names a long open transaction holding back the xmin horizon as what keeps VACUUM from freezing', async () => {
    const open = await session();
    await open.client.query('BEGIN');
    await open.client.query('SELECT txid_current()');
    try {
      const result = await run(LOW);
      const [xid] = withCode(result, 'database_wraparound_risk');
      const holders = xid!.details!.xminHolders as { kind: string; pid: number | null; reaches: string; xidAge: number }[];
      expect(holders).toContainEqual(expect.objectContaining({ kind: 'session', pid: open.pid, database: db.name, reaches: 'all tables', state: 'idle in transaction' }));
      expect(xid!.message).toMatch(new RegExp(`VACUUM cannot freeze past the xmin of .*pid ${open.pid} \\(database ${db.name}, user postgres, idle in transaction, open \\d+ (ms|s), xmin age [\\d,]+\\)`));
      // Other files' prepared transactions (server-wide) may come first in the steps.
      expect(xid!.suggestion).toMatch(/end the old transactions \(pg_terminate_backend\); .*then VACUUM \(FREEZE\) the oldest tables/i);
      expect(result.metrics.oldest_xmin_age).toBeGreaterThanOrEqual(holders.find((h) => h.pid === open.pid)!.xidAge);
    } finally {
      await open.client.query('ROLLBACK');
    }
    // Once it is gone it is no longer named.
    const after = await run(LOW);
    const holders = withCode(after, 'database_wraparound_risk')[0]!.details!.xminHolders as { pid: number | null }[];
    expect(holders.map((h) => h.pid)).not.toContain(open.pid);
  });

  const preparedTest = maxPrepared > 0 ? it : it.skip;
  preparedTest(
    maxPrepared > 0
      ? 'names a prepared transaction holding back the xmin horizon'
      : 'names a prepared transaction holding back the xmin horizon [SKIPPED: max_prepared_transactions = 0 on the test server, PREPARE TRANSACTION is impossible]',
    async () => {
      const s = await session();
      await s.client.query('BEGIN');
      await s.client.query('INSERT INTO docs VALUES (2, $1)', ['y']);
      await s.client.query(`PREPARE TRANSACTION '${gid}'`);
      try {
        const result = await run(LOW);
        const [xid] = withCode(result, 'database_wraparound_risk');
        expect(xid!.details!.xminHolders).toContainEqual(expect.objectContaining({ kind: 'prepared', name: gid, database: db.name, user: 'postgres', reaches: 'all tables' }));
        expect(xid!.message).toMatch(new RegExp(`VACUUM cannot freeze past the xmin of .*prepared transaction ${gid} \\(database ${db.name}, owner postgres, open \\d+ (ms|s), xmin age [\\d,]+\\)`));
        expect(xid!.suggestion).toMatch(/^Finish or roll back the prepared transactions \(COMMIT\/ROLLBACK PREPARED\); .*then VACUUM \(FREEZE\)/);
        // The multixact finding names the same holders: an old transaction keeps old multixacts alive too.
        expect(withCode(result, 'multixact_wraparound_risk')[0]!.message).toContain(`prepared transaction ${gid}`);
      } finally {
        await db.pool.query(`ROLLBACK PREPARED '${gid}'`);
      }
    },
  );
});
