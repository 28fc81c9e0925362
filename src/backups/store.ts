/**
 * Where dumps live: a directory (the runbook's case, or a mounted volume)
 * or an S3-compatible bucket, behind one small streaming interface. Nothing
 * here buffers a whole dump in memory.
 */
import type { BackupStore, StoredObject } from '../contract/backup-store';

export type { BackupStore, StoredObject };

/** `*` and `?` wildcards over a whole file name; every other character is literal. */
export function matchesPattern(pattern: string, name: string): boolean {
  const source = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${source}$`).test(name);
}

/** The dumps of a target, newest first (by modification time, then name). */
export async function listDumps(store: BackupStore, pattern: string): Promise<StoredObject[]> {
  const all = await store.list();
  return all
    .filter((o) => matchesPattern(pattern, o.name) && !o.name.endsWith(MANIFEST_SUFFIX))
    .sort((a, b) => b.modifiedAt.getTime() - a.modifiedAt.getTime() || b.name.localeCompare(a.name));
}

/** A dump's manifest sits beside it: `<dump>.manifest.json`. */
export const MANIFEST_SUFFIX = '.manifest.json';
