import type { Pool } from 'pg';
import { MIGRATIONS, type Migration } from './migrations';

/** Any constant works; it only has to be the same in every caretaker process. */
const MIGRATION_LOCK_KEY = 7_142_042;

const SQL = {
  lock: `SELECT pg_advisory_xact_lock($1)`,
  createSchema: `CREATE SCHEMA IF NOT EXISTS caretaker`,
  createLedger: `
    CREATE TABLE IF NOT EXISTS caretaker.schema_migrations (
      version    integer PRIMARY KEY,
      name       text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`,
  applied: `SELECT version FROM caretaker.schema_migrations`,
  record: `INSERT INTO caretaker.schema_migrations (version, name) VALUES ($1, $2)`,
} as const;

/**
 * Brings the `caretaker` schema up to date; returns the migrations applied
 * now (empty when already current). Safe to call from every replica at start.
 */
export async function migrate(pool: Pool, migrations: readonly Migration[] = MIGRATIONS): Promise<Migration[]> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(SQL.lock, [MIGRATION_LOCK_KEY]);
    await client.query(SQL.createSchema);
    await client.query(SQL.createLedger);
    const done = new Set((await client.query<{ version: number }>(SQL.applied)).rows.map((r) => r.version));
    const pending = migrations.filter((m) => !done.has(m.version));
    for (const m of pending) {
      await client.query(m.sql);
      await client.query(SQL.record, [m.version, m.name]);
    }
    await client.query('COMMIT');
    return pending;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
