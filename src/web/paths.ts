/**
 * Where the web role serves the board and the reports, and the public
 * links to them. Free of express and Bull Board, so a worker that links an
 * alert to its job or the weekly email to its page does not load either.
 */

/** Bull Board; `/` redirects here. */
export const BOARD_PATH = '/admin/queues';

/** The weekly report's pages: `/reports` (the last complete week) and `/reports/2026-W48`. */
export const REPORTS_PATH = '/reports';

/** `path` under the web role's public URL (`web.publicUrl`), or undefined when none is configured. */
export function publicLink(publicUrl: string | undefined, path: string): string | undefined {
  return publicUrl ? `${publicUrl.replace(/\/+$/, '')}${path}` : undefined;
}
