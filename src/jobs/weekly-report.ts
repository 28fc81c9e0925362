/**
 * The Monday-morning email: builds the report of the ISO week that just
 * ended (the schedule fires Monday 08:00 in the configured timezone) from
 * the results store, and sends it when notifications.email is configured.
 *
 * Its settings come from the caretaker self-target (report.title, timezone,
 * notifications.email, publicUrl, `schedulers`: which runs were due, and
 * the config's waivers and maintenance windows).
 * Without notifications.email the report is still built, and an info
 * finding says it was not sent.
 */
import { z } from 'zod';
import { defineTask, type FindingCodes } from '../contract/task';
import type { CaretakerTarget } from '../config/schema';
import type { Finding } from '../contract/result';
import { buildWeeklyReport, expectedInWeek, type ReportSettings } from '../reports/weekly-data';
import { reportWeek } from '../reports/week';
import { sendWeeklyReport } from '../reports/send';

const codes = {
  report_not_sent: 'the weekly report was built but not emailed: notifications.email is not configured',
} satisfies FindingCodes;
type Code = keyof typeof codes;

const params = z.strictObject({
  /** Re-send a given week ("2026-W48"); default: the last complete week. */
  week: z.string().regex(/^\d{4}-W\d{2}$/, 'must be an ISO week, e.g. 2026-W48').optional(),
});

/**
 * The self-target as the report reads it. `schedulers` (every enabled
 * scheduler's task, target, cron and zone) tells which runs were due in the
 * week; without it a task that never ran cannot be told from one not scheduled.
 */
type ReportTarget = CaretakerTarget & { schedulers?: ReportSettings['schedulers'] };

/** The report's settings from the self-target. */
export function settingsFromTarget(t: ReportTarget): ReportSettings {
  return {
    title: t.report.title,
    timezone: t.timezone,
    ...(t.publicUrl ? { publicUrl: t.publicUrl } : {}),
    ...(t.notifications.email ? { email: t.notifications.email } : {}),
    schedulers: t.schedulers ?? [],
    waivers: t.waivers,
    maintenance: t.maintenance,
    checklist: t.checklist,
  };
}

export const weeklyReport = defineTask({
  name: 'weekly-report',
  description: 'Builds the weekly report of the week that just ended and emails it',
  target: 'caretaker',
  defaultSchedule: 'report',
  timeoutMs: 5 * 60_000,
  changesTarget: false,
  params,
  codes,
  async run(ctx, p) {
    const settings = settingsFromTarget(ctx.target as ReportTarget);
    const now = new Date();
    const week = reportWeek(p.week, settings.timezone, now);
    const started = Date.now();
    const report = await buildWeeklyReport(ctx.clients.state, {
      week,
      title: settings.title,
      expected: expectedInWeek(settings.schedulers, week, now),
      suppress: settings,
      checklist: settings.checklist,
      now,
    });
    const buildMs = Date.now() - started;
    const metrics: Record<string, number> = {
      report_open_critical: report.headline.critical,
      report_open_warning: report.headline.warning,
      report_waived: report.waived.length,
      report_build_ms: buildMs,
      report_sent: 0,
    };
    const findings: Finding<Code>[] = [];
    const headline = `weekly report ${week.id}: ${report.headline.text}`;

    if (!settings.email) {
      findings.push({
        severity: 'info',
        code: 'report_not_sent',
        subject: week.id,
        message: `the weekly report of ${week.id} was built but not sent: notifications.email is not configured`,
        suggestion: 'set notifications.email (smtp, from, to) in the config, or read the report at /reports',
        details: { week: week.id, critical: report.headline.critical, warning: report.headline.warning },
      });
      return { summary: `${headline}; not sent (no email configured)`, findings, metrics };
    }
    if (ctx.dryRun) {
      return { summary: `dry run: ${headline}; would send to ${settings.email.to.length} recipient(s)`, findings, metrics };
    }
    await ctx.jobLog(`sending ${week.id} to ${settings.email.to.length} recipient(s)`);
    const sent = await sendWeeklyReport(report, { email: settings.email, ...(settings.publicUrl ? { publicUrl: settings.publicUrl } : {}) });
    metrics.report_sent = 1;
    metrics.report_charts = sent.charts;
    ctx.log.info({ week: week.id, recipients: sent.recipients.length, messageId: sent.messageId }, 'weekly report sent');
    return { summary: `${headline}; sent to ${sent.recipients.length} recipient(s)`, findings, metrics };
  },
});
