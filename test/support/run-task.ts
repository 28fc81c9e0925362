/**
 * Runs a task the way the worker does (params resolved from config, the
 * run's clients, timeout, error → result) against one postgres target.
 */
import type { Pool } from 'pg';
import type { Task } from '../../src/contract/task';
import type { TaskResult } from '../../src/contract/result';
import type { RawConfigInput } from '../../src/config/schema';
import { runTask } from '../../src/worker/run-task';
import { testConfig } from './config';
import type { PreparedRun } from '../../src/contract/task';
import type { TargetSources } from '../../src/config/targets';
import type { CaretakerTarget, Config } from '../../src/config/schema';
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
  const params = preparedRun(task, config, target.name, opts.params ?? {});
  return runTask({ run: params, dryRun: opts.dryRun ?? false, log: testLogger, state: opts.state, signal: opts.signal, jobLog: opts.jobLog });
}

/** `task` prepared on the config's target `targetName` with `overrides` as `--param`; throws the param problems. */
export function preparedRun(task: Task, config: TargetSources & Pick<Config, 'tasks'>, targetName: string, overrides: Record<string, unknown> = {}): PreparedRun {
  const prepared = task.prepare(config, { targetName, overrides });
  if (!prepared.ok) throw new Error(prepared.problems.join('; '));
  return prepared.run;
}

/**
 * `task` prepared on the self-target `target` as tests build it by hand (the
 * weekly report's): a config whose caretaker target is that one.
 */
export function preparedOnSelf(task: Task, target: CaretakerTarget, overrides: Record<string, unknown> = {}): PreparedRun {
  const base = testConfig({ dbUrl: 'postgres://unused@127.0.0.1/unused', prefix: 'unused' });
  const sources: TargetSources & Pick<Config, 'tasks'> = {
    ...base,
    targets: target.targets,
    state: { ...base.state, retentionDays: target.retentionDays },
    notifications: target.notifications,
    report: target.report,
    timezone: target.timezone,
    web: { ...base.web, publicUrl: target.publicUrl },
    schedulers: target.schedulers.map((s) => ({ ...s, id: `${s.task}:${s.target}`, schedule: 'test', targetKind: 'postgres', catchUp: false })),
    waivers: target.waivers,
    maintenance: target.maintenance,
  };
  return preparedRun(task, sources, 'caretaker', overrides);
}
