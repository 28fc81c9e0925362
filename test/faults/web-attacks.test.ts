/**
 * Issue #7, bad input, the web part: what an attacker who reaches the web
 * port can try. Every route that needs a login refuses without one; the
 * viewer cannot change the queue through any of bull-board's routes; a
 * page on another site cannot make a logged-in browser change it; failed
 * logins are throttled per client address; hostile text stored in results
 * or sent in a path comes back escaped, never as markup.
 */
import http from 'node:http';
import express from 'express';
import request from 'supertest';
import { appRoutes } from '@bull-board/api/dist/routes.js';
import type { TaskResult } from '../../src/contract/result';
import { lastCompleteWeek } from '../../src/reports/week';
import { BOARD_PATH, RUN_NOW_PATH, checkPath } from '../../src/web/paths';
import { createWebApp, startWeb, type WebServer } from '../../src/web/server';
import { ADMIN, VIEWER, runOneFailedOneCompleted, webFixture, type WebFixture } from '../web/fixture';
import { captureLog } from '../support/log-capture';

const QUEUE = 'caretaker';
const API = `${BOARD_PATH}/api/queues/${QUEUE}`;
const SCHEDULER_ID = 'daily:connections:main';
const HOST = 'caretaker.example.com';

let fx: WebFixture;
/** The app with a throttle budget large enough for the many refused logins below. */
let app: express.Express;
let failedId: string;
let completedId: string;

/**
 * Everything a board action could change: each job's state, name, data and
 * priority, the schedulers, pause, concurrency and rate limit. Equal
 * before and after means the request changed nothing.
 */
async function queueState(): Promise<unknown> {
  const q = fx.queue;
  const jobs = await q.getJobs(['waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized', 'waiting-children'], 0, -1, true);
  const described = await Promise.all(jobs.map(async (j) => ({ id: j.id, state: await j.getState(), name: j.name, data: j.data, priority: j.priority, delay: j.delay })));
  return {
    jobs: described.sort((a, b) => String(a.id).localeCompare(String(b.id))),
    counts: await q.getJobCounts(),
    paused: await q.isPaused(),
    schedulers: (await q.getJobSchedulers()).map((s) => [s.key, s.pattern, s.tz]),
    concurrency: await q.getGlobalConcurrency(),
    rateLimit: await q.getGlobalRateLimit(),
    rateLimitTtl: await q.getRateLimitTtl(),
  };
}

/** A path of bull-board's with its parameters filled in for caretaker's queue and jobs. */
function fill(route: string): string {
  return `${BOARD_PATH}${route}`
    .replace(':queueName', QUEUE)
    .replace(':jobId', failedId)
    .replace(':queueStatus', 'failed')
    .replace(':schedulerId', encodeURIComponent(SCHEDULER_ID));
}

/** A body that every write route of bull-board would accept (each reads only its own fields). */
const ANY_BODY = { name: 'connections', data: { task: 'connections', target: 'main' }, options: {}, concurrency: 1, max: 1, duration: 1000, delay: 60_000, priority: 5, pattern: '* * * * *' };

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';
/** Every API route of the board, as bull-board itself lists them. */
const BOARD_ROUTES: { method: Method; route: string }[] = appRoutes.api.flatMap((r) => (Array.isArray(r.route) ? r.route : [r.route]).map((route) => ({ method: r.method as Method, route })));
const WRITE_ROUTES = BOARD_ROUTES.filter((r) => r.method !== 'get');
const READ_ROUTES = BOARD_ROUTES.filter((r) => r.method === 'get');
const PAGE_ROUTES = (Array.isArray(appRoutes.entryPoint.route) ? appRoutes.entryPoint.route : [appRoutes.entryPoint.route]).map(fill);

function send(target: express.Express, method: Method, path: string): request.Test {
  const req = request(target)[method](path);
  return method === 'get' ? req : req.send(ANY_BODY);
}

beforeAll(async () => {
  fx = await webFixture('web_attacks');
  app = createWebApp({ ...fx.deps, loginThrottle: { maxFailures: 100_000 } });
  await fx.queue.upsertJobScheduler(SCHEDULER_ID, { pattern: '0 3 * * *', tz: 'UTC' }, { name: 'connections', data: { task: 'connections', target: 'main' } });
  ({ failedId, completedId } = await runOneFailedOneCompleted(fx));
  await fx.queue.add('disk-check', { task: 'disk-check', target: 'main' }, { timestamp: Date.now() - 60_000 });
  await fx.queue.add('vacuum', { task: 'vacuum', target: 'main' }, { delay: 3_600_000 });
});

afterAll(async () => {
  await fx.close();
});

describe('bull-board\'s route list', () => {
  it('has the write routes this file relies on, so a renamed import cannot test nothing', () => {
    const writes = WRITE_ROUTES.map((r) => `${r.method} ${r.route}`);
    for (const expected of [
      'post /api/queues/:queueName/add',
      'put /api/queues/:queueName/retry/:queueStatus',
      'put /api/queues/:queueName/clean/:queueStatus',
      'put /api/queues/:queueName/promote',
      'put /api/queues/:queueName/pause',
      'put /api/queues/:queueName/resume',
      'put /api/queues/pause',
      'put /api/queues/resume',
      'put /api/queues/:queueName/empty',
      'put /api/queues/:queueName/obliterate',
      'put /api/queues/:queueName/:jobId/retry',
      'put /api/queues/:queueName/:jobId/clean',
      'put /api/queues/:queueName/:jobId/promote',
      'patch /api/queues/:queueName/:jobId/update-data',
      'put /api/queues/:queueName/job-schedulers/:schedulerId/run',
      'put /api/queues/:queueName/job-schedulers/:schedulerId/remove',
      'patch /api/queues/:queueName/job-schedulers/:schedulerId',
    ]) {
      expect(writes).toContain(expected);
    }
  });
});

describe('every route that needs a login', () => {
  const OURS = ['/api/runs', '/api/runs?status=ok', '/reports', '/reports/2026-W46', '/reports/1999-W99', `${BOARD_PATH}/static/images/logo.svg`];

  it('answers 401 without credentials and with a wrong password, and nothing changes', async () => {
    const before = await queueState();
    const tried: string[] = [];
    const all: { method: Method; path: string }[] = [
      ...OURS.map((path) => ({ method: 'get' as const, path })),
      ...PAGE_ROUTES.map((path) => ({ method: 'get' as const, path })),
      ...BOARD_ROUTES.map((r) => ({ method: r.method, path: fill(r.route) })),
    ];
    for (const { method, path } of all) {
      const anonymous = await send(app, method, path);
      const wrong = await send(app, method, path).auth(ADMIN.user, `${ADMIN.password}x`);
      const viewerAsAdmin = await send(app, method, path).auth(ADMIN.user, VIEWER.password);
      for (const res of [anonymous, wrong, viewerAsAdmin]) {
        if (res.status !== 401 || res.headers['www-authenticate'] !== 'Basic realm="caretaker"') tried.push(`${method} ${path}: ${res.status}`);
      }
    }
    expect(tried).toEqual([]);
    expect(all.length).toBeGreaterThan(40);
    expect(await queueState()).toEqual(before);
  });

  it('leaves /health and /metrics open', async () => {
    expect((await request(app).get('/health')).status).toBe(200);
    const metrics = await request(app).get('/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.text).toContain('caretaker_runs_total');
  });
});

describe('the viewer on every write route of the board', () => {
  it('gets 403 on each, and nothing changes', async () => {
    const before = await queueState();
    const answers: string[] = [];
    for (const { method, route } of WRITE_ROUTES) {
      const res = await send(app, method, fill(route)).auth(VIEWER.user, VIEWER.password);
      answers.push(`${method} ${route}: ${res.status} ${res.body.error}`);
    }
    expect(answers).toEqual(WRITE_ROUTES.map(({ method, route }) => `${method} ${route}: 403 forbidden: the viewer is read-only`));
    expect(await queueState()).toEqual(before);
    expect(await fx.queue.getJobState(failedId)).toBe('failed');
  });

  it('still reads every read route', async () => {
    for (const { route } of READ_ROUTES) {
      const res = await request(app).get(fill(route)).auth(VIEWER.user, VIEWER.password);
      expect([route, res.status < 400 || res.status === 404]).toEqual([route, true]);
    }
  });
});

describe('a cross-site request with the admin\'s credentials', () => {
  /** Headers a browser sends on a form POST or fetch that another site's page starts. */
  const CROSS_SITE: [string, Record<string, string>][] = [
    ['Sec-Fetch-Site cross-site', { 'Sec-Fetch-Site': 'cross-site', Origin: 'https://evil.example' }],
    ['Sec-Fetch-Site same-site (a sibling subdomain)', { 'Sec-Fetch-Site': 'same-site', Origin: `https://evil.${HOST}` }],
    ['a foreign Origin (a browser without Sec-Fetch-Site)', { Origin: 'https://evil.example' }],
    ['Origin null (a sandboxed frame)', { Origin: 'null' }],
    ['a foreign Referer and no Origin', { Referer: 'https://evil.example/attack.html' }],
    ['the same host on another port', { Origin: `http://${HOST}:8080` }],
  ];

  it.each(CROSS_SITE)('is refused with 403 on every write route when it carries %s, and nothing changes', async (_label, headers) => {
    const before = await queueState();
    for (const { method, route } of WRITE_ROUTES) {
      const res = await send(app, method, fill(route)).set('Host', HOST).set(headers).auth(ADMIN.user, ADMIN.password);
      expect([method, route, res.status, res.type]).toEqual([method, route, 403, 'application/json']);
      expect(res.body.error).toMatch(/^forbidden: cross-site request refused \((Sec-Fetch-Site is not same-origin|Origin is another site|Referer is another site)\)$/);
    }
    expect(await queueState()).toEqual(before);
    expect(await fx.queue.getJobState(failedId)).toBe('failed');
    expect(await fx.queue.getJobCounts('waiting')).toEqual({ waiting: 1 });
  });

  it('may still read: a link from another site opens the board', async () => {
    const res = await request(app).get(BOARD_PATH).set({ 'Sec-Fetch-Site': 'cross-site', Origin: 'https://evil.example' }).auth(ADMIN.user, ADMIN.password);
    expect(res.status).toBe(200);
  });
});

describe('DNS rebinding against an instance without credentials (loopback only, everyone is admin)', () => {
  /** The same fixture's deps with auth off, as `caretaker start` on the local defaults serves. */
  const open = (publicUrl?: string) => createWebApp({ ...fx.deps, config: { ...fx.config, web: { ...fx.config.web, auth: {}, ...(publicUrl ? { publicUrl } : {}) } } });

  it('refuses every route, writes and reads, when Host names another site (the rebound name), and nothing changes', async () => {
    const target = open();
    const before = await queueState();
    for (const { method, route } of [...WRITE_ROUTES, ...READ_ROUTES]) {
      // Same-origin as far as the browser knows: the page and its requests are all on rebind.example.
      const res = await send(target, method, `${BOARD_PATH}${fill(route)}`).set('Host', 'rebind.example').set('Sec-Fetch-Site', 'same-origin');
      expect([method, route, res.status]).toEqual([method, route, 421]);
      expect(res.text).not.toContain('rebind.example');
    }
    for (const path of ['/', '/api/runs', '/reports', RUN_NOW_PATH]) expect((await request(target).get(path).set('Host', 'rebind.example:3000')).status).toBe(421);
    expect(await queueState()).toEqual(before);
  });

  it.each(['127.0.0.1:3000', 'localhost:3000', 'LOCALHOST', '[::1]:3000', 'caretaker.example.com'])('still answers Host %s', async (host) => {
    const res = await request(open('https://caretaker.example.com')).get('/api/runs').set('Host', host);
    expect(res.status).toBe(200);
  });

  it('leaves Host alone once credentials are configured (the login stands in the way)', async () => {
    const res = await request(app).get('/api/runs').set('Host', 'rebind.example').auth(VIEWER.user, VIEWER.password);
    expect(res.status).toBe(200);
  });
});

describe('the board\'s own page (same origin) and scripts (no origin) can still write', () => {
  it('retries the failed job with the Origin of the same host', async () => {
    const res = await request(app).put(`${API}/${failedId}/retry`).set({ Host: HOST, Origin: `https://${HOST}` }).auth(ADMIN.user, ADMIN.password);
    expect(res.status).toBe(204);
    expect(await fx.queue.getJobState(failedId)).toBe('waiting');
  });

  it('adds a job from a fetch the browser marks same-origin', async () => {
    const res = await request(app)
      .post(`${API}/add`)
      .set({ Host: HOST, 'Sec-Fetch-Site': 'same-origin', Origin: `https://${HOST}` })
      .auth(ADMIN.user, ADMIN.password)
      .send({ name: 'connections', data: { task: 'connections', target: 'main' }, options: {} });
    expect(res.status).toBe(200);
    expect(await fx.queue.getJobState(res.body.job.id)).toBe('waiting');
  });

  it('pauses and resumes the queue from a page on the configured public URL behind a proxy', async () => {
    const behindProxy = createWebApp({ ...fx.deps, config: { ...fx.config, web: { ...fx.config.web, publicUrl: 'https://ops.example.com/caretaker' } } });
    const headers = { Host: '127.0.0.1:3000', Origin: 'https://ops.example.com' };
    expect((await request(behindProxy).put(`${API}/pause`).set(headers).auth(ADMIN.user, ADMIN.password)).status).toBe(200);
    expect(await fx.queue.isPaused()).toBe(true);
    expect((await request(behindProxy).put(`${API}/resume`).set(headers).auth(ADMIN.user, ADMIN.password)).status).toBe(200);
    expect(await fx.queue.isPaused()).toBe(false);
  });

  it('promotes the delayed jobs from curl (no Origin, no Sec-Fetch-Site)', async () => {
    const res = await request(app).put(`${API}/promote`).auth(ADMIN.user, ADMIN.password);
    expect(res.status).toBe(200);
    expect(await fx.queue.getJobCounts('delayed')).toEqual({ delayed: 0 });
  });
});

/** One request from a chosen loopback address (`localAddress`), on a fresh connection. */
function fromAddress(url: string, localAddress: string, auth?: string): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const headers = auth ? { Authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {};
    const req = http.get(url, { localAddress, agent: false, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
    });
    req.on('error', reject);
  });
}

describe('failed logins from one address', () => {
  let web: WebServer;
  let now = Date.parse('2026-11-12T03:00:00Z');
  const captured = captureLog();
  const WRONG = `${ADMIN.user}:guess-${ADMIN.password}`;
  const RIGHT = `${ADMIN.user}:${ADMIN.password}`;

  beforeAll(async () => {
    web = await startWeb({
      ...fx.deps,
      log: captured.log,
      config: { ...fx.config, web: { ...fx.config.web, host: '127.0.0.1', port: 0 } },
      loginThrottle: { now: () => now },
    });
  });

  afterAll(async () => {
    await web?.close();
  });

  /** Ten wrong passwords from `address`: the tenth locks it out. Each test locks out an address of its own. */
  async function lockOut(address: string): Promise<void> {
    for (let i = 0; i < 10; i++) expect((await fromAddress(`${web.url}${BOARD_PATH}`, address, WRONG)).status).toBe(401);
  }

  it('are answered 429 with Retry-After after 10, even with the right password, on every login route', async () => {
    await lockOut('127.0.0.2');
    for (const path of [BOARD_PATH, '/api/runs', '/reports']) {
      const locked = await fromAddress(`${web.url}${path}`, '127.0.0.2', RIGHT);
      expect([path, locked.status, locked.headers['retry-after']]).toEqual([path, 429, '60']);
      expect(locked.headers['www-authenticate']).toBeUndefined();
    }
    expect((await fromAddress(`${web.url}${BOARD_PATH}`, '127.0.0.2')).status).toBe(429);
  });

  it('leave other addresses and the open routes alone', async () => {
    await lockOut('127.0.0.5');
    expect((await fromAddress(`${web.url}${BOARD_PATH}`, '127.0.0.3', RIGHT)).status).toBe(200);
    expect((await fromAddress(`${web.url}/health`, '127.0.0.5')).status).toBe(200);
    expect((await fromAddress(`${web.url}/metrics`, '127.0.0.5')).status).toBe(200);
  });

  it('let the address in again once the lockout is over', async () => {
    await lockOut('127.0.0.6');
    now += 30_000;
    expect((await fromAddress(`${web.url}${BOARD_PATH}`, '127.0.0.6', RIGHT)).headers['retry-after']).toBe('30');
    now += 30_000;
    expect((await fromAddress(`${web.url}${BOARD_PATH}`, '127.0.0.6', RIGHT)).status).toBe(200);
  });

  it('are not forgiven by successful logins in between, which never count', async () => {
    const board = `${web.url}${BOARD_PATH}`;
    for (let i = 0; i < 30; i++) expect((await fromAddress(board, '127.0.0.4', `${VIEWER.user}:${VIEWER.password}`)).status).toBe(200);
    for (let i = 0; i < 9; i++) expect((await fromAddress(board, '127.0.0.4', WRONG)).status).toBe(401);
    expect((await fromAddress(board, '127.0.0.4', `${VIEWER.user}:${VIEWER.password}`)).status).toBe(200);
    expect((await fromAddress(board, '127.0.0.4', WRONG)).status).toBe(401);
    expect((await fromAddress(board, '127.0.0.4', RIGHT)).status).toBe(429);
  });

  it('are logged once per lockout, with the address and never the credential', async () => {
    await lockOut('127.0.0.7');
    // Knocking on while locked out adds no line.
    for (let i = 0; i < 3; i++) expect((await fromAddress(`${web.url}${BOARD_PATH}`, '127.0.0.7', WRONG)).status).toBe(429);
    const warnings = captured.lines().filter((l) => l.msg === 'web: too many failed logins, client locked out' && l.client === '127.0.0.7');
    expect(warnings.map((w) => [w.level, w.client, w.failures])).toEqual([[40, '127.0.0.7', 10]]);
    const everything = captured.text();
    for (const secret of [ADMIN.password, VIEWER.password, Buffer.from(WRONG).toString('base64'), Buffer.from(RIGHT).toString('base64'), 'Basic ']) {
      expect(everything).not.toContain(secret);
    }
  });
});

describe('hostile text in stored results', () => {
  const SCRIPT = '<script>alert(1)</script>';
  const BREAKOUT = '"><img src=x onerror=alert(1)>';
  const QUOTE = "'><svg onload=alert(1)>";
  const week = lastCompleteWeek(new Date(), 'UTC');
  const finishedAt = new Date((Date.parse(week.start) + Date.parse(week.end)) / 2).toISOString();

  /** A run whose every free-text field that reaches the report carries markup. */
  function hostileRun(task: string, target: string): TaskResult {
    return {
      task,
      target,
      status: 'critical',
      startedAt: finishedAt,
      finishedAt,
      durationMs: 10,
      dryRun: false,
      summary: `${SCRIPT} summary`,
      findings: [
        { severity: 'critical', code: `code_${SCRIPT}`, subject: `public.${SCRIPT}`, message: `table ${BREAKOUT} is bloated`, suggestion: `VACUUM ${QUOTE}` },
        { severity: 'warning', code: 'index_unused', subject: BREAKOUT, message: SCRIPT },
      ],
      actions: [{ kind: `vacuum_${SCRIPT}`, subject: BREAKOUT, applied: true }],
      metrics: {},
    };
  }

  beforeAll(async () => {
    await fx.store.save(hostileRun(`task${SCRIPT}`, `target${BREAKOUT}`));
    await fx.store.save(hostileRun('connections', QUOTE));
  });

  /** The raw markup is absent and its escaped form is there. */
  function expectEscaped(page: string): void {
    // The pages' one script is the console's own, from its own origin.
    const html = page.replace(/<script defer src="\/assets\/console\.[0-9a-f]+\.js"><\/script>/g, '');
    for (const raw of [SCRIPT, BREAKOUT, QUOTE, '<img', '<svg', '<script']) expect(html).not.toContain(raw);
    expect(html).not.toMatch(/<[^>]*\bon(error|load)=/i);
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('&quot;&gt;&lt;img src=x onerror=alert(1)&gt;');
    expect(html).toContain('&#39;&gt;&lt;svg onload=alert(1)&gt;');
  }

  it.each(['/reports', `/reports/${week.id}`])('%s shows them escaped, in every place they reach', async (path) => {
    const res = await request(app).get(path).auth(VIEWER.user, VIEWER.password);
    expect(res.status).toBe(200);
    expect(res.type).toBe('text/html');
    expectEscaped(res.text);
    // Each field did reach the page (escaped), so the test looked where the markup would be.
    for (const reached of [
      `task&lt;script&gt;`, // task name
      `target&quot;&gt;&lt;img`, // target name
      `code_&lt;script&gt;`, // finding code
      `public.&lt;script&gt;`, // subject
      `table &quot;&gt;&lt;img src=x onerror=alert(1)&gt; is bloated`, // message
      `VACUUM &#39;&gt;&lt;svg`, // suggestion
      `vacuum_&lt;script&gt;`, // action kind (maintenance done)
    ]) {
      expect(res.text).toContain(reached);
    }
  });

  it('the console\'s run and check pages show them escaped', async () => {
    const { rows } = await fx.db.pool.query<{ id: string }>(`SELECT id FROM caretaker.runs WHERE target = $1`, [QUOTE]);
    for (const path of [`/runs/${rows[0]!.id}`, checkPath('connections', QUOTE)]) {
      const res = await request(app).get(path).auth(VIEWER.user, VIEWER.password);
      expect(res.status).toBe(200);
      expectEscaped(res.text);
      for (const reached of [`code_&lt;script&gt;`, `public.&lt;script&gt;`, `VACUUM &#39;&gt;&lt;svg`]) expect(res.text).toContain(reached);
    }
  });

  it('/api/runs returns them as JSON with <, > and & escaped', async () => {
    const res = await request(app).get('/api/runs').auth(VIEWER.user, VIEWER.password);
    expect(res.status).toBe(200);
    expect(res.text).not.toMatch(/[<>]/);
    expect(res.body.runs.map((r: { summary: string }) => r.summary)).toContain(`${SCRIPT} summary`);
  });
});

describe('hostile paths and query strings', () => {
  const PAYLOAD = '<script>alert(1)</script>';
  const ENCODED = encodeURIComponent(PAYLOAD);

  it.each([
    ['/reports/', ENCODED, 404],
    ['/reports/', `2026-W01${ENCODED}`, 404],
    ['/reports/', `%E0%A4%A${ENCODED}`, 400],
    ['/api/runs?', `${ENCODED}=1`, 400],
    ['/api/runs?task=x&since=', ENCODED, 400],
    ['/api/runs?limit=', ENCODED, 400],
    ['/api/', ENCODED, 404],
    [`${BOARD_PATH}/api/queues/`, ENCODED, 404],
    ['/', ENCODED, 404],
  ])('%s%s answers %d without echoing markup', async (prefix, rest, status) => {
    const res = await request(app).get(`${prefix}${rest}`).auth(ADMIN.user, ADMIN.password);
    expect(res.status).toBe(status);
    expect(res.text).not.toMatch(/[<>]/);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
  });

  it.each([`/queue/${ENCODED}`, `/queue/${QUEUE}/${ENCODED}`])('the board page at %s does not echo it either', async (path) => {
    const res = await request(app).get(`${BOARD_PATH}${path}`).auth(ADMIN.user, ADMIN.password);
    expect(res.status).toBe(200);
    expect(res.text).not.toContain(PAYLOAD);
    expect(res.text).not.toContain('alert(1)');
  });

  it('a malformed %-escape in a path is a 400 with a fixed message, not a 500', async () => {
    const res = await request(app).get(`/reports/%E0%A4%A${ENCODED}`).auth(ADMIN.user, ADMIN.password);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'bad request: malformed URL' });
  });

  it('the 401 to a hostile path is the fixed JSON body', async () => {
    const res = await request(app).get(`/reports/${ENCODED}`);
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: 'authentication required' });
  });
});
