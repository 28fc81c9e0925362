/**
 * Maintenance windows from the config: a cron for when each starts, a
 * duration, matchers, and the schedule's timezone rules (the window's own
 * `timezone`, else the config's). A window is open from a fire time for
 * its duration; the latest fire time is the one that ends last, so it is
 * the only one to look at.
 */
import { CronExpressionParser } from 'cron-parser';
import type { MaintenanceWindowConfig } from '../../config/alerting-schema';
import { durationText } from '../../util/duration';
import { problemMatches, type ProblemIdentity, type ProblemMatcher } from '../matchers';

export interface OpenWindow {
  /** `maintenance[0]`, or the window's name. */
  name: string;
  startedAt: Date;
  endsAt: Date;
  reason?: string;
  pauseChanges: boolean;
  matcher: ProblemMatcher;
}

function windowName(w: MaintenanceWindowConfig, index: number): string {
  return w.name ?? `maintenance[${index}] (${w.cron}, ${durationText(w.duration)})`;
}

/** The windows open at `now`. */
export function openWindows(windows: readonly MaintenanceWindowConfig[], defaultTimezone: string, now: Date): OpenWindow[] {
  const open: OpenWindow[] = [];
  windows.forEach((w, i) => {
    // The next second: a window whose start is exactly now is open now.
    const expr = CronExpressionParser.parse(w.cron, { currentDate: new Date(now.getTime() + 1000), tz: w.timezone ?? defaultTimezone, strict: false });
    const startedAt = expr.prev().toDate();
    const endsAt = new Date(startedAt.getTime() + w.duration * 1000);
    if (startedAt <= now && now < endsAt) {
      const matcher: ProblemMatcher = { task: w.task, target: w.target, code: w.code, subject: w.subject };
      open.push({ name: windowName(w, i), startedAt, endsAt, ...(w.reason ? { reason: w.reason } : {}), pauseChanges: w.pauseChanges, matcher });
    }
  });
  return open;
}

/** The open window that covers `p`, if any (the one that ends last). */
export function windowFor(open: readonly OpenWindow[], p: ProblemIdentity): OpenWindow | undefined {
  return open.filter((w) => problemMatches(w.matcher, p)).sort((a, b) => b.endsAt.getTime() - a.endsAt.getTime())[0];
}

/**
 * The open window with `pauseChanges` that covers this task on this
 * target (its code and subject matchers are ignored: a run has neither).
 */
export function pausingWindow(windows: readonly MaintenanceWindowConfig[], defaultTimezone: string, task: string, target: string, now: Date): OpenWindow | undefined {
  return openWindows(windows.filter((w) => w.pauseChanges), defaultTimezone, now).find((w) =>
    problemMatches({ task: w.matcher.task, target: w.matcher.target }, { task, target, code: '', subject: '', severity: 'info' }),
  );
}
