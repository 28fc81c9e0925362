/**
 * Runs one task on one target and always returns a TaskResult: a task that
 * throws, times out or is aborted becomes `status: 'error'` with the reason.
 * Shared by the queue worker and `caretaker run`.
 */
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import type { PreparedRun, Task, TaskContext } from '../contract/task';
import type { Config } from '../config/schema';
import { pausingWindow } from '../alerts/suppress/maintenance';
import { windowText } from '../alerts/suppress/suppressions';
import { statusOf, type Action, type TaskResult } from '../contract/result';
import { undeclaredCodes, undeclaredCodesRefused } from './undeclared-codes';
import { RunClientSet } from '../clients/target-clients';
import { coerceError } from '../errors';
import { redactSecretsIn } from '../logger';
import { ResultStore } from '../results/store';
import { scrubDeep } from '../config/secrets';

export interface RunRequest {
  /** The task, its target and params, as `task.prepare` found them. */
  run: PreparedRun;
  dryRun: boolean;
  log: Logger;
  state: Pool;
  /** Aborts the run from outside (worker shutdown, BullMQ cancel). */
  signal?: AbortSignal;
  progress?: (percent: number) => Promise<void>;
  jobLog?: (line: string) => Promise<void>;
  /** Every secret value of the config (configSecrets): scrubbed from the result, whatever a target's answer quoted. */
  secrets?: readonly string[];
}

export async function runTask(req: RunRequest): Promise<TaskResult> {
  const { task, target } = req.run;
  const { log } = req;
  const started = new Date();
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`timed out after ${task.timeoutMs} ms`)), task.timeoutMs);
  const onOuterAbort = () => controller.abort(req.signal?.reason ?? new Error('aborted'));
  req.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const clients = new RunClientSet({ log, signal: controller.signal, state: req.state });
  const appliedSoFar: Action[] = [];
  const context: Omit<TaskContext, 'target' | 'clients'> = {
    log,
    signal: controller.signal,
    dryRun: req.dryRun,
    progress: async (percent) => {
      await req.progress?.(Math.max(0, Math.min(100, Math.round(percent))));
    },
    jobLog: async (line) => {
      log.info(line);
      await req.jobLog?.(line);
    },
    applied: (action) => {
      appliedSoFar.push(action);
    },
    previousResult: async () => {
      try {
        return { result: await new ResultStore(req.state).lastCompleted(task.name, target.name), readable: true };
      } catch (err) {
        log.warn({ err: coerceError(err).message }, `cannot read the previous ${task.name} result: this run goes without it`);
        return { readable: false };
      }
    },
  };

  const finish = (partial: Pick<TaskResult, 'status' | 'summary' | 'findings' | 'actions' | 'metrics'>): TaskResult => {
    const finished = new Date();
    return {
      task: task.name,
      target: target.name,
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      durationMs: finished.getTime() - started.getTime(),
      dryRun: req.dryRun,
      ...scrubDeep(partial, req.secrets ?? []),
    };
  };

  try {
    const aborted = new Promise<never>((_, reject) => {
      controller.signal.addEventListener('abort', () => reject(coerceError(controller.signal.reason)), { once: true });
    });
    const outcome = await Promise.race([req.run.execute({ context, openClients: (kind, of) => clients.open(kind, of) }), aborted]);
    const undeclared = undeclaredCodes(task, outcome.findings);
    if (undeclared.length > 0) {
      if (undeclaredCodesRefused()) throw new Error(`${task.name} returned finding codes it does not declare: ${undeclared.join(', ')}`);
      log.warn({ codes: undeclared }, 'finding codes the task does not declare (kept)');
    }
    const result = finish({
      status: statusOf(outcome.findings),
      summary: outcome.summary,
      findings: outcome.findings,
      actions: outcome.actions ?? [],
      metrics: outcome.metrics ?? {},
    });
    log.info({ status: result.status, durationMs: result.durationMs, findings: result.findings.length }, result.summary);
    return result;
  } catch (thrown) {
    const reason = redactSecretsIn(coerceError(thrown).message);
    // What the task changed before it stopped; a copy: the abandoned run may still be recording.
    const actions = [...appliedSoFar];
    log.warn({ reason, applied: actions.length }, 'task could not do its work');
    const changed = actions.length > 0 ? ` (after ${actions.length} change${actions.length === 1 ? '' : 's'}: see actions)` : '';
    return finish({ status: 'error', summary: `${task.name} failed on ${target.name}: ${reason}${changed}`, findings: [], actions, metrics: {} });
  } finally {
    clearTimeout(timer);
    req.signal?.removeEventListener('abort', onOuterAbort);
    // Abort anything the task left running (it lost the race), then close its clients.
    if (!controller.signal.aborted) controller.abort(new Error('run finished'));
    await clients.close();
  }
}

/** The result of a run that did not execute because another run (`heldBy`) holds the target. */
export function skippedResult(taskName: string, targetName: string, dryRun: boolean, heldBy: string): TaskResult {
  return skipped(taskName, targetName, dryRun, `another run of ${taskName} on ${targetName} is in progress (${heldBy})`);
}

/**
 * A task that changes its target, not run because a maintenance window
 * with `pauseChanges` is open on that target (a dry run changes nothing
 * and still runs).
 */
export function pausedByWindow(config: Pick<Config, 'maintenance' | 'timezone'>, task: Task, targetName: string, dryRun: boolean, now = new Date()): TaskResult | undefined {
  if (!task.changesTarget || dryRun) return undefined;
  const window = pausingWindow(config.maintenance, config.timezone, task.name, targetName, now);
  return window ? skipped(task.name, targetName, dryRun, `changes are paused during ${windowText(window)}`) : undefined;
}

function skipped(taskName: string, targetName: string, dryRun: boolean, reason: string): TaskResult {
  const now = new Date().toISOString();
  return {
    task: taskName,
    target: targetName,
    status: 'ok',
    skipped: true,
    startedAt: now,
    finishedAt: now,
    durationMs: 0,
    dryRun,
    summary: `skipped: ${reason}`,
    findings: [{ severity: 'info', code: 'run_skipped', subject: `${taskName}:${targetName}`, message: reason }],
    actions: [],
    metrics: {},
  };
}

/** An `error` result for a run that could not even start (bad job data, unknown task). */
export function rejectedResult(taskName: string, targetName: string, dryRun: boolean, reason: string): TaskResult {
  const now = new Date().toISOString();
  return { task: taskName, target: targetName, status: 'error', startedAt: now, finishedAt: now, durationMs: 0, dryRun, summary: reason, findings: [], actions: [], metrics: {} };
}
