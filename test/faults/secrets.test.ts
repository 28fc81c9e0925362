/**
 * Secrets (issue 7, bad-input list): no secret from the config reaches a log
 * line, job data, a stored result, a report, an alert or a web page.
 *
 * Every kind of secret the config can hold gets a distinctive value: the
 * state database's and the targets' passwords (real roles), caretaker's own
 * Redis password (a redis-server with requirepass) and the redis targets',
 * the SMTP password, the alert webhook's login, path and query keys, Kubernetes
 * bearer tokens (in kubeconfig files), http and Prometheus tokens (and keys
 * in their URLs), an S3 secret key and the web logins. caretaker then runs
 * as an operator runs it (`caretaker start`, the real binary) on targets
 * that answer, refuse, reject the credentials or echo them back, alerts,
 * and builds the weekly report. Afterwards every sink is searched for every
 * secret, raw, URL-encoded, base64 (any alignment) and by its random core
 * (a partial leak): the process's logs, every CLI output, every key in
 * Redis, every row of caretaker's tables, the alert webhook bodies and
 * emails, the report (HTML file, text, email), and /health (open and
 * `?detail`), /metrics, /api/runs, /reports and Bull Board's API.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, escapeIdentifier } from 'pg';
import { Redis } from 'ioredis';
import { Queue } from 'bullmq';
import { stringify } from 'yaml';
import { weekContaining } from '../../src/reports/week';
import { scratchNamePrefix } from '../../src/backups/scratch';
import { createTestDatabase, randomRoleName, dropRoles, withClient, type TestDatabase } from '../support/db';
import { randomPrefix } from '../support/redis';
import { TEST_PG_ADMIN_URL } from '../support/env';
import { freePort } from '../support/ports';
import { eventually } from '../support/jobs';
import { runCli, type CliRun } from '../support/cli';
import { spawnCaretaker, type CaretakerProcess } from '../support/processes';
import { startRedisServer, type OwnRedis } from '../support/redis-server';
import { startS3, type S3TestServer } from '../support/s3';
import { deployment, secret, startKubeApi, type KubeApi } from '../support/kube-api';
import { startSmtpSink, type ReceivedMail, type SmtpSink } from '../support/smtp';
import { startServer, type TestServer } from '../support/prometheus';

/** s3rver's account registry: a key pair of our own makes the S3 secret a distinctive one; an unknown key id is refused. */
const s3rverAccount = require('s3rver/lib/models/account') as { DUMMY_ACCOUNT: { createKeyPair(id: string, secret: string): void; revokeAccessKey(id: string): void } };

// ------------------------------------------------------------------ secrets

const core = () => randomBytes(6).toString('hex');
/** Each secret: `S3cr3t-<what>-<12 random hex>`; the hex is searched for alone too (a cut secret). */
const SECRETS = {
  stateDbPassword: `S3cr3t-state-${core()}`,
  /** '@' and '/' must be percent-encoded in the URL: both forms are searched. */
  appDbPassword: `S3cr3t-app@/${core()}`,
  refusedDbPassword: `S3cr3t-refused-${core()}`,
  noRoleDbPassword: `S3cr3t-norole-${core()}`,
  scratchDbPassword: `S3cr3t-scratch-${core()}`,
  redisPassword: `S3cr3t-redis-${core()}`,
  redisWrongPassword: `S3cr3t-redis-wrong-${core()}`,
  redisNoAuthPassword: `S3cr3t-redis-noauth-${core()}`,
  smtpPassword: `S3cr3t-smtp-${core()}`,
  /** In the webhook URL as `user:password@`: it travels as a Basic Authorization header. */
  webhookPassword: `S3cr3t-hookpw-${core()}`,
  webhookPathKey: `S3cr3t-hookpath-${core()}`,
  webhookQueryKey: `S3cr3t-hookkey-${core()}`,
  /** A PagerDuty channel's routing key: its own receiver sees it (it is the credential); no other sink may. */
  pagerdutyRoutingKey: `S3cr3t-pdkey-${core()}`,
  k8sToken: `S3cr3t-k8s-${core()}`,
  k8sWrongToken: `S3cr3t-k8s-wrong-${core()}`,
  httpToken: `S3cr3t-http-${core()}`,
  httpWrongToken: `S3cr3t-http-wrong-${core()}`,
  httpUrlKey: `S3cr3t-httpurl-${core()}`,
  promToken: `S3cr3t-prom-${core()}`,
  promWrongToken: `S3cr3t-prom-wrong-${core()}`,
  promBasicPassword: `S3cr3t-prombasic-${core()}`,
  s3SecretKey: `S3cr3t-s3-${core()}`,
  /** dependency-check: the token of a lockfile's URL, a key in its query, and the npm registry's token. */
  lockfileToken: `S3cr3t-lockfile-${core()}`,
  lockfileUrlKey: `S3cr3t-lockurl-${core()}`,
  npmToken: `S3cr3t-npm-${core()}`,
  s3WrongSecretKey: `S3cr3t-s3-wrong-${core()}`,
  adminPassword: `S3cr3t-admin-${core()}`,
  viewerPassword: `S3cr3t-viewer-${core()}`,
};
type SecretName = keyof typeof SECRETS;

/** The base64 of `secret` wherever it starts in the encoded text: the characters only its bytes decide, for each of the 3 alignments. */
function base64Forms(secret: string): string[] {
  const bytes = Buffer.from(secret, 'utf8');
  const forms: string[] = [];
  for (let pad = 0; pad < 3; pad++) {
    const encoded = Buffer.concat([Buffer.alloc(pad), bytes]).toString('base64');
    const first = Math.ceil((pad * 8) / 6);
    const last = Math.floor(((pad + bytes.length) * 8) / 6); // exclusive: the chars fully inside the secret's bits
    forms.push(encoded.slice(first, last));
  }
  return forms;
}

interface Form {
  secret: SecretName;
  form: string;
  needle: string;
}

const FORMS: Form[] = Object.entries(SECRETS).flatMap(([name, value]) => {
  const secret = name as SecretName;
  const forms: Form[] = [{ secret, form: 'raw', needle: value }];
  if (encodeURIComponent(value) !== value) forms.push({ secret, form: 'url-encoded', needle: encodeURIComponent(value) });
  forms.push(...base64Forms(value).map((needle, i) => ({ secret, form: `base64/${i}`, needle })));
  forms.push({ secret, form: 'random core', needle: value.slice(-12) });
  return forms;
});

interface Sink {
  where: string;
  text: string;
}
interface Leak {
  where: string;
  secret: SecretName;
  form: string;
  context: string;
}

/** Every (sink, secret, form) found; the context shows the secret as «name». */
function findLeaks(sinks: Sink[]): Leak[] {
  const leaks: Leak[] = [];
  for (const sink of sinks) {
    for (const f of FORMS) {
      const at = sink.text.indexOf(f.needle);
      if (at < 0) continue;
      const context = sink.text.slice(Math.max(0, at - 150), at + f.needle.length + 150).split(f.needle).join(`«${f.secret}»`);
      leaks.push({ where: sink.where, secret: f.secret, form: f.form, context });
    }
  }
  return leaks;
}

/** A readable failure: one paragraph per leak, naming the sink. */
function expectNoLeaks(sinks: Sink[]): void {
  const leaks = findLeaks(sinks);
  const report = leaks.map((l) => `${l.secret} (${l.form}) in ${l.where}:\n    …${l.context.replace(/\s+/g, ' ')}…`).join('\n');
  expect(report).toBe('');
}

// ------------------------------------------------------------------ fixtures

const prefix = randomPrefix('secrets');
/** The backups target: scratch database names (and restore-test's sweep of stale ones) are per target name, cluster-wide. */
const BACKUPS = `secrets-${randomBytes(3).toString('hex')}`;
const thisWeek = weekContaining(new Date(), 'UTC').id;
const roles = {
  state: randomRoleName('secstate'),
  app: randomRoleName('secapp'),
  scratch: randomRoleName('secscr'),
  /** Never created: its target fails with "role does not exist". */
  missing: randomRoleName('secnone'),
};

let dir: string;
let stateDb: TestDatabase;
let appDb: TestDatabase;
let redisServer: OwnRedis;
let inspect: Redis;
let s3: S3TestServer;
let kube: KubeApi;
let smtp: SmtpSink;
let webhook: TestServer;
let pagerduty: TestServer;
/** Routing keys the PagerDuty receiver was sent (its bodies carry the key by design, so they are not a sink). */
const pagerdutyKeys: string[] = [];
let httpService: TestServer;
let prometheus: TestServer;
let caretaker: CaretakerProcess | undefined;
let caretakerStdout = '';
let webUrl = '';
let env: Record<string, string> = {};
let configFile = '';
const s3AccessKeyId = `CTTEST${randomBytes(4).toString('hex').toUpperCase()}`;

/** Alerts fail on both channels until this is set (notifier_failures get rows), then they go through. */
let notifiersUp = false;
let mails: ReceivedMail[] = [];
const smtpLogins: { user: string; passwordMatched: boolean }[] = [];
const hooks: { url: string; authorization?: string; body: string }[] = [];
const httpRequests: { url: string; authorization?: string }[] = [];
const promRequests: { authorization?: string }[] = [];
const cliRuns: { args: string[]; run: CliRun }[] = [];
const webBodies: Sink[] = [];
let reportHtml = '';
let enqueuedJobs: string[] = [];

/** A role's password as PostgreSQL stores it (md5 of password + name): no statement text ever holds the secret. */
const md5Password = (role: string, password: string) => `md5${createHash('md5').update(password + role).digest('hex')}`;
/** The test server (TEST_PG_URL's host and port) as `user`; `port` sends it elsewhere (a port nobody listens on). */
const pgServer = new URL(TEST_PG_ADMIN_URL);
const pgUrl = (user: string, password: string, database: string, port = Number(pgServer.port || 5432)) =>
  `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${pgServer.hostname}:${port}/${database}`;

const admin = <T>(work: (c: Client) => Promise<T>): Promise<T> => withClient(TEST_PG_ADMIN_URL, work);

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => resolve(body));
  });
}

async function cli(...args: string[]): Promise<CliRun> {
  const run = await runCli(['--config', configFile, ...args], { ...env, CARETAKER_LOG_LEVEL: 'debug' });
  cliRuns.push({ args, run });
  return run;
}

/** `caretaker enqueue` (every target of the task's kind unless --target); the job ids it printed. */
async function enqueue(...args: string[]): Promise<string[]> {
  const run = await cli('enqueue', ...args);
  if (run.code !== 0) throw new Error(`enqueue ${args.join(' ')} exited ${run.code}: ${run.stderr}`);
  return [...run.stdout.matchAll(/: job (\S+)$/gm)].map((m) => m[1]!);
}

/** Waits (bounded) until every job is completed or failed; a timeout names the ones still going. */
async function waitForJobs(queue: Queue, ids: string[], timeoutMs: number): Promise<void> {
  const unfinished = async () => {
    const states = await Promise.all(ids.map(async (id) => ({ id, state: await queue.getJobState(id) })));
    return states.filter((s) => s.state !== 'completed' && s.state !== 'failed');
  };
  try {
    await eventually(async () => ((await unfinished()).length === 0 ? true : undefined), timeoutMs, `${ids.length} jobs to finish`);
  } catch (err) {
    const left = await Promise.all((await unfinished()).map(async (s) => `${s.id} ${(await queue.getJob(s.id))?.name}:${(await queue.getJob(s.id))?.data?.target} ${s.state}`));
    throw new Error(`${(err as Error).message}; still going: ${left.join(', ')}\ncaretaker's last log lines:\n${caretaker?.stderr().slice(-4_000)}`);
  }
}

async function webGet(path: string, auth?: { user: string; password: string }): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = {};
  if (auth) headers.authorization = `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString('base64')}`;
  const res = await fetch(`${webUrl}${path}`, { headers, signal: AbortSignal.timeout(15_000) });
  const text = await res.text();
  webBodies.push({ where: `GET ${path} (${res.status})`, text: `${[...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n')}\n\n${text}` });
  return { status: res.status, text };
}

// ------------------------------------------------------------------ set-up and workload

beforeAll(async () => {
  const started = Date.now();
  dir = mkdtempSync(join(tmpdir(), 'ct-secrets-'));

  // PostgreSQL: the state database (its own role) and the application database (another role, owning a schema of tables).
  stateDb = await createTestDatabase('secrets_state');
  appDb = await createTestDatabase('secrets_app');
  await admin(async (c) => {
    await c.query(`CREATE ROLE ${c.escapeIdentifier(roles.state)} LOGIN PASSWORD ${c.escapeLiteral(md5Password(roles.state, SECRETS.stateDbPassword))}`);
    await c.query(`CREATE ROLE ${c.escapeIdentifier(roles.app)} LOGIN PASSWORD ${c.escapeLiteral(md5Password(roles.app, SECRETS.appDbPassword))}`);
    await c.query(`CREATE ROLE ${c.escapeIdentifier(roles.scratch)} LOGIN CREATEDB PASSWORD ${c.escapeLiteral(md5Password(roles.scratch, SECRETS.scratchDbPassword))}`);
    // The scratch role restores the dump's ALTER ... OWNER TO the app role.
    await c.query(`GRANT ${c.escapeIdentifier(roles.app)} TO ${c.escapeIdentifier(roles.scratch)}`);
    await c.query(`GRANT pg_monitor TO ${c.escapeIdentifier(roles.app)}`);
    await c.query(`ALTER DATABASE ${c.escapeIdentifier(stateDb.name)} OWNER TO ${c.escapeIdentifier(roles.state)}`);
    await c.query(`ALTER DATABASE ${c.escapeIdentifier(appDb.name)} OWNER TO ${c.escapeIdentifier(roles.app)}`);
  });
  await appDb.pool.query(`
    CREATE SCHEMA app AUTHORIZATION ${escapeIdentifier(roles.app)};
    CREATE TABLE app.orders (id serial PRIMARY KEY, customer int NOT NULL, note text);
    CREATE INDEX orders_customer_idx ON app.orders (customer);
    INSERT INTO app.orders (customer, note) SELECT g % 50, 'order ' || g FROM generate_series(1, 500) g;
    CREATE TABLE app.customers (id int PRIMARY KEY, name text);
    INSERT INTO app.customers SELECT g, 'customer ' || g FROM generate_series(1, 50) g;
    ALTER TABLE app.orders OWNER TO ${escapeIdentifier(roles.app)};
    ALTER TABLE app.customers OWNER TO ${escapeIdentifier(roles.app)};
  `);

  // Redis: caretaker's own, with a password (its queue and the redis targets live there).
  redisServer = await startRedisServer({ password: SECRETS.redisPassword });
  inspect = new Redis(redisServer.url, { maxRetriesPerRequest: 1 });

  // S3: a key pair of our own, so the secret key is distinctive (s3rver checks the key id, not v4 signatures).
  s3 = await startS3();
  s3rverAccount.DUMMY_ACCOUNT.createKeyPair(s3AccessKeyId, SECRETS.s3SecretKey);
  const bucket = await s3.createBucket();

  // Kubernetes: the fake API server accepts only the token; pods whose logs quote credentials.
  kube = await startKubeApi({ token: SECRETS.k8sToken });
  // web: all Ready (dr-drill kills one of its pods); worker: one pod crash-looping (k8s-health, error-logs).
  const web = kube.addDeployment(deployment({ name: 'web', namespace: 'shop', replicas: 2 }), { replaceAfterMs: 100 });
  const worker = kube.addDeployment(deployment({ name: 'worker', namespace: 'shop', replicas: 2 }), { readyPods: 1 });
  const pods = [...web.pods, ...worker.pods];
  const errorLine = (msg: string, extra: Record<string, unknown> = {}) => JSON.stringify({ level: 50, time: Date.now(), pid: 1, hostname: 'web', msg, ...extra });
  for (const p of pods) {
    kube.setLogs('shop', p.metadata!.name!, 'app', [
      errorLine(`cannot connect to ${pgUrl(roles.app, SECRETS.appDbPassword, 'app')}`),
      errorLine('auth failed', { err: `token=${SECRETS.k8sToken} rejected` }),
      errorLine(`upstream answered 401 for Authorization: Bearer ${SECRETS.httpToken}`),
      `ERROR redis ${`redis://:${SECRETS.redisPassword}@cache:6379`} refused`,
    ]);
  }
  kube.addSecret(secret({ name: 'app-db', namespace: 'shop', data: { password: SECRETS.appDbPassword, url: pgUrl(roles.app, SECRETS.appDbPassword, 'app') }, lastApplied: true }));
  const goodKubeconfig = kube.writeKubeconfig(dir, { namespace: 'shop', fileName: 'kubeconfig-good.yaml' });
  const badKubeconfig = kube.writeKubeconfig(dir, { namespace: 'shop', token: SECRETS.k8sWrongToken, fileName: 'kubeconfig-bad.yaml' });

  // SMTP: needs the password; refuses every login until the notifiers are "up".
  smtp = await startSmtpSink({
    login: (user, password) => {
      const matched = password === SECRETS.smtpPassword;
      smtpLogins.push({ user, passwordMatched: matched });
      return notifiersUp && matched;
    },
  });
  ({ mails } = smtp);

  // The alert webhook: its path and query are its secret; answers 500 until the notifiers are "up".
  webhook = await startServer((req, res) => {
    void readBody(req).then((body) => {
      hooks.push({ url: req.url ?? '', authorization: req.headers.authorization, body });
      res.writeHead(notifiersUp ? 200 : 500).end(notifiersUp ? 'ok' : `no: ${req.url}`);
    });
  });

  // PagerDuty: refuses with a 400 that quotes the event (routing key and all) until the notifiers are "up".
  pagerduty = await startServer((req, res) => {
    void readBody(req).then((body) => {
      const event = JSON.parse(body) as { routing_key?: string };
      if (event.routing_key) pagerdutyKeys.push(event.routing_key);
      if (notifiersUp) return void res.writeHead(202, { 'content-type': 'application/json' }).end('{"status":"success","message":"Event processed"}');
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'invalid event', message: `bad event ${body}`, errors: [`routing_key ${event.routing_key} refused`] }));
    });
  });

  // The http service: /health is up; /health/detailed wants the token and echoes what it was sent.
  httpService = await startServer((req, res) => {
    httpRequests.push({ url: req.url ?? '', authorization: req.headers.authorization });
    const path = (req.url ?? '').split('?')[0];
    if (path === '/health') return void res.writeHead(200, { 'content-type': 'text/plain' }).end(`ok ${req.url}`);
    if (path === '/health/detailed') {
      const auth = req.headers.authorization ?? '';
      if (auth !== `Bearer ${SECRETS.httpToken}`) {
        return void res.writeHead(401, { 'content-type': 'text/plain' }).end(`invalid credentials: ${auth} for ${req.url}`);
      }
      return void res
        .writeHead(503, { 'content-type': 'application/json' })
        .end(JSON.stringify({ status: 'down', components: { database: { status: 'down', error: `login with ${auth} failed` }, cache: { status: `degraded (${auth})` } } }));
    }
    // dependency-check's lockfile (with its token) and an npm registry that refuses the token, quoting it.
    if (path === '/package-lock.json') {
      if (req.headers.authorization !== `Bearer ${SECRETS.lockfileToken}`) return void res.writeHead(401).end(`denied: ${req.headers.authorization} for ${req.url}`);
      const lock = { name: 'shop', lockfileVersion: 3, packages: { '': { dependencies: { widget: '^1.0.0' } }, 'node_modules/widget': { version: '1.0.0' } } };
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(lock));
    }
    if (path.startsWith('/npm/')) return void res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `bad token ${req.headers.authorization} for ${req.url}` }));
    res.writeHead(404).end(`not found: ${req.url}`);
  });

  // Prometheus: the token (or the basic login) gets answers that breach; anything else gets a 401 quoting the header.
  prometheus = await startServer((req, res) => {
    const auth = req.headers.authorization;
    promRequests.push({ authorization: auth });
    const basic = `Basic ${Buffer.from(`prom:${SECRETS.promBasicPassword}`).toString('base64')}`;
    res.setHeader('content-type', 'application/json');
    if (auth !== `Bearer ${SECRETS.promToken}` && auth !== basic) {
      return void res.writeHead(401).end(JSON.stringify({ status: 'error', errorType: 'unauthorized', error: `invalid credentials: ${auth ?? 'none'}` }));
    }
    // One query is "rejected" with an error quoting the request's credentials, as a proxy in front of Prometheus might.
    const query = new URL(req.url ?? '/', 'http://x').searchParams.get('query') ?? '';
    if (query.includes('bullmq')) {
      return void res.writeHead(400).end(JSON.stringify({ status: 'error', errorType: 'bad_data', error: `parse error near ${auth}` }));
    }
    res.end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [{ metric: { pod: 'web-1' }, value: [Date.now() / 1000, '950'] }] } }));
  });

  const webPort = await freePort();
  webUrl = `http://127.0.0.1:${webPort}`;
  const webhookUrl = `http://hook:${SECRETS.webhookPassword}@127.0.0.1:${webhook.port}/hooks/${SECRETS.webhookPathKey}?key=${SECRETS.webhookQueryKey}`;
  const redisUrl = (password: string, port = redisServer.port) => `redis://:${encodeURIComponent(password)}@127.0.0.1:${port}`;
  const s3Store = (accessKeyId: string, secretAccessKey: string) => ({
    kind: 's3',
    bucket,
    prefix: 'pg/',
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    accessKeyId,
    secretAccessKey,
  });

  // Secrets through ${VAR} (as the README recommends) and, for the rest, written in the file.
  env = {
    STATE_URL: pgUrl(roles.state, SECRETS.stateDbPassword, stateDb.name),
    APP_DATABASE_URL: pgUrl(roles.app, SECRETS.appDbPassword, appDb.name),
    REDIS_URL: redisUrl(SECRETS.redisPassword),
    SMTP_PASSWORD: SECRETS.smtpPassword,
    ALERT_WEBHOOK_URL: webhookUrl,
    PAGERDUTY_ROUTING_KEY: SECRETS.pagerdutyRoutingKey,
    CARETAKER_ADMIN: `admin:${SECRETS.adminPassword}`,
    CARETAKER_VIEWER: `viewer:${SECRETS.viewerPassword}`,
    HTTP_TOKEN: SECRETS.httpToken,
    PROM_TOKEN: SECRETS.promToken,
    S3_SECRET_KEY: SECRETS.s3SecretKey,
  };
  const config = {
    logLevel: 'debug',
    redis: { url: '${REDIS_URL}', prefix },
    state: { url: '${STATE_URL}' },
    web: { host: '127.0.0.1', port: webPort, auth: { admin: '${CARETAKER_ADMIN}', viewer: '${CARETAKER_VIEWER}' }, publicUrl: 'https://caretaker.example.com' },
    worker: { concurrency: 2, attempts: 2, backoffMs: 100, shutdownGraceMs: 5_000 },
    targets: {
      postgres: [
        { name: 'app', url: '${APP_DATABASE_URL}', allow: { vacuum: true } },
        { name: 'refused', url: pgUrl(roles.app, SECRETS.refusedDbPassword, appDb.name, 1) },
        { name: 'norole', url: pgUrl(roles.missing, SECRETS.noRoleDbPassword, appDb.name) },
      ],
      redis: [
        { name: 'cache', url: '${REDIS_URL}' },
        { name: 'cache-wrongpass', url: redisUrl(SECRETS.redisWrongPassword) },
        { name: 'cache-noauth', url: redisUrl(SECRETS.redisNoAuthPassword, 6379) },
      ],
      queues: [{ name: 'jobs', redis: 'cache', queues: ['caretaker'], prefix }],
      kubernetes: [
        { name: 'prod', namespace: 'shop', deployments: ['web', 'worker'], kubeconfig: goodKubeconfig, allow: { podKillNamespaces: ['shop'] } },
        { name: 'prod-badtoken', namespace: 'shop', deployments: ['web', 'worker'], kubeconfig: badKubeconfig },
      ],
      http: [
        { name: 'api', url: `${httpService.url}/health`, detailedUrl: `${httpService.url}/health/detailed`, token: '${HTTP_TOKEN}' },
        {
          name: 'api-keyed',
          url: `${httpService.url}/health?token=${SECRETS.httpUrlKey}`,
          detailedUrl: `${httpService.url}/health/detailed?api_key=${SECRETS.httpUrlKey}`,
          token: SECRETS.httpWrongToken,
        },
        { name: 'api-down', url: `http://127.0.0.1:1/health?token=${SECRETS.httpUrlKey}`, detailedUrl: `http://127.0.0.1:1/health/detailed`, token: '${HTTP_TOKEN}' },
      ],
      prometheus: [
        { name: 'prom', url: prometheus.url, token: '${PROM_TOKEN}' },
        { name: 'prom-badtoken', url: `${prometheus.url}/?token=${SECRETS.httpUrlKey}`, token: SECRETS.promWrongToken },
        { name: 'prom-basic', url: `http://prom:${SECRETS.promBasicPassword}@127.0.0.1:${prometheus.port}/` },
        { name: 'prom-down', url: 'http://127.0.0.1:1', token: '${PROM_TOKEN}' },
      ],
      backups: [
        {
          name: BACKUPS,
          database: 'app',
          store: s3Store(s3AccessKeyId, '${S3_SECRET_KEY}'),
          pattern: 'app-*.sql.gz',
          scratch: { url: pgUrl(roles.scratch, SECRETS.scratchDbPassword, 'postgres') },
          allow: { restore: true, backup: true },
          drill: { kubernetes: 'prod', namespace: 'shop', deployment: 'web', healthUrl: `${httpService.url}/health?token=${SECRETS.httpUrlKey}` },
        },
        { name: 'broken', database: 'app', store: s3Store(`${s3AccessKeyId}X`, SECRETS.s3WrongSecretKey), pattern: 'app-*.sql.gz', allow: { backup: true } },
      ],
      lockfiles: [
        {
          name: 'shop-app',
          files: [`${httpService.url}/package-lock.json?key=${SECRETS.lockfileUrlKey}`, `${httpService.url}/package-lock.json`],
          token: SECRETS.lockfileToken,
          registry: `${httpService.url}/npm/`,
          registryToken: SECRETS.npmToken,
        },
      ],
    },
    tasks: {
      'api-health': { samples: 3, timeoutMs: 3_000 },
      'metrics-review': { timeoutMs: 5_000 },
      'security-audit': { checkSecrets: true, checkRbac: true, redisTimeoutMs: 3_000, tlsTimeoutMs: 3_000 },
      'dr-drill': { recoveryTimeoutMs: 20_000 },
    },
    notifications: {
      email: { smtp: { host: '127.0.0.1', port: smtp.port, user: 'caretaker', password: '${SMTP_PASSWORD}' }, from: 'caretaker@example.com', to: ['ops@example.com'] },
      webhook: { url: '${ALERT_WEBHOOK_URL}' },
      channels: { pd: { kind: 'pagerduty', routingKey: '${PAGERDUTY_ROUTING_KEY}', url: `http://127.0.0.1:${pagerduty.port}/v2/enqueue` } },
    },
    report: { title: 'SECRETS' },
  };
  configFile = join(dir, 'caretaker.yaml');
  writeFileSync(configFile, stringify(config), { mode: 0o600 });

  expect((await cli('check-config')).code).toBe(0);
  await cli('schedules', '--json');

  caretaker = spawnCaretaker(['start', '--config', configFile], env);
  caretaker.child.stdout!.on('data', (d: Buffer) => (caretakerStdout += d.toString()));
  await caretaker.waitForLog('caretaker started', 30_000);
  const queue = new Queue('caretaker', { connection: inspect, prefix });

  try {
    // Phase 1, the notifiers down: runs that fail and alert, alerts that fail on both channels.
    const backupRun = await cli('run', 'backup', '--target', BACKUPS, '--json');
    expect(JSON.parse(backupRun.stdout)).toMatchObject({ task: 'backup', status: 'ok' });
    await cli('run', 'backup', '--target', 'broken', '--json');
    const phase1 = [...(await enqueue('connections')), ...(await enqueue('redis-health'))];
    await waitForJobs(queue, phase1, 30_000);
    await eventually(
      async () => {
        const { rows } = await stateDb.pool.query<{ channel: string }>('SELECT DISTINCT channel FROM caretaker.notifier_failures');
        return rows.length === 3 ? true : undefined;
      },
      30_000,
      'a failure of each notifier to be recorded',
    );
    notifiersUp = true;

    // Phase 2: every task on every target, the failing ones again (their alerts go through now).
    const tasks = [
      'connections', 'vacuum-analyze', 'pg-health', 'index-audit', 'disk-check', 'slow-queries',
      'redis-health', 'queue-health', 'api-health', 'metrics-review', 'k8s-health', 'error-logs',
      'backup-verify', 'restore-test', 'dr-drill', 'security-audit', 'capacity-plan', 'history-prune', 'weekly-report',
    ];
    const phase2: string[] = [];
    for (const task of tasks) phase2.push(...(await enqueue(task)));
    phase2.push(...(await enqueue('vacuum-analyze', '--target', 'app', '--dry-run')));
    enqueuedJobs = [...phase1, ...phase2];
    // The same failures through `caretaker run` (CLI output, exit 3).
    await cli('run', 'connections', '--target', 'refused', '--json');
    await cli('run', 'redis-health', '--target', 'cache-wrongpass', '--json');
    await cli('run', 'metrics-review', '--target', 'prom-badtoken');
    await cli('run', 'api-health', '--target', 'api-keyed', '--json');
    // The lockfiles read with their token, the registry refusing its own while quoting it back.
    await cli('run', 'dependency-check', '--json', '--param', 'kinds=["packages"]');
    await waitForJobs(queue, phase2, 60_000);

    // The web role, while caretaker runs.
    const viewer = { user: 'viewer', password: SECRETS.viewerPassword };
    await webGet('/health');
    await webGet('/health?detail');
    await webGet('/health?detail', viewer);
    await webGet('/metrics');
    await webGet('/api/runs?limit=1000', viewer);
    await webGet('/api/runs');
    await webGet('/api/runs?limit=5', { user: 'viewer', password: 'wrong' });
    await webGet(`/reports/${thisWeek}`, viewer);
    await webGet('/reports', viewer);
    for (const status of ['latest', 'completed', 'failed']) {
      await webGet(`/admin/queues/api/queues?activeQueue=caretaker&status=${status}&page=1&jobsPerPage=1000`, viewer);
    }
    await webGet('/admin/queues/api/job-schedulers', viewer);
  } finally {
    await queue.close();
  }

  // Stopping drains the alerts in flight.
  await caretaker.stop(20_000);

  // The weekly report of this week (the runs above), written and sent; and as text.
  const reportFile = join(dir, 'report.html');
  expect((await cli('report', 'weekly', '--week', thisWeek, '--out', reportFile, '--send')).code).toBe(0);
  reportHtml = readFileSync(reportFile, 'utf8');
  await cli('report', 'weekly', '--week', thisWeek);
  // An invalid config holding secrets: the error names paths, not values.
  const badFile = join(dir, 'bad.yaml');
  writeFileSync(
    badFile,
    stringify({
      redis: { url: `redis//:${SECRETS.redisPassword}@127.0.0.1:${redisServer.port}` },
      state: { url: `postgresql:/${roles.state}:${SECRETS.stateDbPassword}@127.0.0.1/x` },
      web: { auth: { admin: `no-colon-${SECRETS.adminPassword}` } },
      notifications: { webhook: { url: `htp://127.0.0.1/hooks/${SECRETS.webhookPathKey}?key=${SECRETS.webhookQueryKey}` } },
    }),
  );
  const bad = await runCli(['check-config', '--config', badFile], { CARETAKER_LOG_LEVEL: 'debug' });
  cliRuns.push({ args: ['check-config', '(invalid config)'], run: bad });
  expect(bad.code).toBe(3);

  const { rows: slowest } = await stateDb.pool.query<{ run: string }>(
    `SELECT task || ' on ' || target || ' ' || duration_ms || ' ms' AS run FROM caretaker.runs ORDER BY duration_ms DESC LIMIT 3`,
  );
  console.log(
    `secrets workload: ${enqueuedJobs.length} jobs enqueued, ${cliRuns.length} CLI commands, ${((Date.now() - started) / 1000).toFixed(1)} s; slowest runs: ${slowest.map((r) => r.run).join(', ')}`,
  );
}, 150_000);

afterAll(async () => {
  await caretaker?.stop(5_000);
  inspect?.disconnect();
  await redisServer?.stop();
  await smtp?.close();
  await Promise.all([webhook?.close(), pagerduty?.close(), httpService?.close(), prometheus?.close()]);
  await kube?.close();
  if (s3) {
    s3rverAccount.DUMMY_ACCOUNT.revokeAccessKey(s3AccessKeyId);
    await s3.stop();
  }
  // restore-test and dr-drill drop their scratch databases; a run cut short may leave one.
  await admin(async (c) => {
    const { rows } = await c.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, [scratchNamePrefix(BACKUPS)]);
    for (const r of rows) await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(r.datname)} WITH (FORCE)`);
  }).catch(() => undefined);
  await stateDb?.drop();
  await appDb?.drop();
  await dropRoles(roles.scratch, roles.app, roles.state);
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

// ------------------------------------------------------------------ the sinks

async function redisSinks(): Promise<Sink[]> {
  const sinks: Sink[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await inspect.scan(cursor, 'COUNT', 500);
    cursor = next;
    for (const key of keys) {
      const type = await inspect.type(key);
      let value: unknown;
      if (type === 'string') value = await inspect.get(key);
      else if (type === 'hash') value = await inspect.hgetall(key);
      else if (type === 'list') value = await inspect.lrange(key, 0, -1);
      else if (type === 'set') value = await inspect.smembers(key);
      else if (type === 'zset') value = await inspect.zrange(key, '0', '-1', 'WITHSCORES');
      else if (type === 'stream') value = await inspect.xrange(key, '-', '+');
      else value = `(type ${type})`;
      sinks.push({ where: `redis key ${key} (${type})`, text: `${key}\n${JSON.stringify(value)}` });
    }
  } while (cursor !== '0');
  return sinks;
}

async function stateSinks(): Promise<Sink[]> {
  const { rows: tables } = await stateDb.pool.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = 'caretaker' ORDER BY table_name`,
  );
  const sinks: Sink[] = [];
  for (const { table_name } of tables) {
    const { rows } = await stateDb.pool.query<{ row: string }>(`SELECT row_to_json(t)::text AS row FROM caretaker.${escapeIdentifier(table_name)} t`);
    rows.forEach((r, i) => sinks.push({ where: `caretaker.${table_name} row ${i + 1}`, text: r.row }));
  }
  return sinks;
}

function logSinks(): Sink[] {
  return [
    { where: 'caretaker start: stderr', text: caretaker!.stderr() },
    { where: 'caretaker start: stdout', text: caretakerStdout },
    ...cliRuns.flatMap(({ args, run }) => [
      { where: `caretaker ${args.join(' ')}: stdout`, text: run.stdout },
      { where: `caretaker ${args.join(' ')}: stderr`, text: run.stderr },
    ]),
  ];
}

function messageSinks(): Sink[] {
  return [
    ...hooks.map((h, i) => ({ where: `webhook body ${i + 1}`, text: h.body })),
    ...mails.flatMap((m, i) => [
      { where: `email ${i + 1} "${m.subject}" (raw message)`, text: m.raw },
      { where: `email ${i + 1} "${m.subject}" (text)`, text: `${m.subject}\n${m.text ?? ''}` },
      { where: `email ${i + 1} "${m.subject}" (html)`, text: typeof m.html === 'string' ? m.html : '' },
    ]),
    { where: `report weekly --out (HTML file)`, text: reportHtml },
  ];
}

// ------------------------------------------------------------------ the checks

describe('secrets planted in the config', () => {
  it('were all used: the workload ran every task on every target, alerted, reported and served', async () => {
    const { rows: runs } = await stateDb.pool.query<{ task: string; target: string; status: string; summary: string }>('SELECT task, target, status, summary FROM caretaker.runs');
    const count = (pred: (r: { task: string; target: string; status: string }) => boolean) => runs.filter(pred).length;
    expect(runs.length).toBeGreaterThanOrEqual(50);
    expect(new Set(runs.map((r) => r.task)).size).toBeGreaterThanOrEqual(19);
    // Each secret was good where it should be: the runs on those targets did their work...
    expect(runs).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ task: 'backup', target: BACKUPS, status: 'ok' }),
        expect.objectContaining({ task: 'connections', target: 'app' }),
        expect.objectContaining({ task: 'queue-health', target: 'jobs' }),
      ]),
    );
    for (const [task, target] of [['backup-verify', BACKUPS], ['redis-health', 'cache'], ['k8s-health', 'prod'], ['error-logs', 'prod'], ['metrics-review', 'prom'], ['metrics-review', 'prom-basic'], ['api-health', 'api']]) {
      expect({ task, target, ok: count((r) => r.task === task && r.target === target && r.status !== 'error') > 0 }).toEqual({ task, target, ok: true });
    }
    // ...and wrong where it should be: errors, whose messages are the dangerous ones.
    for (const [task, target] of [['connections', 'refused'], ['connections', 'norole'], ['redis-health', 'cache-wrongpass'], ['k8s-health', 'prod-badtoken'], ['metrics-review', 'prom-badtoken'], ['backup-verify', 'broken'], ['backup', 'broken']]) {
      const these = runs.filter((r) => r.task === task && r.target === target).map((r) => `${r.status}: ${r.summary}`);
      expect({ task, target, these }).toEqual({ task, target, these: expect.arrayContaining([expect.stringMatching(/^error: /)]) });
    }
    expect(smtpLogins.some((l) => l.passwordMatched)).toBe(true);
    expect(hooks.some((h) => h.url === `/hooks/${SECRETS.webhookPathKey}?key=${SECRETS.webhookQueryKey}`)).toBe(true);
    expect(hooks.some((h) => h.authorization === `Basic ${Buffer.from(`hook:${SECRETS.webhookPassword}`).toString('base64')}`)).toBe(true);
    expect(httpRequests.some((r) => r.authorization === `Bearer ${SECRETS.httpToken}`)).toBe(true);
    // dependency-check read the lockfile with its token and asked the registry with its own (which quoted it back).
    expect(httpRequests.some((r) => r.url.startsWith('/package-lock.json?key=') && r.authorization === `Bearer ${SECRETS.lockfileToken}`)).toBe(true);
    expect(httpRequests.some((r) => r.url === '/npm/widget' && r.authorization === `Bearer ${SECRETS.npmToken}`)).toBe(true);
    expect(promRequests.some((r) => r.authorization === `Bearer ${SECRETS.promToken}`)).toBe(true);
    expect(kube.requests.length).toBeGreaterThan(5);

    // Alerts: failed on both channels first (recorded), then delivered on both.
    const { rows: failures } = await stateDb.pool.query<{ channel: string }>('SELECT channel FROM caretaker.notifier_failures');
    expect(new Set(failures.map((f) => f.channel))).toEqual(new Set(['email', 'webhook', 'pd']));
    expect(pagerdutyKeys.length).toBeGreaterThan(0);
    expect(new Set(pagerdutyKeys)).toEqual(new Set([SECRETS.pagerdutyRoutingKey]));
    expect(hooks.filter((h) => (JSON.parse(h.body) as { kind?: string }).kind === 'alert').length).toBeGreaterThan(0);
    expect(mails.filter((m) => !m.subject?.includes('SECRETS week')).length).toBeGreaterThan(0);
    // The report: the file, the email of this week's and the scheduled task's email of last week.
    expect(reportHtml).toContain('connections');
    expect(mails.filter((m) => m.subject?.includes('SECRETS week')).length).toBeGreaterThanOrEqual(2);
    // The web role answered with data.
    expect(webBodies.find((b) => b.where.startsWith('GET /api/runs?limit=1000 (200)'))?.text).toContain('"runs"');
    expect(webBodies.find((b) => b.where.startsWith('GET /metrics (200)'))?.text).toContain('caretaker_');
    // The notifier failures of phase 1, with their (scrubbed) errors, only to the viewer.
    expect(webBodies.find((b) => b.where === 'GET /health?detail (401)')).toBeDefined();
    expect(webBodies.find((b) => b.where === 'GET /health?detail (200)')?.text).toMatch(/"notifiers":\{"email":\{"at":"[^"]+","error":"smtp /);
    expect(webBodies.filter((b) => b.where.includes('/admin/queues/api/queues') && b.where.endsWith('(200)'))).toHaveLength(3);
  });

  it('appear in no log line: caretaker start, every CLI command (stdout and stderr)', () => {
    expect(caretaker!.stderr().length).toBeGreaterThan(10_000);
    expectNoLeaks(logSinks());
  });

  it('appear nowhere in Redis: job data, return values, failed reasons, job logs, schedulers', async () => {
    const sinks = await redisSinks();
    expect(sinks.filter((s) => /:caretaker:\d+ \(hash\)$/.test(s.where)).length).toBeGreaterThan(20);
    expectNoLeaks(sinks);
  });

  it('appear in no row of the state database: runs, findings, alerts, notifier failures, missed runs', async () => {
    const sinks = await stateSinks();
    expect(sinks.length).toBeGreaterThan(50);
    expectNoLeaks(sinks);
  });

  it('appear in no alert (webhook, email), no report (HTML file, text, email)', () => {
    expectNoLeaks(messageSinks());
  });

  it('appear in no web answer: /health, /metrics, /api/runs, /reports, Bull Board', () => {
    expect(webBodies.length).toBeGreaterThanOrEqual(10);
    expectNoLeaks(webBodies);
  });
});
