/**
 * The runbook's calendar as data: which task runs when, unless the config
 * says otherwise (the README's task table). A config's
 * `schedules.<id>` overrides any field of the entry with the same id, or
 * adds a new schedule.
 */
import type { DefaultSchedule } from '../contract/task';

export interface CatalogSchedule {
  cron: string;
  /** Undefined: the config's top-level `timezone`. */
  timezone?: string;
  tasks: string[];
  enabled: boolean;
}

/**
 * Every task the runbook names, implemented or not yet. A config may list a
 * planned task (examples/auditron.yaml lists the whole runbook); until its
 * file lands in src/jobs/ it is reported as unavailable and not scheduled.
 */
export const RUNBOOK_TASKS: Record<string, DefaultSchedule> = {
  backup: 'daily',
  'backup-verify': 'daily',
  'vacuum-analyze': 'daily',
  connections: 'daily',
  'pg-health': 'daily',
  'queue-health': 'daily',
  'redis-health': 'daily',
  'k8s-health': 'daily',
  'error-logs': 'daily',
  'api-health': 'daily',
  'metrics-review': 'daily',
  'history-prune': 'daily',
  'index-audit': 'weekly',
  'disk-check': 'weekly',
  'slow-queries': 'weekly',
  'restore-test': 'weekly',
  'security-audit': 'weekly',
  'dr-drill': 'monthly',
  'capacity-plan': 'monthly',
  'weekly-report': 'report',
  checklist: 'hourly',
  'dependency-check': 'weekly',
  'performance-review': 'monthly',
};

/** When each default schedule fires: quiet hours, staggered so they do not overlap. */
export const DEFAULT_CRON: Record<DefaultSchedule, string> = {
  // The checklist: an item's period may start at any hour; off the hour, away from the others.
  hourly: '7 * * * *',
  daily: '0 3 * * *',
  weekly: '0 4 * * 0',
  monthly: '0 5 1 * *',
  report: '0 8 * * 1',
};

/** The default schedules, each listing the tasks whose `defaultSchedule` names it. */
export function defaultCatalog(taskDefaults: Record<string, DefaultSchedule>): Record<DefaultSchedule, CatalogSchedule> {
  const catalog = {} as Record<DefaultSchedule, CatalogSchedule>;
  for (const id of Object.keys(DEFAULT_CRON) as DefaultSchedule[]) {
    catalog[id] = {
      cron: DEFAULT_CRON[id],
      tasks: Object.keys(taskDefaults).filter((t) => taskDefaults[t] === id),
      enabled: true,
    };
  }
  return catalog;
}
