/**
 * The registry: every task, by name. Adding a task is adding its file here;
 * test/jobs/registry.test.ts fails when a file in src/jobs/ is missing.
 */
import type { Task } from '../contract/task';
import { connections } from './connections';
import { diskCheck } from './disk-check';
import { historyPrune } from './history-prune';
import { indexAudit } from './index-audit';
import { pgHealth } from './pg-health';
import { slowQueries } from './slow-queries';
import { vacuumAnalyze } from './vacuum-analyze';

export type TaskRegistry = ReadonlyMap<string, Task>;

export const TASKS: TaskRegistry = new Map<string, Task>([
  [connections.name, connections],
  [diskCheck.name, diskCheck],
  [historyPrune.name, historyPrune],
  [indexAudit.name, indexAudit],
  [pgHealth.name, pgHealth],
  [slowQueries.name, slowQueries],
  [vacuumAnalyze.name, vacuumAnalyze],
]);
