/**
 * The registry: every task, by name. Adding a task is adding its file here;
 * test/jobs/registry.test.ts fails when a file in src/jobs/ is missing.
 */
import type { Task } from '../contract/task';
import { connections } from './connections';
import { historyPrune } from './history-prune';

export type TaskRegistry = ReadonlyMap<string, Task>;

export const TASKS: TaskRegistry = new Map<string, Task>([
  [connections.name, connections],
  [historyPrune.name, historyPrune],
]);
