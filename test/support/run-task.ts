/**
 * Runs a task the way the worker does (params resolved from config, the
 * run's clients, timeout, error → result) against one postgres target.
 */
import type { Pool } from 'pg';
import type { Task } from '../../src/contract/task';
import type { TaskResult } from '../../src/contract/result';
import type { RawConfigInput } from '../../src/config/schema';
import { resolveParams } from '../../src/config/params';
import { runTask } from '../../src/worker/run-task';
import { testConfig } from './config';
import { testLogger } from './logger';

type PostgresTargetInput = NonNullable<NonNullable<RawConfigInput['targets']>['postgres']>[number];

export interface RunOnPostgres {
  /** The target's url (a test database). */
  url: string;
  /** The state database's pool (history); usually the test database's own. */
  state: Pool;
  /** Target fields beyond name and url: allow flags, timeouts. */
  target?: Partial<PostgresTargetInput>;
  /** As `--param`: validated against the task's schema. */
  params?: Record<string, unknown>;
  dryRun?: boolean;
  /** Aborts the run from outside, as a worker shutting down does. */
  signal?: AbortSignal;
  /** Sees each line the task writes to its job log. */
  jobLog?: (line: string) => Promise<void>;
}

export async function runOnPostgres(task: Task, opts: RunOnPostgres): Promise<TaskResult> {
  const config = testConfig({ dbUrl: opts.url, prefix: 'unused', targets: { postgres: [{ name: 'main', url: opts.url, ...opts.target }] } });
  const target = config.targets.postgres[0]!;
  const params = resolveParams(task, config, target, opts.params ?? {});
  if (!params.ok) throw new Error(params.problems.join('; '));
  return runTask({ task, target, params: params.params, dryRun: opts.dryRun ?? false, log: testLogger, state: opts.state, signal: opts.signal, jobLog: opts.jobLog });
}
