/**
 * Cron expressions as BullMQ reads them. BullMQ computes fire times with
 * cron-parser (its own pinned copy), so we validate and preview with the
 * same function it calls, `getNextMillis`: what `caretaker schedules` prints
 * is what the job scheduler will do, DST included.
 */
import { getNextMillis } from 'bullmq';
import { CronExpressionParser } from 'cron-parser';

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

/**
 * The last time at or before `at` that BullMQ fires `cron` in `timezone`;
 * undefined when the expression never fired. cron-parser's prev() finds the
 * neighbourhood; BullMQ's getNextMillis decides (prev() and next() disagree
 * on a DST gap's skipped hour).
 */
export function lastFireAtOrBefore(cron: string, timezone: string, at: Date): Date | undefined {
  let start: number;
  try {
    const it = CronExpressionParser.parse(cron, { currentDate: new Date(at.getTime() + 1), tz: timezone, strict: false });
    // Three steps back: far enough that a fire time prev() skipped is still ahead.
    it.prev();
    it.prev();
    start = it.prev().getTime() - 1;
  } catch {
    return undefined;
  }
  let last: number | undefined;
  let millis = start;
  for (let i = 0; i < 16; i++) {
    const next = getNextMillis(millis, { pattern: cron, tz: timezone });
    if (next === undefined || next > at.getTime()) break;
    last = next;
    millis = next;
  }
  return last === undefined ? undefined : new Date(last);
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
