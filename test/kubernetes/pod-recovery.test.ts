/**
 * The DR drill's pod-kill against the local Kubernetes API test server:
 * `@kubernetes/client-node` talks HTTP to it through a kubeconfig file, as
 * in production, and its controller replaces deleted pods.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubernetesTarget } from '../../src/config/schema';
import { apiErrorMessage, callOptions, createKubernetesClients, loadKubeConfig } from '../../src/clients/kubernetes';
import { measurePodRecovery, type PodRecoveryRequest } from '../../src/kubernetes/pod-recovery';
import { deployment, hpa, pod, startKubeApi, type KubeApi } from '../support/kube-api';
import { testLogger } from '../support/logger';
import { startServer } from '../support/prometheus';
import { eventually } from '../support/jobs';

let dir: string;
let api: KubeApi;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'caretaker-kube-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeEach(async () => {
  api = await startKubeApi();
});
afterEach(async () => {
  await api.close();
});

function target(allowed: string[] = ['shop'], kubeconfig = api.writeKubeconfig(dir)): KubernetesTarget {
  return { name: 'test-cluster', namespace: 'shop', deployments: [], kubeconfig, allow: { podKillNamespaces: allowed }, tasks: {} };
}

function request(overrides: Partial<PodRecoveryRequest> = {}): PodRecoveryRequest {
  return {
    kubernetes: target(),
    open: createKubernetesClients,
    namespace: 'shop',
    deployment: 'web',
    timeoutMs: 15_000,
    signal: new AbortController().signal,
    log: testLogger,
    ...overrides,
  };
}

const names = (pods: { metadata?: { name?: string } }[]) => pods.map((p) => p.metadata!.name!);

describe('measurePodRecovery', () => {
  it('deletes one Ready pod of the deployment and measures until a replacement is Ready and the deployment available', async () => {
    // The status lags the delete by 400 ms (as the controllers do): the drill must not take the stale "2/2" for a recovery.
    const web = api.addDeployment(deployment({ name: 'web', namespace: 'shop', replicas: 2 }), { replaceAfterMs: 600, statusLagMs: 400, terminatingMs: 1_000 });
    const original = names(web.pods);

    const result = await measurePodRecovery(request());

    expect(result.error).toBeUndefined();
    expect(result.refused).toBeUndefined();
    expect(result.healthy).toBe(true);
    expect(original).toContain(result.podDeleted);
    expect(result.recoverySeconds).toBeGreaterThanOrEqual(0.6);
    expect(api.requestsOf('DELETE').map((r) => r.path)).toEqual([`/api/v1/namespaces/shop/pods/${result.podDeleted}`]);
    expect(result.steps[0]).toBe('deployment shop/web fully available before the drill (2/2 available, 2 updated)');
    expect(result.steps).toContain(`deleted pod ${result.podDeleted}`);
    expect(result.steps[result.steps.length - 1]).toMatch(/^deployment available after \d+\.\d s$/);
    // The cluster really recovered: two Ready pods, one of them new.
    const now = api.podsOf(web.deployment).filter((p) => !p.metadata?.deletionTimestamp);
    expect(now).toHaveLength(2);
    expect(names(now).filter((n) => !original.includes(n))).toHaveLength(1);
  });

  it('never deletes a pod of another deployment whose labels match the selector', async () => {
    // web-canary's pods carry app=web too, and are older: a selector-only pick would take one of them.
    const canary = api.addDeployment(deployment({ name: 'web-canary', namespace: 'shop', replicas: 1, labels: { app: 'web', track: 'canary' } }));
    for (const p of canary.pods) p.metadata!.creationTimestamp = new Date(Date.now() - 30 * 86_400_000);
    const web = api.addDeployment(deployment({ name: 'web', namespace: 'shop', replicas: 2 }), { replaceAfterMs: 50 });

    const result = await measurePodRecovery(request());

    expect(result.healthy).toBe(true);
    expect(names(web.pods)).toContain(result.podDeleted);
    expect(api.requestsOf('DELETE')).toHaveLength(1);
    expect(api.findPod('shop', canary.pods[0]!.metadata!.name!)).toBeDefined();
  });

  it('waits for the health URL to answer 2xx after the deployment is available', async () => {
    api.addDeployment(deployment({ name: 'web', namespace: 'shop', replicas: 2 }), { replaceAfterMs: 200 });
    // The service answers 503 for 1.2 s after the pod is deleted (say, a cold cache), 200 otherwise.
    let unavailable = 0;
    const health = await startServer((_req, res) => {
      const deleted = api.requestsOf('DELETE')[0];
      const down = deleted !== undefined && Date.now() - deleted.at < 1_200;
      if (down) unavailable++;
      res.writeHead(down ? 503 : 200).end(down ? 'warming up' : 'ok');
    });
    try {
      const result = await measurePodRecovery(request({ healthUrl: `${health.url}/health` }));

      expect(result.error).toBeUndefined();
      expect(result.healthy).toBe(true);
      expect(unavailable).toBeGreaterThan(0);
      expect(result.recoverySeconds).toBeGreaterThanOrEqual(1.2);
      expect(result.steps).toContain('health URL answered 200 before the drill');
      expect(result.steps[result.steps.length - 1]).toMatch(/^health URL answered 200 after \d+\.\d s$/);
    } finally {
      await health.close();
    }
  });

  it('refuses in a namespace that is not allowed, without calling the API', async () => {
    api.addDeployment(deployment({ name: 'web', namespace: 'shop', replicas: 2 }));

    const none = await measurePodRecovery(request({ kubernetes: target([]) }));
    const other = await measurePodRecovery(request({ kubernetes: target(['staging']) }));

    expect(none).toMatchObject({ healthy: false, notAllowed: true, refused: expect.stringContaining('namespace shop is not in allow.podKillNamespaces of kubernetes target test-cluster (none allowed)') });
    expect(none.podDeleted).toBeUndefined();
    expect(other.refused).toContain('(staging)');
    expect(api.requests).toEqual([]);
  });

  it('refuses a deployment that is not fully available, and deletes nothing', async () => {
    api.addDeployment(deployment({ name: 'web', namespace: 'shop', replicas: 3 }), { readyPods: 2 });
    const rolling = api.addDeployment(deployment({ name: 'api', namespace: 'shop', replicas: 2 }));
    rolling.deployment.metadata!.generation = 2; // a new spec the controller has not observed yet

    const degraded = await measurePodRecovery(request());
    const unobserved = await measurePodRecovery(request({ deployment: 'api' }));

    expect(degraded.healthy).toBe(false);
    expect(degraded.notAllowed).toBeUndefined();
    expect(degraded.refused).toBe('deployment shop/web is not fully available before the drill (2/3 available, 3 updated): a pod-kill would make a degraded service worse');
    expect(unobserved.refused).toContain('status not yet observed for the current generation');
    expect(api.requestsOf('DELETE')).toEqual([]);
    expect(api.requestsOf('GET').length).toBeGreaterThan(0);
  });

  it('refuses when the health URL does not answer 2xx before the drill, and deletes nothing', async () => {
    api.addDeployment(deployment({ name: 'web', namespace: 'shop', replicas: 2 }));
    const health = await startServer((_req, res) => res.writeHead(503).end());
    try {
      const result = await measurePodRecovery(request({ healthUrl: `${health.url}/health` }));

      expect(result.refused).toBe('health URL answered 503 before the drill: a pod-kill would make a degraded service worse');
      expect(api.requestsOf('DELETE')).toEqual([]);
    } finally {
      await health.close();
    }
  });

  it('ends with a timeout error, within its bound, when the deployment never recovers', async () => {
    api.addDeployment(deployment({ name: 'web', namespace: 'shop', replicas: 2 }), { replaceAfterMs: 'never' });
    const started = Date.now();

    const result = await measurePodRecovery(request({ timeoutMs: 1_500 }));

    const elapsed = Date.now() - started;
    expect(result.healthy).toBe(false);
    expect(result.podDeleted).toBeDefined();
    expect(result.recoverySeconds).toBeUndefined();
    expect(result.error).toMatch(/^timed out: deployment shop\/web not fully available \d+\.\d s after deleting pod \S+ \(1\/2 available, 2 updated, 1\/2 Ready pods besides the deleted one\)$/);
    expect(elapsed).toBeGreaterThanOrEqual(1_500);
    expect(elapsed).toBeLessThan(1_500 + API_SLACK_MS);
    expect(result.steps[result.steps.length - 1]).toBe(`failed: ${result.error}`);
  });

  it('turns a 403 on the delete into an error with the API message, and does not throw', async () => {
    const web = api.addDeployment(deployment({ name: 'web', namespace: 'shop', replicas: 2 }));
    api.forbid('delete', 'pods', 'shop');

    const result = await measurePodRecovery(request());

    expect(result.healthy).toBe(false);
    expect(result.podDeleted).toBeUndefined();
    expect(result.error).toContain(
      `403: pods "${web.pods[0]!.metadata!.name}" is forbidden: User "system:serviceaccount:caretaker:caretaker" cannot delete resource "pods" in API group "" in the namespace "shop"`,
    );
    expect(names(api.podsOf(web.deployment))).toEqual(names(web.pods));
  });

  it('turns an unreachable API server into an error', async () => {
    api.addDeployment(deployment({ name: 'web', namespace: 'shop', replicas: 2 }));
    const kubeconfig = api.writeKubeconfig(dir, { fileName: 'gone.yaml' });
    await api.close();

    const result = await measurePodRecovery(request({ kubernetes: target(['shop'], kubeconfig) }));

    expect(result.healthy).toBe(false);
    expect(result.error).toMatch(/^cannot read the deployment \(http:\/\/127\.0\.0\.1:\d+\): .*ECONNREFUSED/);
  });

  it('honours the abort signal: before the delete nothing is deleted, after it the wait ends at once', async () => {
    api.addDeployment(deployment({ name: 'web', namespace: 'shop', replicas: 2 }), { replaceAfterMs: 'never' });

    const early = new AbortController();
    early.abort();
    const before = await measurePodRecovery(request({ signal: early.signal }));
    expect(before).toMatchObject({ healthy: false, error: 'aborted before the drill started' });
    expect(api.requests).toEqual([]);

    const late = new AbortController();
    const started = Date.now();
    const waiting = measurePodRecovery(request({ signal: late.signal, timeoutMs: 60_000 }));
    // Abort once the delete has been answered: the first poll after it shows the client moved on.
    await eventually(async () => {
      const deleteAt = api.requests.findIndex((r) => r.method === 'DELETE');
      return deleteAt >= 0 && api.requests.length > deleteAt + 1 ? true : undefined;
    }, API_SLACK_MS, 'a poll after the delete');
    late.abort();
    const result = await waiting;

    expect(result.healthy).toBe(false);
    expect(result.podDeleted).toBeDefined();
    expect(result.error).toMatch(/abort/);
    expect(Date.now() - started).toBeLessThan(API_SLACK_MS);
  });
});

describe('createKubernetesClients', () => {
  it('reads the kubeconfig file named by the target and authenticates with its token', async () => {
    api.addDeployment(deployment({ name: 'web', namespace: 'shop', replicas: 2 }));
    const clients = createKubernetesClients(target());

    expect(clients.server).toBe(api.url);
    const pods = await clients.core.listNamespacedPod({ namespace: 'shop', labelSelector: 'app=web' }, callOptions(AbortSignal.timeout(5_000)));
    expect(pods.items).toHaveLength(2);
    expect(api.requests[0]).toMatchObject({ method: 'GET', path: '/api/v1/namespaces/shop/pods', query: { labelSelector: 'app=web' } });

    const wrong = createKubernetesClients(target(['shop'], api.writeKubeconfig(dir, { token: 'not-the-token', fileName: 'wrong.yaml' })));
    const failure = await wrong.core.listNamespacedPod({ namespace: 'shop' }).catch((e: unknown) => e);
    expect(apiErrorMessage(failure)).toMatch(/^401: Unauthorized/);
  });

  it('prefers the target kubeconfig over a mounted service account, which it uses otherwise', () => {
    const prefix = join(dir, 'pod-root');
    const sa = join(prefix, 'var/run/secrets/kubernetes.io/serviceaccount');
    mkdirSync(sa, { recursive: true });
    for (const f of ['token', 'ca.crt', 'namespace']) writeFileSync(join(sa, f), f === 'namespace' ? 'shop' : 'x');
    const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
    process.env.KUBERNETES_SERVICE_HOST = '10.96.0.1';
    process.env.KUBERNETES_SERVICE_PORT = '443';
    try {
      const withFile = loadKubeConfig(target(), { serviceAccountPrefix: prefix });
      expect(withFile.source).toBe('kubeconfig');
      expect(withFile.kubeConfig.getCurrentCluster()?.server).toBe(api.url);

      const { kubeconfig: _omit, ...inPod } = target();
      const inCluster = loadKubeConfig(inPod, { serviceAccountPrefix: prefix });
      expect(inCluster.source).toBe('in-cluster');
      expect(inCluster.kubeConfig.getCurrentCluster()?.server).toBe('https://10.96.0.1:443');
      expect(inCluster.kubeConfig.getCurrentCluster()?.caFile).toBe(join(sa, 'ca.crt'));
    } finally {
      restoreEnv('KUBERNETES_SERVICE_HOST', saved.host);
      restoreEnv('KUBERNETES_SERVICE_PORT', saved.port);
    }
  });

  it('callOptions aborts a call the API server never answers', async () => {
    api.route('GET', /^\/api\/v1\/namespaces\/shop\/pods$/, () => new Promise((resolve) => setTimeout(resolve, 20_000, { json: {} }).unref()));
    const clients = createKubernetesClients(target());
    const started = Date.now();

    const failure = await clients.core.listNamespacedPod({ namespace: 'shop' }, callOptions(new AbortController().signal, 300)).catch((e: unknown) => e);

    expect(apiErrorMessage(failure)).toBe('request timed out');
    expect(Date.now() - started).toBeLessThan(API_SLACK_MS);
  });

  it('names the kubeconfig file it cannot read', () => {
    expect(() => createKubernetesClients(target(['shop'], join(dir, 'missing.yaml')))).toThrow(`kubernetes target test-cluster: cannot load kubeconfig ${join(dir, 'missing.yaml')}`);
  });
});

/* The test server itself, through the real client, for the tasks of #5 that reuse it. */
describe('the Kubernetes API test server', () => {
  it('serves pod logs, events, HPAs, selectors and Status errors as the client expects', async () => {
    const web = api.addDeployment(deployment({ name: 'web', namespace: 'shop', replicas: 2 }));
    api.addPod(pod({ name: 'batch-1', namespace: 'shop', labels: { app: 'batch' }, state: 'crash-loop', lastTerminated: { reason: 'OOMKilled', exitCode: 137 } }));
    api.addHpa(hpa({ name: 'web', namespace: 'shop', target: 'web', maxReplicas: 4, currentReplicas: 4, cpuCurrent: 91 }));
    const victim = web.pods[0]!.metadata!.name!;
    api.setLogs('shop', victim, 'app', [{ at: new Date(Date.now() - 7_200_000), text: 'old' }, 'ERROR one', 'ERROR two']);
    const { core, autoscaling } = createKubernetesClients(target());
    const o = () => callOptions(AbortSignal.timeout(5_000));

    expect(await core.readNamespacedPodLog({ name: victim, namespace: 'shop', sinceSeconds: 3_600 }, o())).toBe('ERROR one\nERROR two\n');
    expect(await core.readNamespacedPodLog({ name: victim, namespace: 'shop', tailLines: 1 }, o())).toBe('ERROR two\n');
    expect(names((await core.listNamespacedPod({ namespace: 'shop', labelSelector: 'app in (batch,cron)' }, o())).items)).toEqual(['batch-1']);
    const batch = (await core.readNamespacedPod({ name: 'batch-1', namespace: 'shop' }, o())).status!.containerStatuses![0]!;
    expect(batch.state?.waiting?.reason).toBe('CrashLoopBackOff');
    expect(batch.lastState?.terminated).toMatchObject({ reason: 'OOMKilled', exitCode: 137 });
    const scaler = (await autoscaling.listNamespacedHorizontalPodAutoscaler({ namespace: 'shop' }, o())).items[0]!;
    expect(scaler.status).toMatchObject({ currentReplicas: 4, desiredReplicas: 4 });
    expect(scaler.spec!.maxReplicas).toBe(4);

    await core.deleteNamespacedPod({ name: victim, namespace: 'shop' }, o());
    const reasons = (await core.listNamespacedEvent({ namespace: 'shop' }, o())).items.map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(['Killing', 'SuccessfulCreate', 'Scheduled']));
    const gone = await core.readNamespacedPod({ name: victim, namespace: 'shop' }, o()).catch((e: unknown) => e);
    expect(apiErrorMessage(gone)).toBe(`404: pods "${victim}" not found`);
    const unknown = await core.readNamespacedPodLog({ name: 'batch-1', namespace: 'shop', container: 'sidecar' }, o()).catch((e: unknown) => e);
    expect(apiErrorMessage(unknown)).toBe('400: container sidecar is not valid for pod batch-1');
  });
});

/** Room for a slow machine on top of the bound being tested (an upper bound only, never a measurement). */
const API_SLACK_MS = 10_000;

function restoreEnv(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}
