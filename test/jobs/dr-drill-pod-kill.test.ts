/**
 * dr-drill's optional pod-kill, end to end: the real task (restore and all)
 * against the fake Kubernetes API server, through the real client and a
 * kubeconfig file, as an operator would configure it.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { drDrill } from '../../src/jobs/dr-drill';
import type { TaskResult } from '../../src/contract/result';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { makeDump, runOnBackups } from '../support/backups';
import { TEST_PG_ADMIN_URL } from '../support/env';
import { deployment, startKubeApi, type KubeApi } from '../support/kube-api';
import { startAlertmanager, type TestAlertmanager } from '../support/alertmanager';
import { testConfig } from '../support/config';
import { testLogger } from '../support/logger';
import { freePort } from '../support/ports';
import type { RawConfigInput } from '../../src/config/schema';
import { runTask } from '../../src/worker/run-task';
import { preparedRun } from '../support/run-task';
import type { GettableSilence } from '../../src/clients/alertmanager';
import { basicAuthToken } from '../../src/logger';

const TARGET = `drpod-${randomBytes(3).toString('hex')}`;
let source: TestDatabase;
let api: KubeApi;
let dir: string;
let kubeconfig: string;

beforeAll(async () => {
  source = await createTestDatabase('drpod');
  await source.pool.query(`CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100);`);
  dir = await mkdtemp(join(tmpdir(), 'ct-drpod-'));
  await makeDump(source.url, dir, 'app-1.sql.gz');
  api = await startKubeApi();
  kubeconfig = api.writeKubeconfig(dir);
});

afterAll(async () => {
  await api.close();
  await source.drop();
  await rm(dir, { recursive: true, force: true });
});

/** The drill on deployment `deployment` (default `web`) in namespace staging. */
function drill(opts: { allowedNamespaces: string[]; dryRun?: boolean; params?: Record<string, unknown>; deployment?: string }): Promise<TaskResult> {
  return runOnBackups(drDrill, {
    sourceUrl: source.url,
    state: source.pool,
    name: TARGET,
    kubernetes: [{ name: 'kube', namespace: 'staging', kubeconfig, allow: { podKillNamespaces: opts.allowedNamespaces } }],
    backups: {
      store: { kind: 'directory', path: dir },
      pattern: 'app-*.sql.gz',
      scratch: { url: TEST_PG_ADMIN_URL },
      allow: { restore: true },
      drill: { kubernetes: 'kube', namespace: 'staging', deployment: opts.deployment ?? 'web' },
    },
    params: opts.params,
    dryRun: opts.dryRun,
  });
}

describe('dr-drill pod-kill', () => {
  it('deletes one pod in an allowed namespace and measures the recovery', async () => {
    const { pods } = api.addDeployment(deployment({ name: 'web', namespace: 'staging', replicas: 2 }), { replaceAfterMs: 400 });
    const result = await drill({ allowedNamespaces: ['staging'] });

    const deletes = api.requestsOf('DELETE');
    expect(deletes).toHaveLength(1);
    expect(pods.map((p) => `/api/v1/namespaces/staging/pods/${p.metadata!.name}`)).toContain(deletes[0]!.path);
    expect(result.metrics.recovery_seconds).toBeGreaterThanOrEqual(0.4);
    expect(result.actions).toContainEqual(expect.objectContaining({ kind: 'delete_pod', applied: true }));
    expect(result.findings.map((f) => f.code)).not.toContain('recovery_failed');
    const record = result.findings.find((f) => f.code === 'dr_drill_record')!;
    expect((record.details!.steps as { step: string }[]).map((s) => s.step)).toContain('pod_recovery');
    expect(result.metrics.rto_seconds).toBeGreaterThan(0);
  });

  it('refuses in a namespace that is not allowed, without a single API call', async () => {
    const before = api.requests.length;
    const result = await drill({ allowedNamespaces: [] });
    expect(api.requests.length).toBe(before);
    expect(result.findings.find((f) => f.code === 'pod_kill_not_allowed')).toMatchObject({ severity: 'info' });
    expect(result.metrics.recovery_seconds).toBeUndefined();
  });

  it('with --dry-run, only says which deployment it would touch', async () => {
    const before = api.requests.length;
    const result = await drill({ allowedNamespaces: ['staging'], dryRun: true });
    expect(api.requests.length).toBe(before);
    expect(result.actions).toContainEqual(expect.objectContaining({ kind: 'delete_pod', subject: 'staging/web', applied: false }));
  });

  it('reports recovery_slow past the objective', async () => {
    // A deployment of its own, replaced in 0.4 s: well past an objective of 0.1 s.
    api.addDeployment(deployment({ name: 'web-slow', namespace: 'staging', replicas: 2 }), { replaceAfterMs: 400 });
    const result = await drill({ allowedNamespaces: ['staging'], params: { recoveryObjectiveSeconds: 0.1 }, deployment: 'web-slow' });
    expect(result.findings.find((f) => f.code === 'recovery_slow')).toMatchObject({ severity: 'warning' });
  });
});

type DrillInput = NonNullable<NonNullable<NonNullable<RawConfigInput['targets']>['backups']>[number]['drill']>;

describe('dr-drill pod-kill with an Alertmanager channel', () => {
  const DEPLOYMENT = 'shop-api';
  const PASSWORD = 'am-Pa55word-never-shown';
  let am: TestAlertmanager;
  /** The silences Alertmanager held while the pod was down, read when the drill polled the deployment after the delete. */
  let heldDuringDrill: GettableSilence[] | undefined;
  let deletesBefore = 0;

  beforeAll(async () => {
    am = await startAlertmanager();
    api.addDeployment(deployment({ name: DEPLOYMENT, namespace: 'staging', replicas: 2 }), { replaceAfterMs: 300 });
    // Serves the deployment as the built-in route does; once the pod is deleted, it first notes what Alertmanager silences.
    api.route('GET', new RegExp(`^/apis/apps/v1/namespaces/staging/deployments/${DEPLOYMENT}$`), async () => {
      if (heldDuringDrill === undefined && api.requestsOf('DELETE').length > deletesBefore) {
        heldDuringDrill = (await am.silences()).filter((s) => s.status.state === 'active');
      }
      return { json: api.findDeployment('staging', DEPLOYMENT) };
    });
  });

  afterAll(async () => {
    await am?.stop();
  });

  beforeEach(() => {
    heldDuringDrill = undefined;
    deletesBefore = api.requestsOf('DELETE').length;
  });

  /** The drill on `shop-api`, with one alertmanager channel at `url`. */
  function drillWith(url: string, opts: { silence?: DrillInput['silence']; params?: Record<string, unknown>; dryRun?: boolean } = {}): Promise<TaskResult> {
    const config = testConfig({
      dbUrl: source.url,
      prefix: 'unused',
      targets: {
        postgres: [{ name: 'main', url: source.url }],
        kubernetes: [{ name: 'kube', namespace: 'staging', kubeconfig, allow: { podKillNamespaces: ['staging'] } }],
        backups: [
          {
            name: TARGET,
            database: 'main',
            store: { kind: 'directory', path: dir },
            pattern: 'app-*.sql.gz',
            scratch: { url: TEST_PG_ADMIN_URL },
            allow: { restore: true },
            drill: { kubernetes: 'kube', namespace: 'staging', deployment: DEPLOYMENT, ...(opts.silence !== undefined ? { silence: opts.silence } : {}) },
          },
        ],
      },
      notifications: { channels: { am: { kind: 'alertmanager', url } } },
    });
    const target = config.targets.backups[0]!;
    const params = preparedRun(drDrill, config, target.name, opts.params ?? {});
    return runTask({ run: params, dryRun: opts.dryRun ?? false, log: testLogger, state: source.pool });
  }

  it('silences the deployment on Alertmanager before the delete and expires the silence after', async () => {
    const result = await drillWith(am.url, { params: { recoveryTimeoutMs: 60_000 } });

    expect(api.requestsOf('DELETE')).toHaveLength(deletesBefore + 1);
    const created = result.actions.find((a) => a.kind === 'silence_created')!;
    expect(created).toMatchObject({ applied: true, details: { alertmanager: am.url } });
    const id = created.subject;
    // The actions read in the order things happened.
    const kinds = result.actions.map((a) => a.kind);
    expect(kinds.indexOf('silence_created')).toBeLessThan(kinds.indexOf('delete_pod'));
    expect(kinds.indexOf('delete_pod')).toBeLessThan(kinds.indexOf('silence_expired'));
    expect(result.actions.find((a) => a.kind === 'silence_expired')).toMatchObject({ subject: id, applied: true });

    // While the pod was down, Alertmanager held it, with the default matchers.
    const held = heldDuringDrill!.find((s) => s.id === id)!;
    expect(held).toBeDefined();
    expect(held.matchers).toEqual([
      { name: 'namespace', value: 'staging', isRegex: false, isEqual: true },
      { name: 'deployment', value: DEPLOYMENT, isRegex: false, isEqual: true },
    ]);
    expect(held.createdBy).toBe('caretaker dr-drill');
    // It would lapse by itself after the recovery timeout and the default 300 s margin.
    const details = created.details as { startsAt: string; endsAt: string };
    expect(Date.parse(details.endsAt) - Date.parse(details.startsAt)).toBe(60_000 + 300_000);

    const after = (await am.silences()).find((s) => s.id === id)!;
    expect(after.status.state).toBe('expired');
    expect(result.findings.map((f) => f.code)).not.toContain('drill_silence_failed');
    expect(result.findings.map((f) => f.code)).not.toContain('recovery_failed');
  });

  it('drill.silence sets the matchers, with {namespace} and {deployment} filled in, and the margin', async () => {
    const result = await drillWith(am.url, { silence: { matchers: { namespace: '{namespace}', app: 'shop-{deployment}' }, marginSeconds: 60 }, params: { recoveryTimeoutMs: 30_000 } });
    const created = result.actions.find((a) => a.kind === 'silence_created')!;
    const held = heldDuringDrill!.find((s) => s.id === created.subject)!;
    expect(held.matchers).toEqual([
      { name: 'namespace', value: 'staging', isRegex: false, isEqual: true },
      { name: 'app', value: `shop-${DEPLOYMENT}`, isRegex: false, isEqual: true },
    ]);
    const details = created.details as { startsAt: string; endsAt: string };
    expect(Date.parse(details.endsAt) - Date.parse(details.startsAt)).toBe(30_000 + 60_000);
    expect((await am.silences()).find((s) => s.id === created.subject)!.status.state).toBe('expired');
  });

  it('with the Alertmanager down, the drill still runs and says it was not silenced', async () => {
    const port = await freePort();
    const result = await drillWith(`http://caretaker:${PASSWORD}@127.0.0.1:${port}`);

    expect(api.requestsOf('DELETE')).toHaveLength(deletesBefore + 1);
    expect(result.actions).toContainEqual(expect.objectContaining({ kind: 'delete_pod', applied: true }));
    expect(result.actions.map((a) => a.kind)).not.toContain('silence_created');
    const finding = result.findings.find((f) => f.code === 'drill_silence_failed')!;
    expect(finding).toMatchObject({ severity: 'info', subject: `http://127.0.0.1:${port}` });
    expect(finding.message).toContain('the drill ran anyway');
    expect(finding.message).toContain('ECONNREFUSED');
    const text = JSON.stringify(result);
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(basicAuthToken('caretaker', PASSWORD));
    expect(result.findings.map((f) => f.code)).not.toContain('recovery_failed');
  });

  it('with --dry-run, says it would silence, and silences nothing', async () => {
    const before = (await am.silences()).length;
    const result = await drillWith(`http://caretaker:${PASSWORD}@${am.url.slice('http://'.length)}`, { dryRun: true });
    expect(result.actions).toContainEqual({
      kind: 'silence_created',
      subject: `staging/${DEPLOYMENT}`,
      applied: false,
      details: { alertmanagers: [am.url], matchers: [expect.objectContaining({ name: 'namespace', value: 'staging' }), expect.objectContaining({ name: 'deployment', value: DEPLOYMENT })] },
    });
    expect(await am.silences()).toHaveLength(before);
    expect(api.requestsOf('DELETE')).toHaveLength(deletesBefore);
  });

  it('drill.silence: false creates no silence', async () => {
    const before = (await am.silences()).length;
    const result = await drillWith(am.url, { silence: false });
    expect(result.actions).toContainEqual(expect.objectContaining({ kind: 'delete_pod', applied: true }));
    expect(result.actions.map((a) => a.kind)).not.toContain('silence_created');
    expect(await am.silences()).toHaveLength(before);
  });

  it('an unknown placeholder in drill.silence is a config error', () => {
    expect(() =>
      testConfig({
        dbUrl: source.url,
        prefix: 'unused',
        targets: {
          postgres: [{ name: 'main', url: source.url }],
          kubernetes: [{ name: 'kube', namespace: 'staging', kubeconfig }],
          backups: [{ name: TARGET, database: 'main', store: { kind: 'directory', path: dir }, pattern: 'app-*', drill: { kubernetes: 'kube', namespace: 'staging', deployment: DEPLOYMENT, silence: { matchers: { pod: '{pod}' } } } }],
        },
      }),
    ).toThrow(/drill\.silence\.matchers\.pod: unknown placeholder \{pod\}/);
  });
});
