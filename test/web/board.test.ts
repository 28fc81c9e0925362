/**
 * Bull Board behind basic auth: who gets in, that the viewer's board cannot
 * change the queue while the admin's can, and that neither edits the job
 * schedulers the config owns.
 */
import express from 'express';
import request from 'supertest';
import { roleOf } from '../../src/web/auth';
import { SCHEDULERS_FROM_CONFIG, createBoards } from '../../src/web/board';
import { BOARD_PATH } from '../../src/web/paths';
import { createWebApp } from '../../src/web/server';
import { ADMIN, VIEWER, runOneFailedOneCompleted, webFixture, type WebFixture } from './fixture';

const API = `${BOARD_PATH}/api/queues/caretaker`;
const SCHEDULER_ID = 'daily:connections:main';

let fx: WebFixture;
let app: express.Express;
let failedId: string;
let completedId: string;
/** A waiting job created a minute ago: older than the 5 s grace bull-board's "clean" keeps. */
let oldWaitingId: string;

beforeAll(async () => {
  fx = await webFixture('board');
  app = createWebApp(fx.deps);
  await fx.queue.upsertJobScheduler(SCHEDULER_ID, { pattern: '0 3 * * *', tz: 'UTC' }, { name: 'connections', data: { task: 'connections', target: 'main' } });
  const ran = await runOneFailedOneCompleted(fx);
  ({ failedId, completedId } = ran);
  expect(ran.states.get(failedId)).toBe('failed');
  expect(ran.states.get(completedId)).toBe('completed');
  oldWaitingId = (await fx.queue.add('disk-check', { task: 'disk-check', target: 'main' }, { timestamp: Date.now() - 60_000 })).id!;
});

afterAll(async () => {
  await fx.close();
});

describe('basic auth on /admin/queues', () => {
  it('answers 401 with a Basic challenge without credentials', async () => {
    const res = await request(app).get(BOARD_PATH);
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Basic realm="caretaker"');
    expect(res.body).toEqual({ error: 'authentication required' });
  });

  it('answers 401 to a wrong password, an unknown user and a malformed header', async () => {
    expect((await request(app).get(BOARD_PATH).auth(ADMIN.user, 'wrong')).status).toBe(401);
    expect((await request(app).get(BOARD_PATH).auth('nobody', ADMIN.password)).status).toBe(401);
    expect((await request(app).get(BOARD_PATH).set('Authorization', 'Basic !!!')).status).toBe(401);
    expect((await request(app).get(BOARD_PATH).set('Authorization', `Bearer ${ADMIN.password}`)).status).toBe(401);
  });

  it('serves the board titled "caretaker" to the viewer and to the admin', async () => {
    for (const who of [VIEWER, ADMIN]) {
      const res = await request(app).get(BOARD_PATH).auth(who.user, who.password);
      expect(res.status).toBe(200);
      expect(res.text).toContain('<title>caretaker</title>');
      // The page's assets come from the same board, behind the same login.
      const logo = await request(app).get(`${BOARD_PATH}/static/images/logo.svg`).auth(who.user, who.password);
      expect(logo.status).toBe(200);
    }
    expect((await request(app).get(`${BOARD_PATH}/static/images/logo.svg`)).status).toBe(401);
  });

  it('serves the console at / behind the same login, linking to the board', async () => {
    expect((await request(app).get('/')).status).toBe(401);
    const res = await request(app).get('/').auth(VIEWER.user, VIEWER.password);
    expect(res.status).toBe(200);
    expect(res.text).toContain(`href="${BOARD_PATH}"`);
  });
});

describe('what each role sees', () => {
  it('shows caretaker\'s queue read-only to the viewer and writable to the admin', async () => {
    const viewer = await request(app).get(`${BOARD_PATH}/api/queues`).auth(VIEWER.user, VIEWER.password);
    const admin = await request(app).get(`${BOARD_PATH}/api/queues`).auth(ADMIN.user, ADMIN.password);
    expect(viewer.status).toBe(200);
    expect(admin.status).toBe(200);
    expect(viewer.body.queues.map((q: { name: string; readOnlyMode: boolean }) => [q.name, q.readOnlyMode])).toEqual([['caretaker', true]]);
    expect(admin.body.queues.map((q: { name: string; readOnlyMode: boolean }) => [q.name, q.readOnlyMode])).toEqual([['caretaker', false]]);
    expect(admin.body.queues[0].counts.failed).toBe(1);
    expect(admin.body.queues[0].counts.completed).toBe(1);
  });

  it('lists the queue\'s job schedulers', async () => {
    const res = await request(app).get(`${BOARD_PATH}/api/job-schedulers`).auth(VIEWER.user, VIEWER.password);
    expect(res.status).toBe(200);
    expect(res.body.schedulers).toHaveLength(1);
    expect(res.body.schedulers[0]).toMatchObject({ queueName: 'caretaker', id: SCHEDULER_ID, pattern: '0 3 * * *' });
  });
});

describe('the viewer cannot change the queue', () => {
  it('gets 403 on retry, clean and add, and nothing changes', async () => {
    const retry = await request(app).put(`${API}/retry/failed`).auth(VIEWER.user, VIEWER.password);
    const clean = await request(app).put(`${API}/clean/wait`).auth(VIEWER.user, VIEWER.password);
    const retryOne = await request(app).put(`${API}/${failedId}/retry`).auth(VIEWER.user, VIEWER.password);
    const add = await request(app)
      .post(`${API}/add`)
      .auth(VIEWER.user, VIEWER.password)
      .send({ name: 'connections', data: { task: 'connections', target: 'main' } });
    const runNow = await request(app).put(`${API}/job-schedulers/${encodeURIComponent(SCHEDULER_ID)}/run`).auth(VIEWER.user, VIEWER.password);
    expect([retry.status, clean.status, retryOne.status, add.status, runNow.status]).toEqual([403, 403, 403, 403, 403]);
    expect(retry.body).toEqual({ error: 'forbidden: the viewer is read-only' });

    expect(await fx.queue.getJobState(failedId)).toBe('failed');
    expect(await fx.queue.getJobState(completedId)).toBe('completed');
    expect(await fx.queue.getJobState(oldWaitingId)).toBe('waiting');
    const counts = await fx.queue.getJobCounts('waiting', 'failed', 'completed');
    expect(counts).toEqual({ waiting: 1, failed: 1, completed: 1 });
  });

  it('is refused by bull-board itself (405) even without the method guard', async () => {
    // The read-only board alone, with the role set by hand: bull-board's own enforcement.
    const bare = express();
    bare.use(BOARD_PATH, (_req, res, next) => {
      res.locals.role = 'viewer';
      expect(roleOf(res)).toBe('viewer');
      next();
    }, ...createBoards(fx.queue));
    const res = await request(bare).put(`${API}/retry/failed`);
    expect(res.status).toBe(405);
    expect(await fx.queue.getJobState(failedId)).toBe('failed');
  });
});

describe('the admin can change the queue', () => {
  it('cleans waiting jobs older than the grace period', async () => {
    const res = await request(app).put(`${API}/clean/wait`).auth(ADMIN.user, ADMIN.password);
    expect(res.status).toBe(200);
    expect(await fx.queue.getJob(oldWaitingId)).toBeUndefined();
    expect(await fx.queue.getJobCounts('waiting')).toEqual({ waiting: 0 });
  });

  it('retries the failed job', async () => {
    const res = await request(app).put(`${API}/retry/failed`).auth(ADMIN.user, ADMIN.password);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ retried: 1, skipped: 0 });
    expect(await fx.queue.getJobState(failedId)).toBe('waiting');
  });

  it('adds a job (run now)', async () => {
    const res = await request(app)
      .post(`${API}/add`)
      .auth(ADMIN.user, ADMIN.password)
      .send({ name: 'connections', data: { task: 'connections', target: 'main' }, options: {} });
    expect(res.status).toBe(200);
    const job = await fx.queue.getJob(res.body.job.id);
    expect(job?.name).toBe('connections');
    expect(job?.data).toEqual({ task: 'connections', target: 'main' });
    expect(await job?.getState()).toBe('waiting');
  });

  it('runs a job scheduler now, leaving its schedule alone', async () => {
    const res = await request(app).put(`${API}/job-schedulers/${encodeURIComponent(SCHEDULER_ID)}/run`).auth(ADMIN.user, ADMIN.password);
    expect(res.status).toBe(200);
    const job = await fx.queue.getJob(res.body.job.id);
    expect(job?.name).toBe('connections');
    expect(job?.data).toEqual({ task: 'connections', target: 'main' });
    const schedulers = await fx.queue.getJobSchedulers();
    expect(schedulers.map((s) => [s.key, s.pattern])).toEqual([[SCHEDULER_ID, '0 3 * * *']]);
  });
});

describe('the job schedulers come from the config', () => {
  const SCHEDULER = `${API}/job-schedulers/${encodeURIComponent(SCHEDULER_ID)}`;
  const unchanged = async () => {
    const schedulers = await fx.queue.getJobSchedulers();
    expect(schedulers.map((s) => [s.key, s.pattern])).toEqual([[SCHEDULER_ID, '0 3 * * *']]);
  };

  it('refuses the admin\'s schedule edit with 409 and one line saying why', async () => {
    const res = await request(app).patch(SCHEDULER).auth(ADMIN.user, ADMIN.password).send({ pattern: '0 4 * * *' });
    expect(res.status).toBe(409);
    expect(res.body).toEqual({ error: SCHEDULERS_FROM_CONFIG });
    await unchanged();
  });

  it('refuses removing one, however the path is spelled', async () => {
    // Express routes ignore case and a trailing slash: bull-board's own router would take these too.
    for (const path of [`${SCHEDULER}/remove`, `${SCHEDULER}/REMOVE`, `${SCHEDULER}/remove/`]) {
      const res = await request(app).put(path).auth(ADMIN.user, ADMIN.password);
      expect([path, res.status, res.body]).toEqual([path, 409, { error: SCHEDULERS_FROM_CONFIG }]);
    }
    await unchanged();
  });

  it('still lets the admin run one now and list them', async () => {
    const run = await request(app).put(`${SCHEDULER}/run`).auth(ADMIN.user, ADMIN.password);
    expect(run.status).toBe(200);
    const list = await request(app).get(`${BOARD_PATH}/api/job-schedulers`).auth(ADMIN.user, ADMIN.password);
    expect(list.status).toBe(200);
    expect(list.body.schedulers.map((s: { id: string }) => s.id)).toEqual([SCHEDULER_ID]);
    await unchanged();
  });

  it('says so in the queue\'s description', async () => {
    const res = await request(app).get(`${BOARD_PATH}/api/queues`).auth(VIEWER.user, VIEWER.password);
    expect(res.body.queues[0].description).toMatch(/Schedulers come from the config: one edited or deleted here comes back at the next re-sync/);
  });
});
