/**
 * Secrets of the alert channels (issue 12): a webhook URL with
 * `user:pass@` in it, a path token and a query key, and an SMTP server
 * whose 535 reply quotes the password it refused. Real services: a
 * webhook receiver that checks the Authorization header, an in-process
 * smtp-server, the state database, and the web app's /health. Every sink
 * an error text reaches is searched for every secret: the rows of
 * caretaker.notifier_failures, the log lines (captured unredacted, so
 * pino's key-based redaction cannot hide a leak), and /health without
 * credentials and with `?detail`.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import request from 'supertest';
import { createAlerter, type Alerter } from '../../src/alerts/alerter';
import type { RetryPolicy } from '../../src/alerts/notifier';
import { configSecrets } from '../../src/config/secrets';
import type { RawConfigInput } from '../../src/config/schema';
import type { Finding, TaskResult } from '../../src/contract/result';
import { originsOnlyIn, scrubSecrets } from '../../src/logger';
import { createWebApp } from '../../src/web/server';
import { testConfig } from '../support/config';
import { captureLog } from '../support/log-capture';
import { freePort } from '../support/ports';
import { VIEWER, WITH_AUTH, webFixture, type WebFixture } from '../web/fixture';

const HOOK_USER = 'user';
const HOOK_PASS = 'pass';
const HOOK_TOKEN = 'TOKEN123';
const HOOK_KEY = 'SECRET456';
const HOOK_PATH = `/hook/${HOOK_TOKEN}?key=${HOOK_KEY}`;
const HOOK_BASIC = `Basic ${Buffer.from(`${HOOK_USER}:${HOOK_PASS}`).toString('base64')}`;
const SMTP_USER = 'caretaker';
const SMTP_PASSWORD = `smtp-pw-${randomBytes(6).toString('hex')}`;
/** Fast retries; the same shape as the default. */
const RETRY: RetryPolicy = { attempts: 3, backoffMs: [10, 20], attemptTimeoutMs: 2_000 };

/** Every form a leak could take: raw, URL-encoded and inside a Basic header. */
const NEEDLES = [HOOK_PASS, `${HOOK_USER}:${HOOK_PASS}`, HOOK_BASIC.slice('Basic '.length), HOOK_TOKEN, HOOK_KEY, SMTP_PASSWORD, SMTP_PASSWORD.slice(-12)];

let fx: WebFixture;
let hookServer: Server;
let hookPort: number;
/** What the receiver answers when the request is right; a wrong path or login gets 404 or 401 whatever this says. */
let hookStatus = 200;
const hookRequests: { url: string; authorization?: string; body: Record<string, unknown> }[] = [];
let smtp: SMTPServer;
const smtpLogins: { user: string; password: string }[] = [];
const captured = captureLog();
let clock = new Date('2026-03-02T10:00:00.000Z');

function notifications(webhookPort: number): RawConfigInput['notifications'] {
  return {
    repeatAlertSeconds: 60,
    email: {
      smtp: { host: '127.0.0.1', port: (smtp.server.address() as AddressInfo).port, secure: false, user: SMTP_USER, password: SMTP_PASSWORD },
      from: 'caretaker@example.com',
      to: ['ops@example.com'],
    },
    webhook: { url: `http://${HOOK_USER}:${HOOK_PASS}@127.0.0.1:${webhookPort}${HOOK_PATH}` },
  };
}

beforeAll(async () => {
  // The webhook: only the configured login, path and query are accepted; a failure echoes what it got, as a careless proxy does.
  hookServer = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const authorization = req.headers.authorization;
      hookRequests.push({ url: req.url ?? '', authorization, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown> });
      const status = authorization !== HOOK_BASIC ? 401 : req.url !== HOOK_PATH ? 404 : hookStatus;
      res.writeHead(status).end(status === 200 ? 'ok' : `refused ${req.url} with ${authorization ?? 'no authorization'}`);
    });
  });
  await new Promise<void>((resolve) => hookServer.listen(0, '127.0.0.1', resolve));
  hookPort = (hookServer.address() as AddressInfo).port;

  // SMTP: refuses every login with a 535 reply that quotes the password it was given.
  smtp = new SMTPServer({
    authOptional: false,
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    closeTimeout: 1_000,
    onAuth(auth, _session, cb) {
      smtpLogins.push({ user: auth.username ?? '', password: auth.password ?? '' });
      cb(Object.assign(new Error(`Authentication failed: "${auth.password ?? ''}" is not the secret of ${auth.username ?? ''}`), { responseCode: 535 }));
    },
  });
  await new Promise<void>((resolve, reject) => {
    smtp.once('error', reject);
    smtp.listen(0, '127.0.0.1', () => resolve());
  });

  fx = await webFixture('secrets_notifiers', { ...WITH_AUTH, notifications: notifications(hookPort) }, captured.log);
});

afterAll(async () => {
  await new Promise<void>((resolve) => hookServer.close(() => resolve()));
  await new Promise<void>((resolve) => smtp.close(() => resolve()));
  await fx.close();
});

beforeEach(async () => {
  await fx.db.pool.query('TRUNCATE caretaker.alerts, caretaker.notifier_failures');
  hookRequests.length = 0;
  smtpLogins.length = 0;
  hookStatus = 200;
  clock = new Date(clock.getTime() + 3_600_000);
});

const alerterOn = (config = fx.config): Alerter => createAlerter({ config, state: fx.db.pool, log: captured.log, now: () => clock, retry: RETRY });

const CRITICAL: Finding = { severity: 'critical', code: 'connections_high', subject: 'main', message: '95 of 100 connections in use' };
const critical = (): TaskResult => ({
  task: 'connections',
  target: 'main',
  status: 'critical',
  startedAt: clock.toISOString(),
  finishedAt: clock.toISOString(),
  durationMs: 5,
  dryRun: false,
  summary: '1 finding',
  findings: [CRITICAL],
  actions: [],
  metrics: {},
});

async function failures(): Promise<Record<string, string>> {
  const { rows } = await fx.db.pool.query<{ channel: string; error: string }>('SELECT channel, error FROM caretaker.notifier_failures ORDER BY failed_at');
  return Object.fromEntries(rows.map((r) => [r.channel, r.error]));
}

/** /health without credentials and with ?detail as the viewer. */
async function health(): Promise<{ open: request.Response; detail: request.Response }> {
  const app = createWebApp(fx.deps);
  const open = await request(app).get('/health');
  const detail = await request(app).get('/health?detail').set('Authorization', `Basic ${Buffer.from(`${VIEWER.user}:${VIEWER.password}`).toString('base64')}`);
  return { open, detail };
}

/** Each sink that holds any secret, with the secrets it holds. */
function leaks(sinks: Record<string, string>): Record<string, string[]> {
  const found: Record<string, string[]> = {};
  for (const [where, text] of Object.entries(sinks)) {
    const hits = NEEDLES.filter((n) => text.includes(n));
    if (hits.length > 0) found[where] = hits;
  }
  return found;
}

describe('an alert webhook URL with credentials, a path token and a query key', () => {
  it('delivers: the credentials travel as Authorization: Basic, the path and query as configured', async () => {
    await alerterOn().onResult(critical(), '1');
    expect(hookRequests).toHaveLength(1);
    expect(hookRequests[0]).toMatchObject({ url: HOOK_PATH, authorization: HOOK_BASIC, body: { kind: 'alert', task: 'connections', status: 'critical' } });
    expect((await failures()).webhook).toBeUndefined();
  });

  it('failing (500, then refused), puts neither its password, its token nor its key in notifier_failures, the logs or /health', async () => {
    hookStatus = 500;
    await alerterOn().onResult(critical(), '2');
    expect(hookRequests.map((r) => [r.url, r.authorization])).toEqual(Array(RETRY.attempts).fill([HOOK_PATH, HOOK_BASIC]));
    expect((await failures()).webhook).toBe(`webhook http://127.0.0.1:${hookPort}: HTTP 500 (after ${RETRY.attempts} attempts)`);

    // The same URL on a port nothing listens on: a network error, not an HTTP status.
    const closed = await freePort();
    const refusedConfig = testConfig({ dbUrl: fx.db.url, prefix: fx.prefix, ...WITH_AUTH, notifications: notifications(closed) });
    clock = new Date(clock.getTime() + 3_600_000);
    await alerterOn(refusedConfig).onResult(critical(), '3');
    expect((await failures()).webhook).toBe(`webhook http://127.0.0.1:${closed}: ECONNREFUSED (after ${RETRY.attempts} attempts)`);

    const { open, detail } = await health();
    expect(open.body.notifiers.webhook).toEqual({ at: clock.toISOString() });
    expect(detail.body.notifiers.webhook).toEqual({ at: clock.toISOString(), error: `webhook http://127.0.0.1:${closed}: ECONNREFUSED (after ${RETRY.attempts} attempts)` });
    const logged = captured.lines().filter((l) => l.msg === 'notifier failed' && l.channel === 'webhook');
    expect(logged.length).toBeGreaterThanOrEqual(2);
    expect(leaks({ notifier_failures: JSON.stringify(await failures()), logs: captured.text(), '/health': open.text, '/health?detail': detail.text })).toEqual({});
  });
});

describe('an SMTP server whose 535 reply quotes the password', () => {
  it('leaves the password out of notifier_failures, the logs and /health; ?detail shows the reply scrubbed', async () => {
    await alerterOn().onResult(critical(), '4');
    // It was sent the password, so it had it to quote.
    expect(smtpLogins.length).toBe(RETRY.attempts);
    expect(smtpLogins[0]).toEqual({ user: SMTP_USER, password: SMTP_PASSWORD });

    const stored = (await failures()).email;
    expect(stored).toMatch(/^smtp 127\.0\.0\.1:\d+: .*535 Authentication failed: "\*\*\*" is not the secret of caretaker/);
    const { open, detail } = await health();
    expect(open.status).toBe(200);
    expect(open.body.notifiers.email).toEqual({ at: clock.toISOString() });
    expect(detail.body.notifiers.email).toEqual({ at: clock.toISOString(), error: stored });
    expect(captured.lines().some((l) => l.msg === 'notifier failed' && l.channel === 'email' && l.err === stored)).toBe(true);
    expect(leaks({ notifier_failures: stored!, logs: captured.text(), '/health': open.text, '/health?detail': detail.text })).toEqual({});
  });
});

describe('configSecrets', () => {
  it('collects every secret value of a config, however it is written, and nothing that is a plain name', () => {
    const config = testConfig({
      dbUrl: 'postgres://state:state-pw%2F1@127.0.0.1:5432/state',
      prefix: 'secrets-collect',
      web: { auth: { admin: 'admin:admin-pw-1', viewer: 'viewer:viewer-pw-1' } },
      redis: { url: 'redis://:redis-pw-1@127.0.0.1:6379', prefix: 'secrets-collect' },
      targets: {
        postgres: [{ name: 'main', url: 'postgres://app:app-pw-1@db.internal/app' }],
        http: [{ name: 'api', url: 'https://api.example.com/health?api_key=url-key-1', detailedUrl: 'https://api.example.com/health/detailed', token: 'http-token-1' }],
        prometheus: [{ name: 'prom', url: 'http://prom:prom-pw-1@prom.internal:9090/', token: 'prom-token-1' }],
        backups: [
          {
            name: 'nightly',
            database: 'main',
            store: { kind: 's3', bucket: 'dumps', accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 's3-secret-1' },
            pattern: 'app-*.sql.gz',
            scratch: { url: 'postgres://scratch:scratch-pw-1@scratch.internal/postgres' },
          },
        ],
      },
      // Keys that mention a secret but hold names: roles and Kubernetes Secret names are not scrubbed.
      tasks: { 'security-audit': { passwordExemptRoles: ['postgres', 'reporting'], ignoreSecrets: ['app-db-credentials'] } },
      notifications: notifications(9),
    });
    const secrets = configSecrets(config);
    expect(secrets).toEqual(
      expect.arrayContaining([
        'state-pw%2F1', 'state-pw/1', 'redis-pw-1', 'app-pw-1', 'scratch-pw-1', 'url-key-1', 'http-token-1',
        'prom-pw-1', Buffer.from('prom:prom-pw-1').toString('base64'), 'prom-token-1', 's3-secret-1',
        'admin-pw-1', 'viewer-pw-1', Buffer.from('admin:admin-pw-1').toString('base64'), SMTP_PASSWORD,
        HOOK_PASS, HOOK_BASIC.slice('Basic '.length), HOOK_TOKEN, HOOK_KEY, HOOK_PATH,
      ]),
    );
    for (const name of ['AKIAEXAMPLE', 'main', 'nightly', 'dumps', SMTP_USER, 'api.example.com', 'hook', 'postgres', 'reporting', 'app-db-credentials']) expect(secrets).not.toContain(name);
    // Longest first, so a secret that contains another is replaced whole.
    expect(scrubSecrets(`GET ${HOOK_PATH}`, secrets)).toBe('GET ***');
  });
});

describe('originsOnlyIn', () => {
  it('cuts every URL in a text to its scheme, host and port, credentials and all, and keeps the sentence around it', () => {
    expect(originsOnlyIn('Request cannot be constructed from a URL that includes credentials: http://user:pass@127.0.0.1:9/hook/TOKEN123?key=SECRET456')).toBe(
      'Request cannot be constructed from a URL that includes credentials: http://127.0.0.1:9',
    );
    expect(originsOnlyIn('POST https://hooks.slack.com/services/T0/B1/XyZ failed (see https://status.slack.com/), retry at http://[::1]:8080/x.')).toBe(
      'POST https://hooks.slack.com failed (see https://status.slack.com), retry at http://[::1]:8080.',
    );
    expect(originsOnlyIn('smtp 127.0.0.1:587: 535 no')).toBe('smtp 127.0.0.1:587: 535 no');
    expect(originsOnlyIn('at http://exa mple')).toBe('at http://exa mple');
    expect(originsOnlyIn('bad http://[zz/TOKEN123 here')).toBe('bad http://[unparsable url] here');
  });
});
