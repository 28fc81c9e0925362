import { Client } from 'pg';
import { connections } from '../../src/jobs/connections';
import type { TaskResult } from '../../src/contract/result';
import { createTestDatabase, dropRoles, randomRoleName, urlFor, type TestDatabase } from '../support/db';
import { runOnPostgres, type RunOnPostgres } from '../support/run-task';
import { eventually } from '../support/jobs';

const role = randomRoleName('app');
let db: TestDatabase;
let planted: Client[] = [];

/** Opens a real session and leaves it idle (or idle inside a transaction). */
async function plant(opts: { user?: string; inTransaction?: boolean; application?: string }): Promise<number> {
  const url = new URL(urlFor(db.name, opts.user));
  if (opts.application) url.searchParams.set('application_name', opts.application);
  const client = new Client({ connectionString: url.toString() });
  client.on('error', () => undefined); // terminated on purpose by the test
  await client.connect();
  planted.push(client);
  if (opts.inTransaction) await client.query('BEGIN');
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  return rows[0]!.pid;
}

async function alive(pids: number[]): Promise<number[]> {
  const { rows } = await db.pool.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])', [pids]);
  return rows.map((r) => r.pid).sort();
}

function run(target: RunOnPostgres['target'], params: Record<string, unknown>, dryRun = false): Promise<TaskResult> {
  return runOnPostgres(connections, { url: db.url, state: db.pool, target, params, dryRun });
}

let appIdle: number, appInTx: number, superIdle: number, ownIdle: number;

beforeAll(async () => {
  db = await createTestDatabase('conn');
  await db.pool.query(`CREATE ROLE ${role} LOGIN`);
  appIdle = await plant({ user: role });
  appInTx = await plant({ user: role, inTransaction: true });
  superIdle = await plant({});
  ownIdle = await plant({ application: 'caretaker' });
  // Idle threshold in these tests is 1 s.
  await new Promise((r) => setTimeout(r, 1_500));
});

afterAll(async () => {
  await Promise.all(planted.map((c) => c.end().catch(() => undefined)));
  await db.drop();
  await dropRoles(role);
});

describe('connections', () => {
  it('reports usage against max_connections with metrics', async () => {
    const result = await run({}, { idleSeconds: 1 });
    const { rows } = await db.pool.query(`SELECT current_setting('max_connections')::int AS max`);
    expect(result.metrics.connections_max).toBe(rows[0].max);
    expect(result.metrics.connections_used).toBeGreaterThanOrEqual(5);
    expect(result.metrics.connections_used_ratio).toBeCloseTo(result.metrics.connections_used! / rows[0].max, 6);
    expect(result.findings.find((f) => f.code === 'connections_high')).toBeUndefined();
  });

  it('raises connections_high at the warning and critical ratios', async () => {
    const warning = await run({}, { idleSeconds: 1, warning: 0.01, critical: 0.99 });
    expect(warning.findings.find((f) => f.code === 'connections_high')).toMatchObject({ severity: 'warning', subject: 'max_connections' });
    const critical = await run({}, { idleSeconds: 1, warning: 0.01, critical: 0.02 });
    expect(critical.status).toBe('critical');
    expect(critical.findings.find((f) => f.code === 'connections_high')?.severity).toBe('critical');
  });

  it('finds planted idle and idle-in-transaction sessions, never its own', async () => {
    // The test's own pool was last used before the wait: it would count as idle too. Use it now, as earlier tests do.
    await db.pool.query('SELECT 1');
    const result = await run({}, { idleSeconds: 1 });
    const idle = result.findings.find((f) => f.code === 'idle_connections')!;
    const inTx = result.findings.find((f) => f.code === 'idle_in_transaction')!;
    const pids = (f: typeof idle) => (f.details!.sessions as { pid: number }[]).map((s) => s.pid).sort();
    expect(pids(idle)).toEqual([appIdle, superIdle].sort());
    expect(pids(inTx)).toEqual([appInTx]);
    expect(inTx.severity).toBe('warning');
    expect(result.status).toBe('warning');
    const session = (inTx.details!.sessions as Record<string, unknown>[])[0]!;
    expect(session).toMatchObject({ pid: appInTx, user: role, state: 'idle in transaction' });
    expect(session.idleSeconds).toBeGreaterThanOrEqual(1);
    // Not allowed to terminate: nothing done, and the finding says how to allow it.
    expect(result.actions).toEqual([]);
    expect(idle.suggestion).toMatch(/allow\.terminateIdle/);
    expect(await alive([appIdle, appInTx, superIdle, ownIdle])).toEqual([appIdle, appInTx, superIdle, ownIdle].sort());
  });

  it('with --dry-run, reports what it would terminate and terminates nothing', async () => {
    const result = await run({ allow: { terminateIdle: true, vacuum: false } }, { idleSeconds: 1, terminateRoles: [role] }, true);
    expect(result.dryRun).toBe(true);
    expect(result.actions.map((a) => [a.kind, a.details!.pid, a.applied]).sort()).toEqual(
      [['terminate_backend', appIdle, false], ['terminate_backend', appInTx, false]].sort(),
    );
    expect(result.summary).toMatch(/would terminate 2/);
    expect(await alive([appIdle, appInTx, superIdle, ownIdle])).toEqual([appIdle, appInTx, superIdle, ownIdle].sort());
  });

  it('when allowed, terminates only the configured roles\' idle sessions', async () => {
    const result = await run({ allow: { terminateIdle: true, vacuum: false } }, { idleSeconds: 1, terminateRoles: [role] });
    expect(result.actions.filter((a) => a.applied).map((a) => a.details!.pid).sort()).toEqual([appIdle, appInTx].sort());
    expect(result.metrics.connections_terminated).toBe(2);
    // A terminated backend exits a moment after the signal: wait for it (bounded).
    const survivors = await eventually(async () => {
      const pids = await alive([appIdle, appInTx, superIdle, ownIdle]);
      return pids.length <= 2 ? pids : undefined;
    }, 5_000, 'the terminated sessions to exit');
    // The superuser's session (not a configured role) and caretaker's own are untouched.
    expect(survivors).toEqual([superIdle, ownIdle].sort());
  });

  it('turns an unreachable target into an error result with the reason', async () => {
    const result = await run({ url: 'postgres://postgres@127.0.0.1:1/nowhere' }, {});
    expect(result.status).toBe('error');
    expect(result.summary).toMatch(/cannot connect to postgres: .*ECONNREFUSED/);
  });
});
