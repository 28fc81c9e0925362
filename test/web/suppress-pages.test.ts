/**
 * The console's Silences and Waivers pages over HTTP (supertest on the real
 * app, a planted history): the admin adds and ends them from forms that a
 * finding's Silence… and Waive… links fill in, who is the signed-in user,
 * the status page shows the outcome, a mistake keeps what was typed, and
 * the viewer and other sites change nothing.
 */
import request from 'supertest';
import type express from 'express';
import { createWebApp } from '../../src/web/server';
import { SILENCES_PATH, WAIVERS_PATH, checkPath, silenceFormPath, waiverFormPath } from '../../src/web/paths';
import { ADMIN, VIEWER, WITH_AUTH, webFixture, type WebFixture } from './fixture';
import { FINDINGS, plantFleet } from '../support/status-fleet';

let fx: WebFixture;
let app: express.Express;

const INVALID_INDEX = { task: 'index-audit', target: 'main', code: 'invalid_index', subject: FINDINGS.invalidIndex.subject };

beforeAll(async () => {
  fx = await webFixture('suppress_pages', {
    ...WITH_AUTH,
    waivers: [{ task: 'pg-health', target: 'main', code: 'long_transaction', subject: '*', reason: 'the nightly export', until: '2099-01-01' }],
  });
  await plantFleet(fx.db.pool, fx.config);
  app = createWebApp(fx.deps);
});

afterAll(() => fx?.close());

beforeEach(async () => {
  await fx.db.pool.query('TRUNCATE caretaker.silences, caretaker.waivers');
});

const asAdmin = (path: string) => request(app).get(path).auth(ADMIN.user, ADMIN.password);
const asViewer = (path: string) => request(app).get(path).auth(VIEWER.user, VIEWER.password);
const postAs = (who: { user: string; password: string }, path: string, form: Record<string, string>) =>
  request(app).post(path).auth(who.user, who.password).set('Sec-Fetch-Site', 'same-origin').type('form').send(form);
const count = async (table: string) => (await fx.db.pool.query(`SELECT count(*)::int AS n FROM caretaker.${table}`)).rows[0].n as number;

/** The text of the findings table row carrying `code`. */
function findingRow(html: string, code: string): string {
  const at = html.indexOf(`<b>${code}</b>`);
  if (at < 0) throw new Error(`no finding ${code}`);
  return html.slice(html.lastIndexOf('<tr', at), html.indexOf('</tr>', at));
}

describe('silences in the console', () => {
  it("links each open finding to a silence form filled in for it, for the admin only", async () => {
    const admin = (await asAdmin('/')).text;
    const link = silenceFormPath({ task: 'disk-check', target: 'main', code: 'disk_usage_high', subject: FINDINGS.diskHigh.subject });
    expect(findingRow(admin, 'disk_usage_high')).toContain(`href="${link.replace(/&/g, '&amp;')}"`);
    expect((await asViewer('/')).text).not.toContain('Silence…');

    const form = await asAdmin(link);
    expect(form.status).toBe(200);
    expect(form.text).toContain('name="task" type="text" value="disk-check"');
    expect(form.text).toContain('name="subject" type="text" value="/var/lib/postgresql"');
    expect(form.text).toContain('name="for" type="text" value="2h"');
  });

  it('adds a silence as the signed-in user; the finding reads silenced and stays open; Expire ends it', async () => {
    const added = await postAs(ADMIN, SILENCES_PATH, { task: 'disk-check', target: 'main', code: '', subject: '', for: '2h', until: '', reason: 'resizing <the> volume' });
    expect(added.status).toBe(303);
    const id = /added=(\d+)/.exec(added.headers.location!)![1]!;
    const stored = await fx.db.pool.query('SELECT task, target, code, created_by, reason FROM caretaker.silences WHERE id = $1', [id]);
    // Blank fields match anything; who is the user part of the admin's login.
    expect(stored.rows).toEqual([{ task: 'disk-check', target: 'main', code: null, created_by: ADMIN.user, reason: 'resizing <the> volume' }]);

    const page = (await asAdmin(added.headers.location!)).text;
    expect(page).toContain(`Silence ${id} added.`);
    expect(page).toContain('resizing &lt;the&gt; volume');
    expect(page).not.toContain('<the>');
    expect(page).toContain(`action="${SILENCES_PATH}/${id}/expire"`);

    const status = (await asViewer('/')).text;
    expect(findingRow(status, 'disk_usage_high')).toMatch(/class="silenced">silenced by admin until .*: resizing &lt;the&gt; volume/);
    // Still open (the config's waiver has taken long_transaction out): a silence quiets notifications only.
    expect(status).toContain('2 open findings shown');

    const expired = await postAs(ADMIN, `${SILENCES_PATH}/${id}/expire`, {});
    expect([expired.status, expired.headers.location]).toEqual([303, `${SILENCES_PATH}?expired=${id}`]);
    const after = (await asAdmin(expired.headers.location!)).text;
    expect(after).toMatch(new RegExp(`data-silence="${id}".*>expired<.*expired by admin`));
    expect(findingRow((await asViewer('/')).text, 'disk_usage_high')).not.toContain('silenced by');
    expect((await postAs(ADMIN, `${SILENCES_PATH}/${id}/expire`, {})).status).toBe(404);
  });

  it('refuses a mistake with the reason on the page and every field as typed, storing nothing', async () => {
    const res = await postAs(ADMIN, SILENCES_PATH, { task: 'vacum-analyze', target: 'main', code: '', subject: 'public.*', for: '2h', until: '', reason: 'typo' });
    expect(res.status).toBe(400);
    expect(res.text).toMatch(/role="alert">&quot;task&quot; &quot;vacum-analyze&quot; matches no task \(known: .*vacuum-analyze.*\)</);
    expect(res.text).toContain('name="task" type="text" value="vacum-analyze"');
    expect(res.text).toContain('name="subject" type="text" value="public.*"');
    expect(res.text).toContain('name="reason" type="text" value="typo"');
    const both = await postAs(ADMIN, SILENCES_PATH, { target: 'main', for: '2h', until: '2099-01-01T00:00:00Z', reason: 'x' });
    expect(both.text).toContain('give exactly one of &quot;for&quot; (e.g. 2h) and &quot;until&quot; (ISO 8601)');
    expect(await count('silences')).toBe(0);
  });

  it('shows the viewer the silences but no form, and refuses the viewer\'s and another site\'s posts', async () => {
    const page = await asViewer(SILENCES_PATH);
    expect(page.status).toBe(200);
    expect(page.text).toContain('Adding or expiring a silence needs the admin login.');
    expect(page.text).not.toContain(`method="post" action="${SILENCES_PATH}"`);
    const viewer = await postAs(VIEWER, SILENCES_PATH, { target: 'main', for: '2h', reason: 'x' });
    expect(viewer.status).toBe(403);
    const crossSite = await request(app).post(SILENCES_PATH).auth(ADMIN.user, ADMIN.password).set('Sec-Fetch-Site', 'cross-site').type('form').send({ target: 'main', for: '2h', reason: 'x' });
    expect(crossSite.status).toBe(403);
    expect(await count('silences')).toBe(0);
  });
});

describe('waivers in the console', () => {
  it("waives a finding from its Waive… link: at the finding's severity, as the admin; the status page sets it apart; Remove brings it back", async () => {
    const link = waiverFormPath(INVALID_INDEX);
    expect(findingRow((await asAdmin('/')).text, 'invalid_index')).toContain(`href="${link.replace(/&/g, '&amp;')}"`);
    const form = (await asAdmin(link)).text;
    expect(form).toContain('name="code" type="text" value="invalid_index"');

    const added = await postAs(ADMIN, WAIVERS_PATH, { ...INVALID_INDEX, reason: 'rebuilt on Sunday', until: '2099-03-01', severity: '' });
    expect(added.status).toBe(303);
    const id = /added=(\d+)/.exec(added.headers.location!)![1]!;
    expect((await fx.db.pool.query('SELECT severity, created_by FROM caretaker.waivers WHERE id = $1', [id])).rows).toEqual([{ severity: 'critical', created_by: ADMIN.user }]);

    const status = (await asViewer('/')).text;
    expect(status).toContain('<h2 id="waived">Waived (2)</h2>');
    expect(status).toContain('rebuilt on Sunday');
    expect(status).not.toContain('<b>invalid_index</b> <code>public.orders_idx</code><br>index is invalid (a failed CREATE INDEX CONCURRENTLY)<br><span class="suggestion">');
    // The row's critical came from the waived finding only.
    expect(status).toMatch(/data-check="weekly:index-audit:main"><td data-label="status"><span class="badge s-ok">ok</);

    const check = (await asViewer(checkPath('index-audit', 'main'))).text;
    expect(check).toContain('<h2>Waived (1)</h2>');
    expect(check).toContain('waiver ' + id + ' by admin, until 2099-03-01 00:00:00 UTC');

    const page = (await asAdmin(WAIVERS_PATH)).text;
    expect(page).toMatch(new RegExp(`data-waiver="${id}".*rebuilt on Sunday.*action="${WAIVERS_PATH}/${id}/remove"`));
    // The config's waiver is listed, lapsing first, and cannot be removed here.
    expect(page.indexOf('data-waiver="config-1"')).toBeLessThan(page.indexOf(`data-waiver="${id}"`));
    expect((await postAs(ADMIN, `${WAIVERS_PATH}/config-1/remove`, {})).status).toBe(400);

    const removed = await postAs(ADMIN, `${WAIVERS_PATH}/${id}/remove`, {});
    expect([removed.status, removed.headers.location]).toEqual([303, `${WAIVERS_PATH}?removed=${id}`]);
    expect((await asViewer('/')).text).toMatch(/data-check="weekly:index-audit:main"><td data-label="status"><span class="badge s-critical">critical</);
  });

  it('marks a waiver that lapses within 14 days', async () => {
    const soon = new Date(Date.now() + 3 * 86_400_000).toISOString().slice(0, 10);
    await postAs(ADMIN, WAIVERS_PATH, { ...INVALID_INDEX, reason: 'until the rebuild', until: soon, severity: 'critical' });
    const page = (await asViewer(WAIVERS_PATH)).text;
    const row = page.slice(page.indexOf('data-waiver="'), page.indexOf('</tr>', page.indexOf('data-waiver="')));
    expect(row).toContain('until the rebuild');
    expect(row).toContain('>expires soon<');
  });

  it('refuses a waiver without its fields, keeping what was typed, and the viewer\'s post', async () => {
    const res = await postAs(ADMIN, WAIVERS_PATH, { task: 'index-audit', target: 'main', code: 'invalid_index', subject: '', reason: 'r' });
    expect(res.status).toBe(400);
    expect(res.text).toContain('a waiver needs &quot;subject&quot; (a glob such as &quot;*&quot; for any)');
    expect(res.text).toContain('name="code" type="text" value="invalid_index"');
    expect((await postAs(VIEWER, WAIVERS_PATH, { ...INVALID_INDEX, reason: 'r' })).status).toBe(403);
    expect(await count('waivers')).toBe(0);
  });
});
