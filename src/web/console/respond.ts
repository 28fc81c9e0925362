/** How the console's routes answer: a page, or a short message page in its place. */
import type { Response } from 'express';
import { escapeHtml as e } from '../../reports/render-html';
import { CONSOLE_PATH } from '../paths';
import { pageHtml, type FrameContext } from './layout';

/** A short page for an answer that is not the page asked for (bad filter, no such run, forbidden). */
export function sendMessage(res: Response, ctx: FrameContext, status: number, title: string, message: string): void {
  const body = `<h1>${e(title)}</h1><p>${e(message)}</p><p><a href="${CONSOLE_PATH}">&larr; back to the console</a></p>`;
  res.status(status).set('Cache-Control', 'no-store').type('html').send(pageHtml(ctx, { title, body }));
}

/** A rendered page; never cached (it says what is true now). */
export function sendPage(res: Response, html: string, status = 200): void {
  res.status(status).set('Cache-Control', 'no-store').type('html').send(html);
}
