/**
 * Bull Board for caretaker's queue, twice: a full board for the admin and a
 * read-only one for the viewer, both at the same path. The caller's role
 * (set by `authenticate`) picks which one answers, so the viewer's UI hides
 * the buttons and its API refuses the writes. Each job's name carries its
 * outcome and links to caretaker's own page of the run (board-format.ts).
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { Queue } from 'bullmq';
import express from 'express';
import { z } from 'zod';
import { jobDataSchema, type JobData } from '../queue/queue';
import { roleOf, type Role } from './auth';
import { jobTitle, resultView } from './board-format';
import { BOARD_PATH, CONSOLE_PATH, runOfJobPath } from './paths';

const BOARD_TITLE = 'caretaker';

/** Under the queue's name in the board. */
const DESCRIPTION =
  'scheduled maintenance and health checks; job name = task · target · outcome. ' +
  'Schedulers come from the config: one edited or deleted here comes back at the next re-sync (scheduler.resyncSeconds, default 300 s).';

/** What the admin's board answers to a scheduler edit or removal. */
export const SCHEDULERS_FROM_CONFIG =
  'job schedulers come from the config: change schedules in the config file; the scheduler re-creates what is edited here';

/*
 * The board's routes that change a job scheduler: PATCH edits its schedule,
 * PUT .../remove deletes it. Matched by express itself, so with the same
 * case-insensitivity and trailing-slash rules as bull-board's own router.
 * `.../run` (add one job now) leaves the schedule alone and stays open.
 */
const SCHEDULER_ROUTES = ['/api/queues/:queueName/job-schedulers/:schedulerId', '/api/queues/:queueName/job-schedulers/:schedulerId/remove'];
const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

/*
 * The board's "add job" dialog loads this schema for its job-data editor,
 * which guides a job added by hand to carry what the worker expects
 * ({ task, target, ... }).
 */
const JOB_DATA_JSON_SCHEMA = z.toJSONSchema(jobDataSchema);

/** One board (an express app from bull-board's adapter) over caretaker's queue. */
function createBoard(queue: Queue<JobData>, readOnlyMode: boolean): express.Express {
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(BOARD_PATH);
  const adapter = new BullMQAdapter(queue, {
    readOnlyMode,
    allowRetries: !readOnlyMode,
    description: DESCRIPTION,
    jobDataSchema: JOB_DATA_JSON_SCHEMA,
    // Every job links to caretaker's page of its stored run, which has the whole result rendered.
    externalJobUrl: (job) => ({ href: runOfJobPath(String(job.id ?? '')), displayText: 'run page' }),
  });
  // The board files every finished run under Completed, `critical` ones too: the name says the outcome.
  adapter.setFormatter('name', jobTitle);
  adapter.setFormatter('returnValue', resultView);
  createBullBoard({
    queues: [adapter],
    serverAdapter,
    // No Docs icon: it links to bull-board's site, and caretaker's pages link nowhere else.
    options: { uiConfig: { boardTitle: BOARD_TITLE, miscLinks: [{ text: 'Console', url: CONSOLE_PATH }], hideDocsLink: true } },
  });
  const app = serverAdapter.getRouter() as express.Express;
  app.disable('x-powered-by');
  return app;
}

/**
 * Refuses (409) the board's scheduler edits and removals: caretaker's
 * scheduler role would silently put the config's schedule back at its next
 * re-sync, so the edit would only seem to work for a while.
 */
function schedulersFromConfig(): express.Router {
  const guard = express.Router();
  guard.all(SCHEDULER_ROUTES, (req, res, next) => {
    if (READS.has(req.method)) return next();
    res.status(409).json({ error: SCHEDULERS_FROM_CONFIG });
  });
  return guard;
}

/**
 * Lets only `role` reach `handlers` (guards, then the board); anyone else
 * falls through to the next handler (`next('router')` leaves this app).
 * Mounting the board with `app.use` keeps express's sub-app semantics
 * (settings, req/res restored).
 */
function onlyFor(role: Role, ...handlers: express.RequestHandler[]): express.Express {
  const gated = express();
  gated.disable('x-powered-by');
  gated.use((_req, res, next) => (roleOf(res) === role ? next() : next('router')));
  gated.use(...handlers);
  return gated;
}

/**
 * The admin's board, then the viewer's, to mount at `BOARD_PATH` after
 * `authenticate`: each answers only its own role. The admin's refuses
 * scheduler edits (the viewer's is read-only already).
 */
export function createBoards(queue: Queue<JobData>): express.Express[] {
  return [onlyFor('admin', schedulersFromConfig(), createBoard(queue, false)), onlyFor('viewer', createBoard(queue, true))];
}
