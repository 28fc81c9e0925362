/**
 * The console's routes over HTTP (supertest on the real app, a planted
 * history, real Redis): what each page says, who may run a task now, and
 * the headers every answer carries. The browser test
 * (console-browser.test.ts) drives the same pages in chromium.
 */
import request from 'supertest';
import type express from 'express';
import { createWebApp } from '../../src/web/server';
import { CONTENT_SECURITY_POLICY } from '../../src/web/security-headers';
import { BOARD_PATH, RUN_NOW_PATH, checkPath } from '../../src/web/paths';
import { weekContaining, weeksBefore } from '../../src/reports/week';
import { ADMIN, VIEWER, WITH_AUTH, webFixture, type WebFixture } from './fixture';
import { plantFleet } from '../support/status-fleet';

let fx: WebFixture;
let app: express.Express;

beforeAll(async () => {
  fx = await webFixture('console');
  await plantFleet(fx.db.pool, fx.config);
  app = createWebApp(fx.deps);
});

afterAll(() => fx?.close());

const asViewer = (path: string) => request(app).get(path).auth(VIEWER.user, VIEWER.password);
const asAdmin = (path: string) => request(app).get(path).auth(ADMIN.user, ADMIN.password);

/** The text of a page's table row for one check (`data-check` is the scheduler id). */
function rowOf(html: string, id: string): string {
  const start = html.indexOf(`data-check="${id}"`);
  if (start < 0) throw new Error(`no row ${id}`);
  return html.slice(start, html.indexOf('</tr>', start));
}

describe('the status page at /', () => {
  it('asks for a login, then shows every scheduled check with its state in words', async () => {
    expect((await request(app).get('/')).status).toBe(401);
    const res = await asViewer('/');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/text\/html/);
    expect(rowOf(res.text, 'weekly:index-audit:main')).toContain('>critical<');
    expect(rowOf(res.text, 'daily:pg-health:main')).toContain('>late<');
    expect(rowOf(res.text, 'daily:vacuum-analyze:main')).toContain('>missed<');
    expect(rowOf(res.text, 'weekly:disk-check:main')).toContain('>error<');
    expect(rowOf(res.text, 'weekly:slow-queries:main')).toContain('>never ran<');
    expect(rowOf(res.text, 'daily:connections:main')).toContain('>ok<');
    expect(res.text).toContain('1 critical, 1 missed, 1 late, 1 error');
  });

  it('links each row to its history and the last run\'s job in the board', async () => {
    const row = rowOf((await asViewer('/')).text, 'weekly:index-audit:main');
    expect(row).toContain(`href="${checkPath('index-audit', 'main')}"`);
    expect(row).toContain(`href="${BOARD_PATH}/queue/caretaker/planted-1"`);
  });

  it('lists the open findings with their suggestion, and filters them by the query string', async () => {
    const all = (await asViewer('/')).text;
    expect(all).toContain('DROP INDEX CONCURRENTLY public.orders_idx');
    expect(all).toContain('disk 85 % used');
    const critical = (await asViewer('/?severity=critical')).text;
    expect(critical).toContain('public.orders_idx');
    expect(critical).not.toContain('disk 85 % used');
    expect(critical).toContain('<option value="critical" selected>');
    const disk = (await asViewer('/?task=disk-check&target=main')).text;
    expect(disk).toContain('disk 85 % used');
    expect(disk).not.toContain('public.orders_idx');
    expect(disk).not.toContain('data-check="weekly:index-audit:main"');
  });

  it('refuses a misspelt filter with a page that names it', async () => {
    const res = await asViewer('/?sevrity=critical');
    expect(res.status).toBe(400);
    expect(res.text).toMatch(/sevrity/);
  });

  it('never echoes markup from the query string', async () => {
    const res = await asViewer(`/?task=${encodeURIComponent('<script>alert(1)</script>')}`);
    expect(res.status).toBe(200);
    expect(res.text).not.toContain('<script>alert(1)');
  });

  it('says alerts go nowhere while no channel is configured, and not once one is', async () => {
    expect((await asViewer('/')).text).toContain('Alerts go nowhere: configure notifications.');
    const withWebhook = await webFixture('console_webhook', { ...WITH_AUTH, notifications: { webhook: { url: 'http://127.0.0.1:9/hook' } } });
    try {
      const res = await request(createWebApp(withWebhook.deps)).get('/').auth(VIEWER.user, VIEWER.password);
      expect(res.status).toBe(200);
      expect(res.text).not.toContain('Alerts go nowhere');
    } finally {
      await withWebhook.close();
    }
  });
});

describe('a check\'s page and a run\'s page', () => {
  it('shows a check\'s open findings and its runs, newest first', async () => {
    const res = await asViewer(checkPath('disk-check', 'main'));
    expect(res.status).toBe(200);
    expect(res.text).toContain('disk 85 % used');
    const errorAt = res.text.indexOf('could not connect: connection refused');
    expect(errorAt).toBeGreaterThan(0);
    expect(errorAt).toBeLessThan(res.text.indexOf('disk-check warning'));
    expect(res.text).toContain('Run now needs the admin login');
  });

  it('gives the admin a run-now form, with dry run for a task that changes things', async () => {
    expect((await asAdmin(checkPath('connections', 'main'))).text).toMatch(/<form class="run-now" method="post" action="\/run-now">/);
    const vacuum = (await asAdmin(checkPath('vacuum-analyze', 'main'))).text;
    expect(vacuum).toContain('name="dryRun"');
    expect((await asAdmin(checkPath('index-audit', 'main'))).text).not.toContain('name="dryRun"');
  });

  it('answers 404 for a task or target that does not exist, without echoing it', async () => {
    expect((await asViewer(checkPath('no-such-task', 'main'))).status).toBe(404);
    const res = await asViewer(checkPath('connections', '<img src=x onerror=alert(1)>'));
    expect(res.status).toBe(404);
    expect(res.text).not.toContain('<img src=x');
  });

  it('renders a run\'s findings, actions and metrics as tables', async () => {
    const { rows } = await fx.db.pool.query(`SELECT id FROM caretaker.runs WHERE task = 'index-audit'`);
    const res = await asViewer(`/runs/${rows[0].id}`);
    expect(res.status).toBe(200);
    expect(res.text).toContain('<b>invalid_index</b>');
    expect(res.text).toContain('index is invalid');
    expect(res.text).toContain('1 invalid index');
    expect(res.text).not.toContain('"findings"');
  });

  it('redirects a board job to its stored run, and says so when there is none yet', async () => {
    const { rows } = await fx.db.pool.query(`SELECT id FROM caretaker.runs WHERE job_id = 'planted-1'`);
    const res = await asViewer('/runs/job/planted-1');
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe(`/runs/${rows[0].id}`);
    const missing = await asViewer('/runs/job/999999');
    expect(missing.status).toBe(404);
    expect(missing.text).toContain('still waiting or running');
  });

  it.each(['999999999', 'abc', '1e3', '-1'])('answers 404 for run %s', async (id) => {
    expect((await asViewer(`/runs/${id}`)).status).toBe(404);
  });
});

describe('run now', () => {
  const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
  const post = (fields: Record<string, string>, user = ADMIN) =>
    request(app).post(RUN_NOW_PATH).auth(user.user, user.password).type('form').send(form(fields));

  it('queues the task for the admin as caretaker enqueue does, and goes back to the check', async () => {
    const res = await post({ task: 'connections', target: 'main' });
    expect(res.status).toBe(303);
    const jobId = new URL(res.headers.location!, 'http://x').searchParams.get('enqueued')!;
    expect(res.headers.location).toBe(`${checkPath('connections', 'main')}?enqueued=${jobId}`);
    const job = await fx.queue.getJob(jobId);
    expect(job?.name).toBe('connections');
    expect(job?.data).toEqual({ task: 'connections', target: 'main', schedule: 'manual' });
    expect(job?.opts.attempts).toBe(fx.config.worker.attempts);
    const page = await asAdmin(res.headers.location!);
    expect(page.text).toContain(`Queued: job`);
  });

  it('queues a dry run when asked', async () => {
    const res = await post({ task: 'vacuum-analyze', target: 'main', dryRun: '1' });
    expect(res.status).toBe(303);
    const jobId = new URL(res.headers.location!, 'http://x').searchParams.get('enqueued')!;
    expect((await fx.queue.getJob(jobId))?.data).toEqual({ task: 'vacuum-analyze', target: 'main', schedule: 'manual', dryRun: true });
  });

  it('refuses the viewer, a cross-site form, an unknown target and an unknown task, and queues nothing', async () => {
    const before = await fx.queue.getJobCounts();
    const viewer = await post({ task: 'connections', target: 'main' }, VIEWER);
    expect(viewer.status).toBe(403);
    expect(viewer.text).toContain('the viewer is read-only');
    const crossSite = await request(app)
      .post(RUN_NOW_PATH)
      .auth(ADMIN.user, ADMIN.password)
      .set('Sec-Fetch-Site', 'cross-site')
      .type('form')
      .send(form({ task: 'connections', target: 'main' }));
    expect(crossSite.status).toBe(403);
    const target = await post({ task: 'connections', target: 'nope' });
    expect(target.status).toBe(400);
    expect(target.text).toContain('unknown postgres target &quot;nope&quot;');
    expect((await post({ task: 'nope', target: 'main' })).status).toBe(400);
    expect((await post({ target: 'main' })).status).toBe(400);
    expect(await fx.queue.getJobCounts()).toEqual(before);
  });
});

describe('headers and the frame every page shares', () => {
  it.each(['/', checkPath('connections', 'main'), `${BOARD_PATH}/`, '/reports', '/health'])('%s carries the Content-Security-Policy', async (path) => {
    const res = await asAdmin(path);
    expect(res.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
    expect(res.headers['x-frame-options']).toBe('DENY');
  });

  it('links the console, this week to date, last week and the board from the report page too', async () => {
    const now = new Date();
    const thisWeek = weekContaining(now, fx.config.timezone);
    const lastWeek = weeksBefore(thisWeek, 1);
    for (const path of ['/', `/reports/${thisWeek.id}`]) {
      const html = (await asViewer(path)).text;
      for (const href of ['/', `/reports/${thisWeek.id}`, `/reports/${lastWeek.id}`, BOARD_PATH]) expect(html).toContain(`href="${href}"`);
    }
  });

  it('labels the current week as to date, links the week before, and has no next week', async () => {
    const thisWeek = weekContaining(new Date(), fx.config.timezone);
    const html = (await asViewer(`/reports/${thisWeek.id}`)).text;
    expect(html).toContain(`week ${thisWeek.id} (week to date)`);
    expect(html).toContain(`href="/reports/${weeksBefore(thisWeek, 1).id}" rel="prev"`);
    expect(html).not.toContain('rel="next"');
    const last = (await asViewer(`/reports/${weeksBefore(thisWeek, 1).id}`)).text;
    expect(last).not.toContain('(week to date)');
    expect(last).toContain(`href="/reports/${thisWeek.id}" rel="next"`);
  });

  it('answers 404 for a week that has not started', async () => {
    const next = weeksBefore(weekContaining(new Date(), fx.config.timezone), -1);
    const res = await asViewer(`/reports/${next.id}`);
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: `${next.id} has not started yet` });
  });

  it('serves its stylesheet and script from its own origin, without a login', async () => {
    const html = (await asViewer('/')).text;
    const css = /href="(\/assets\/console\.[0-9a-f]+\.css)"/.exec(html)![1]!;
    const js = /src="(\/assets\/console\.[0-9a-f]+\.js)"/.exec(html)![1]!;
    const style = await request(app).get(css);
    expect(style.status).toBe(200);
    expect(style.headers['content-type']).toMatch(/text\/css/);
    expect((await request(app).get(js)).headers['content-type']).toMatch(/javascript/);
  });
});
