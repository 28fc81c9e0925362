/**
 * A finding whose code its task does not declare: in service it is kept and
 * logged (a finding is never dropped for its name); the test suite turns
 * refusal on in its setup, so a new code cannot slip past the task's
 * `codes` and the README's table.
 */
import type { Finding } from '../contract/result';
import type { TaskInfo } from '../contract/task';

let refused = false;

/** Makes the runner turn a run with an undeclared code into an `error` result naming it. */
export function refuseUndeclaredCodes(refuse = true): void {
  refused = refuse;
}

export function undeclaredCodesRefused(): boolean {
  return refused;
}

/** The codes among `findings` that `task` does not declare, each once. */
export function undeclaredCodes(task: Pick<TaskInfo, 'codes'>, findings: readonly Finding[]): string[] {
  return [...new Set(findings.map((f) => f.code).filter((code) => !Object.hasOwn(task.codes, code)))];
}
