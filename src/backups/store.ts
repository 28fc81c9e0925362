/**
 * Where dumps live: a directory (the runbook's case, or a mounted volume)
 * or an S3-compatible bucket, behind one small streaming interface. Nothing
 * here buffers a whole dump in memory.
 */
import type { Readable } from 'node:stream';

export interface StoredObject {
  /** Name relative to the store's root (directory or bucket prefix), e.g. "auditron-20261127T030000Z.sql.gz". */
  name: string;
  sizeBytes: number;
  modifiedAt: Date;
}

export interface BackupStore {
  /** For messages: "directory /backups", "s3://bucket/prefix". */
  readonly description: string;
  /** Every object directly in the store (no recursion into sub-directories). */
  list(): Promise<StoredObject[]>;
  /** undefined when there is no such object. */
  stat(name: string): Promise<StoredObject | undefined>;
  read(name: string): Promise<Readable>;
  /** Streams `body` into `name`; the object appears whole or not at all. */
  write(name: string, body: Readable): Promise<StoredObject>;
  remove(name: string): Promise<void>;
  /** Releases what the store holds open (an S3 client's sockets); nothing to do for a directory. */
  destroy?(): void;
}

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
