import type { Logger } from 'pino';
import type { z } from 'zod';
import type { Action, Finding, TaskResult } from './result';
import type { ClientsByKind } from './clients';
import type { Config, TargetKind, TargetByKind } from '../config/schema';
import { findTarget, type TargetSources } from '../config/targets';
import { resolveParams } from '../config/params';

/** Where a task's schedule comes from when the config does not name one. */
export type DefaultSchedule = 'hourly' | 'daily' | 'weekly' | 'monthly' | 'report';

/** A task's finding codes, each with one line saying what it means (`caretaker tasks --json` lists them). */
export type FindingCodes<C extends string = string> = Readonly<Record<C, string>>;

/** What a task's `run` gets: everything scoped to this one run. */
export interface TaskContext<K extends TargetKind = TargetKind> {
  /** The target's config (name, url, allow flags...). Never log it whole: it holds secrets. */
  target: TargetByKind[K];
  /** The clients of this target's kind, opened on first use and closed by the runner after the run. */
  clients: ClientsByKind[K];
  /** A pino child carrying task, target and jobId. */
  log: Logger;
  /** Aborted when the run times out or the worker shuts down. */
  signal: AbortSignal;
  dryRun: boolean;
  /** Reaches the Bull Board job (0..100); a no-op outside the queue. */
  progress(percent: number): Promise<void>;
  /** A line in the Bull Board job's log; also written to the run logger. */
  jobLog(line: string): Promise<void>;
  /**
   * Records a change to the target the moment it is made. When the run then
   * fails, times out or is aborted, its `error` result still lists these, so
   * the history says what was changed. A run that finishes reports the
   * actions it returns instead.
   */
  applied(action: Action): void;
  /**
   * This task's last completed result on this target (a run that did its
   * work), for figures "since the previous run". The history is caretaker's
   * own database: when it cannot be read, that is logged as a warning and
   * `readable` is false; its trouble never costs the check.
   */
  previousResult(): Promise<PreviousResult>;
}

/** What `previousResult` found: `result` undefined on a first run, or when the history was unreadable. */
export interface PreviousResult {
  result?: TaskResult;
  readable: boolean;
}

/** What `run` returns: the runner adds task, target, times, status. */
export interface TaskOutcome<C extends string = string> {
  summary: string;
  findings: Finding<C>[];
  actions?: Action[];
  metrics?: Record<string, number>;
}

/** What describes a task, whatever its kind: what the registry, the scheduler and the listings read. */
export interface TaskInfo<K extends TargetKind = TargetKind, S extends z.ZodObject = z.ZodObject, C extends string = string> {
  name: string;
  description: string;
  target: K;
  defaultSchedule: DefaultSchedule;
  timeoutMs: number;
  /** True when the task can change its target (then it obeys allow flags and --dry-run). */
  changesTarget: boolean;
  /** Params and thresholds, with defaults; strict, so an unknown key is an error. */
  params: S;
  /** Every code its findings may carry: the runner refuses any other in tests, the README's table lists them all. */
  codes: FindingCodes<C>;
  /**
   * Whether its schedules run it on `target` (default: on every target of
   * its kind). The checklist has nothing to do without items, so it is not
   * scheduled then, rather than stored as an empty run every hour.
   */
  scheduledOn?(target: TargetByKind[K]): boolean;
  /**
   * Params it reads per target of other kinds, from that target's own
   * `tasks.<task>` (dependency-check's tag filters per kubernetes target):
   * checked at load like any params, so a mistake fails the start.
   */
  perTarget?: { kinds: readonly TargetKind[]; params: z.ZodObject };
}

/**
 * The contract of one runbook task (the README's Developing section). One file
 * per task in src/jobs/, registered in src/jobs/index.ts.
 */
export interface TaskDefinition<K extends TargetKind, S extends z.ZodObject, C extends string> extends TaskInfo<K, S, C> {
  // NoInfer: the codes come from `codes` alone, so a finding with another code is a compile error.
  run(ctx: TaskContext<K>, params: z.output<S>): Promise<TaskOutcome<NoInfer<C>>>;
}

/** What the runner supplies to a run; it builds the task's context from it. */
export interface RunEnvironment {
  /**
   * The clients of a target of kind `kind`, each opened on first use. The
   * runner closes them when the run ends, even when the task is still stuck
   * in a call (a timed-out run), which is what frees that call.
   */
  openClients<K extends TargetKind>(kind: K, target: TargetByKind[K]): ClientsByKind[K];
  /** Everything of the context but the target and its clients. */
  context: Omit<TaskContext, 'target' | 'clients'>;
}

/** A run that can start: this task on its target, with its params validated. */
export interface PreparedRun {
  task: Task;
  target: TargetByKind[TargetKind];
  /** Runs the task with clients from `env`. */
  execute(env: RunEnvironment): Promise<TaskOutcome>;
}

/** Where a run's params come from: the config's and the target's `tasks.<task>`, then these overrides. */
export interface RunRequestInput {
  targetName: string;
  overrides?: Record<string, unknown>;
  /** Names the overrides in messages: `--param`, `job data params`. */
  overridePath?: string;
}

export type Preparation = { ok: true; run: PreparedRun } | { ok: false; problems: string[] };

/** A task as the registry holds it: described, and able to prepare a run of itself on a named target. */
export interface Task extends TaskInfo {
  /**
   * Finds the task's target (a UsageError naming the known ones when there is
   * none of that name) and validates its params; the run it returns keeps the
   * task's own types, so nothing between config and `run` is cast.
   */
  prepare(config: TargetSources & Pick<Config, 'tasks'>, input: RunRequestInput): Preparation;
}

/** Lets a task file keep its precise types (target kind, params, codes) while the registry holds `Task`. */
export function defineTask<K extends TargetKind, S extends z.ZodObject, C extends string>(definition: TaskDefinition<K, S, C>): Task {
  const { run, ...info } = definition;
  const task: Task = {
    ...info,
    prepare(config, input) {
      const target = findTarget(config, definition.target, input.targetName);
      const params = resolveParams(definition, config, target, input.overrides ?? {}, input.overridePath);
      if (!params.ok) return params;
      const execute = (env: RunEnvironment): Promise<TaskOutcome> => run({ ...env.context, target, clients: env.openClients(definition.target, target) }, params.params);
      return { ok: true, run: { task, target, execute } };
    },
  };
  return task;
}
