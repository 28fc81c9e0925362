/**
 * Where a checklist item stands at an instant. Its periods run from one
 * fire time of its cron to the next; a "done" at or after a period's start
 * covers that period. An item not done is due from the start of the first
 * period its last "done" does not cover (never done: the period in which
 * caretaker first saw the item), and overdue `graceHours` after that: a
 * daily item left for a week is overdue even when its grace is longer than
 * a day, and catching up once covers every period missed.
 */
import { lastFireAtOrBefore, nextFireTimes } from '../schedules/cron';
import type { ChecklistItem } from '../config/schema';

export type ChecklistState = 'done' | 'due' | 'overdue';

export interface ItemStanding {
  state: ChecklistState;
  /** The start of the period `at` falls in (undefined before the cron ever fired). */
  periodStart?: Date;
  /** When the next period starts. */
  nextPeriodAt?: Date;
  /** Not done: since when (the first period not covered). */
  dueSince?: Date;
  /** Not done: when it is (or becomes) overdue. */
  overdueAt?: Date;
}

export interface ItemHistory {
  /** The latest "done" recorded at or before `at`. */
  lastDone?: Date;
  /** When caretaker first saw the item in the config. */
  firstSeen: Date;
}

const HOUR_MS = 3_600_000;

export function itemStanding(item: Pick<ChecklistItem, 'cron' | 'timezone' | 'graceHours'>, history: ItemHistory, at: Date): ItemStanding {
  const periodStart = lastFireAtOrBefore(item.cron, item.timezone, at);
  const [nextPeriodAt] = nextFireTimes(item.cron, item.timezone, 1, at);
  const base = { ...(periodStart ? { periodStart } : {}), ...(nextPeriodAt ? { nextPeriodAt } : {}) };
  // No period has started yet (a cron whose first fire is ahead): nothing can be due.
  if (!periodStart) return { state: 'done', ...base };
  const dueSince = history.lastDone
    ? nextFireTimes(item.cron, item.timezone, 1, history.lastDone)[0]
    : (lastFireAtOrBefore(item.cron, item.timezone, history.firstSeen) ?? periodStart);
  if (!dueSince || dueSince.getTime() > at.getTime()) return { state: 'done', ...base };
  const overdueAt = new Date(dueSince.getTime() + item.graceHours * HOUR_MS);
  return { state: at.getTime() >= overdueAt.getTime() ? 'overdue' : 'due', ...base, dueSince, overdueAt };
}
