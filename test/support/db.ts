/**
 * Each test file gets its own database, dropped after (kept when
 * KEEP_TEST_DB=1, to look at a failure).
 */
import { randomBytes } from 'node:crypto';
import { Client, Pool } from 'pg';
import { TEST_PG_ADMIN_URL } from './env';

export interface TestDatabase {
  name: string;
  url: string;
  /** A pool on the test database, for assertions and planting state. */
  pool: Pool;
  drop(): Promise<void>;
}

/** `work` on one session of `url` (the admin database by default), closed after. */
export async function withClient<T>(url: string, work: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    return await work(c);
  } finally {
    await c.end();
  }
}

export function urlFor(database: string, user?: string): string {
  const url = new URL(TEST_PG_ADMIN_URL);
  url.pathname = `/${database}`;
  if (user) url.username = user;
  return url.toString();
}

export async function createTestDatabase(label = 'test'): Promise<TestDatabase> {
  const name = `ct_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
  await withClient(TEST_PG_ADMIN_URL, (admin) => admin.query(`CREATE DATABASE ${admin.escapeIdentifier(name)}`));
  const url = urlFor(name);
  const pool = new Pool({ connectionString: url, max: 4 });
  // drop() ends every session of the database (WITH FORCE); a client still
  // connecting when the pool ends would otherwise crash the test file.
  pool.on('error', () => undefined);
  return {
    name,
    url,
    pool,
    async drop() {
      await pool.end();
      if (process.env.KEEP_TEST_DB === '1') return;
      await withClient(TEST_PG_ADMIN_URL, (c) => c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`));
    },
  };
}

/** A login role name no other test file uses; roles are cluster-wide. */
export function randomRoleName(label: string): string {
  return `ct_${label}_${randomBytes(3).toString('hex')}`;
}

/** Drops roles a test created (after its database: a role owning objects cannot go). */
export async function dropRoles(...names: string[]): Promise<void> {
  await withClient(TEST_PG_ADMIN_URL, async (c) => {
    for (const name of names) await c.query(`DROP ROLE IF EXISTS ${c.escapeIdentifier(name)}`);
  });
}
