/**
 * Calendar months ("2026-11") and their bounds in a timezone: from the 1st
 * at 00:00 local time to the next month's 1st, for the monthly
 * performance review.
 */
import { UsageError } from '../errors';
import { localDay, localMidnight } from './week';

const MONTH_ID = /^(\d{4})-(\d{2})$/;

export interface ReportMonth {
  /** `2026-11`. */
  id: string;
  /** The 1st, 00:00 local time (ISO 8601). */
  start: string;
  /** The next month's 1st (exclusive). */
  end: string;
  timezone: string;
}

function build(year: number, month: number, timezone: string): ReportMonth {
  const first = Date.UTC(year, month - 1, 1);
  const next = Date.UTC(year, month, 1);
  return {
    id: `${year}-${String(month).padStart(2, '0')}`,
    start: new Date(localMidnight(first, timezone)).toISOString(),
    end: new Date(localMidnight(next, timezone)).toISOString(),
    timezone,
  };
}

/** The month `id` (`2026-11`); a usage error naming it when it is not one. */
export function parseMonth(id: string, timezone: string): ReportMonth {
  const m = MONTH_ID.exec(id);
  const month = m ? Number(m[2]) : 0;
  if (!m || month < 1 || month > 12) throw new UsageError(`month must be YYYY-MM, e.g. 2026-11 (got ${JSON.stringify(id)})`);
  return build(Number(m[1]), month, timezone);
}

/** The month an instant falls in, in the zone. */
export function monthContaining(instant: Date, timezone: string): ReportMonth {
  const day = new Date(localDay(instant.getTime(), timezone));
  return build(day.getUTCFullYear(), day.getUTCMonth() + 1, timezone);
}

/** The month `n` months before `month` (negative: after). */
export function monthsBefore(month: ReportMonth, n: number): ReportMonth {
  const [year, m] = month.id.split('-').map(Number) as [number, number];
  const index = year * 12 + (m - 1) - n;
  return build(Math.floor(index / 12), (index % 12) + 1, month.timezone);
}

/** `id`, or the last month that has ended by `now`. */
export function reportMonth(id: string | undefined, timezone: string, now: Date): ReportMonth {
  return id ? parseMonth(id, timezone) : monthsBefore(monthContaining(now, timezone), 1);
}
