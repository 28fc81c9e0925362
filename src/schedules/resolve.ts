/**
 * From the catalog and the config's overrides to the concrete list of job
 * schedulers: one per (schedule, task, target), each with a stable id, so
 * every replica upserting the same config converges on the same set.
 */
import type { Config, SchedulerEntry } from '../config/schema';
import type { TaskRegistry } from '../jobs';
import { RUNBOOK_TASKS, defaultCatalog } from './catalog';
import { cronProblem, isValidTimezone } from './cron';
import { targetsOf } from '../config/targets';

export type { SchedulerEntry };

export interface ResolvedSchedule {
  id: string;
  cron: string;
  timezone: string;
  enabled: boolean;
  /** Tasks that will run (registered in this version). */
  tasks: string[];
  /** Runbook tasks named here that this version does not implement yet. */
  unavailable: string[];
  /** Enqueue a missed run at once (src/schedules/missed-runs.ts). */
  catchUp: boolean;
  /** How late a run may be before it counts as missed; undefined: the default grace. */
  graceSeconds?: number;
}

export function schedulerId(schedule: string, task: string, target: string): string {
  return `${schedule}:${task}:${target}`;
}

/**
 * Merges the catalog with `config.schedules`; returns the schedules and the
 * problems found (bad cron, unknown task...), each naming its config path.
 */
export function resolveSchedules(
  config: Pick<Config, 'schedules' | 'timezone'>,
  registry: TaskRegistry,
): { schedules: ResolvedSchedule[]; problems: string[] } {
  const defaults: Record<string, string> = { ...RUNBOOK_TASKS };
  for (const task of registry.values()) defaults[task.name] = task.defaultSchedule;
  const catalog: Record<string, { cron: string; timezone?: string; tasks: string[]; enabled: boolean }> = defaultCatalog(
    defaults as typeof RUNBOOK_TASKS,
  );

  const problems: string[] = [];
  const schedules: ResolvedSchedule[] = [];
  const ids = new Set([...Object.keys(catalog), ...Object.keys(config.schedules)]);
  for (const id of ids) {
    const override = config.schedules[id] ?? {};
    const base = catalog[id];
    const path = `schedules.${id}`;
    if (!base && (override.cron === undefined || override.tasks === undefined)) {
      problems.push(`${path}: a new schedule needs both "cron" and "tasks"`);
      continue;
    }
    const cron = override.cron ?? base!.cron;
    const timezone = override.timezone ?? base?.timezone ?? config.timezone;
    const named = override.tasks ?? base!.tasks;
    const cronError = cronProblem(cron);
    if (cronError) problems.push(`${path}.cron: ${cronError}`);
    if (!isValidTimezone(timezone)) problems.push(`${path}.timezone: ${JSON.stringify(timezone)} is not a known IANA timezone`);

    const tasks: string[] = [];
    const unavailable: string[] = [];
    named.forEach((name, i) => {
      if (registry.has(name)) tasks.push(name);
      else if (Object.hasOwn(RUNBOOK_TASKS, name)) unavailable.push(name);
      else problems.push(`${path}.tasks[${i}]: unknown task ${JSON.stringify(name)} (known: ${[...registry.keys()].join(', ')})`);
    });
    const dup = named.find((name, i) => named.indexOf(name) !== i);
    if (dup) problems.push(`${path}.tasks: ${JSON.stringify(dup)} is listed twice`);
    schedules.push({ id, cron, timezone, enabled: override.enabled ?? base?.enabled ?? true, tasks, unavailable, catchUp: override.catchUp ?? false, graceSeconds: override.graceSeconds });
  }
  return { schedules, problems };
}

/** One scheduler per enabled (schedule, task, target); tasks without targets get none. */
export function expandSchedulers(schedules: ResolvedSchedule[], config: Config, registry: TaskRegistry): SchedulerEntry[] {
  const entries: SchedulerEntry[] = [];
  for (const schedule of schedules) {
    if (!schedule.enabled) continue;
    for (const taskName of schedule.tasks) {
      const task = registry.get(taskName)!;
      for (const target of targetsOf(config, task.target)) {
        if (task.scheduledOn && !task.scheduledOn(target)) continue;
        entries.push({
          id: schedulerId(schedule.id, taskName, target.name),
          schedule: schedule.id,
          task: taskName,
          target: target.name,
          targetKind: task.target,
          cron: schedule.cron,
          timezone: schedule.timezone,
          catchUp: schedule.catchUp,
          graceSeconds: schedule.graceSeconds,
        });
      }
    }
  }
  return entries;
}
