/**
 * What every run returns, stores and prints (the README's "The result").
 * Reports, alerts and other tools key on these shapes: extend, never rename.
 */

export type Severity = 'info' | 'warning' | 'critical';
export type RunStatus = 'ok' | 'warning' | 'critical' | 'error';

/** `C`: the codes the producing task declares (its `codes`); plain `string` wherever findings are read back. */
export interface Finding<C extends string = string> {
  severity: Severity;
  /** Stable snake_case id, e.g. `connections_high`, declared with its meaning by the task. */
  code: C;
  /** The thing the finding is about: `schema.index`, a pod, a pid. */
  subject: string;
  message: string;
  suggestion?: string;
  details?: Record<string, unknown>;
}

export interface Action {
  kind: string;
  subject: string;
  /** false when the run was a dry run or the action was refused. */
  applied: boolean;
  durationMs?: number;
  details?: Record<string, unknown>;
}

export interface TaskResult {
  task: string;
  target: string;
  status: RunStatus;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  dryRun: boolean;
  summary: string;
  findings: Finding[];
  actions: Action[];
  metrics: Record<string, number>;
  /** Present and true when the run did not execute because another run held the target. */
  skipped?: boolean;
}

const SEVERITY_RANK: Record<Severity, number> = { info: 0, warning: 1, critical: 2 };

/** `status` is the worst finding: info-only or no findings is `ok`. */
export function statusOf(findings: readonly Finding[]): RunStatus {
  let worst = 0;
  for (const f of findings) worst = Math.max(worst, SEVERITY_RANK[f.severity]);
  return worst === 2 ? 'critical' : worst === 1 ? 'warning' : 'ok';
}

/**
 * Exit codes of the monitoring-plugin convention (Nagios, Icinga, Sensu):
 * 0 ok, 1 warning, 2 critical, 3 unknown.
 */
export const EXIT_CODE: Record<RunStatus, number> = { ok: 0, warning: 1, critical: 2, error: 3 };
