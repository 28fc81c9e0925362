/**
 * `caretaker report weekly [--week 2026-W48] [--out FILE] [--send]`: builds
 * the weekly report from the results store. `--out` writes the HTML with the
 * charts inlined as data: URIs (a file that opens anywhere); without it the
 * text part goes to stdout. `--send` emails it as the scheduled task does.
 */
import { writeFile } from 'node:fs/promises';
import { createPool } from '../clients/postgres';
import { migrate } from '../results/migrate';
import { UsageError } from '../errors';
import { buildWeeklyReport, expectedInWeek, reportSettingsOf } from '../reports/weekly-data';
import { reportWeek } from '../reports/week';
import { renderCharts } from '../reports/charts';
import { dataUriSource, renderHtml } from '../reports/render-html';
import { renderText } from '../reports/render-text';
import { reportLink, sendWeeklyReport } from '../reports/send';
import { configFor, loggerFor } from './common';
import { println, type CliIO } from './io';

export interface ReportOptions {
  config?: string;
  /** "2026-W48"; default the last complete week. */
  week?: string;
  /** Write the HTML (charts as data: URIs) here instead of printing the text. */
  out?: string;
  send?: boolean;
}

export async function reportCommand(io: CliIO, opts: ReportOptions): Promise<number> {
  const config = configFor(io, opts.config);
  const settings = reportSettingsOf(config);
  if (opts.send && !settings.email) throw new UsageError('--send needs notifications.email in the config');
  const now = new Date();
  const week = reportWeek(opts.week, settings.timezone, now);
  const log = loggerFor(io, config).child({ command: 'report', week: week.id });
  const state = createPool(config.state.url, { statementTimeoutMs: 60_000, lockTimeoutMs: 5_000 }, log, 4);
  try {
    await migrate(state);
    const report = await buildWeeklyReport(state, { week, title: settings.title, expected: expectedInWeek(settings.schedulers, week, now), now, suppress: settings, checklist: settings.checklist });
    const link = reportLink(settings.publicUrl, report);
    const charts = opts.out || opts.send ? await renderCharts(report.trends) : [];
    if (opts.out) {
      await writeFile(opts.out, renderHtml(report, { imageSrc: dataUriSource(charts), ...(link ? { link } : {}) }));
      log.info({ out: opts.out, charts: charts.length }, 'report written');
    } else {
      io.stdout.write(renderText(report, link ? { link } : {}));
    }
    if (opts.send) {
      const sent = await sendWeeklyReport(report, { email: settings.email!, charts, ...(settings.publicUrl ? { publicUrl: settings.publicUrl } : {}) });
      println(io.stderr, `sent ${week.id} to ${sent.recipients.join(', ')}`);
    }
    return 0;
  } finally {
    await state.end().catch(() => undefined);
  }
}
