/**
 * ISO 8601 weeks ("2026-W48") and their bounds in a timezone: a week runs
 * from Monday 00:00 local time to the next Monday 00:00, so in a zone with
 * DST one week of the year is 167 h and one 169 h long.
 *
 * ISO rules: week 1 is the week holding the year's first Thursday (the week
 * of 4 January); a year has 53 weeks when it starts on a Thursday, or on a
 * Wednesday in a leap year (2020, 2026 and 2032 do; 2025 does not).
 */
import type { ReportWeek } from './model';
import { UsageError } from '../errors';

const DAY_MS = 86_400_000;
const WEEK_ID = /^(\d{4})-W(\d{2})$/;

/** A calendar date without a zone, as a UTC midnight timestamp (ms). */
type CalendarDay = number;

function isoWeekOfDay(day: CalendarDay): { year: number; week: number } {
  const dow = (new Date(day).getUTCDay() + 6) % 7; // Monday 0 .. Sunday 6
  const thursday = day + (3 - dow) * DAY_MS;
  const year = new Date(thursday).getUTCFullYear();
  const week = 1 + Math.floor((thursday - Date.UTC(year, 0, 1)) / (7 * DAY_MS));
  return { year, week };
}

/** Monday of week 1 of an ISO year. */
function week1Monday(year: number): CalendarDay {
  const jan4 = Date.UTC(year, 0, 4);
  return jan4 - ((new Date(jan4).getUTCDay() + 6) % 7) * DAY_MS;
}

/** 52 or 53. */
export function isoWeeksInYear(year: number): number {
  return isoWeekOfDay(Date.UTC(year, 11, 28)).week;
}

function formatId(year: number, week: number): string {
  return `${year}-W${String(week).padStart(2, '0')}`;
}

/** The zone's offset from UTC at an instant, in ms (local = utc + offset). */
function offsetAt(instant: number, timezone: string): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: timezone,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric',
  }).formatToParts(new Date(instant));
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value);
  const local = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'));
  return local - Math.floor(instant / 1000) * 1000;
}

/** The instant of local midnight of a calendar day in a zone (the first instant of that day). */
export function localMidnight(day: CalendarDay, timezone: string): number {
  let instant = day - offsetAt(day, timezone);
  instant = day - offsetAt(instant, timezone);
  return instant;
}

/** The calendar day an instant falls on in a zone. */
export function localDay(instant: number, timezone: string): CalendarDay {
  const local = instant + offsetAt(instant, timezone);
  return Math.floor(local / DAY_MS) * DAY_MS;
}

function weekFromMonday(monday: CalendarDay, timezone: string): ReportWeek {
  const { year, week } = isoWeekOfDay(monday);
  return {
    id: formatId(year, week),
    start: new Date(localMidnight(monday, timezone)).toISOString(),
    end: new Date(localMidnight(monday + 7 * DAY_MS, timezone)).toISOString(),
    timezone,
  };
}

/** "2026-W48" → its bounds in `timezone`; a UsageError for a malformed id or a week the year does not have. */
export function parseWeek(id: string, timezone: string): ReportWeek {
  const m = WEEK_ID.exec(id.trim());
  if (!m) throw new UsageError(`${JSON.stringify(id)} is not an ISO week (expected YYYY-Www, e.g. 2026-W48)`);
  const year = Number(m[1]);
  const week = Number(m[2]);
  const weeks = isoWeeksInYear(year);
  if (week < 1 || week > weeks) throw new UsageError(`${id}: ${year} has weeks 01 to ${weeks}`);
  return weekFromMonday(week1Monday(year) + (week - 1) * 7 * DAY_MS, timezone);
}

/** The ISO week an instant falls in, in `timezone`. */
export function weekContaining(instant: Date, timezone: string): ReportWeek {
  const day = localDay(instant.getTime(), timezone);
  const dow = (new Date(day).getUTCDay() + 6) % 7;
  return weekFromMonday(day - dow * DAY_MS, timezone);
}

/** The week `n` weeks before `week` (n = 1: the previous week). */
export function weeksBefore(week: ReportWeek, n = 1): ReportWeek {
  const monday = localDay(new Date(week.start).getTime(), week.timezone);
  return weekFromMonday(monday - n * 7 * DAY_MS, week.timezone);
}

/** The last complete week at `now`: what the Monday-morning report covers. */
export function lastCompleteWeek(now: Date, timezone: string): ReportWeek {
  return weeksBefore(weekContaining(now, timezone), 1);
}

/** The week a report covers: the one `id` names ("2026-W48"), else the last complete week at `now`. */
export function reportWeek(id: string | undefined, timezone: string, now: Date): ReportWeek {
  return id ? parseWeek(id, timezone) : lastCompleteWeek(now, timezone);
}

/** "2026-W48" → 48, for the subject line. */
export function weekNumber(week: Pick<ReportWeek, 'id'>): number {
  return Number(week.id.slice(6));
}
