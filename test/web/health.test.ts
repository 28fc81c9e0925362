/** /health: open to probes, 200 when Redis and the state database answer, 503 naming what is down. */
import { Pool } from 'pg';
import request from 'supertest';
import { createRedis } from '../../src/clients/redis';
import { createWebApp } from '../../src/web/server';
import { testLogger } from '../support/logger';
import { webFixture, type WebFixture } from './fixture';

let fx: WebFixture;

beforeAll(async () => {
  fx = await webFixture('health');
});

afterAll(async () => {
  await fx.close();
});

it('answers 200 without credentials when Redis and the state database are up', async () => {
  const res = await request(createWebApp(fx.deps)).get('/health');
  expect(res.status).toBe(200);
  expect(res.body).toEqual({ status: 'ok', checks: { redis: 'ok', state: 'ok' } });
  expect(res.headers['cache-control']).toBe('no-store');
});

it('answers 503 naming redis when caretaker\'s Redis client cannot connect', async () => {
  // Nothing listens on port 1: the client keeps reconnecting, and a PING would wait forever.
  // disconnectTimeout: ioredis's disconnect() arms a 2 s timer to destroy a socket that is
  // already closed here, which would hold jest open past the run.
  const deadRedis = createRedis('redis://127.0.0.1:1', testLogger, { disconnectTimeout: 10 });
  try {
    const res = await request(createWebApp({ ...fx.deps, redis: deadRedis })).get('/health');
    expect(res.status).toBe(503);
    expect(res.body.status).toBe('down');
    expect(res.body.checks.state).toBe('ok');
    expect(res.body.checks.redis).toMatch(/^not connected \(connection status "(connecting|reconnecting|connect)"\)$/);
  } finally {
    deadRedis.disconnect();
  }
});

it('answers 503 naming the state database when it refuses connections, without leaking the password', async () => {
  const deadState = new Pool({ connectionString: 'postgres://caretaker:s3cret-pw@127.0.0.1:1/state', connectionTimeoutMillis: 2_000 });
  try {
    const res = await request(createWebApp({ ...fx.deps, state: deadState })).get('/health');
    expect(res.status).toBe(503);
    expect(res.body.status).toBe('down');
    expect(res.body.checks.redis).toBe('ok');
    expect(res.body.checks.state).toContain('ECONNREFUSED');
    expect(res.text).not.toContain('s3cret-pw');
  } finally {
    await deadState.end();
  }
});
