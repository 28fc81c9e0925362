/**
 * Runs a task the way the worker does (config validated, params resolved
 * from defaults + config + overrides, the run's clients, timeout, error →
 * result) against one configured target of any kind.
 *
 *   await runOn(redisHealth, 'redis', { redis: [{ name: 'cache', url }] }, { minLookups: 10 }, false, { state: db.pool });
 *   await runOn(queueHealth, 'queues', { redis: [...], queues: [{ name: 'jobs', redis: 'cache', queues: ['a'] }] });
 *
 * References between targets (a queues target's `redisTarget`, a backups
 * target's `source`) are resolved by the config loader, exactly as in
 * production.
 */
import { Pool } from 'pg';
import type { Task } from '../../src/contract/task';
import type { TaskResult } from '../../src/contract/result';
import type { RawConfigInput, TargetKind } from '../../src/config/schema';
import { findTarget, targetsOf } from '../../src/config/targets';
import { runTask } from '../../src/worker/run-task';
import { preparedRun } from './run-task';
import { testConfig } from './config';
import { TEST_PG_ADMIN_URL } from './env';
import { testLogger } from './logger';

/** The config file's `targets:` section (every kind), as a test writes it. */
export type TargetsInput = NonNullable<RawConfigInput['targets']>;

export interface RunOnOptions {
  /**
   * The state database's pool (caretaker's history). Pass a migrated test
   * database's pool when the task reads its previous result
   * (ResultStore.lastCompleted). Without it, the run gets a pool on the
   * admin database that nothing should use; it is closed after the run.
   */
  state?: Pool;
  /** Which target of `kind` to run on; default the first one listed. */
  target?: string;
  /** The config's `tasks:` section (params per task, below the overrides). */
  tasks?: RawConfigInput['tasks'];
}

export async function runOn(
  task: Task,
  kind: TargetKind,
  targets: TargetsInput,
  params: Record<string, unknown> = {},
  dryRun = false,
  options: RunOnOptions = {},
): Promise<TaskResult> {
  const config = testConfig({ dbUrl: TEST_PG_ADMIN_URL, prefix: 'unused', targets, tasks: options.tasks ?? {} });
  const target = options.target !== undefined ? findTarget(config, kind, options.target) : targetsOf(config, kind)[0];
  if (!target) throw new Error(`runOn: no ${kind} target in ${JSON.stringify(Object.keys(targets))}`);
  const resolved = preparedRun(task, config, target.name, params);
  const state = options.state ?? new Pool({ connectionString: TEST_PG_ADMIN_URL, max: 1 });
  try {
    return await runTask({ run: resolved, dryRun, log: testLogger, state });
  } finally {
    if (!options.state) await state.end();
  }
}
