/**
 * `GET /api/runs`: the stored history as JSON, newest first, for scripts
 * and dashboards. Filters are checked before any query runs.
 */
import { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import { formatIssues } from '../config/format-issues';
import { MAX_PAGE, type ResultStore } from '../results/store';

/*
 * Strict: a misspelt filter (`?state=error`) must fail, not silently return
 * everything. `since` is an ISO 8601 date or date-time with a zone. A limit
 * above the store's page is a 400, not a shorter answer than asked.
 */
export const runsQuerySchema = z.strictObject({
  task: z.string().min(1).optional(),
  target: z.string().min(1).optional(),
  status: z.enum(['ok', 'warning', 'critical', 'error']).optional(),
  since: z
    .union([z.iso.datetime({ offset: true }), z.iso.date()], {
      error: 'must be an ISO 8601 date (2026-01-31) or date-time with a zone (2026-01-31T08:00:00Z)',
    })
    .transform((s) => new Date(s))
    .optional(),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE).optional(),
});

export type RunsQuery = z.output<typeof runsQuerySchema>;

function listRuns(store: ResultStore): RequestHandler {
  return async (req, res) => {
    const parsed = runsQuerySchema.safeParse(req.query);
    if (!parsed.success) {
      res.status(400).json({ error: formatIssues(parsed.error).join('; ') });
      return;
    }
    const runs = await store.list(parsed.data);
    res.set('Cache-Control', 'no-store').json({ runs });
  };
}

/** The `/api` routes; mount after `authenticate` (viewer or admin). */
export function apiRouter(store: ResultStore): Router {
  const router = Router();
  router.get('/runs', listRuns(store));
  return router;
}
