/**
 * /health and the background loops of its process: a loop that fails for
 * real (the worker's outbox flush, the missed-run check, their state
 * database refusing connections behind a proxy while the web role's own
 * connection is fine) makes the answer `degraded`, still 200, naming the
 * loop, when it failed and how often in a row; why only with `?detail`.
 * Once its database is back the loop's next round clears it. Each loop
 * runs on a short interval the test gives it, and the test waits for its
 * report, not for a clock.
 */
import { Pool } from 'pg';
import request from 'supertest';
import { TASKS } from '../../src/jobs';
import { Liveness } from '../../src/liveness/liveness';
import { BackgroundLoops } from '../../src/liveness/background';
import { ResultOutbox } from '../../src/results/outbox';
import { ResultStore } from '../../src/results/store';
import { startMissedRunWatch } from '../../src/schedules/missed-runs';
import { checkHealth } from '../../src/web/health';
import { startCaretaker } from '../../src/main';
import { createWebApp } from '../../src/web/server';
import { startWorker } from '../../src/worker/worker';
import type { TaskResult } from '../../src/contract/result';
import { testConfig } from '../support/config';
import { testLogger } from '../support/logger';
import { eventually } from '../support/jobs';
import { nextReport } from '../support/loops';
import { getJson } from '../support/processes';
import { deleteKeys, randomPrefix } from '../support/redis';
import { startWebhookReceiver } from '../support/webhook';
import { startStallingProxyToPostgres, type StallingProxy } from '../support/processes';
import { ADMIN, VIEWER, webFixture, type WebFixture } from './fixture';

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const basic = (who: { user: string; password: string }) => `Basic ${Buffer.from(`${who.user}:${who.password}`).toString('base64')}`;

let fx: WebFixture;
let proxy: StallingProxy;
/** The state database as the loops see it: through the proxy. */
let viaProxy: Pool;
let proxiedUrl: string;

beforeAll(async () => {
  fx = await webFixture('health_loops');
  proxy = await startStallingProxyToPostgres();
  const url = new URL(fx.db.url);
  url.port = String(proxy.port);
  proxiedUrl = url.toString();
  viaProxy = new Pool({ connectionString: proxiedUrl, connectionTimeoutMillis: 2_000 });
  viaProxy.on('error', () => undefined);
});

afterAll(async () => {
  await viaProxy?.end();
  await proxy?.close();
  await fx?.close();
});

afterEach(() => proxy.accept());

const stored = async (jobId: string) => (await fx.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM caretaker.runs WHERE job_id = $1', [jobId])).rows[0]!.n;

it('the worker\'s outbox flush failing: degraded and 200, the loop named openly, why with ?detail; ok again once it writes', async () => {
  const liveness = new Liveness();
  const app = createWebApp({ ...fx.deps, liveness });
  const worker = startWorker({
    config: fx.config,
    registry: TASKS,
    store: new ResultStore(viaProxy),
    state: fx.db.pool,
    redis: fx.redis,
    connection: fx.redis,
    log: testLogger,
    liveness,
    outboxFlushMs: 100,
  });
  try {
    // A result waiting in the outbox, and its database refusing: the flush fails.
    proxy.refuse();
    const now = new Date().toISOString();
    const result: TaskResult = { task: 'connections', target: 'main', status: 'ok', startedAt: now, finishedAt: now, durationMs: 1, dryRun: false, summary: 'fine', findings: [], actions: [], metrics: {} };
    const failing = nextReport(liveness.background, 'outbox flush', (s) => s.status === 'failing');
    await new ResultOutbox(fx.redis, fx.prefix).push(result, { jobId: 'waiting-1' });
    await failing;

    const open = await request(app).get('/health');
    expect(open.status).toBe(200);
    expect(open.body).toEqual({
      status: 'degraded',
      checks: { redis: 'ok', state: 'ok' },
      loops: { 'outbox flush': { status: 'failing', lastSuccessAt: expect.stringMatching(ISO), lastFailureAt: expect.stringMatching(ISO), consecutiveFailures: expect.any(Number) } },
    });
    expect(open.body.loops['outbox flush'].consecutiveFailures).toBeGreaterThanOrEqual(1);

    const detail = await request(app).get('/health?detail').set('Authorization', basic(VIEWER));
    expect(detail.status).toBe(200);
    expect(detail.body.loops['outbox flush']).toMatchObject({ status: 'failing', error: expect.any(String) });
    expect(detail.body.loops['outbox flush'].error).not.toMatch(/[\r\n]/);

    // The database takes connections again: the next round writes the result and clears the failing state.
    const recovered = nextReport(liveness.background, 'outbox flush', (s) => s.status === 'ok');
    proxy.accept();
    await recovered;
    expect(await stored('waiting-1')).toBe(1);
    const after = await request(app).get('/health');
    expect(after.status).toBe(200);
    expect(after.body).toEqual({
      status: 'ok',
      checks: { redis: 'ok', state: 'ok' },
      loops: { 'outbox flush': { status: 'ok', lastSuccessAt: expect.stringMatching(ISO), lastFailureAt: expect.stringMatching(ISO), consecutiveFailures: 0 } },
    });
  } finally {
    await worker.close(2_000);
  }
});

it('the missed-run check failing: degraded and 200 the same; a backend this replica cannot reach still makes it down (503)', async () => {
  const liveness = new Liveness();
  const app = createWebApp({ ...fx.deps, liveness });
  proxy.refuse();
  const failing = nextReport(liveness.background, 'missed-run check', (s) => s.status === 'failing');
  const watch = startMissedRunWatch({
    // Due every minute with no grace: each check reads the history.
    entries: [{ id: 'fast:connections:main', schedule: 'fast', task: 'connections', target: 'main', cron: '* * * * *', timezone: 'UTC', graceSeconds: 0 }],
    state: viaProxy,
    queue: fx.queue,
    jobOpts: {},
    log: testLogger,
    intervalMs: 100,
    onChecked: liveness.loop('missed-run check', 60_000),
  });
  watch.initial.catch(() => undefined);
  try {
    await failing;
    const open = await request(app).get('/health');
    expect(open.status).toBe(200);
    expect(open.body.status).toBe('degraded');
    expect(open.body.loops['missed-run check']).toEqual({ status: 'failing', lastFailureAt: expect.stringMatching(ISO), consecutiveFailures: expect.any(Number) });

    // Down wins over degraded: the web role's own state database refusing is a 503.
    const down = await request(createWebApp({ ...fx.deps, state: viaProxy, liveness })).get('/health');
    expect(down.status).toBe(503);
    expect(down.body).toMatchObject({ status: 'down', checks: { redis: 'ok', state: 'down' }, loops: { 'missed-run check': { status: 'failing' } } });

    const recovered = nextReport(liveness.background, 'missed-run check', (s) => s.status === 'ok');
    proxy.accept();
    await recovered;
    const after = await request(app).get('/health');
    expect(after.status).toBe(200);
    expect(after.body.status).toBe('ok');
    expect(after.body.loops['missed-run check']).toMatchObject({ status: 'ok', consecutiveFailures: 0 });
  } finally {
    await watch.close();
  }
});

it('scrubs every configured secret from a loop\'s reason, and shows none without ?detail', async () => {
  const loops = new BackgroundLoops();
  loops.report('alert sweep', { ok: false, error: new Error(`535 login refused for password ${ADMIN.password}`) });
  const open = await checkHealth({ redis: fx.redis, state: fx.db.pool, loops }, { secrets: [ADMIN.password] });
  expect(open.loops).toEqual({ 'alert sweep': { status: 'failing', lastFailureAt: expect.stringMatching(ISO), consecutiveFailures: 1 } });
  const detail = await checkHealth({ redis: fx.redis, state: fx.db.pool, loops }, { secrets: [ADMIN.password], detail: true });
  expect(detail.loops?.['alert sweep']?.error).toBe('535 login refused for password ***');
});

it('shows no loops section when its process runs none', async () => {
  const res = await request(createWebApp({ ...fx.deps, liveness: new Liveness() })).get('/health');
  expect(res.body).toEqual({ status: 'ok', checks: { redis: 'ok', state: 'ok' } });
});

it('caretaker with every role in one process: /health lists its four loops, each on the interval its composer gave', async () => {
  const prefix = randomPrefix('health_loops_all');
  const receiver = await startWebhookReceiver();
  const liveness = new Liveness();
  const loops = ['outbox flush', 'job scheduler re-sync', 'missed-run check', 'alert sweep'];
  // Every loop's second round: the first of some comes at start, the second only on its short interval.
  const rounds = loops.map((loop) => {
    let seen = 0;
    return nextReport(liveness.background, loop, () => ++seen === 2);
  });
  const caretaker = await startCaretaker({
    config: testConfig({ dbUrl: fx.db.url, prefix, web: { port: 0 }, notifications: { webhook: { url: receiver.url } } }),
    roles: ['scheduler', 'worker', 'web'],
    log: testLogger,
    liveness,
    outboxFlushMs: 50,
    resyncMs: 50,
    missedRunIntervalMs: 50,
    sweepIntervalMs: 50,
  });
  try {
    await Promise.all(rounds);
    const res = await getJson(`${caretaker.webUrl}/health`);
    expect(res?.status).toBe(200);
    const body = res?.body as { status: string; loops: Record<string, { status: string }> };
    expect(body.status).toBe('ok');
    expect(Object.keys(body.loops).sort()).toEqual([...loops].sort());
    for (const loop of loops) expect(body.loops[loop]).toEqual({ status: 'ok', lastSuccessAt: expect.stringMatching(ISO), consecutiveFailures: 0 });
  } finally {
    await caretaker.stop();
    await receiver.close();
    await deleteKeys(prefix);
  }
});

it('a worker in another process: its failing outbox flush reaches this web role through Redis, named by process with ?detail; gone once it stops', async () => {
  // The web role here, with a process of its own; the worker's caretaker is another (its own Liveness and name).
  const app = createWebApp({ ...fx.deps, liveness: new Liveness() });
  const workerLiveness = new Liveness();
  const worker = await startCaretaker({
    config: testConfig({ dbUrl: fx.db.url, prefix: fx.prefix, state: { url: proxiedUrl } }),
    roles: ['worker'],
    log: testLogger,
    liveness: workerLiveness,
    outboxFlushMs: 100,
  });
  const health = async () => (await request(app).get('/health')).body as { status: string; loops?: Record<string, { status: string }> };
  try {
    proxy.refuse();
    const now = new Date().toISOString();
    const result: TaskResult = { task: 'connections', target: 'main', status: 'ok', startedAt: now, finishedAt: now, durationMs: 1, dryRun: false, summary: 'fine', findings: [], actions: [], metrics: {} };
    await new ResultOutbox(fx.redis, fx.prefix).push(result, { jobId: 'waiting-elsewhere' });

    const degraded = await eventually(async () => {
      const body = await health();
      return body.status === 'degraded' ? body : undefined;
    }, 15_000, '/health to show the other process\'s loop failing');
    expect(degraded).toEqual({
      status: 'degraded',
      checks: { redis: 'ok', state: 'ok' },
      loops: { 'outbox flush': { status: 'failing', lastSuccessAt: expect.stringMatching(ISO), lastFailureAt: expect.stringMatching(ISO), consecutiveFailures: expect.any(Number) } },
    });
    const detail = await request(app).get('/health?detail').set('Authorization', basic(VIEWER));
    expect(Object.keys(detail.body.loops['outbox flush'].processes)).toEqual([workerLiveness.processName]);
    expect(detail.body.loops['outbox flush'].processes[workerLiveness.processName]).toMatchObject({ status: 'failing', error: expect.any(String) });

    proxy.accept();
    await eventually(async () => ((await health()).status === 'ok' ? true : undefined), 15_000, '/health to show the loop working again');
    expect(await stored('waiting-elsewhere')).toBe(1);
  } finally {
    await worker.stop();
  }
  // A clean stop withdraws its loops at once: nothing is left to show.
  expect(await health()).toEqual({ status: 'ok', checks: { redis: 'ok', state: 'ok' } });
});
