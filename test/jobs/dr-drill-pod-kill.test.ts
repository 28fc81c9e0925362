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

function drill(opts: { allowedNamespaces: string[]; dryRun?: boolean; params?: Record<string, unknown> }): Promise<TaskResult> {
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
      drill: { kubernetes: 'kube', namespace: 'staging', deployment: 'web' },
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
    const result = await drill({ allowedNamespaces: ['staging'], params: { recoveryObjectiveSeconds: 0.1 } });
    expect(result.findings.find((f) => f.code === 'recovery_slow')).toMatchObject({ severity: 'warning' });
  });
});
