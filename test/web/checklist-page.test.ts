/**
 * The console's Checklist page over HTTP (supertest on the real app, a real
 * state database): each item's state for anyone signed in, "Mark done" for
 * the admin only (as the signed-in user, with the note), a refused note
 * keeping what was typed, and the viewer and other sites changing nothing.
 */
import request from 'supertest';
import type express from 'express';
import { createWebApp } from '../../src/web/server';
import { CHECKLIST_PATH } from '../../src/web/paths';
import { ADMIN, VIEWER, WITH_AUTH, webFixture, type WebFixture } from './fixture';

let fx: WebFixture;
let app: express.Express;

beforeAll(async () => {
  fx = await webFixture('checklist_page', {
    ...WITH_AUTH,
    checklist: [
      // Hourly, never done: due from the hour it is first seen in, overdue an hour later.
      { id: 'update-docs', title: 'Update <the> documentation', cron: '0 * * * *', graceHours: 1, link: 'https://wiki.example.com/runbook' },
      { id: 'review-dashboards', title: 'Review Grafana dashboards', cron: '0 9 * * *', enabled: false },
    ],
  });
  app = createWebApp(fx.deps);
});

afterAll(() => fx?.close());

beforeEach(async () => {
  await fx.db.pool.query('TRUNCATE caretaker.checklist_done, caretaker.checklist_items');
});

const get = (who: { user: string; password: string }, path = CHECKLIST_PATH) => request(app).get(path).auth(who.user, who.password);
const markDone = (who: { user: string; password: string }, item: string, note: string, site = 'same-origin') =>
  request(app).post(`${CHECKLIST_PATH}/${item}/done`).auth(who.user, who.password).set('Sec-Fetch-Site', site).type('form').send({ note });
const doneRows = async () => (await fx.db.pool.query('SELECT item, done_by, note FROM caretaker.checklist_done ORDER BY id')).rows;

/** The table row of `item`. */
function row(html: string, item: string): string {
  const at = html.indexOf(`data-item="${item}"`);
  if (at < 0) throw new Error(`no row for ${item}`);
  return html.slice(at, html.indexOf('</tr>', at));
}

it('shows each enabled item with its state, escaped, to the viewer without a button', async () => {
  const page = await get(VIEWER);
  expect(page.status).toBe(200);
  const docs = row(page.text, 'update-docs');
  // Never done and first seen now: due since this hour began, overdue only from the next.
  expect(docs).toContain('badge s-info">due<');
  expect(docs).toContain('Update &lt;the&gt; documentation');
  expect(docs).toContain('href="https://wiki.example.com/runbook"');
  expect(docs).toContain('never');
  expect(docs).not.toContain('Mark done');
  expect(page.text).not.toContain('data-item="review-dashboards"');
  expect(page.text).toContain('Marking an item done needs the admin login.');
  expect(page.text).toContain(`href="${CHECKLIST_PATH}" aria-current="page"`);
});

it('the admin marks it done with a note: recorded as the signed-in user, the page says so and shows it done', async () => {
  expect(row((await get(ADMIN)).text, 'update-docs')).toContain('Mark done');
  const posted = await markDone(ADMIN, 'update-docs', '  rewrote the <restore> section ');
  expect(posted.status).toBe(303);
  expect(posted.headers.location).toBe(`${CHECKLIST_PATH}?done=update-docs`);
  expect(await doneRows()).toEqual([{ item: 'update-docs', done_by: ADMIN.user, note: 'rewrote the <restore> section' }]);

  const page = (await get(ADMIN, posted.headers.location!)).text;
  expect(page).toContain('update-docs marked done.');
  const docs = row(page, 'update-docs');
  expect(docs).toContain('badge s-ok">done<');
  expect(docs).toContain(`by ${ADMIN.user}: rewrote the &lt;restore&gt; section`);
});

it('a note too long is refused on the page, keeping what was typed; nothing is recorded', async () => {
  const typed = `${'x'.repeat(499)}<b>`;
  const refused = await markDone(ADMIN, 'update-docs', typed);
  expect(refused.status).toBe(400);
  expect(row(refused.text, 'update-docs')).toContain('the note must be at most 500 characters (it has 502)');
  expect(refused.text).toContain(`value="${'x'.repeat(499)}&lt;b&gt;"`);
  expect(await doneRows()).toEqual([]);
});

it('the viewer, an unknown item and another site are refused, and change nothing', async () => {
  const viewer = await markDone(VIEWER, 'update-docs', 'sneaky');
  expect(viewer.status).toBe(403);
  expect(viewer.text).toContain('marking an item done needs the admin login');
  expect((await markDone(ADMIN, 'no-such-item', '')).status).toBe(404);
  expect((await markDone(ADMIN, 'update-docs', 'from elsewhere', 'cross-site')).status).toBe(403);
  expect(await doneRows()).toEqual([]);
});
