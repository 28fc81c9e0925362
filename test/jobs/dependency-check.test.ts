/**
 * dependency-check on real servers: Debian's docker-registry (images pushed
 * by the test, one tag re-pushed to move it) behind a fake Kubernetes API
 * whose pods' imageIDs point at it; a real verdaccio (versions published by
 * the test); an OSV directory written by the test; the test PostgreSQL and
 * Redis, against versions files the test writes. Each finding is planted;
 * a current setup gives none; a target that cannot be reached is an info
 * finding while the rest still runs.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { Redis } from 'ioredis';
import type { V1Pod } from '@kubernetes/client-node';
import { dependencyCheck } from '../../src/jobs/dependency-check';
import type { TaskResult } from '../../src/contract/result';
import type { RawConfigInput } from '../../src/config/schema';
import { runTask } from '../../src/worker/run-task';
import { testConfig } from '../support/config';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { TEST_PG_ADMIN_URL, TEST_REDIS_URL } from '../support/env';
import { deployment, startKubeApi, type KubeApi } from '../support/kube-api';
import { testLogger } from '../support/logger';
import { startNpmRegistry, type TestNpmRegistry } from '../support/npm-registry';
import { startOciRegistry, type TestRegistry } from '../support/oci-registry';
import { closedPort } from '../support/https-server';
import { preparedRun } from '../support/run-task';
import { runCli } from '../support/cli';
import { stringify } from 'yaml';

let db: TestDatabase;
let dir: string;
let registry: TestRegistry;
let npm: TestNpmRegistry;
let api: KubeApi;
let kubeconfig: string;
/** The real servers' versions, as they report them. */
let postgresVersion: string;
let redisVersion: string;
/** What the pods of `api` and `worker` run. */
let appDigest: string;
/** The digest each other tag of team/app points at. */
const appDigests: Record<string, string> = {};
let movedOldDigest: string;

const NAMESPACE = 'shop';

/** A versions file whose newest release of each real server's line is `newest(theirs)`. */
async function versionsFile(name: string, newest: (version: string) => string): Promise<string> {
  const pgMajor = postgresVersion.split('.')[0]!;
  const redisLine = redisVersion.split('.').slice(0, 2).join('.');
  const file = join(dir, `${name}.json`);
  await writeFile(
    file,
    JSON.stringify({
      generatedAt: '2026-11-30',
      sources: 'written by the test',
      postgresql: { [pgMajor]: { firstRelease: '2022-10-13', latest: newest(postgresVersion), eol: '2099-11-11' } },
      redis: { [redisLine]: { latest: newest(redisVersion), eol: null } },
    }),
  );
  return file;
}
const bump = (v: string) => v.replace(/(\d+)$/, (n) => String(Number(n) + 3));

/** Points each pod's container status at `digest` in the test registry, as the kubelet reports a pulled image. */
function runDigest(pods: V1Pod[], repository: string, digest: string): void {
  for (const p of pods) for (const s of p.status?.containerStatuses ?? []) s.imageID = `${registry.host}/${repository}@${digest}`;
}

beforeAll(async () => {
  db = await createTestDatabase('depcheck');
  dir = await mkdtemp(join(tmpdir(), 'ct-depcheck-'));
  const pg = new Client({ connectionString: TEST_PG_ADMIN_URL });
  await pg.connect();
  postgresVersion = (await pg.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v.split(' ')[0]!;
  await pg.end();
  const redis = new Redis(TEST_REDIS_URL);
  redisVersion = /^redis_version:(\S+)/m.exec(await redis.info('server'))![1]!;
  redis.disconnect();

  [registry, npm, api] = await Promise.all([startOciRegistry(), startNpmRegistry(), startKubeApi()]);
  kubeconfig = api.writeKubeconfig(dir);
  // team/app: the pods run 1.2.3; the registry has a patch, a minor, a major and a release candidate ahead.
  appDigest = await registry.push('team/app', '1.2.3');
  for (const tag of ['1.2.5', '1.3.0', '2.0.0', '2.1.0-rc.1', 'not-a-version']) appDigests[tag] = await registry.push('team/app', tag);
  // team/moved: 1.0.0 was pushed again after the pods pulled it.
  movedOldDigest = await registry.push('team/moved', '1.0.0', 'first');
  await registry.push('team/moved', '1.0.0', 'second');

  const web = api.addDeployment(
    deployment({ name: 'web', namespace: NAMESPACE, replicas: 2, containers: [{ name: 'web', image: `${registry.host}/team/app:1.2.3` }] }),
  );
  runDigest(web.pods, 'team/app', appDigest);
  const worker = api.addDeployment(deployment({ name: 'worker', namespace: NAMESPACE, replicas: 1, containers: [{ name: 'worker', image: `${registry.host}/team/moved:1.0.0` }] }));
  runDigest(worker.pods, 'team/moved', movedOldDigest);
  api.addDeployment(deployment({ name: 'cron', namespace: NAMESPACE, replicas: 1, containers: [{ name: 'cron', image: `${registry.host}/team/app:latest` }] }));

  // widget: 1.0.0 installed under ^1.0.0; 1.2.0 and 2.0.0 published since.
  for (const v of ['1.0.0', '1.2.0', '2.0.0']) await npm.publish('widget', v);
  await npm.publish('current-lib', '3.1.0');
}, 180_000);

afterAll(async () => {
  await Promise.all([registry?.stop(), npm?.stop(), api?.close()]);
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A package-lock v3 with `widget` and `current-lib` direct, and `qs` pulled in by widget. */
async function lockfile(name: string, widget = '1.0.0', qs = '6.0.4'): Promise<string> {
  const file = join(dir, `${name}-package-lock.json`);
  await writeFile(
    file,
    JSON.stringify({
      name: 'shop',
      lockfileVersion: 3,
      requires: true,
      packages: {
        '': { name: 'shop', version: '1.0.0', dependencies: { widget: `^${widget}`, 'current-lib': '^3.1.0' } },
        'node_modules/widget': { version: widget, dependencies: { qs: '^6.0.0' } },
        'node_modules/current-lib': { version: '3.1.0' },
        'node_modules/qs': { version: qs },
      },
    }),
  );
  return file;
}

/** An OSV database with one advisory on qs below 6.2.4 and one on another ecosystem's qs. */
async function osvDatabase(): Promise<string> {
  const osv = join(dir, 'osv');
  await rm(osv, { recursive: true, force: true });
  await mkdir(join(osv, 'npm'), { recursive: true });
  await writeFile(
    join(osv, 'npm', 'GHSA-6rw7-vpxm-498p.json'),
    JSON.stringify({
      id: 'GHSA-6rw7-vpxm-498p',
      modified: '2024-01-01T00:00:00Z',
      aliases: ['CVE-2022-24999'],
      summary: 'qs vulnerable to Prototype Pollution',
      affected: [{ package: { ecosystem: 'npm', name: 'qs' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '6.0.0' }, { fixed: '6.2.4' }] }] }],
      database_specific: { severity: 'HIGH' },
    }),
  );
  await writeFile(
    join(osv, 'npm', 'PYSEC-0000-0001.json'),
    JSON.stringify({ id: 'PYSEC-0000-0001', modified: '2024-01-01T00:00:00Z', summary: 'another ecosystem', affected: [{ package: { ecosystem: 'PyPI', name: 'qs' }, versions: ['6.0.4'] }] }),
  );
  return osv;
}

function run(targets: RawConfigInput['targets'], params: Record<string, unknown>): Promise<TaskResult> {
  const config = testConfig({ dbUrl: db.url, prefix: 'unused', targets });
  return runTask({ run: preparedRun(dependencyCheck, config, 'caretaker', params), dryRun: false, log: testLogger, state: db.pool });
}

const byCode = (r: TaskResult, code: string) => r.findings.filter((f) => f.code === code);

it('plants each finding: outdated, moved and unpinned images, servers behind, an outdated package and a vulnerable one', async () => {
  const result = await run(
    {
      postgres: [{ name: 'main', url: db.url }],
      redis: [{ name: 'cache', url: TEST_REDIS_URL }],
      kubernetes: [{ name: 'prod', namespace: NAMESPACE, kubeconfig }],
      lockfiles: [{ name: 'shop', files: [await lockfile('outdated')], registry: npm.url }],
    },
    { insecureRegistries: [registry.host], versionsFile: await versionsFile('behind', bump), osvDirectory: await osvDatabase() },
  );

  const [outdated] = byCode(result, 'image_outdated');
  expect(byCode(result, 'image_outdated')).toHaveLength(1);
  expect(outdated).toMatchObject({ severity: 'warning', subject: `prod/${NAMESPACE}/deployment/web/web`, details: { tag: '1.2.3', patch: '1.2.5', minor: '1.3.0', major: '2.0.0' } });
  expect(outdated!.message).toBe(`${registry.host}/team/app:1.2.3 is behind its registry: newer patch 1.2.5, minor 1.3.0, major 2.0.0`);

  expect(byCode(result, 'image_tag_moved')).toEqual([
    expect.objectContaining({ severity: 'warning', subject: `prod/${NAMESPACE}/deployment/worker/worker`, details: expect.objectContaining({ runningDigests: [movedOldDigest] }) }),
  ]);
  expect(byCode(result, 'image_unpinned')).toEqual([expect.objectContaining({ subject: `prod/${NAMESPACE}/deployment/cron/cron` })]);

  expect(byCode(result, 'server_minor_behind').map((f) => f.subject).sort()).toEqual(['cache/redis', 'main/postgresql']);

  expect(byCode(result, 'package_outdated')).toEqual([
    expect.objectContaining({ severity: 'info', details: expect.objectContaining({ package: 'widget', version: '1.0.0', latest: '2.0.0', level: 'major', wanted: '1.2.0' }) }),
  ]);
  const [vulnerable] = byCode(result, 'vulnerable_dependency');
  expect(byCode(result, 'vulnerable_dependency')).toHaveLength(1);
  expect(vulnerable).toMatchObject({ severity: 'warning', details: { package: 'qs', version: '6.0.4', path: ['widget', 'qs'], advisory: 'GHSA-6rw7-vpxm-498p', fixed: '6.2.4' } });
  expect(vulnerable!.suggestion).toBe('Update to qs@6.2.4 or later (through widget, or an npm override)');

  expect(byCode(result, 'dependency_check_incomplete')).toEqual([]);
  expect(result.status).toBe('warning');
  expect(result.metrics).toMatchObject({ images_checked: 3, packages_direct: 2, packages_locked: 3, packages_outdated: 1, packages_vulnerable: 1, advisories_loaded: 1 });
}, 60_000);

it('a current setup gives no finding', async () => {
  const result = await run(
    {
      postgres: [{ name: 'main', url: db.url }],
      redis: [{ name: 'cache', url: TEST_REDIS_URL }],
      lockfiles: [{ name: 'shop', files: [await lockfile('current', '2.0.0', '6.2.4')], registry: npm.url }],
    },
    { versionsFile: await versionsFile('current', (v) => v), osvDirectory: await osvDatabase() },
  );
  expect(result.findings).toEqual([]);
  expect(result.status).toBe('ok');
  expect(result.summary).toMatch(/^checked 3 targets: /);
});

it('a cluster that cannot be reached and a missing lockfile are info findings; the rest still runs', async () => {
  const port = await closedPort();
  const broken = join(dir, 'broken-kubeconfig');
  await writeFile(
    broken,
    `apiVersion: v1\nkind: Config\nclusters: [{ name: c, cluster: { server: "https://127.0.0.1:${port}", insecure-skip-tls-verify: true } }]\nusers: [{ name: u, user: { token: t } }]\ncontexts: [{ name: x, context: { cluster: c, user: u } }]\ncurrent-context: x\n`,
  );
  const result = await run(
    {
      postgres: [{ name: 'main', url: db.url }],
      kubernetes: [{ name: 'gone', namespace: NAMESPACE, kubeconfig: broken }],
      lockfiles: [{ name: 'shop', files: [join(dir, 'no-such-package-lock.json')], registry: npm.url }],
    },
    { versionsFile: await versionsFile('current2', (v) => v), timeoutMs: 2_000 },
  );
  expect([result.status, result.summary]).toEqual(['ok', expect.stringMatching(/^checked 1 target: nothing behind, 2 info$/)]);
  expect(byCode(result, 'dependency_check_incomplete').map((f) => [f.severity, f.subject])).toEqual([
    ['info', 'kubernetes gone'],
    ['info', `shop/${join(dir, 'no-such-package-lock.json')}`],
  ]);
  expect(byCode(result, 'dependency_check_incomplete')[1]!.message).toMatch(/ENOENT/);
});

it('is an error when nothing at all can be checked', async () => {
  const result = await run({ redis: [{ name: 'cache', url: `redis://127.0.0.1:${await closedPort()}` }] }, { kinds: ['servers'], timeoutMs: 1_000 });
  expect(result.status).toBe('error');
  expect(result.summary).toMatch(/nothing could be checked: redis cache was not checked: /);
});

it('caretaker run dependency-check --json prints its one result', async () => {
  const path = join(dir, 'caretaker.yaml');
  const versions = await versionsFile('cli', bump);
  await writeFile(path, stringify({ redis: { url: TEST_REDIS_URL, prefix: 'unused' }, state: { url: db.url }, targets: { postgres: [{ name: 'main', url: db.url }] } }));
  const out = await runCli(['--config', path, 'run', 'dependency-check', '--json', '--param', `versionsFile=${versions}`, '--param', 'kinds=["servers"]']);
  expect(out.code).toBe(1);
  const result = JSON.parse(out.stdout) as { status: string; findings: { code: string; subject: string }[] };
  expect(result.findings.map((f) => [f.code, f.subject])).toEqual([['server_minor_behind', 'main/postgresql']]);
});

it('counts only the tags matching tagPattern, and pre-releases only when asked', async () => {
  const images = async (params: Record<string, unknown>) => {
    const result = await run({ kubernetes: [{ name: 'prod', namespace: NAMESPACE, kubeconfig }] }, { kinds: ['images'], insecureRegistries: [registry.host], ...params });
    return byCode(result, 'image_outdated')[0]?.details;
  };
  // Only the 1.2 line: the patch release, a warning.
  expect(await images({ tagPattern: '^1\\.2\\.' })).toEqual(expect.objectContaining({ patch: '1.2.5' }));
  expect(await images({ tagPattern: '^1\\.2\\.' })).not.toHaveProperty('major');
  // The release candidate is the newest major only once pre-releases count.
  expect(await images({})).toMatchObject({ major: '2.0.0' });
  expect(await images({ includePrereleases: true })).toMatchObject({ major: '2.1.0-rc.1' });

  // A kubernetes target's own filter, under its tasks.dependency-check, wins over the task's.
  const own = await run({ kubernetes: [{ name: 'prod', namespace: NAMESPACE, kubeconfig, tasks: { 'dependency-check': { tagPattern: '^1\\.2\\.' } } }] }, { kinds: ['images'], insecureRegistries: [registry.host], includePrereleases: true });
  expect(byCode(own, 'image_outdated')[0]!.details).toEqual(expect.objectContaining({ patch: '1.2.5' }));
  expect(byCode(own, 'image_outdated')[0]!.details).not.toHaveProperty('major');
});

it('an image whose registry cannot be reached is image_check_failed (info); the cluster\'s other images are still checked', async () => {
  const port = await closedPort();
  const gone = api.addDeployment(deployment({ name: 'legacy', namespace: 'other', replicas: 1, containers: [{ name: 'legacy', image: `127.0.0.1:${port}/team/legacy:1.0.0` }] }));
  runDigest(gone.pods, 'team/legacy', appDigest);
  // Current: 2.0.0, as pulled (the release candidate is not a release).
  const current = api.addDeployment(deployment({ name: 'web', namespace: 'other', replicas: 1, containers: [{ name: 'web', image: `${registry.host}/team/app:2.0.0` }] }));
  runDigest(current.pods, 'team/app', appDigests['2.0.0']!);
  const result = await run({ kubernetes: [{ name: 'other', namespace: 'other', kubeconfig }] }, { kinds: ['images'], insecureRegistries: [registry.host, `127.0.0.1:${port}`], timeoutMs: 2_000 });
  expect(result.status).toBe('ok');
  expect(byCode(result, 'image_check_failed')).toEqual([
    expect.objectContaining({ severity: 'info', subject: 'other/other/deployment/legacy/legacy', message: expect.stringMatching(new RegExp(`^127\\.0\\.0\\.1:${port}/team/legacy:1\\.0\\.0 was not compared with its registry: registry 127\\.0\\.0\\.1:${port} \\(repository team/legacy\\) is unreachable: ECONNREFUSED$`)) }),
  ]);
  expect(result.metrics.images_checked).toBe(2);
  expect(byCode(result, 'image_outdated')).toEqual([]);
});

it('logs in to a registry with the deployment\'s imagePullSecret, where caretaker may read it; without it the image is image_check_failed', async () => {
  const secured = await startOciRegistry({ tokenAuth: { users: { puller: 'puller-pw-7731' } } });
  try {
    const digest = await secured.push('team/private', '1.0.0');
    const d = deployment({ name: 'private', namespace: 'creds', replicas: 1, containers: [{ name: 'private', image: `${secured.host}/team/private:1.0.0` }] });
    d.spec!.template.spec!.imagePullSecrets = [{ name: 'regcred' }];
    const { pods } = api.addDeployment(d);
    for (const p of pods) for (const s of p.status?.containerStatuses ?? []) s.imageID = `${secured.host}/team/private@${digest}`;
    const dockerconfig = JSON.stringify({ auths: { [secured.host]: { auth: Buffer.from('puller:puller-pw-7731').toString('base64') } } });
    let readable = true;
    api.route('GET', /^\/api\/v1\/namespaces\/creds\/secrets\/regcred$/, () =>
      readable
        ? { json: { apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/dockerconfigjson', metadata: { name: 'regcred', namespace: 'creds' }, data: { '.dockerconfigjson': Buffer.from(dockerconfig).toString('base64') } } }
        : { status: 403, json: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Forbidden', code: 403, message: 'secrets "regcred" is forbidden' } },
    );
    const check = () => run({ kubernetes: [{ name: 'creds', namespace: 'creds', kubeconfig }] }, { kinds: ['images'], insecureRegistries: [secured.host] });

    const withSecret = await check();
    expect(withSecret.findings).toEqual([]);
    expect(secured.tokenRequests.some((r) => r.authorization === `Basic ${Buffer.from('puller:puller-pw-7731').toString('base64')}`)).toBe(true);

    readable = false;
    const without = await check();
    expect(byCode(without, 'image_check_failed')).toEqual([expect.objectContaining({ severity: 'info', message: expect.stringMatching(/requires credentials/) })]);
    expect(JSON.stringify(without)).not.toContain('puller-pw-7731');
  } finally {
    await secured.stop();
  }
});
