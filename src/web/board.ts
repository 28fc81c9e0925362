/**
 * Bull Board for caretaker's queue, twice: a full board for the admin and a
 * read-only one for the viewer, both at the same path. The caller's role
 * (set by `authenticate`) picks which one answers, so the viewer's UI hides
 * the buttons and its API refuses the writes.
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { Queue } from 'bullmq';
import express from 'express';
import { z } from 'zod';
import { jobDataSchema, type JobData } from '../queue/queue';
import { roleOf, type Role } from './auth';
import { BOARD_PATH } from './paths';

const BOARD_TITLE = 'caretaker';

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
  createBullBoard({
    queues: [
      new BullMQAdapter(queue, {
        readOnlyMode,
        allowRetries: !readOnlyMode,
        description: 'scheduled maintenance and health checks; job name = task',
        jobDataSchema: JOB_DATA_JSON_SCHEMA,
      }),
    ],
    serverAdapter,
    options: { uiConfig: { boardTitle: BOARD_TITLE } },
  });
  const app = serverAdapter.getRouter() as express.Express;
  app.disable('x-powered-by');
  return app;
}

/**
 * Lets only `role` reach `board`; anyone else falls through to the next
 * handler (`next('router')` leaves this app). Mounting the board with
 * `app.use` keeps express's sub-app semantics (settings, req/res restored).
 */
function onlyFor(role: Role, board: express.Express): express.Express {
  const gated = express();
  gated.disable('x-powered-by');
  gated.use((_req, res, next) => (roleOf(res) === role ? next() : next('router')));
  gated.use(board);
  return gated;
}

/**
 * The admin's board, then the viewer's, to mount at `BOARD_PATH` after
 * `authenticate`: each answers only its own role.
 */
export function createBoards(queue: Queue<JobData>): express.Express[] {
  return [onlyFor('admin', createBoard(queue, false)), onlyFor('viewer', createBoard(queue, true))];
}
