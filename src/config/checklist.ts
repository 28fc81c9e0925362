/**
 * The checklist's items as the loader resolves them: an item names its own
 * cron or a schedule's id (whose cron and timezone it then follows), never
 * both; its cron and timezone are checked here so a mistake is a config
 * error naming the item, not a task that fails every hour.
 */
import { cronProblem, isValidTimezone } from './cron-syntax';
import type { ChecklistItem, ParsedConfig } from './schema';

/** What the loader knows of a schedule: its resolved cron and timezone. */
export interface ScheduleTimes {
  id: string;
  cron: string;
  timezone: string;
}

export function resolveChecklist(
  config: Pick<ParsedConfig, 'checklist' | 'timezone'>,
  schedules: readonly ScheduleTimes[],
): { items: ChecklistItem[]; problems: string[] } {
  const items: ChecklistItem[] = [];
  const problems: string[] = [];
  const seen = new Set<string>();
  config.checklist.forEach((item, i) => {
    const path = `checklist[${i}]`;
    if (seen.has(item.id)) problems.push(`${path}.id: duplicate checklist item ${JSON.stringify(item.id)}`);
    seen.add(item.id);
    if ((item.cron === undefined) === (item.schedule === undefined)) {
      problems.push(`${path}: give either "cron" or "schedule" (a schedule's id), not ${item.cron === undefined ? 'neither' : 'both'}`);
      return;
    }
    const schedule = item.schedule === undefined ? undefined : schedules.find((s) => s.id === item.schedule);
    if (item.schedule !== undefined && !schedule) {
      problems.push(`${path}.schedule: unknown schedule ${JSON.stringify(item.schedule)} (known: ${schedules.map((s) => s.id).join(', ')})`);
      return;
    }
    const cron = item.cron ?? schedule!.cron;
    const timezone = item.timezone ?? schedule?.timezone ?? config.timezone;
    const cronError = item.cron === undefined ? undefined : cronProblem(item.cron);
    if (cronError) problems.push(`${path}.cron: ${cronError}`);
    if (!isValidTimezone(timezone)) problems.push(`${path}.timezone: ${JSON.stringify(timezone)} is not a known IANA timezone`);
    items.push({ id: item.id, title: item.title, cron, timezone, graceHours: item.graceHours, enabled: item.enabled, ...(item.link ? { link: item.link } : {}) });
  });
  return { items, problems };
}
