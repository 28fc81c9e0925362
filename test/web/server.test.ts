/**
 * startWeb: refuses to expose an unauthenticated board, listens where
 * asked, closes cleanly; and the app's 500s carry no stack trace.
 */
import request from 'supertest';
import type { Config } from '../../src/config/schema';
import { UsageError } from '../../src/errors';
import { createWebApp, startWeb, type WebDeps } from '../../src/web/server';
import { isLoopbackHost } from '../../src/web/loopback';
import { createTestDatabase } from '../support/db';
import { captureLog } from '../support/log-capture';
import { ADMIN, WITH_AUTH, webFixture, type WebFixture } from './fixture';

function withWeb(deps: WebDeps, web: Partial<Config['web']>, log = deps.log): WebDeps {
  return { ...deps, log, config: { ...deps.config, web: { ...deps.config.web, ...web } } };
}

let open: WebFixture;
let secured: WebFixture;

beforeAll(async () => {
  open = await webFixture('server_open', {});
  secured = await webFixture('server_auth', WITH_AUTH);
});

afterAll(async () => {
  await open.close();
  await secured.close();
});

describe('isLoopbackHost', () => {
  it.each(['127.0.0.1', '127.1.2.3', 'localhost', 'LOCALHOST', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1'])('%s is loopback', (host) => {
    expect(isLoopbackHost(host)).toBe(true);
  });
  it.each(['0.0.0.0', '::', '10.0.0.5', '128.0.0.1', 'caretaker.example.com', 'localhost.example.com', '::ffff:10.0.0.1', ''])('%s is not', (host) => {
    expect(isLoopbackHost(host)).toBe(false);
  });
});

describe('without credentials', () => {
  it('refuses to bind a non-loopback host', async () => {
    const attempt = startWeb(withWeb(open.deps, { host: '0.0.0.0', port: 0 }));
    await expect(attempt).rejects.toBeInstanceOf(UsageError);
    await expect(attempt).rejects.toThrow(
      'web.host 0.0.0.0: refusing to serve without credentials; set web.auth.admin / CARETAKER_ADMIN or bind 127.0.0.1',
    );
    await expect(startWeb(withWeb(open.deps, { host: '::', port: 0 }))).rejects.toThrow('web.host ::: refusing to serve without credentials');
  });

  it('serves on 127.0.0.1 port 0, warns that auth is off, and closes', async () => {
    const { log, lines } = captureLog();
    const web = await startWeb(withWeb(open.deps, { host: '127.0.0.1', port: 0 }, log));
    try {
      expect(web.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const warning = lines().find((l) => l.level === 40);
      expect(warning?.msg).toBe('web: no credentials configured, serving without auth (everyone is admin) on loopback only');

      const health = await fetch(`${web.url}/health`);
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ status: 'ok', checks: { redis: 'ok', state: 'ok' } });
      // Everyone is admin: the writable board, no login asked.
      const queues = await fetch(`${web.url}/admin/queues/api/queues`);
      expect(queues.status).toBe(200);
      expect(((await queues.json()) as { queues: { readOnlyMode: boolean }[] }).queues[0]!.readOnlyMode).toBe(false);
    } finally {
      await web.close();
    }
    await web.close(); // a second close is harmless
    expect(web.server.listening).toBe(false);
  });
});

describe('with credentials', () => {
  it('binds 0.0.0.0 and asks for a login', async () => {
    const web = await startWeb(withWeb(secured.deps, { host: '0.0.0.0', port: 0 }));
    try {
      const port = new URL(web.url).port;
      const anonymous = await fetch(`http://127.0.0.1:${port}/admin/queues`);
      expect(anonymous.status).toBe(401);
      const admin = await fetch(`http://127.0.0.1:${port}/admin/queues`, {
        headers: { Authorization: `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString('base64')}` },
      });
      expect(admin.status).toBe(200);
    } finally {
      await web.close();
    }
  });

  it('reports a port in use as a UsageError', async () => {
    const first = await startWeb(withWeb(secured.deps, { host: '127.0.0.1', port: 0 }));
    try {
      const port = Number(new URL(first.url).port);
      const second = startWeb(withWeb(secured.deps, { host: '127.0.0.1', port }));
      await expect(second).rejects.toBeInstanceOf(UsageError);
      await expect(second).rejects.toThrow(`web: cannot listen on 127.0.0.1:${port}: EADDRINUSE`);
    } finally {
      await first.close();
    }
  });
});

describe('errors', () => {
  it('answers 500 with a fixed JSON body and logs the cause', async () => {
    // A state database without caretaker's schema: every metrics query fails.
    const bare = await createTestDatabase('web_unmigrated');
    const { log, lines } = captureLog();
    try {
      const res = await request(createWebApp({ ...secured.deps, state: bare.pool, log })).get('/metrics');
      expect(res.status).toBe(500);
      expect(res.body).toEqual({ error: 'internal error' });
      expect(res.text).not.toContain('at ');
      const logged = lines().find((l) => l.msg === 'request failed');
      expect(logged).toMatchObject({ level: 50, method: 'GET', path: '/metrics', err: 'relation "caretaker.runs" does not exist' });
    } finally {
      await bare.drop();
    }
  });

  it('answers 400 to a malformed JSON body on the board\'s API', async () => {
    const res = await request(createWebApp(secured.deps))
      .post('/admin/queues/api/queues/caretaker/add')
      .auth(ADMIN.user, ADMIN.password)
      .set('Content-Type', 'application/json')
      .send('{"name":');
    expect(res.status).toBe(400);
  });
});
