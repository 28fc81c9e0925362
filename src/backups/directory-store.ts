/** A directory of dumps: local disk or a mounted volume (the runbook's `backup.sql.gz`). */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type { BackupStore, StoredObject } from './store';

export class DirectoryStore implements BackupStore {
  readonly description: string;

  constructor(private readonly dir: string) {
    this.description = `directory ${dir}`;
  }

  /** Names are file names only: never a path that climbs out of the directory. */
  private path(name: string): string {
    if (name !== basename(name) || name === '..' || name === '.' || name === '') throw new Error(`not a file name: ${JSON.stringify(name)}`);
    return join(this.dir, name);
  }

  async list(): Promise<StoredObject[]> {
    const entries = await readdir(this.dir, { withFileTypes: true });
    const files = entries.filter((e) => e.isFile() && !e.name.startsWith('.'));
    const out: StoredObject[] = [];
    for (const f of files) {
      const s = await stat(join(this.dir, f.name)).catch(() => undefined);
      if (s) out.push({ name: f.name, sizeBytes: s.size, modifiedAt: s.mtime });
    }
    return out;
  }

  async stat(name: string): Promise<StoredObject | undefined> {
    try {
      const s = await stat(this.path(name));
      return s.isFile() ? { name, sizeBytes: s.size, modifiedAt: s.mtime } : undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async read(name: string): Promise<Readable> {
    const path = this.path(name);
    await stat(path); // ENOENT now, not on the first read
    return createReadStream(path);
  }

  /** Written to a hidden temporary file, renamed into place when complete. */
  async write(name: string, body: Readable): Promise<StoredObject> {
    const final = this.path(name);
    await mkdir(this.dir, { recursive: true });
    const temp = join(this.dir, `.${name}.partial-${process.pid}-${Date.now()}`);
    try {
      await pipeline(body, createWriteStream(temp, { flags: 'wx' }));
      await rename(temp, final);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    return (await this.stat(name))!;
  }

  async remove(name: string): Promise<void> {
    await rm(this.path(name), { force: true });
  }
}
