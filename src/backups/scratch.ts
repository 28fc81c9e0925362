/**
 * Scratch databases: where restore tests put a dump back. Their names carry
 * a fixed prefix that the config loader forbids for any configured target,
 * so a restore test can never create, fill or drop a database it maintains.
 */

export const SCRATCH_PREFIX = 'caretaker_scratch_';

/** PostgreSQL's limit on identifiers (NAMEDATALEN - 1). */
const MAX_NAME = 63;

/** The `yyyymmddhhmmss` stamp that ends a scratch database's name. */
const STAMP_CHARS = 14;

/** `caretaker_scratch_<target>_`: how every scratch database of `target` starts (the sweep's and tests' filter). */
export function scratchNamePrefix(target: string): string {
  const safeTarget = target.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  const room = MAX_NAME - SCRATCH_PREFIX.length - STAMP_CHARS - 1;
  return `${SCRATCH_PREFIX}${safeTarget.slice(0, room)}_`;
}

/** `caretaker_scratch_<target>_<yyyymmddhhmmss>`: sortable, and its age is in its name. */
export function scratchDatabaseName(target: string, at: Date = new Date()): string {
  return scratchNamePrefix(target) + at.toISOString().replace(/[-:T]/g, '').slice(0, STAMP_CHARS);
}

/** When a scratch database was created, from its name; undefined for any other name. */
export function scratchCreatedAt(name: string): Date | undefined {
  if (!name.startsWith(SCRATCH_PREFIX)) return undefined;
  const m = /_(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/.exec(name);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m;
  const at = new Date(`${y}-${mo}-${d}T${h}:${mi}:${s}Z`);
  return Number.isNaN(at.getTime()) ? undefined : at;
}

/** The database a postgres URL names (`postgres://h/app` → "app"). */
export function databaseOf(url: string): string {
  try {
    return decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
  } catch {
    return '';
  }
}

export function isScratchName(database: string): boolean {
  return database.toLowerCase().startsWith(SCRATCH_PREFIX);
}
