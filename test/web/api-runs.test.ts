/** /api/runs: the stored history behind a login, filtered by validated query params. */
import type express from 'express';
import request from 'supertest';
import type { StoredRun } from '../../src/results/store';
import { createWebApp } from '../../src/web/server';
import { ADMIN, VIEWER, result, webFixture, type WebFixture } from './fixture';

let fx: WebFixture;
let app: express.Express;

const T = Date.parse('2026-03-02T03:00:00Z');
const at = (hoursBefore: number) => new Date(T - hoursBefore * 3600_000).toISOString();

/** `task/target/status` of each run, as the API returns them (newest first). */
const ids = (runs: StoredRun[]) => runs.map((r) => `${r.task}/${r.target}/${r.status}`);

beforeAll(async () => {
  fx = await webFixture('api_runs');
  app = createWebApp(fx.deps);
  await fx.store.save(result({ task: 'connections', status: 'ok', finishedAt: at(72) }));
  await fx.store.save(result({ task: 'connections', status: 'warning', finishedAt: at(48) }));
  await fx.store.save(result({ task: 'index-audit', status: 'critical', finishedAt: at(24) }));
  await fx.store.save(result({ task: 'connections', target: 'replica', status: 'error', finishedAt: at(1) }));
});

afterAll(async () => {
  await fx.close();
});

const asViewer = (path: string) => request(app).get(path).auth(VIEWER.user, VIEWER.password);

it('requires a login', async () => {
  const res = await request(app).get('/api/runs');
  expect(res.status).toBe(401);
  expect(res.headers['www-authenticate']).toBe('Basic realm="caretaker"');
  expect((await request(app).get('/api/runs').auth(VIEWER.user, 'nope')).status).toBe(401);
});

it('lists every run, newest first, to the viewer and to the admin', async () => {
  const viewer = await asViewer('/api/runs');
  expect(viewer.status).toBe(200);
  expect(ids(viewer.body.runs)).toEqual(['connections/replica/error', 'index-audit/main/critical', 'connections/main/warning', 'connections/main/ok']);
  expect(viewer.body.runs[0]).toMatchObject({ task: 'connections', target: 'replica', status: 'error', finishedAt: at(1), skipped: false });
  expect(viewer.body.runs[0].result.summary).toBe('connections error');

  const admin = await request(app).get('/api/runs').auth(ADMIN.user, ADMIN.password);
  expect(admin.status).toBe(200);
  expect(admin.body.runs).toHaveLength(4);
});

it('filters by task, target, status, since and limit', async () => {
  expect(ids((await asViewer('/api/runs?task=connections')).body.runs)).toEqual([
    'connections/replica/error',
    'connections/main/warning',
    'connections/main/ok',
  ]);
  expect(ids((await asViewer('/api/runs?task=connections&target=main')).body.runs)).toEqual(['connections/main/warning', 'connections/main/ok']);
  expect(ids((await asViewer('/api/runs?status=critical')).body.runs)).toEqual(['index-audit/main/critical']);
  expect(ids((await asViewer(`/api/runs?since=${encodeURIComponent(at(30))}`)).body.runs)).toEqual([
    'connections/replica/error',
    'index-audit/main/critical',
  ]);
  expect(ids((await asViewer('/api/runs?since=2026-03-01')).body.runs)).toEqual(['connections/replica/error', 'index-audit/main/critical']);
  expect(ids((await asViewer('/api/runs?task=connections&status=ok&since=2026-02-01')).body.runs)).toEqual(['connections/main/ok']);
  expect(ids((await asViewer('/api/runs?limit=2')).body.runs)).toEqual(['connections/replica/error', 'index-audit/main/critical']);
});

it('answers 400 naming the bad parameter', async () => {
  const status = await asViewer('/api/runs?status=bogus');
  expect(status.status).toBe(400);
  expect(status.body.error).toBe('status: Invalid option: expected one of "ok"|"warning"|"critical"|"error"');

  const since = await asViewer('/api/runs?since=yesterday');
  expect(since.status).toBe(400);
  expect(since.body.error).toBe('since: must be an ISO 8601 date (2026-01-31) or date-time with a zone (2026-01-31T08:00:00Z)');

  // A date-time without a zone is ambiguous: refused too.
  expect((await asViewer('/api/runs?since=2026-03-01T00:00:00')).status).toBe(400);
  expect((await asViewer('/api/runs?limit=0')).body.error).toMatch(/^limit: /);
  expect((await asViewer('/api/runs?limit=1001')).body.error).toMatch(/^limit: /);
  expect((await asViewer('/api/runs?task=a&task=b')).body.error).toMatch(/^task: /);
  expect((await asViewer('/api/runs?state=error')).body).toEqual({ error: '(root): unknown key "state"' });
});

it('answers 404 as JSON for an unknown API path', async () => {
  const res = await asViewer('/api/nope');
  expect(res.status).toBe(404);
  expect(res.body).toEqual({ error: 'not found' });
});
