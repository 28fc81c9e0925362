/** Sends the monthly performance review by email: HTML and plain text, to `notifications.email.to`. */
import { createSmtpTransport, type EmailSettings } from '../clients/smtp';
import { publicLink, REPORTS_PATH } from '../web/paths';
import type { MonthlyReview } from './review';
import { renderReviewHtml, renderReviewText, reviewSubject } from './render';

/** `${publicUrl}/reports/2026-11`, or undefined without a public URL. */
export function reviewLink(publicUrl: string | undefined, review: Pick<MonthlyReview, 'month'>): string | undefined {
  return publicLink(publicUrl, `${REPORTS_PATH}/${encodeURIComponent(review.month.id)}`);
}

/** Renders and sends the review; throws when the SMTP server refuses it. */
export async function sendMonthlyReview(review: MonthlyReview, opts: { email: EmailSettings; publicUrl?: string }): Promise<{ messageId: string; recipients: string[] }> {
  const link = reviewLink(opts.publicUrl, review);
  const transport = createSmtpTransport(opts.email.smtp, { connectMs: 15_000, socketMs: 60_000 });
  try {
    const info = await transport.sendMail({
      from: opts.email.from,
      to: opts.email.to,
      subject: reviewSubject(review),
      text: renderReviewText(review, { link }),
      html: renderReviewHtml(review, { link }),
    });
    return { messageId: info.messageId, recipients: opts.email.to };
  } finally {
    transport.close();
  }
}
