/**
 * /health: open to probes, 200 when Redis and the state database answer,
 * 503 naming what is down and since when; why (the error texts) only with
 * `?detail`, to a viewer or admin, or to a loopback caller when auth is off.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { Pool } from 'pg';
import request from 'supertest';
import { createRedis } from '../../src/clients/redis';
import { createWebApp } from '../../src/web/server';
import { testConfig } from '../support/config';
import { testLogger } from '../support/logger';
import { ADMIN, VIEWER, webFixture, type WebFixture } from './fixture';

let fx: WebFixture;

const basic = (who: { user: string; password: string }) => `Basic ${Buffer.from(`${who.user}:${who.password}`).toString('base64')}`;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
/** A configured secret (the admin's password) quoted by a stored failure, as an SMTP server's 535 reply may. */
const ECHOED = `535 login refused for password ${ADMIN.password} via http://u:pw@hooks.example.com:8443/T0K3N/path?key=query-s3cret`;

beforeAll(async () => {
  fx = await webFixture('health');
});

afterAll(async () => {
  await fx.close();
});

beforeEach(async () => {
  await fx.db.pool.query('TRUNCATE caretaker.notifier_failures');
});

it('answers 200 without credentials when Redis and the state database are up', async () => {
  const res = await request(createWebApp(fx.deps)).get('/health');
  expect(res.status).toBe(200);
  expect(res.body).toEqual({ status: 'ok', checks: { redis: 'ok', state: 'ok' } });
  expect(res.headers['cache-control']).toBe('no-store');
});

it('answers 503 naming redis and since when, but not why, when caretaker\'s Redis client cannot connect; ?detail says why', async () => {
  // Nothing listens on port 1: the client keeps reconnecting, and a PING would wait forever.
  // disconnectTimeout: ioredis's disconnect() arms a 2 s timer to destroy a socket that is
  // already closed here, which would hold jest open past the run.
  const deadRedis = createRedis('redis://127.0.0.1:1', testLogger, { disconnectTimeout: 10 });
  try {
    const app = createWebApp({ ...fx.deps, redis: deadRedis });
    const res = await request(app).get('/health');
    expect(res.status).toBe(503);
    expect(res.body).toEqual({ status: 'down', checks: { redis: 'down', state: 'ok' }, since: { redis: expect.stringMatching(ISO) } });
    expect(res.text).not.toContain('not connected');

    // The same outage keeps its start; the detail names the cause.
    await new Promise((resolve) => setTimeout(resolve, 5));
    const detail = await request(app).get('/health?detail').set('Authorization', basic(VIEWER));
    expect(detail.status).toBe(503);
    expect(detail.body.since).toEqual(res.body.since);
    expect(detail.body.errors.redis).toMatch(/^not connected \(connection status "(connecting|reconnecting|connect)"\)$/);
  } finally {
    deadRedis.disconnect();
  }
});

it('answers 503 naming the state database when it refuses connections, without leaking the password, the cause only with ?detail', async () => {
  const deadState = new Pool({ connectionString: 'postgres://caretaker:s3cret-pw@127.0.0.1:1/state', connectionTimeoutMillis: 2_000 });
  try {
    const app = createWebApp({ ...fx.deps, state: deadState });
    const res = await request(app).get('/health');
    expect(res.status).toBe(503);
    expect(res.body).toEqual({ status: 'down', checks: { redis: 'ok', state: 'down' }, since: { state: expect.stringMatching(ISO) } });
    expect(res.text).not.toContain('ECONNREFUSED');

    const detail = await request(app).get('/health?detail').set('Authorization', basic(ADMIN));
    expect(detail.status).toBe(503);
    expect(detail.body.errors.state).toContain('ECONNREFUSED');
    expect(detail.text).not.toContain('s3cret-pw');
  } finally {
    await deadState.end();
  }
});

it('shows an alert channel\'s last failure (when) openly, and its error (cleaned) only to a viewer or admin with ?detail', async () => {
  await fx.db.pool.query(`INSERT INTO caretaker.notifier_failures (channel, error, failed_at) VALUES ('email', $1, '2026-03-02T10:00:00Z')`, [ECHOED]);
  const app = createWebApp(fx.deps);

  const open = await request(app).get('/health');
  expect(open.status).toBe(200);
  expect(open.body).toEqual({ status: 'ok', checks: { redis: 'ok', state: 'ok' }, notifiers: { email: { at: '2026-03-02T10:00:00.000Z' } } });

  for (const who of [VIEWER, ADMIN]) {
    const detail = await request(app).get('/health?detail').set('Authorization', basic(who));
    expect(detail.status).toBe(200);
    expect(detail.headers['cache-control']).toBe('no-store');
    // A row written before errors were cleaned is cleaned when shown: the configured password, the URL's credentials, path and query.
    expect(detail.body.notifiers).toEqual({ email: { at: '2026-03-02T10:00:00.000Z', error: '535 login refused for password *** via http://hooks.example.com:8443' } });
  }
});

it('answers ?detail 401 with a Basic challenge without credentials or with wrong ones, when auth is on', async () => {
  const app = createWebApp(fx.deps);
  const none = await request(app).get('/health?detail');
  expect(none.status).toBe(401);
  expect(none.headers['www-authenticate']).toBe('Basic realm="caretaker"');
  expect(none.body).toEqual({ error: 'authentication required' });
  const wrong = await request(app).get('/health?detail=1').set('Authorization', basic({ user: VIEWER.user, password: 'wrong' }));
  expect(wrong.status).toBe(401);
  // Credentials are not needed, nor looked at, without ?detail.
  expect((await request(app).get('/health').set('Authorization', basic({ user: VIEWER.user, password: 'wrong' }))).status).toBe(200);
});

describe('with auth off (loopback only)', () => {
  const noAuth = () => ({ ...fx.deps, config: testConfig({ dbUrl: fx.db.url, prefix: fx.prefix }) });

  it('answers ?detail to a loopback caller', async () => {
    await fx.db.pool.query(`INSERT INTO caretaker.notifier_failures (channel, error, failed_at) VALUES ('webhook', 'webhook http://127.0.0.1:9: HTTP 500', now())`);
    const res = await request(createWebApp(noAuth())).get('/health?detail');
    expect(res.status).toBe(200);
    expect(res.body.notifiers.webhook.error).toBe('webhook http://127.0.0.1:9: HTTP 500');
  });

  // A caller on another address: only reachable when this machine has a non-loopback interface to connect through.
  const external = Object.values(networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
  (external ? it : it.skip)('refuses ?detail (403) to a caller that is not on loopback, and still answers /health', async () => {
    const server = http.createServer(createWebApp(noAuth()));
    await new Promise<void>((resolve) => server.listen(0, external, resolve));
    try {
      const { port } = server.address() as AddressInfo;
      // Host names loopback, so the DNS-rebinding guard lets it through: the peer's address decides.
      const get = (path: string) =>
        new Promise<number>((resolve, reject) => {
          http.get({ host: external, port, path, agent: false, headers: { host: '127.0.0.1' } }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode!));
          }).on('error', reject);
        });
      expect(await get('/health?detail')).toBe(403);
      expect(await get('/health')).toBe(200);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
