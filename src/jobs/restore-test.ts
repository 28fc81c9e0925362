/**
 * restore-test (weekly): the runbook's "test backup restore". Restores the
 * newest dump of a backups target into a scratch database on the scratch
 * server, checks every table's row count against the dump's manifest (or
 * the live source within a tolerance; caretaker's own schema never), key
 * tables and smoke queries, and
 * drops the scratch database again, whatever happens. The flow is the
 * restore engine's (src/backups/restore.ts), shared with dr-drill.
 */
import { defineTask } from '../contract/task';
import { RESTORE_CODES, RESTORE_TASK_TIMEOUT_MS, restoreParams, runRestore } from '../backups/restore';

export const restoreTest = defineTask({
  name: 'restore-test',
  description: 'Restores the newest dump into a scratch database, compares row counts with the manifest or the source, checks key tables and smoke queries, drops it',
  target: 'backups',
  defaultSchedule: 'weekly',
  timeoutMs: RESTORE_TASK_TIMEOUT_MS,
  changesTarget: true,
  params: restoreParams,
  codes: RESTORE_CODES,
  async run(ctx, p) {
    const run = await runRestore(ctx, p, 'restore-test');
    return { summary: run.summary, findings: run.findings, actions: run.actions, metrics: run.metrics };
  },
});
