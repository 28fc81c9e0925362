/**
 * Cron expressions as BullMQ reads them. BullMQ computes fire times with
 * cron-parser (its own pinned copy), so we validate and preview with the
 * same function it calls, `getNextMillis`: what `caretaker schedules` prints
 * is what the job scheduler will do, DST included.
 */
import { getNextMillis } from 'bullmq';

export { cronProblem, isValidTimezone } from '../config/cron-syntax';

/** The next `count` fire times after `from`, exactly as BullMQ will schedule them. */
export function nextFireTimes(cron: string, timezone: string, count: number, from: Date = new Date()): Date[] {
  const times: Date[] = [];
  let millis = from.getTime();
  for (let i = 0; i < count; i++) {
    const next = getNextMillis(millis, { pattern: cron, tz: timezone });
    if (next === undefined) break;
    times.push(new Date(next));
    millis = next;
  }
  return times;
}

/** `2026-11-29 03:00 CET` style: the wall-clock time an operator reads in that zone. */
export function formatInZone(date: Date, timezone: string): string {
  const parts = zoneFormatter(timezone).formatToParts(date);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  return `${get('year')}-${get('month')}-${get('day')} ${get('hour')}:${get('minute')}:${get('second')} ${get('timeZoneName')}`;
}

/** One formatter per zone: building an Intl.DateTimeFormat costs far more than using one, and a page formats thousands of dates. */
const ZONE_FORMATTERS = new Map<string, Intl.DateTimeFormat>();

function zoneFormatter(timezone: string): Intl.DateTimeFormat {
  let f = ZONE_FORMATTERS.get(timezone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-CA', {
      timeZone: timezone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      hourCycle: 'h23',
      timeZoneName: 'short',
    });
    ZONE_FORMATTERS.set(timezone, f);
  }
  return f;
}
