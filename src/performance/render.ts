/**
 * The monthly performance review as plain text and as HTML (the email's
 * two parts; the HTML is also the `/reports/2026-11` page's body). Tables
 * only, inline styles, no script: it reads the same in a mail client.
 */
import { FONT, escapeHtml as e, table } from '../reports/render-html';
import { formatInZone } from '../schedules/cron';
import { oneLine } from '../util/format';
import type { MonthlyReview, SeriesFigures, SeriesTrend, StatementChange } from './review';


const ms = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(v < 10 ? 2 : 1)} ms`);
const pct = (v: number) => `${v >= 0 ? '+' : ''}${v.toFixed(0)} %`;
const num = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(1));
const figuresText = (f: SeriesFigures | undefined, unit: string) => (f ? `peak ${num(f.peak)} ${unit}, median ${num(f.median)} (${f.points} runs)` : 'no runs');
const TREND_WORD: Record<SeriesTrend['trend'], string> = { up: 'up', down: 'down', flat: 'flat', new: 'new this month', gone: 'no runs this month' };

/** `[caretaker] AUDITRON performance 2026-11: 2 regressions`. */
export function reviewSubject(review: Pick<MonthlyReview, 'title' | 'month' | 'regressions'>): string {
  const n = review.regressions.length;
  return `[caretaker] ${review.title} performance ${review.month.id}: ${n === 0 ? 'no regression' : `${n} regression${n === 1 ? '' : 's'}`}`;
}

/** One line per regressed statement: `main queryid 42: 12.0 ms → 31.5 ms (+163 %) over 5400 calls`. */
export function regressionText(r: StatementChange): string {
  return `${r.target} queryid ${r.queryid}: ${ms(r.before)} → ${ms(r.now)} (${pct(r.risePercent)}) over ${r.calls} calls${r.query ? `: ${oneLine(r.query, 120)}` : ''}`;
}

export function renderReviewText(review: MonthlyReview, opts: { link?: string } = {}): string {
  const out: string[] = [];
  const line = (s = '') => out.push(s);
  line(`${review.title}: performance review ${review.month.id} against ${review.previous.id}`);
  if (opts.link) line(`On the web: ${opts.link}`);
  line();
  line(`Statements slower by more than ${review.regressionPercent} % (${review.regressions.length} of ${review.compared} compared)`);
  if (review.regressions.length === 0) line('  none');
  for (const r of review.regressions) line(`  ${regressionText(r)}`);
  for (const n of review.notCompared) line(`  ${n.target}: not compared: ${n.reason}`);
  line();
  line('Top statements by total time');
  if (review.topStatements.length === 0) line('  no slow-queries run this month');
  for (const t of review.topStatements) {
    line(`  ${t.target} (as of ${formatInZone(new Date(t.at), review.month.timezone)})`);
    for (const s of t.statements) line(`    queryid ${s.queryid}: ${ms(s.totalMs)} in ${s.calls} calls, mean ${ms(s.meanMs)}${s.query ? `: ${oneLine(s.query, 100)}` : ''}`);
  }
  line();
  line(`This month against last month`);
  if (review.series.length === 0) line('  no api-health, error-logs, queue-health, connections or metrics-review runs');
  for (const s of review.series) line(`  ${s.title}, ${s.target}: ${figuresText(s.now, s.unit)}; last month ${figuresText(s.before, s.unit)}; ${TREND_WORD[s.trend]}`);
  return `${out.join('\n')}\n`;
}

const section = (title: string, body: string) => `<h2 style="${FONT}font-size:16px;margin:18px 0 6px 0;color:#222;">${e(title)}</h2>${body}`;

export function renderReviewHtml(review: MonthlyReview, opts: { link?: string; page?: { head: string; header: string } } = {}): string {
  const tz = review.month.timezone;
  const body =
    `<h1 style="${FONT}font-size:20px;margin:0;color:#222;">${e(review.title)}: performance ${e(review.month.id)}</h1>` +
    `<p style="${FONT}font-size:12px;color:#666;margin:2px 0 0 0;">against ${e(review.previous.id)}; generated ${e(formatInZone(new Date(review.generatedAt), tz))}${opts.link ? ` · <a href="${e(opts.link)}">on the web</a>` : ''}</p>` +
    section(
      `Statements slower by more than ${review.regressionPercent} % (${review.regressions.length} of ${review.compared} compared)`,
      table(
        ['target', 'queryid', 'last month', 'this month', 'rise', 'calls', 'statement'],
        review.regressions.map((r) => [e(r.target), e(r.queryid), e(ms(r.before)), e(ms(r.now)), e(pct(r.risePercent)), e(String(r.calls)), `<code>${e(oneLine(r.query ?? '', 200))}</code>`]),
      ) + review.notCompared.map((n) => `<p style="${FONT}font-size:13px;color:#777;margin:4px 0;">${e(n.target)}: not compared: ${e(n.reason)}</p>`).join(''),
    ) +
    section(
      'Top statements by total time',
      table(
        ['target', 'queryid', 'total', 'calls', 'mean', 'statement'],
        review.topStatements.flatMap((t) => t.statements.map((s) => [e(t.target), e(s.queryid), e(ms(s.totalMs)), e(String(s.calls)), e(ms(s.meanMs)), `<code>${e(oneLine(s.query ?? '', 200))}</code>`])),
      ),
    ) +
    section(
      'This month against last month',
      table(
        ['series', 'target', 'this month', 'last month', 'trend'],
        review.series.map((s) => [e(s.title), e(s.target), e(figuresText(s.now, s.unit)), e(figuresText(s.before, s.unit)), e(TREND_WORD[s.trend])]),
      ),
    );
  return (
    `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">` +
    `<title>${e(`${review.title} performance ${review.month.id}`)}</title>${opts.page?.head ?? ''}</head>` +
    `<body style="margin:0;background:#fafafa;">${opts.page?.header ?? ''}<div style="max-width:960px;margin:0 auto;padding:16px;background:#fff;">${body}</div></body></html>`
  );
}
