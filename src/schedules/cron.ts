/**
 * Cron expressions as BullMQ reads them. BullMQ computes fire times with
 * cron-parser (its own pinned copy), so we validate and preview with the
 * same function it calls, `getNextMillis`: what `caretaker schedules` prints
 * is what the job scheduler will do, DST included.
 */
import { getNextMillis } from 'bullmq';
import { CronExpressionParser } from 'cron-parser';

/** True for a zone Intl knows ("UTC", "Europe/Berlin"); false for "Mars/Base". */
export function isValidTimezone(tz: string): boolean {
  if (typeof tz !== 'string' || tz.length === 0 || tz.length > 64) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/**
 * Why `expr` is not a usable cron expression, or undefined when it is.
 * We accept 5 fields, or 6 with seconds first; cron-parser would also take
 * a 7th (year) field and macros, which BullMQ's docs do not promise.
 */
export function cronProblem(expr: string): string | undefined {
  const fields = expr.trim().split(/\s+/);
  if (expr.trim() === '' || fields.length < 5 || fields.length > 6) {
    return `${JSON.stringify(expr)} is not a valid cron expression (5 fields, or 6 with seconds)`;
  }
  try {
    CronExpressionParser.parse(expr, { strict: false });
  } catch (err) {
    return `${JSON.stringify(expr)} is not a valid cron expression (${(err as Error).message})`;
  }
  return undefined;
}

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
