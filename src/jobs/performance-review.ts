/**
 * performance-review (monthly): the runbook's "Performance review". On the
 * 1st it compares the month that just ended with the one before, from
 * caretaker's own history (src/performance/review.ts): statements whose
 * mean time rose by more than `regressionPercent` (pg_stat_statements
 * snapshots that slow-queries stored), the top statements by total time,
 * and the peaks and medians of api-health's p95, error-log lines, queue
 * backlogs, connections and metrics-review's breaches. It emails the
 * review when notifications.email is configured (its own subject), and the
 * console serves it at `/reports/2026-11`. Read-only.
 */
import { z } from 'zod';
import { defineTask, type FindingCodes } from '../contract/task';
import type { Finding } from '../contract/result';
import { reportMonth } from '../reports/month';
import { buildMonthlyReview } from '../performance/review';
import { regressionText } from '../performance/render';
import { sendMonthlyReview } from '../performance/send';

const codes = {
  performance_regression: "a statement's mean time rose by more than `regressionPercent` month over month",
  performance_summary: "the month's review in one line: regressions, statements compared, series that moved",
} as const satisfies FindingCodes;
type Code = keyof typeof codes;

export const params = z.strictObject({
  /** Review a given month ("2026-11"); default: the last complete month. */
  month: z.string().regex(/^\d{4}-\d{2}$/, 'must be a month, e.g. 2026-11').optional(),
  /** A statement whose mean rose by more than this (%) is a regression. */
  regressionPercent: z.number().positive().max(100_000).default(50),
  /** Statements called fewer times this month are not judged. */
  minCalls: z.number().int().min(1).default(100),
  /** Top statements by total time listed per database. */
  top: z.number().int().min(1).max(100).default(10),
});

export const performanceReview = defineTask({
  name: 'performance-review',
  description: 'Compares the month that ended with the one before: statement regressions (pg_stat_statements), top statements, p95, errors, queue and connection peaks; emails it',
  target: 'caretaker',
  defaultSchedule: 'monthly',
  timeoutMs: 5 * 60_000,
  changesTarget: false,
  params,
  codes,
  async run(ctx, p) {
    const t = ctx.target;
    const now = new Date();
    const month = reportMonth(p.month, t.timezone, now);
    const review = await buildMonthlyReview(ctx.clients.state, { month, title: t.report.title, regressionPercent: p.regressionPercent, minCalls: p.minCalls, top: p.top, now });

    const findings: Finding<Code>[] = review.regressions.map((r) => ({
      severity: 'warning',
      code: 'performance_regression',
      subject: `${r.target} queryid ${r.queryid}`,
      message: `${month.id}: ${regressionText(r)}`,
      suggestion: 'EXPLAIN (ANALYZE, BUFFERS) the statement; look for a plan change, a missing index (index-audit) or grown tables (disk-check)',
      details: { month: month.id, ...r },
    }));
    const moved = review.series.filter((s) => s.trend === 'up');
    const summary = `performance ${month.id} against ${review.previous.id}: ${review.regressions.length} of ${review.compared} statements slower by more than ${p.regressionPercent} %${moved.length ? `; up: ${moved.map((s) => `${s.title} (${s.target})`).join(', ')}` : ''}${review.notCompared.length ? `; ${review.notCompared.length} database${review.notCompared.length === 1 ? '' : 's'} not compared` : ''}`;
    findings.push({
      severity: 'info',
      code: 'performance_summary',
      subject: month.id,
      message: summary,
      suggestion: `Read the whole review at /reports/${month.id}`,
      details: { month: month.id, regressions: review.regressions.length, compared: review.compared, notCompared: review.notCompared, series: review.series },
    });
    const metrics: Record<string, number> = { performance_regressions: review.regressions.length, statements_compared: review.compared, review_sent: 0 };

    if (!t.notifications.email || ctx.dryRun) {
      return { summary: `${summary}; ${ctx.dryRun ? 'dry run: not sent' : 'not sent (no email configured)'}`, findings, metrics };
    }
    const sent = await sendMonthlyReview(review, { email: t.notifications.email, ...(t.publicUrl ? { publicUrl: t.publicUrl } : {}) });
    metrics.review_sent = 1;
    ctx.log.info({ month: month.id, recipients: sent.recipients.length, messageId: sent.messageId }, 'performance review sent');
    return { summary: `${summary}; sent to ${sent.recipients.length} recipient(s)`, findings, metrics };
  },
});
