/**
 * caretaker's own housekeeping: deletes runs (and their findings) older than
 * `state.retentionDays`, so the state database holds a bounded history.
 */
import { z } from 'zod';
import { defineTask } from '../contract/task';
import { ResultStore } from '../results/store';

export const historyPrune = defineTask({
  name: 'history-prune',
  description: "Deletes caretaker's run history older than state.retentionDays",
  target: 'caretaker',
  defaultSchedule: 'daily',
  timeoutMs: 10 * 60_000,
  changesTarget: false,
  params: z.strictObject({}),
  codes: {},
  async run(ctx) {
    const days = ctx.target.retentionDays;
    if (ctx.dryRun) {
      return { summary: `dry run: would delete runs older than ${days} days`, findings: [] };
    }
    const started = Date.now();
    const deleted = await new ResultStore(ctx.clients.state).prune(days);
    return {
      summary: `deleted ${deleted} runs older than ${days} days`,
      findings: [],
      actions: deleted > 0 ? [{ kind: 'prune_history', subject: 'caretaker.runs', applied: true, durationMs: Date.now() - started, details: { deleted, retentionDays: days } }] : [],
      metrics: { history_runs_deleted: deleted },
    };
  },
});
