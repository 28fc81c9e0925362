/**
 * Where dumps live, as the backup tasks see it: a directory or an
 * S3-compatible bucket behind one small streaming interface (src/backups/
 * implements both). Nothing here buffers a whole dump in memory.
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
