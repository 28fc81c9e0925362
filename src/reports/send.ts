/**
 * Sends the weekly report by email: HTML with the charts as inline PNG
 * attachments (referenced by `cid:`), a plain-text part saying the same,
 * to `notifications.email.to` through the configured SMTP server.
 */
import { createSmtpTransport, type EmailSettings } from '../clients/smtp';
import type { WeeklyReport } from './model';
import { renderCharts, type Chart } from './charts';
import { cidSource, renderHtml } from './render-html';
import { renderText } from './render-text';
import { weekNumber } from './week';
import { publicLink, REPORTS_PATH } from '../web/paths';

/** `[caretaker] AUDITRON week 48: 2 critical, 5 warnings`. */
export function reportSubject(report: Pick<WeeklyReport, 'title' | 'week' | 'headline'>): string {
  return `[caretaker] ${report.title} week ${weekNumber(report.week)}: ${report.headline.text}`;
}

/** `${publicUrl}/reports/2026-W48`, or undefined without a public URL. */
export function reportLink(publicUrl: string | undefined, report: Pick<WeeklyReport, 'week'>): string | undefined {
  return publicLink(publicUrl, `${REPORTS_PATH}/${encodeURIComponent(report.week.id)}`);
}

export interface SendOutcome {
  messageId: string;
  recipients: string[];
  charts: number;
}

/** Renders and sends the report; throws when the SMTP server refuses it. */
export async function sendWeeklyReport(
  report: WeeklyReport,
  opts: { email: EmailSettings; publicUrl?: string; charts?: Chart[] },
): Promise<SendOutcome> {
  const { email } = opts;
  const charts = opts.charts ?? (await renderCharts(report.trends));
  const link = reportLink(opts.publicUrl, report);
  const transport = createSmtpTransport(email.smtp, { connectMs: 15_000, socketMs: 60_000 });
  try {
    const info = await transport.sendMail({
      from: email.from,
      to: email.to,
      subject: reportSubject(report),
      text: renderText(report, { link }),
      html: renderHtml(report, { imageSrc: cidSource(charts), link }),
      attachments: charts.map((c) => ({ filename: c.filename, content: c.png, contentType: 'image/png', cid: c.cid, contentDisposition: 'inline' as const })),
    });
    return { messageId: info.messageId, recipients: email.to, charts: charts.length };
  } finally {
    transport.close();
  }
}
