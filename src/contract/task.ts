import type { Logger } from 'pino';
import type { z } from 'zod';
import type { Action, Finding, TaskResult } from './result';
import type { TargetKind, TargetByKind } from '../config/schema';
import type { TargetClients } from '../clients/target-clients';

/** Where a task's schedule comes from when the config does not name one. */
export type DefaultSchedule = 'daily' | 'weekly' | 'monthly' | 'report';

/** What a task's `run` gets: everything scoped to this one run. */
export interface TaskContext<K extends TargetKind = TargetKind> {
  /** The target's config (name, url, allow flags...). Never log it whole: it holds secrets. */
  target: TargetByKind[K];
  /** Lazily opened clients for the target, closed by the runner after the run. */
  clients: TargetClients;
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
export interface TaskOutcome {
  summary: string;
  findings: Finding[];
  actions?: Action[];
  metrics?: Record<string, number>;
}

/**
 * The contract of one runbook task (the README's Developing section). One file per task
 * in src/jobs/, registered in src/jobs/index.ts.
 */
export interface Task<K extends TargetKind = TargetKind, S extends z.ZodObject = z.ZodObject> {
  name: string;
  description: string;
  target: K;
  defaultSchedule: DefaultSchedule;
  timeoutMs: number;
  /** True when the task can change its target (then it obeys allow flags and --dry-run). */
  changesTarget: boolean;
  /** Params and thresholds, with defaults; strict, so an unknown key is an error. */
  params: S;
  run(ctx: TaskContext<K>, params: z.infer<S>): Promise<TaskOutcome>;
}

/** Lets a task file keep its precise types while the registry holds `Task`. */
export function defineTask<K extends TargetKind, S extends z.ZodObject>(task: Task<K, S>): Task {
  return task as unknown as Task;
}
