/**
 * `/reports` (the last complete week) and `/reports/2026-W48`: the weekly
 * report as a web page, behind the web role's login, charts inline as PNG
 * data URIs, the same HTML the email carries.
 */
import { Router, type RequestHandler } from 'express';
import type { Pool } from 'pg';
import type { Config } from '../config/schema';
import { UsageError } from '../errors';
import type { ReportWeek } from '../reports/model';
import { buildWeeklyReport, expectedInWeek, reportSettingsOf } from '../reports/weekly-data';
import { reportWeek } from '../reports/week';
import { renderCharts } from '../reports/charts';
import { dataUriSource, renderHtml } from '../reports/render-html';

export function reportsRouter(deps: { config: Config; state: Pool }): Router {
  const router = Router();
  const settings = reportSettingsOf(deps.config);

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
    const report = await buildWeeklyReport(deps.state, { week, title: settings.title, expected: expectedInWeek(settings.schedulers, week, now), now });
    const charts = await renderCharts(report.trends);
    res.set('Cache-Control', 'no-store').type('html').send(renderHtml(report, { imageSrc: dataUriSource(charts) }));
  };

  router.get('/', page);
  router.get('/:week', page);
  return router;
}
