/**
 * Backups in tests: run a backups-target task the way the worker does, and
 * make real dumps with the machine's pg_dump, as the runbook does
 * (`pg_dump db | gzip > file`), or in custom format (`pg_dump -Fc`).
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type { Pool } from 'pg';
import type { Task } from '../../src/contract/task';
import type { TaskResult } from '../../src/contract/result';
import type { RawConfigInput } from '../../src/config/schema';
import { runTask } from '../../src/worker/run-task';
import { preparedRun } from './run-task';
import { testConfig } from './config';
import { testLogger } from './logger';

type BackupsInput = NonNullable<NonNullable<RawConfigInput['targets']>['backups']>[number];
type KubernetesInput = NonNullable<NonNullable<RawConfigInput['targets']>['kubernetes']>[number];

export interface RunOnBackups {
  /** The source database (the postgres target `main`). */
  sourceUrl: string;
  /** State database pool (history). */
  state: Pool;
  /** The backups target, without name and database (they are `nightly` and `main`). */
  backups: Omit<BackupsInput, 'name' | 'database'>;
  kubernetes?: KubernetesInput[];
  params?: Record<string, unknown>;
  dryRun?: boolean;
  /** The backups target's name (default `nightly`): scratch names and sweeps are per target, so parallel files pick their own. */
  name?: string;
  /** Fields of the source postgres target beyond its url (timeouts). */
  source?: Partial<NonNullable<NonNullable<RawConfigInput['targets']>['postgres']>[number]>;
  /** Aborts the run from outside, as a worker shutdown would. */
  signal?: AbortSignal;
}

export async function runOnBackups(task: Task, opts: RunOnBackups): Promise<TaskResult> {
  const config = testConfig({
    dbUrl: opts.sourceUrl,
    prefix: 'unused',
    targets: {
      postgres: [{ name: 'main', url: opts.sourceUrl, ...opts.source }],
      backups: [{ name: opts.name ?? 'nightly', database: 'main', ...opts.backups }],
      kubernetes: opts.kubernetes ?? [],
    },
  });
  const target = config.targets.backups[0]!;
  const params = preparedRun(task, config, target.name, opts.params ?? {});
  return runTask({ run: params, dryRun: opts.dryRun ?? false, log: testLogger, state: opts.state, signal: opts.signal });
}

/** `pg_dump url | gzip > dir/name` (plain) or `pg_dump -Fc url > dir/name` (custom); resolves with the path. */
export async function makeDump(url: string, dir: string, name: string, format: 'plain-gzip' | 'custom' = 'plain-gzip'): Promise<string> {
  const path = join(dir, name);
  const args = format === 'custom' ? ['-Fc', '--no-owner', '-d', url] : ['--no-owner', '-d', url];
  const dump = spawn('pg_dump', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  dump.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => dump.on('close', resolve));
  if (format === 'custom') await pipeline(dump.stdout, createWriteStream(path));
  else await pipeline(dump.stdout, createGzip(), createWriteStream(path));
  const code = await exited;
  if (code !== 0) throw new Error(`pg_dump exited ${code}: ${stderr}`);
  return path;
}
