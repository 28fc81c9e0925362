/**
 * The small JSON file the backup task writes beside each dump, so
 * backup-verify can check the bytes (sha256) and restore-test the content
 * (row counts captured with the dump) without trusting the dump itself.
 */
import { z } from 'zod';
import type { Readable } from 'node:stream';
import { MANIFEST_SUFFIX, type BackupStore, type StoredObject } from './store';

export const DUMP_FORMATS = ['plain-gzip', 'custom'] as const;
export type DumpFormat = (typeof DUMP_FORMATS)[number];

export const manifestSchema = z.object({
  version: z.literal(1),
  file: z.string(),
  format: z.enum(DUMP_FORMATS),
  sizeBytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  database: z.string(),
  serverVersion: z.string(),
  startedAt: z.string(),
  finishedAt: z.string(),
  /** `schema.table` → rows, counted in the dump's snapshot (or right before it). */
  tables: z.record(z.string(), z.number().int().nonnegative()),
});
export type BackupManifest = z.infer<typeof manifestSchema>;

export function manifestName(dumpName: string): string {
  return `${dumpName}${MANIFEST_SUFFIX}`;
}

/**
 * When a dump was taken: its manifest's finishedAt, else the file's time.
 * backup-verify's age and dr-drill's RPO both measure from it.
 */
export function backupTime(dump: StoredObject, manifest: BackupManifest | undefined): { at: Date; fromManifest: boolean } {
  const finished = manifest ? Date.parse(manifest.finishedAt) : NaN;
  return Number.isFinite(finished) ? { at: new Date(finished), fromManifest: true } : { at: dump.modifiedAt, fromManifest: false };
}

/** The dump's format from its name, else from its first bytes (gzip magic, or pg_dump's "PGDMP"). */
export function formatOf(name: string, head?: Buffer): DumpFormat | undefined {
  if (/\.(sql\.gz|gz)$/i.test(name)) return 'plain-gzip';
  if (/\.(dump|backup|custom|pgdump)$/i.test(name)) return 'custom';
  if (head && head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'plain-gzip';
  if (head && head.subarray(0, 5).toString('latin1') === 'PGDMP') return 'custom';
  return undefined;
}

/**
 * The manifest of a dump: undefined when there is none; throws with the
 * reason when it exists but is not a valid manifest.
 */
export async function readManifest(store: BackupStore, dumpName: string): Promise<BackupManifest | undefined> {
  const name = manifestName(dumpName);
  if (!(await store.stat(name))) return undefined;
  const text = await readSmall(await store.read(name), 10 * 1024 * 1024);
  const parsed = manifestSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`${name} is not a valid manifest: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

/** Reads a small stream whole, refusing past `limit` bytes. */
async function readSmall(stream: Readable, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      stream.destroy();
      throw new Error(`manifest larger than ${limit} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
