/**
 * The registry: every task, by name. Adding a task is adding its file here;
 * test/jobs/registry.test.ts fails when a file in src/jobs/ is missing.
 */
import type { Task } from '../contract/task';
import { apiHealth } from './api-health';
import { backup } from './backup';
import { backupVerify } from './backup-verify';
import { capacityPlan } from './capacity-plan';
import { checklist } from './checklist';
import { connections } from './connections';
import { dependencyCheck } from './dependency-check';
import { diskCheck } from './disk-check';
import { drDrill } from './dr-drill';
import { errorLogs } from './error-logs';
import { historyPrune } from './history-prune';
import { indexAudit } from './index-audit';
import { k8sHealth } from './k8s-health';
import { metricsReview } from './metrics-review';
import { performanceReview } from './performance-review';
import { pgHealth } from './pg-health';
import { queueHealth } from './queue-health';
import { redisHealth } from './redis-health';
import { restoreTest } from './restore-test';
import { securityAudit } from './security-audit';
import { slowQueries } from './slow-queries';
import { vacuumAnalyze } from './vacuum-analyze';
import { weeklyReport } from './weekly-report';

export type TaskRegistry = ReadonlyMap<string, Task>;

export const TASKS: TaskRegistry = new Map<string, Task>([
  [apiHealth.name, apiHealth],
  [backup.name, backup],
  [backupVerify.name, backupVerify],
  [capacityPlan.name, capacityPlan],
  [checklist.name, checklist],
  [connections.name, connections],
  [dependencyCheck.name, dependencyCheck],
  [diskCheck.name, diskCheck],
  [drDrill.name, drDrill],
  [errorLogs.name, errorLogs],
  [historyPrune.name, historyPrune],
  [indexAudit.name, indexAudit],
  [k8sHealth.name, k8sHealth],
  [metricsReview.name, metricsReview],
  [performanceReview.name, performanceReview],
  [pgHealth.name, pgHealth],
  [queueHealth.name, queueHealth],
  [redisHealth.name, redisHealth],
  [restoreTest.name, restoreTest],
  [securityAudit.name, securityAudit],
  [slowQueries.name, slowQueries],
  [vacuumAnalyze.name, vacuumAnalyze],
  [weeklyReport.name, weeklyReport],
]);
