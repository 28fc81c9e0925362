/**
 * Whether a config's cron expressions and timezones are usable, checked at
 * load. cron-parser is the parser BullMQ itself schedules with
 * (src/schedules/cron.ts computes the fire times).
 */
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
