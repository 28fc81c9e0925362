/**
 * The console's routes, all behind the web role's login:
 * - `GET /`: the status grid and the open findings (`?severity=&task=&target=`);
 * - `GET /checks/:task/:target`: one check's schedules, findings and last runs (`?limit=`);
 * - `GET /runs/:id`: one run, whole; `GET /runs/job/:jobId`: the run of a board job;
 * - `POST /run-now` (admin): queues a run as `caretaker enqueue` does;
 * - `/silences` and `/waivers`, with their forms (suppress-routes.ts);
 * - `/checklist`, with its "Mark done" buttons (checklist-routes.ts).
 * The cross-site guard in front of the whole app refuses a form posted
 * from another site before it gets here.
 */
import express, { Router, type RequestHandler } from 'express';
import type { Queue } from 'bullmq';
import type { Pool } from 'pg';
import { z } from 'zod';
import type { Config } from '../../config/schema';
import { findTarget, targetsOf } from '../../config/targets';
import { formatIssues } from '../../config/format-issues';
import { TASKS, type TaskRegistry } from '../../jobs';
import { enqueueNow, type JobData } from '../../queue/queue';
import { escapeHtml as e } from '../../reports/render-html';
import { MAX_PAGE, type ResultStore } from '../../results/store';
import { buildStatus } from '../../status/status';
import { UsageError, coerceError } from '../../errors';
import { redactSecretsIn, scrubSecrets } from '../../logger';
import { configSecrets } from '../../config/secrets';
import { withTimeout } from '../../util/timeout';
import { roleOf } from '../auth';
import { CONSOLE_PATH, RUN_NOW_PATH, boardJobPath, checkPath, runPath } from '../paths';
import { frameFor, pageHtml } from './layout';
import { sendMessage, sendPage } from './respond';
import { suppressRoutes } from './suppress-routes';
import { checklistRoutes } from './checklist-routes';
import { renderStatusPage } from './status-page';
import { renderCheckPage, renderRunPage } from './run-pages';

export interface ConsoleDeps {
  config: Config;
  state: Pool;
  queue: Queue<JobData>;
  store: ResultStore;
  /** The tasks run now may queue; default: every task of this version. */
  registry?: TaskRegistry;
  /** The web role's login (sets the caller's role). */
  login: RequestHandler;
}

/** How long run now waits for Redis to take the job before saying it did not. */
const ENQUEUE_TIMEOUT_MS = 5_000;

/** How many runs a check's page lists unless `?limit=` says otherwise. */
const DEFAULT_RUNS = 50;

/** An empty choice ("all") is no filter. */
const optionalName = z
  .string()
  .max(200)
  .optional()
  .transform((v) => v || undefined);

/* Strict, as /api/runs: a misspelt filter must say so, not show everything. */
const statusQuery = z.strictObject({
  severity: z
    .enum(['critical', 'warning', ''])
    .optional()
    .transform((v) => v || undefined),
  task: optionalName,
  target: optionalName,
});

const checkQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(MAX_PAGE).optional(),
  enqueued: z.string().max(100).optional(),
});

const runNowBody = z.object({
  task: z.string().min(1).max(200),
  target: z.string().min(1).max(200),
  dryRun: z.literal('1').optional(),
});

export function consoleRouter(deps: ConsoleDeps): Router {
  const { config, state, queue, store, login } = deps;
  const registry = deps.registry ?? TASKS;
  const entries = config.schedulers;
  const choices = {
    tasks: [...new Set(entries.map((x) => x.task))].sort(),
    targets: [...new Set(entries.map((x) => x.target))].sort(),
  };
  const frame = frameFor(config);
  // A driver's error may quote what it was given: the page shows it scrubbed of every configured secret.
  const secrets = configSecrets(config);
  const why = (err: unknown) => scrubSecrets(redactSecretsIn(coerceError(err).message), secrets);

  const router = Router();

  router.get(CONSOLE_PATH, login, async (req, res) => {
    const ctx = frame(res);
    const parsed = statusQuery.safeParse(req.query);
    if (!parsed.success) return sendMessage(res, ctx, 400, 'Bad filter', formatIssues(parsed.error).join('; '));
    const filter = parsed.data;
    let report;
    try {
      report = await buildStatus({ state, queue, entries, filter, suppress: config, now: ctx.now });
    } catch (err) {
      // The history is away: say so on the page the on-call opened, not as a bare 500.
      return sendMessage(res, ctx, 503, 'History unavailable', `the state database did not answer: ${why(err)}`);
    }
    sendPage(res, renderStatusPage(report, ctx, { filter, choices }));
  });

  router.get('/checks/:task/:target', login, async (req, res) => {
    const ctx = frame(res);
    const { task: taskName, target } = req.params as { task: string; target: string };
    const task = registry.get(taskName);
    const parsed = checkQuery.safeParse(req.query);
    if (!parsed.success) return sendMessage(res, ctx, 400, 'Bad request', formatIssues(parsed.error).join('; '));
    if (!task) return sendMessage(res, ctx, 404, 'No such check', `unknown task ${JSON.stringify(taskName)}`);
    const [status, runs] = await Promise.all([
      buildStatus({ state, queue, entries, filter: { task: taskName, target }, alsoPairs: [{ task: taskName, target }], suppress: config, now: ctx.now }),
      store.list({ task: taskName, target, limit: parsed.data.limit ?? DEFAULT_RUNS }),
    ]);
    const configured = targetsOf(config, task.target).some((t) => t.name === target);
    if (!configured && runs.length === 0) return sendMessage(res, ctx, 404, 'No such check', `${task.name} has no ${task.target} target ${JSON.stringify(target)} and no stored run on it`);
    sendPage(res, renderCheckPage({ task, target, status, runs, enqueued: parsed.data.enqueued }, ctx));
  });

  router.get('/runs/job/:jobId', login, async (req, res) => {
    const jobId = String(req.params.jobId);
    const id = await store.runIdOfJob(jobId);
    if (id === undefined) {
      const ctx = frame(res);
      const body =
        `<h1>No stored run for job ${e(jobId)}</h1><p>It is still waiting or running, or it failed before a result was stored.</p>` +
        `<p><a href="${e(boardJobPath(jobId))}">The job in the board</a> · <a href="${CONSOLE_PATH}">the console</a></p>`;
      res.status(404).set('Cache-Control', 'no-store').type('html').send(pageHtml(ctx, { title: `job ${jobId}`, body }));
      return;
    }
    res.redirect(302, runPath(id));
  });

  router.get('/runs/:id', login, async (req, res) => {
    const ctx = frame(res);
    const raw = String(req.params.id);
    const id = /^\d{1,15}$/.test(raw) ? Number(raw) : undefined;
    const run = id !== undefined ? await store.get(id) : undefined;
    if (!run) return sendMessage(res, ctx, 404, 'No such run', `no stored run ${JSON.stringify(raw)} (runs older than state.retentionDays are pruned)`);
    sendPage(res, renderRunPage(run, ctx));
  });

  router.post(RUN_NOW_PATH, login, express.urlencoded({ extended: false, limit: '4kb' }), async (req, res) => {
    const ctx = frame(res);
    if (roleOf(res) !== 'admin') return sendMessage(res, ctx, 403, 'Forbidden', 'forbidden: the viewer is read-only; run now needs the admin login');
    const parsed = runNowBody.safeParse(req.body ?? {});
    if (!parsed.success) return sendMessage(res, ctx, 400, 'Bad request', formatIssues(parsed.error).join('; '));
    const task = registry.get(parsed.data.task);
    if (!task) return sendMessage(res, ctx, 400, 'Bad request', `unknown task ${JSON.stringify(parsed.data.task)}`);
    let target;
    try {
      target = findTarget(config, task.target, parsed.data.target);
    } catch (err) {
      if (err instanceof UsageError) return sendMessage(res, ctx, 400, 'Bad request', err.message);
      throw err;
    }
    let jobId: string;
    try {
      jobId = await withTimeout(enqueueNow(queue, config.worker, { task: task.name, target: target.name, dryRun: parsed.data.dryRun === '1' }), ENQUEUE_TIMEOUT_MS, 'queueing the run');
    } catch (err) {
      return sendMessage(res, ctx, 503, 'Not queued', `the run was not queued: Redis did not answer (${why(err)})`);
    }
    res.redirect(303, `${checkPath(task.name, target.name)}?enqueued=${encodeURIComponent(jobId)}`);
  });

  router.use(suppressRoutes({ config, state, login, frame, why }));
  router.use(checklistRoutes({ config, state, login, frame, why }));

  return router;
}
