/**
 * The console in a real browser (Debian's chromium through playwright-core)
 * against a real `caretaker start`: a web process and a worker process on
 * the test's own database and queue prefix, with a history planted in the
 * state database (test/support/status-fleet.ts) and one real critical run
 * (connections with thresholds every server exceeds). What an operator
 * opening it at 3 a.m. must see: critical, late, missed and never-ran rows
 * as such, the findings filter, the board's job name, run now for the admin
 * only, and no request leaving for another host.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page, Request } from 'playwright-core';
import { stringify } from 'yaml';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { createRedis } from '../../src/clients/redis';
import { createQueue, enqueueNow, type JobData } from '../../src/queue/queue';
import { migrate } from '../../src/results/migrate';
import { BOARD_PATH, RUN_NOW_PATH, checkPath } from '../../src/web/paths';
import { testConfig } from '../support/config';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { TEST_REDIS_URL } from '../support/env';
import { eventually } from '../support/jobs';
import { testLogger } from '../support/logger';
import { freePort } from '../support/ports';
import { spawnCaretaker, type CaretakerProcess } from '../support/processes';
import { startServer, type TestServer } from '../support/prometheus';
import { deleteKeys, randomPrefix } from '../support/redis';
import { plantFleet } from '../support/status-fleet';
import { launchChromium } from './browser';
import { ADMIN, VIEWER } from './fixture';

/** A host name the browser resolves to loopback: a site other than the console's. */
const ATTACKER_HOST = 'attacker.test';

let db: TestDatabase;
let dir: string;
let prefix: string;
let base: string;
let redis: Redis;
let queue: Queue<JobData>;
let web: CaretakerProcess;
let worker: CaretakerProcess;
let attacker: TestServer;
let browser: Browser;
let admin: BrowserContext;
let viewer: BrowserContext;
/** Every request a page made, and those that reached the network (CSP-blocked ones never do). */
const made: string[] = [];
const leftTheBrowser: string[] = [];

async function recordRequests(context: BrowserContext): Promise<void> {
  context.on('request', (r: Request) => made.push(r.url()));
  await context.route('**/*', async (route) => {
    leftTheBrowser.push(route.request().url());
    await route.continue();
  });
}

beforeAll(async () => {
  db = await createTestDatabase('console_browser');
  await migrate(db.pool);
  prefix = randomPrefix('console_browser');
  dir = mkdtempSync(join(tmpdir(), 'ct-console-'));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const configPath = join(dir, 'caretaker.yaml');
  writeFileSync(
    configPath,
    stringify({
      redis: { url: TEST_REDIS_URL, prefix },
      state: { url: db.url },
      targets: { postgres: [{ name: 'main', url: db.url }] },
      web: { host: '127.0.0.1', port, auth: { admin: `${ADMIN.user}:${ADMIN.password}`, viewer: `${VIEWER.user}:${VIEWER.password}` } },
      worker: { attempts: 1 },
      // Every server has a session in use: the run is critical, for real.
      tasks: { connections: { warning: 0.001, critical: 0.002 } },
    }),
  );
  const config = testConfig({ dbUrl: db.url, prefix });
  await plantFleet(db.pool, config);

  web = spawnCaretaker(['--config', configPath, 'start', '--role', 'web']);
  worker = spawnCaretaker(['--config', configPath, 'start', '--role', 'worker']);
  await Promise.all([web.waitForLog('web listening'), worker.waitForLog('worker started')]);

  redis = createRedis(TEST_REDIS_URL, testLogger);
  queue = createQueue(redis, prefix);
  const jobId = await enqueueNow(queue, config.worker, { task: 'connections', target: 'main' });
  await eventually(async () => (await db.pool.query(`SELECT 1 FROM caretaker.runs WHERE job_id = $1`, [jobId])).rowCount || undefined, 30_000, 'the connections run to be stored');

  attacker = await startServer((_req, res) => {
    res.setHeader('Content-Type', 'text/html');
    res.end(
      `<!DOCTYPE html><html><body><form method="POST" action="${base}${RUN_NOW_PATH}">` +
        `<input name="task" value="connections"><input name="target" value="main"></form><script>document.forms[0].submit()</script></body></html>`,
    );
  });
  browser = await launchChromium([`--host-resolver-rules=MAP ${ATTACKER_HOST} 127.0.0.1`]);
  admin = await browser.newContext({ httpCredentials: { username: ADMIN.user, password: ADMIN.password } });
  viewer = await browser.newContext({ httpCredentials: { username: VIEWER.user, password: VIEWER.password }, viewport: { width: 390, height: 844 } });
  await recordRequests(admin);
  await recordRequests(viewer);
}, 90_000);

afterAll(async () => {
  await admin?.close();
  await viewer?.close();
  await browser?.close();
  await attacker?.close();
  await web?.stop();
  await worker?.stop();
  await queue?.close();
  redis?.disconnect();
  await db?.drop();
  await deleteKeys(prefix);
  rmSync(dir, { recursive: true, force: true });
});

/** Jobs added to the queue so far, in whatever state each is now. */
async function jobsAdded(): Promise<number> {
  return queue.getJobCountByTypes('waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized');
}

/** The word a row's status badge says. */
async function stateOf(page: Page, id: string): Promise<string> {
  return (await page.locator(`tr[data-check="${id}"] td[data-label="status"] .badge`).textContent()) ?? '';
}

describe('the console in a browser', () => {
  it('shows the critical run, a late, a missed and a never-ran check as such', async () => {
    const page = await admin.newPage();
    const res = await page.goto(`${base}/`);
    expect(res?.status()).toBe(200);
    expect(await stateOf(page, 'daily:connections:main')).toBe('critical');
    expect(await stateOf(page, 'daily:pg-health:main')).toBe('late');
    expect(await stateOf(page, 'daily:vacuum-analyze:main')).toBe('missed');
    expect(await stateOf(page, 'weekly:slow-queries:main')).toBe('never ran');
    expect(await stateOf(page, 'weekly:index-audit:main')).toBe('critical');
    // The worst target's worst rows come first.
    const first = await page.locator('tr.check').first().getAttribute('data-check');
    expect(['daily:connections:main', 'weekly:index-audit:main']).toContain(first);
    await page.close();
  });

  it('filters the open findings by severity, and the filter is in the address (a bookmark)', async () => {
    const page = await admin.newPage();
    await page.goto(`${base}/`);
    const severities = () => page.locator('table.findings td[data-label="severity"] .badge').allTextContents();
    expect(await severities()).toEqual(expect.arrayContaining(['critical', 'warning']));
    // The page's script submits the form on change.
    await Promise.all([page.waitForURL(/severity=critical/), page.selectOption('select[name="severity"]', 'critical')]);
    expect(new Set(await severities())).toEqual(new Set(['critical']));
    const codes = await page.locator('table.findings td[data-label="finding"] b').allTextContents();
    expect(codes).toEqual(expect.arrayContaining(['connections_high', 'invalid_index']));
    await page.close();
  });

  it('names the critical job in the board by its outcome', async () => {
    const page = await admin.newPage();
    await page.goto(`${base}${BOARD_PATH}/queue/caretaker?status=completed`);
    await page.getByText('connections · main · CRITICAL').first().waitFor({ timeout: 15_000 });
    await page.close();
  });

  it('runs a task now for the admin (a dry run unless unticked, for a task that changes things), and says the job is queued', async () => {
    const before = await jobsAdded();
    const page = await admin.newPage();
    const runNow = async (): Promise<JobData | undefined> => {
      await page.goto(`${base}${checkPath('connections', 'main')}`);
      await Promise.all([page.waitForURL(/enqueued=/), page.getByRole('button', { name: 'Run now' }).click()]);
      expect(await page.locator('.banner.done').textContent()).toMatch(/^Queued: job \S+/);
      return (await queue.getJob(new URL(page.url()).searchParams.get('enqueued')!))?.data;
    };
    expect(await runNow()).toEqual({ task: 'connections', target: 'main', schedule: 'manual', dryRun: true });
    await page.goto(`${base}${checkPath('connections', 'main')}`);
    await page.getByLabel(/dry run/).uncheck();
    await Promise.all([page.waitForURL(/enqueued=/), page.getByRole('button', { name: 'Run now' }).click()]);
    expect((await queue.getJob(new URL(page.url()).searchParams.get('enqueued')!))?.data).toEqual({ task: 'connections', target: 'main', schedule: 'manual' });
    expect(await jobsAdded()).toBe(before + 2);
    await page.close();
  });

  it('refuses run now to the viewer (403) and offers no button', async () => {
    const page = await viewer.newPage();
    await page.goto(`${base}${checkPath('connections', 'main')}`);
    expect(await page.getByRole('button', { name: 'Run now' }).count()).toBe(0);
    expect(await page.getByText('Run now needs the admin login').count()).toBe(1);
    const status = await page.evaluate(async (path) => {
      const res = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'task=connections&target=main' });
      return res.status;
    }, RUN_NOW_PATH);
    expect(status).toBe(403);
    await page.close();
  });

  it('refuses a run-now form that another site submits (403), and queues nothing', async () => {
    // Every job ever added, whatever state the worker has moved it to since.
    const before = await jobsAdded();
    const page = await admin.newPage();
    const answer = page.waitForResponse((r) => r.url().endsWith(RUN_NOW_PATH));
    await page.goto(`http://${ATTACKER_HOST}:${attacker.port}/`);
    expect((await answer).status()).toBe(403);
    expect(await jobsAdded()).toBe(before);
    await page.close();
  });

  it("silences a finding from its Silence… link: the form comes filled in, the finding then reads silenced by the admin, and Expire ends it", async () => {
    const page = await admin.newPage();
    await page.goto(`${base}/`);
    const disk = page.locator('tr.finding', { hasText: 'disk_usage_high' });
    await Promise.all([page.waitForURL(/\/silences\?/), disk.getByRole('link', { name: 'Silence…' }).click()]);
    expect(await page.getByLabel('task').inputValue()).toBe('disk-check');
    expect(await page.getByLabel('subject').inputValue()).toBe('/var/lib/postgresql');
    await page.getByLabel('for').fill('30m');
    await page.getByLabel('reason').fill('resizing the volume');
    await Promise.all([page.waitForURL(/added=/), page.getByRole('button', { name: 'Add silence' }).click()]);
    const id = new URL(page.url()).searchParams.get('added')!;
    expect(await page.locator(`tr[data-silence="${id}"] td[data-label="state"]`).textContent()).toBe('active');

    await page.goto(`${base}/`);
    expect(await page.locator('tr.finding', { hasText: 'disk_usage_high' }).locator('.silenced').textContent()).toMatch(/^silenced by admin until .* \(in (30|29) min( \d+ s)?\): resizing the volume$/);

    await page.goto(`${base}/silences`);
    await Promise.all([page.waitForURL(/expired=/), page.locator(`tr[data-silence="${id}"]`).getByRole('button', { name: 'Expire' }).click()]);
    expect(await page.locator(`tr[data-silence="${id}"] td[data-label="state"]`).textContent()).toBe('expired');
    await page.goto(`${base}/`);
    expect(await page.locator('tr.finding', { hasText: 'disk_usage_high' }).locator('.silenced').count()).toBe(0);
    await page.close();
  });

  it('stacks the grid into labelled cards on a phone', async () => {
    const page = await viewer.newPage();
    await page.goto(`${base}/`);
    const cell = page.locator('tr[data-check="daily:connections:main"] td[data-label="status"]');
    // Evaluated in the page, where the DOM is (this file is compiled without DOM types).
    type PageWindow = { getComputedStyle(e: unknown): { display: string } };
    expect(await cell.evaluate((td) => (globalThis as unknown as PageWindow).getComputedStyle(td).display)).toBe('block');
    const width = await page.evaluate('document.documentElement.scrollWidth');
    expect(width).toBeLessThanOrEqual(390);
    await page.close();
  });

  it('made no request to another host: the board\'s Google Fonts link was blocked by the policy, before the network', async () => {
    // Its own pages, so it holds alone too: the console, a check, the board.
    const page = await admin.newPage();
    for (const path of ['/', checkPath('connections', 'main'), `${BOARD_PATH}/queue/caretaker?status=completed`]) await page.goto(`${base}${path}`, { waitUntil: 'networkidle' });
    await page.close();
    const local = (url: string) => url.startsWith(`${base}/`) || url.startsWith(`http://${ATTACKER_HOST}:${attacker.port}/`);
    expect(made.length).toBeGreaterThan(10);
    expect(leftTheBrowser.filter((u) => !local(u))).toEqual([]);
    // The board does link a font host: the policy is what kept it in.
    expect(made.some((u) => u.startsWith('https://fonts.googleapis.com/'))).toBe(true);
  });
});
