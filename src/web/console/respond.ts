/** How the console's routes answer: a page, or a short message page in its place. */
import type { RequestHandler, Response } from 'express';
import type { Pool } from 'pg';
import type { Config } from '../../config/schema';
import { escapeHtml as e } from '../../reports/render-html';
import { CONSOLE_PATH } from '../paths';
import { pageHtml, type FrameContext } from './layout';

/** What a console page router mounted by router.ts gets: the config, the state pool, the login, the page frame, and errors as a page may show them. */
export interface PageRouteDeps {
  config: Config;
  state: Pool;
  login: RequestHandler;
  frame: (res: Response, now?: Date) => FrameContext;
  /** An error as the page may show it (scrubbed of secrets). */
  why: (err: unknown) => string;
}

/** A short page for an answer that is not the page asked for (bad filter, no such run, forbidden). */
export function sendMessage(res: Response, ctx: FrameContext, status: number, title: string, message: string): void {
  const body = `<h1>${e(title)}</h1><p>${e(message)}</p><p><a href="${CONSOLE_PATH}">&larr; back to the console</a></p>`;
  res.status(status).set('Cache-Control', 'no-store').type('html').send(pageHtml(ctx, { title, body }));
}

/** A rendered page; never cached (it says what is true now). */
export function sendPage(res: Response, html: string, status = 200): void {
  res.status(status).set('Cache-Control', 'no-store').type('html').send(html);
}
