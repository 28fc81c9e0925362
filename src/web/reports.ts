/**
 * Behind the web role's login, under the console's header:
 * - `/reports` (the last complete week) and `/reports/2026-W48`: the weekly
 *   report, charts inline as PNG data URIs, the same HTML the email
 *   carries, with links to the week before and after. The current week is
 *   shown to date and says so; a week that has not started is a 404.
 * - `/reports/2026-11`: the monthly performance review (src/performance/),
 *   the same HTML its email carries, with the performance-review task's
 *   thresholds from the config.
 */
import { Router, type RequestHandler } from 'express';
import type { Pool } from 'pg';
import type { Config } from '../config/schema';
import { UsageError } from '../errors';
import type { ReportWeek } from '../reports/model';
import { buildWeeklyReport, expectedInWeek, reportSettingsOf } from '../reports/weekly-data';
import { lastCompleteWeek, reportWeek, weekContaining, weeksBefore } from '../reports/week';
import { renderCharts } from '../reports/charts';
import { dataUriSource, escapeHtml as e, renderHtml } from '../reports/render-html';
import { alertBannerHtml, assetTags, frameFor, headerHtml, type FrameContext, type NavItem } from './console/layout';
import { REPORTS_PATH } from './paths';
import { monthContaining, parseMonth } from '../reports/month';
import { buildMonthlyReview } from '../performance/review';
import { renderReviewHtml } from '../performance/render';
import { params as reviewParams } from '../jobs/performance-review';

const MONTH_ID = /^\d{4}-\d{2}$/;

/** The header and the previous / next week links above a report page. */
function pageChrome(ctx: FrameContext, week: ReportWeek): { head: string; header: string } {
  const current = weekContaining(ctx.now, week.timezone);
  const nav: NavItem | undefined = week.id === current.id ? 'this-week' : week.id === lastCompleteWeek(ctx.now, week.timezone).id ? 'last-week' : undefined;
  const previous = weeksBefore(week, 1);
  const next = weeksBefore(week, -1);
  const link = (w: ReportWeek, label: string) => `<a href="${REPORTS_PATH}/${e(w.id)}" rel="${label.startsWith('&larr;') ? 'prev' : 'next'}">${label}</a>`;
  const weekNav =
    `<nav class="weeks console" aria-label="weeks">${link(previous, `&larr; ${e(previous.id)}`)}` +
    (Date.parse(next.start) <= ctx.now.getTime() ? ` · ${link(next, `${e(next.id)} &rarr;`)}` : '') +
    `</nav>`;
  return { head: assetTags(), header: `${headerHtml(ctx, nav)}<div class="console">${alertBannerHtml(ctx.alertChannels)}${weekNav}</div>` };
}

export function reportsRouter(deps: { config: Config; state: Pool }): Router {
  const router = Router();
  const settings = reportSettingsOf(deps.config);
  const frame = frameFor(deps.config);

  const page: RequestHandler<{ week?: string }> = async (req, res) => {
    const now = new Date();
    let week: ReportWeek;
    try {
      week = reportWeek(req.params.week, settings.timezone, now);
    } catch (err) {
      // A malformed week, or one its year does not have: no such page.
      if (!(err instanceof UsageError)) throw err;
      res.status(404).json({ error: err.message });
      return;
    }
    if (Date.parse(week.start) > now.getTime()) {
      res.status(404).json({ error: `${week.id} has not started yet` });
      return;
    }
    const report = await buildWeeklyReport(deps.state, { week, title: settings.title, expected: expectedInWeek(settings.schedulers, week, now), suppress: settings, checklist: settings.checklist, now });
    const charts = await renderCharts(report.trends);
    const ctx = frame(res, now);
    res.set('Cache-Control', 'no-store').type('html').send(renderHtml(report, { imageSrc: dataUriSource(charts), page: pageChrome(ctx, week) }));
  };

  /** The month's review with the performance-review task's params from the config (its thresholds). */
  const review: RequestHandler<{ week: string }> = async (req, res) => {
    const now = new Date();
    let month;
    try {
      month = parseMonth(req.params.week, settings.timezone);
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      res.status(404).json({ error: err.message });
      return;
    }
    if (Date.parse(month.start) > now.getTime()) {
      res.status(404).json({ error: `${month.id} has not started yet` });
      return;
    }
    const p = reviewParams.parse(deps.config.tasks['performance-review'] ?? {});
    const data = await buildMonthlyReview(deps.state, { month, title: settings.title, regressionPercent: p.regressionPercent, minCalls: p.minCalls, top: p.top, now });
    const ctx = frame(res, now);
    const toDate = month.id === monthContaining(now, month.timezone).id ? ' (month to date)' : '';
    const header = `${headerHtml(ctx)}<div class="console">${alertBannerHtml(ctx.alertChannels)}<p class="muted">${e(`Performance review ${month.id}${toDate}`)}</p></div>`;
    res.set('Cache-Control', 'no-store').type('html').send(renderReviewHtml(data, { page: { head: assetTags(), header } }));
  };

  router.get('/', page);
  router.get('/:week', (req, res, next) => (MONTH_ID.test(req.params.week) ? review(req, res, next) : page(req, res, next)));
  return router;
}
