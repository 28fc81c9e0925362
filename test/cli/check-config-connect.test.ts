/**
 * `caretaker check-config --connect` tries every server the config names,
 * each once and briefly: the real Postgres and Redis, HTTP servers the test
 * starts, a real SMTP server (smtp-server), a real Prometheus, the fake
 * Kubernetes API at the HTTP boundary, a directory backup store. One line
 * per server; exit 3 when any does not answer, naming it (for a backups
 * target: which of store, source and scratch server); never a password.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { TEST_REDIS_URL } from '../support/env';
import { runCli, type CliRun } from '../support/cli';
import { closedPort, startTestServer, type TestServer } from '../support/https-server';
import { startKubeApi, type KubeApi } from '../support/kube-api';
import { startSmtpSink, type SmtpSink } from '../support/smtp';
import { startExporter, startPrometheus, type TestExporter, type TestPrometheus } from '../support/prometheus';
import { randomPrefix } from '../support/redis';
import { startBlackholeProxy, startBlackholeProxyToPostgres } from '../support/blackhole-proxy';

const SECRET = `pw-${randomBytes(8).toString('hex')}`;
const HEADER = 'connections (each within 5 s):';

let db: TestDatabase;
let dir: string;
let backupsDir: string;
let http: TestServer;
let kube: KubeApi;
let smtp: SmtpSink;
let exporter: TestExporter;
let prometheus: TestPrometheus;
const prefix = randomPrefix('check_connect');

beforeAll(async () => {
  db = await createTestDatabase('check_connect');
  dir = mkdtempSync(join(tmpdir(), 'ct-check-connect-'));
  backupsDir = mkdtempSync(join(dir, 'backups-'));
  writeFileSync(join(backupsDir, 'main-20261201.sql.gz'), 'not really a dump');
  http = await startTestServer({ routes: { '/health': {}, '/health/detailed': { requireToken: SECRET } } });
  kube = await startKubeApi();
  smtp = await startSmtpSink({ login: (user, password) => user === 'caretaker' && password === SECRET });
  exporter = await startExporter(() => 'up_check 1\n');
  prometheus = await startPrometheus({ jobs: { check: exporter.port } });
});

afterAll(async () => {
  await Promise.all([http?.close(), kube?.close(), smtp?.close(), exporter?.close(), prometheus?.stop()]);
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

function configFile(name: string, config: Record<string, unknown>): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify({ redis: { url: TEST_REDIS_URL, prefix }, state: { url: db.url }, ...config }));
  return path;
}

/** The lines under the connections header, without their indent. */
function connectionLines(run: CliRun): string[] {
  const lines = run.stdout.split('\n');
  const start = lines.indexOf(HEADER);
  expect(start).toBeGreaterThan(0);
  return lines.slice(start + 1).filter((l) => l !== '').map((l) => l.trim());
}

describe('caretaker check-config --connect', () => {
  it('prints one line per server, ok or the reason, and exits 3 when one does not answer', async () => {
    const refused = await closedPort();
    const deadScratch = `postgres://postgres:${SECRET}@127.0.0.1:1/postgres`;
    const path = configFile('mixed', {
      targets: {
        postgres: [
          { name: 'main', url: db.url },
          { name: 'down', url: `postgres://app:${SECRET}@127.0.0.1:1/app` },
        ],
        redis: [{ name: 'cache', url: TEST_REDIS_URL }],
        http: [
          { name: 'api', url: http.url('/health'), detailedUrl: http.url('/health/detailed'), token: SECRET },
          { name: 'gone', url: `http://127.0.0.1:${refused}/health` },
          { name: 'wrong-token', url: http.url('/health'), detailedUrl: http.url('/health/detailed'), token: 'not-the-token' },
        ],
        kubernetes: [
          { name: 'prod', namespace: 'shop', kubeconfig: kube.writeKubeconfig(dir) },
          { name: 'badcreds', namespace: 'shop', kubeconfig: kube.writeKubeconfig(dir, { token: 'wrong', fileName: 'bad.yaml' }) },
        ],
        backups: [{ name: 'nightly', database: 'main', store: { kind: 'directory', path: backupsDir }, pattern: 'main-*.sql.gz', scratch: { url: deadScratch } }],
        lockfiles: [{ name: 'app', files: [join(dir, 'no-such-package-lock.json')] }],
      },
      notifications: { email: { smtp: { host: '127.0.0.1', port: smtp.port, user: 'caretaker', password: 'wrong-password' }, from: 'caretaker@example.com', to: ['ops@example.com'] } },
    });

    const run = await runCli(['check-config', '--connect', '--config', path]);

    expect(run.code).toBe(3);
    expect(run.stdout).toMatch(/^config OK/);
    const lines = connectionLines(run);
    expect(lines).toEqual([
      expect.stringMatching(/^caretaker state database: ok \(PostgreSQL \d+/),
      expect.stringMatching(/^caretaker redis: ok \(PONG from /),
      expect.stringMatching(/^postgres main: ok \(PostgreSQL \d+/),
      expect.stringMatching(/^postgres down: failed: cannot connect to postgres: connect ECONNREFUSED 127\.0\.0\.1:1$/),
      expect.stringMatching(/^redis cache: ok \(PONG from /),
      `kubernetes prod: ok (pods listed in namespace shop on ${kube.url})`,
      expect.stringMatching(new RegExp(`^kubernetes badcreds: failed: ${kube.url.replace(/\./g, '\\.')}: 401: `)),
      'http api: ok (HTTP 200; detailedUrl HTTP 200)',
      `http gone: failed: no answer from http://127.0.0.1:${refused} (ECONNREFUSED)`,
      'http wrong-token: failed: detailedUrl answered HTTP 401 (check the token)',
      // restore-test's three servers: the store and the source answer, the scratch server does not, and the line says which.
      'backups nightly: failed: scratch server postgres://postgres:***@127.0.0.1:1/postgres: cannot connect to postgres: connect ECONNREFUSED 127.0.0.1:1',
      `lockfiles app: failed: cannot read ${join(dir, 'no-such-package-lock.json')}: ENOENT`,
      expect.stringMatching(new RegExp(`^smtp email: failed: 127\\.0\\.0\\.1:${smtp.port}: .*535`)),
    ]);
    expect(run.stdout + run.stderr).not.toContain(SECRET);
    expect(run.stdout + run.stderr).not.toContain('wrong-password');
    expect(run.stderr).not.toMatch(/\n\s+at /);

    // Without --connect, nothing is tried: the same config is valid, exit 0.
    const offline = await runCli(['check-config', '--config', path]);
    expect(offline.code).toBe(0);
    expect(offline.stdout).not.toContain(HEADER);
  });

  /** A package-lock.json of a package without dependencies: readable, nothing to ask a registry. */
  const emptyLockfile = () => {
    const path = join(dir, 'empty-package-lock.json');
    writeFileSync(path, JSON.stringify({ name: 'empty', lockfileVersion: 3, packages: { '': { name: 'empty' } } }));
    return path;
  };

  it('exits 0 when every server answers, with a line for each', async () => {
    const path = configFile('all-ok', {
      targets: {
        postgres: [{ name: 'main', url: db.url }],
        redis: [{ name: 'cache', url: TEST_REDIS_URL }],
        queues: [{ name: 'jobs', redis: 'cache', queues: ['emails'] }],
        http: [{ name: 'api', url: http.url('/health') }],
        prometheus: [{ name: 'metrics', url: prometheus.url }],
        kubernetes: [{ name: 'prod', namespace: 'shop', kubeconfig: kube.writeKubeconfig(dir, { fileName: 'ok.yaml' }) }],
        backups: [{ name: 'nightly', database: 'main', store: { kind: 'directory', path: backupsDir }, pattern: 'main-*.sql.gz', scratch: { url: db.url } }],
        lockfiles: [{ name: 'app', files: [emptyLockfile()] }],
      },
      notifications: { email: { smtp: { host: '127.0.0.1', port: smtp.port, user: 'caretaker', password: SECRET }, from: 'caretaker@example.com', to: ['ops@example.com'] } },
    });

    const run = await runCli(['check-config', '--connect', '--config', path]);

    expect(run.stdout + run.stderr).not.toContain(SECRET);
    const lines = connectionLines(run);
    expect(lines.map((l) => l.replace(/: ok( \(.*\))?$/, ': ok'))).toEqual([
      'caretaker state database: ok',
      'caretaker redis: ok',
      'postgres main: ok',
      'redis cache: ok',
      'queues jobs: ok',
      'kubernetes prod: ok',
      'http api: ok',
      'prometheus metrics: ok',
      'backups nightly: ok',
      'lockfiles app: ok',
      'smtp email: ok',
    ]);
    expect(lines).toContain('lockfiles app: ok (1 lockfile read (0 direct dependencies); no dependency to ask the registry about)');
    expect(lines).toContain('backups nightly: ok (store directory ' + backupsDir + ': 1 file; source main ok; scratch server ok)');
    expect(lines).toContain(`smtp email: ok (127.0.0.1:${smtp.port}, logged in)`);
    expect(run.code).toBe(0);
  });

  it('bounds each check: servers that accept and never answer are reported as timed out, beside the others', async () => {
    const silent = await Promise.all([startBlackholeProxyToPostgres(), startBlackholeProxy(Number(new URL(TEST_REDIS_URL).port || 6379)), startBlackholeProxy(http.port)]);
    try {
      for (const proxy of silent) proxy.blackhole();
      const [pg, redis, web] = silent.map((p) => p.port);
      const path = configFile('silent', {
        targets: {
          postgres: [{ name: 'main', url: db.url }, { name: 'silent', url: `postgres://postgres@127.0.0.1:${pg}/postgres` }],
          redis: [{ name: 'silent', url: `redis://127.0.0.1:${redis}` }],
          http: [{ name: 'silent', url: `http://127.0.0.1:${web}/health` }],
        },
      });
      const run = await runCli(['check-config', '--connect', '--config', path]);
      expect(run.code).toBe(3);
      expect(connectionLines(run)).toEqual([
        expect.stringMatching(/^caretaker state database: ok/),
        expect.stringMatching(/^caretaker redis: ok/),
        expect.stringMatching(/^postgres main: ok/),
        'postgres silent: failed: the check timed out after 5000 ms',
        'redis silent: failed: the check timed out after 5000 ms',
        'http silent: failed: the check timed out after 5000 ms',
      ]);
    } finally {
      await Promise.all(silent.map((p) => p.close()));
    }
  });
});
