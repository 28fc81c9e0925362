/**
 * The cross-site guard in a real browser (Debian's chromium through
 * playwright-core), logged in as the admin: Bull Board's own buttons still
 * change the queue, and a page on another site that submits a form to the
 * board is refused before anything changes.
 */
import type { Browser, BrowserContext } from 'playwright-core';
import { BOARD_PATH } from '../../src/web/paths';
import { startWeb, type WebServer } from '../../src/web/server';
import { startServer, type TestServer } from '../support/prometheus';
import { launchChromium } from './browser';
import { ADMIN, webFixture, type WebFixture } from './fixture';

/** A host name the browser resolves to loopback: a site other than 127.0.0.1. */
const ATTACKER_HOST = 'attacker.test';

let fx: WebFixture;
let web: WebServer;
let attacker: TestServer;
let browser: Browser;
let context: BrowserContext;

/** A page that, once opened, submits a form to `action` (the classic cross-site request forgery). */
function attackPage(action: string): string {
  const field = `{"name":"connections","data":{"task":"connections","target":"main"},"x":"`;
  return `<!DOCTYPE html><html><body><form method="POST" action="${action}" enctype="text/plain"><input name='${field}' value='"}'></form><script>document.forms[0].submit()</script></body></html>`;
}

beforeAll(async () => {
  fx = await webFixture('board_browser');
  web = await startWeb({ ...fx.deps, config: { ...fx.config, web: { ...fx.config.web, host: '127.0.0.1', port: 0 } } });
  attacker = await startServer((_req, res) => {
    res.setHeader('Content-Type', 'text/html');
    res.end(attackPage(`${web.url}${BOARD_PATH}/api/queues/caretaker/add`));
  });
  browser = await launchChromium([`--host-resolver-rules=MAP ${ATTACKER_HOST} 127.0.0.1`]);
  // The browser answers every login prompt with the admin's password, as a logged-in operator's would.
  context = await browser.newContext({ httpCredentials: { username: ADMIN.user, password: ADMIN.password } });
});

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await attacker?.close();
  await web?.close();
  await fx?.close();
});

describe('Bull Board in a browser, behind the cross-site guard', () => {
  it('lets the admin promote the delayed jobs with the board\'s own button', async () => {
    await fx.queue.add('disk-check', { task: 'disk-check', target: 'main' }, { delay: 3_600_000 });
    const page = await context.newPage();
    await page.goto(`${web.url}${BOARD_PATH}/queue/caretaker?status=delayed`);
    await page.getByRole('button', { name: 'Promote all' }).click();
    const promoted = page.waitForResponse((r) => r.url().endsWith('/api/queues/caretaker/promote'));
    await page.getByRole('button', { name: 'Confirm' }).click();
    expect((await promoted).status()).toBe(200);
    expect(await fx.queue.getJobCounts('delayed', 'waiting')).toEqual({ delayed: 0, waiting: 1 });
    await page.close();
  });

  it.each([
    ['another site', `http://${ATTACKER_HOST}`],
    ['another port of the same host (same-site)', 'http://127.0.0.1'],
  ])('refuses a form that a page on %s submits to the board, and adds no job', async (_label, origin) => {
    const before = await fx.queue.getJobCounts();
    const page = await context.newPage();
    const answer = page.waitForResponse((r) => r.url().endsWith('/api/queues/caretaker/add'));
    await page.goto(`${origin}:${attacker.port}/`);
    const res = await answer;
    expect(res.status()).toBe(403);
    expect(await res.json()).toEqual({ error: 'forbidden: cross-site request refused (Sec-Fetch-Site is not same-origin)' });
    expect(await fx.queue.getJobCounts()).toEqual(before);
    await page.close();
  });
});
