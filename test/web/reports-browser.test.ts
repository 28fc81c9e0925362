/**
 * /reports in a real browser (Debian's chromium through playwright-core):
 * behind the login, the headline and the open findings on the page, and the
 * trend charts as images the browser actually decodes.
 */
import type { Browser } from 'playwright-core';
import { startWeb, type WebServer } from '../../src/web/server';
import { launchChromium } from './browser';
import { ADMIN, result, webFixture, type WebFixture } from './fixture';

let fx: WebFixture;
let web: WebServer;
let browser: Browser;

beforeAll(async () => {
  fx = await webFixture('reports');
  // Three weeks of disk-check history (a trend), and a critical finding open at the end of 2026-W46.
  for (const [finishedAt, size] of [['2026-11-03T03:00:00Z', 1_000_000], ['2026-11-10T03:00:00Z', 2_000_000], ['2026-11-12T03:00:00Z', 3_000_000]] as const) {
    await fx.store.save(result({ task: 'disk-check', status: 'ok', finishedAt, metrics: { database_size_bytes: size } }));
  }
  await fx.store.save(
    result({
      task: 'connections',
      status: 'critical',
      finishedAt: '2026-11-12T03:00:00Z',
      metrics: { connections_used: 95 },
      findings: [{ severity: 'critical', code: 'connections_high', subject: 'max_connections', message: '95 of 100 connections in use', suggestion: 'Put a pooler in front' }],
    }),
  );
  web = await startWeb({ ...fx.deps, config: { ...fx.deps.config, web: { ...fx.deps.config.web, port: 0 } } });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await web?.close();
  await fx?.close();
});

describe('/reports in a browser', () => {
  it('asks for a login', async () => {
    const res = await fetch(`${web.url}/reports/2026-W46`);
    expect(res.status).toBe(401);
  });

  it('shows the week\'s headline, the open finding and decoded trend charts', async () => {
    const context = await browser.newContext({ httpCredentials: { username: ADMIN.user, password: ADMIN.password } });
    const page = await context.newPage();
    const response = await page.goto(`${web.url}/reports/2026-W46`);
    expect(response?.status()).toBe(200);
    const text = await page.innerText('body');
    expect(text).toMatch(/2026-W46/);
    expect(text).toMatch(/1 critical/);
    expect(text).toContain('95 of 100 connections in use');
    expect(text).toContain('Put a pooler in front');
    // Every chart image decoded by the browser: a PNG with real pixels.
    const images = await page.$$eval('img', (imgs) => imgs.map((i) => ({ src: i.getAttribute('src')?.slice(0, 22), w: i.naturalWidth, h: i.naturalHeight })));
    expect(images.length).toBeGreaterThan(0);
    for (const img of images) {
      expect(img.src).toBe('data:image/png;base64,');
      expect(img.w).toBeGreaterThan(50);
      expect(img.h).toBeGreaterThan(20);
    }
    const shot = await page.screenshot({ fullPage: true });
    expect(shot.subarray(1, 4).toString('latin1')).toBe('PNG');
    expect(shot.length).toBeGreaterThan(10_000);
    await context.close();
  });

  it('answers 404 for a week that does not exist', async () => {
    const auth = `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString('base64')}`;
    const res = await fetch(`${web.url}/reports/2025-W53`, { headers: { authorization: auth } });
    expect(res.status).toBe(404);
  });
});
