/**
 * What the commands that write caretaker's own records (silences, waivers,
 * the checklist's "done") share: who did it (`--by`, else the login name,
 * as amtool's `--author` does), and a one-connection state pool whose
 * absence, or an old schema, is one line.
 */
import { userInfo } from 'node:os';
import type { Pool } from 'pg';
import type { Config } from '../config/schema';
import { createPool, stateLimits } from '../clients/postgres';
import { UsageError, coerceError } from '../errors';
import { loggerFor } from './common';
import type { CliIO } from './io';

/** The login name, or "cli" where the system has none for this uid (a container's). */
function loginName(): string {
  try {
    return userInfo().username || 'cli';
  } catch {
    return 'cli';
  }
}

/** `--by`, else the login name; a name is at most 100 characters with no control character. */
export function who(opts: { by?: string }): string {
  const by = opts.by?.trim() || loginName();
  if (by.length > 100 || /[\u0000-\u001f\u007f]/.test(by)) throw new UsageError('--by must be a name of at most 100 characters');
  return by;
}

/**
 * Runs `work` on a one-connection state pool. `records` names what the
 * command keeps there (`silences or waivers`): a database whose schema
 * predates it has no table for them, and says so in one line.
 */
export async function onState<T>(io: CliIO, config: Config, records: string, work: (pool: Pool) => Promise<T>): Promise<T> {
  const pool = createPool(config.state.url, stateLimits(config.state), loggerFor(io, config, { human: true }), 1);
  try {
    return await work(pool);
  } catch (err) {
    const e = coerceError(err) as Error & { code?: string };
    if (err instanceof UsageError) throw err;
    if (e.code === '42P01') throw new UsageError(`the state database has no ${records} yet: run "caretaker migrate" (or start caretaker) first`);
    throw new Error(`cannot use the state database: ${e.message}`, { cause: err });
  } finally {
    await pool.end().catch(() => undefined);
  }
}
