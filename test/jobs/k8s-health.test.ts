/**
 * k8s-health against the fake Kubernetes API server (test/support/kube-api.ts),
 * through a kubeconfig and the real @kubernetes/client-node, with objects
 * shaped like `kubectl get -o json`: a healthy namespace, a broken one
 * (every finding code), the metrics API missing, refused calls, restarts
 * against a stored previous run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import { k8sHealth } from '../../src/jobs/k8s-health';
import type { Finding, TaskResult } from '../../src/contract/result';
import { migrate } from '../../src/results/migrate';
import { ResultStore } from '../../src/results/store';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { runOn } from '../support/run-on';
import { deployment, event, hpa, pod, podMetrics, setPodState, startKubeApi, type KubeApi } from '../support/kube-api';

const HOUR = 3_600_000;
const LIMITS = { limits: { cpu: '500m', memory: '256Mi' }, requests: { cpu: '100m', memory: '128Mi' } };

let db: TestDatabase;
let dir: string;
let api: KubeApi;
let target: string;

beforeAll(async () => {
  db = await createTestDatabase('k8shealth');
  await migrate(db.pool);
  dir = mkdtempSync(join(tmpdir(), 'ct-k8shealth-'));
});
afterAll(async () => {
  await db.drop();
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  api = await startKubeApi();
  // Each test its own target name: previous results never leak between tests.
  target = `kube-${randomBytes(3).toString('hex')}`;
});
afterEach(async () => {
  await api.close();
});

function run(namespace: string, params: Record<string, unknown> = {}, opts: { deployments?: string[]; kubeconfig?: string } = {}): Promise<TaskResult> {
  const kubeconfig = opts.kubeconfig ?? api.writeKubeconfig(dir);
  return runOn(k8sHealth, 'kubernetes', { kubernetes: [{ name: target, namespace, deployments: opts.deployments ?? [], kubeconfig }] }, params, false, { state: db.pool });
}

const codes = (r: TaskResult) => r.findings.map((f) => f.code).sort();
const byCode = (r: TaskResult, code: string): Finding[] => r.findings.filter((f) => f.code === code);
const name = (p: V1Pod) => p.metadata!.name!;

/** Two deployments with limits, all Ready, an HPA with room, Normal events, usage well under the limits. */
function healthyNamespace(ns: string) {
  const web = api.addDeployment(deployment({ name: 'web', namespace: ns, replicas: 2, containers: [{ name: 'app', resources: LIMITS }] }));
  const worker = api.addDeployment(
    deployment({ name: 'worker', namespace: ns, replicas: 1, containers: [{ name: 'app', resources: LIMITS }, { name: 'proxy', resources: { limits: { cpu: '100m', memory: '64Mi' } } }] }),
  );
  api.addHpa(hpa({ name: 'web', namespace: ns, target: 'web', minReplicas: 2, maxReplicas: 6, currentReplicas: 2, cpuCurrent: 35 }));
  for (const p of [...web.pods, ...worker.pods]) {
    api.addEvent(event({ involved: p, reason: 'Scheduled', message: `Successfully assigned ${ns}/${name(p)} to node-1`, component: 'default-scheduler', lastTimestamp: new Date(Date.now() - HOUR) }));
    api.addEvent(event({ involved: p, reason: 'Started', message: 'Started container app', lastTimestamp: new Date(Date.now() - HOUR) }));
  }
  // metrics-server's units: nanocores and Ki.
  api.addPodMetrics(podMetrics({ pod: web.pods[0]!, containers: { app: { cpu: '120000000n', memory: '102400Ki' } } })); // 24 %, 39 %
  api.addPodMetrics(podMetrics({ pod: web.pods[1]!, containers: { app: { cpu: '50000000n', memory: '65536Ki' } } }));
  api.addPodMetrics(podMetrics({ pod: worker.pods[0]!, containers: { app: { cpu: '200m', memory: '131072Ki' }, proxy: { cpu: '10m', memory: '16Mi' } } })); // 40 %, 50 %
  return { web, worker };
}

describe('k8s-health: a healthy namespace', () => {
  it('gives no warning or critical finding, and exact figures', async () => {
    healthyNamespace('shop');
    const result = await run('shop');

    expect(result.status).toBe('ok');
    expect(codes(result)).toEqual(['restart_counts']);
    expect(result.metrics).toEqual({
      pods_total: 3,
      pods_ready: 3,
      restarts_24h: 0,
      warning_events: 0,
      deployments_unavailable: 0,
      max_cpu_limit_ratio: 0.4,
      max_memory_limit_ratio: 0.5,
    });
    expect(result.summary).toBe('shop: 2 deployments, 3/3 pods ready, 0 restarts in total (first run), 0 Warning events in 24 h, highest CPU 40 %, memory 50 % of limits');
    // Read-only: lists only, and a constant number of them.
    expect(api.requests.every((r) => r.method === 'GET')).toBe(true);
    expect(api.requests.map((r) => r.path).sort()).toEqual([
      '/api/v1/namespaces/shop/events',
      '/api/v1/namespaces/shop/pods',
      '/apis/apps/v1/namespaces/shop/deployments',
      '/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers',
      '/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods',
    ]);
    expect(api.requests.find((r) => r.path.endsWith('/events'))!.query.fieldSelector).toBe('type=Warning');
  });

  it('reports the metrics API missing (404) or down (503) as info, and nothing else changes', async () => {
    healthyNamespace('shop');
    api.metricsApi = 'missing';
    const missing = await run('shop');
    expect(missing.status).toBe('ok');
    expect(byCode(missing, 'metrics_unavailable')).toEqual([
      expect.objectContaining({ severity: 'info', subject: 'shop', details: { status: 404, error: '404: the server could not find the requested resource' } }),
    ]);
    expect(missing.metrics.max_cpu_limit_ratio).toBeUndefined();
    expect(missing.metrics.pods_ready).toBe(3);
    expect(missing.summary).toMatch(/metrics API unavailable$/);

    api.metricsApi = 'unavailable';
    const down = await run('shop');
    expect(down.status).toBe('ok');
    expect(byCode(down, 'metrics_unavailable')[0]).toMatchObject({ severity: 'info', details: { status: 503 } });
    expect(byCode(down, 'metrics_unavailable')[0]!.message).toMatch(/installed but not serving/);
  });

  it('an empty namespace says so (info), without asking the metrics API', async () => {
    healthyNamespace('shop');
    const result = await run('empty');
    expect(result.status).toBe('ok');
    expect(result.findings).toEqual([expect.objectContaining({ severity: 'info', code: 'no_deployments', subject: 'empty' })]);
    expect(result.metrics).toEqual({ pods_total: 0, pods_ready: 0, restarts_24h: 0, warning_events: 0, deployments_unavailable: 0 });
    expect(api.requests.some((r) => r.path.includes('metrics.k8s.io'))).toBe(false);
  });

  it('reports a metrics API it may not read (403) as info with the grant to add', async () => {
    healthyNamespace('shop');
    api.forbid('list', 'pods.metrics.k8s.io');
    const result = await run('shop');
    expect(result.status).toBe('ok');
    const f = byCode(result, 'metrics_unavailable')[0]!;
    expect(f.details).toMatchObject({ status: 403 });
    expect(f.message).toContain('cannot list resource "pods" in API group "metrics.k8s.io"');
    expect(f.suggestion).toMatch(/metrics\.k8s\.io/);
  });
});

/** Everything wrong at once, one problem per object so each finding can be told apart. */
function brokenNamespace(ns: string) {
  const old = new Date(Date.now() - HOUR);
  // api: 3 desired, 1 Ready, 2 Running but not Ready for an hour; its HPA at max; CPU at 80 % of the limit.
  const apiDep = api.addDeployment(deployment({ name: 'api', namespace: ns, replicas: 3, containers: [{ name: 'app', resources: LIMITS }] }), { readyPods: 1, unreadyState: 'not-ready' });
  // ...and a fourth pod Pending for 10 minutes (a surge pod that cannot be scheduled).
  const pending = api.addPod(pod({ owner: apiDep.deployment, state: 'pending', createdAt: new Date(Date.now() - 600_000) }));
  api.addHpa(hpa({ name: 'api', namespace: ns, target: 'api', minReplicas: 1, maxReplicas: 3, currentReplicas: 3, desiredReplicas: 3, cpuCurrent: 95 }));
  api.addPodMetrics(podMetrics({ pod: apiDep.pods[0]!, containers: { app: { cpu: '400000000n', memory: '65536Ki' } } })); // 80 %, 25 %

  // worker: all Ready, but its rollout is stuck past the deadline, and a container was OOMKilled; memory at 86 %.
  const worker = api.addDeployment(deployment({ name: 'worker', namespace: ns, replicas: 2, containers: [{ name: 'app', resources: LIMITS }] }));
  setPodState(worker.pods[0]!, 'ready', { restartCount: 1, lastTerminated: { reason: 'OOMKilled', exitCode: 137 }, since: old });
  const progressing = worker.deployment.status!.conditions!.find((c) => c.type === 'Progressing')!;
  Object.assign(progressing, { status: 'False', reason: 'ProgressDeadlineExceeded', message: `ReplicaSet "worker-7f9c" has timed out progressing.` });
  api.addPodMetrics(podMetrics({ pod: worker.pods[0]!, containers: { app: { cpu: '10m', memory: '225280Ki' } } })); // 2 %, 86 %

  // jobs: one pod crash-looping (exit 2), no limits at all.
  const jobs = api.addDeployment(deployment({ name: 'jobs', namespace: ns, replicas: 2 }), { readyPods: 1, unreadyState: 'crash-loop' });
  const looping = jobs.pods[1]!;
  setPodState(looping, 'crash-loop', { restartCount: 7, lastTerminated: { reason: 'Error', exitCode: 2, message: 'connect to postgres://app:hunter2@db:5432/app failed' }, since: old });
  api.syncDeployment(jobs.deployment);
  api.addPodMetrics(podMetrics({ pod: jobs.pods[0]!, containers: { app: { cpu: '900m', memory: '900Mi' } } }));

  // Warning events: BackOff (4 times) and Unhealthy (3 times, then 2), a Normal one and an old Warning that do not count.
  api.addEvent(event({ involved: looping, type: 'Warning', reason: 'BackOff', message: `Back-off restarting failed container app in pod ${name(looping)}`, count: 4 }));
  api.addEvent(event({ involved: apiDep.pods[1]!, type: 'Warning', reason: 'Unhealthy', message: 'Readiness probe failed: HTTP probe failed with statuscode: 503', count: 3, lastTimestamp: new Date(Date.now() - 2 * HOUR) }));
  api.addEvent(event({ involved: apiDep.pods[2]!, type: 'Warning', reason: 'Unhealthy', message: 'Readiness probe failed: Get "http://10.244.0.7:8080/ready": context deadline exceeded', count: 2 }));
  api.addEvent(event({ involved: looping, reason: 'Pulled', message: 'Container image already present on machine', count: 8 }));
  api.addEvent(event({ involved: looping, type: 'Warning', reason: 'FailedMount', message: 'old news', lastTimestamp: new Date(Date.now() - 30 * HOUR) }));
  return { apiDep, pending, worker, jobs, looping };
}

describe('k8s-health: a broken namespace', () => {
  it('raises every code, each on the object at fault', async () => {
    const { apiDep, pending, worker, looping } = brokenNamespace('broken');
    const result = await run('broken');

    expect(result.status).toBe('warning');
    expect(new Set(codes(result))).toEqual(
      new Set(['pod_not_ready', 'crash_loop', 'oom_killed', 'pod_restarts', 'deployment_unavailable', 'hpa_at_max', 'warning_events', 'cpu_high', 'memory_high', 'limits_missing', 'restart_counts']),
    );

    // pod_not_ready: the two Running-not-Ready pods of api, and the Pending one; never the crash-looping pod.
    expect(byCode(result, 'pod_not_ready').map((f) => f.subject).sort()).toEqual([apiDep.pods[1]!, apiDep.pods[2]!, pending].map((p) => `broken/${name(p)}`).sort());
    expect(byCode(result, 'pod_not_ready').find((f) => f.subject === `broken/${name(pending)}`)!.message).toMatch(/^Pending for 10 min \d+ s \(app ContainerCreating\)$/);

    const crash = byCode(result, 'crash_loop');
    expect(crash).toHaveLength(1);
    expect(crash[0]).toMatchObject({ severity: 'warning', subject: `broken/${name(looping)}` });
    expect(crash[0]!.message).toMatch(/^container app in CrashLoopBackOff after 7 restarts, last terminated Error \(exit 2 at /);
    const last = (crash[0]!.details!.containers as { lastTerminated: Record<string, unknown> }[])[0]!.lastTerminated;
    expect(last).toMatchObject({ reason: 'Error', exitCode: 2, message: 'connect to postgres://app:***@db:5432/app failed' });

    expect(byCode(result, 'oom_killed')).toEqual([
      expect.objectContaining({ severity: 'warning', subject: `broken/${name(worker.pods[0]!)}`, details: expect.objectContaining({ containers: [expect.objectContaining({ container: 'app', exitCode: 137, memoryLimit: '256Mi' })] }) }),
    ]);

    // No previous run: the totals count. Only the crash-looping pod is over 3.
    expect(byCode(result, 'pod_restarts')).toEqual([expect.objectContaining({ subject: `broken/${name(looping)}`, details: expect.objectContaining({ restarts: 7, since: null }) })]);

    const unavailable = Object.fromEntries(byCode(result, 'deployment_unavailable').map((f) => [f.subject, f]));
    expect(Object.keys(unavailable).sort()).toEqual(['broken/api', 'broken/jobs', 'broken/worker']);
    expect(unavailable['broken/api']).toMatchObject({ severity: 'warning', message: '1/3 replicas available', details: expect.objectContaining({ desired: 3, available: 1, progressDeadlineExceeded: false }) });
    expect(unavailable['broken/worker']!.message).toBe('2/2 replicas available; rollout stuck past its progress deadline of 600 s: ReplicaSet "worker-7f9c" has timed out progressing.');
    expect(unavailable['broken/worker']!.details).toMatchObject({ progressDeadlineExceeded: true });

    expect(byCode(result, 'hpa_at_max')).toEqual([
      expect.objectContaining({ severity: 'warning', subject: 'broken/api', message: 'at its maximum of 3 replicas (cpu 95 % against a target of 70 %), and wants more' }),
    ]);

    const events = byCode(result, 'warning_events');
    expect(events).toHaveLength(1);
    expect(events[0]!.message).toBe('9 Warning events in the last 24 h: Unhealthy ×5, BackOff ×4');
    const reasons = events[0]!.details!.reasons as { reason: string; count: number; objects: number; sample: { message: string } }[];
    expect(reasons.map((r) => [r.reason, r.count, r.objects])).toEqual([['Unhealthy', 5, 2], ['BackOff', 4, 1]]);
    // The latest event of a reason is its sample.
    expect(reasons[0]!.sample.message).toBe('Readiness probe failed: Get "http://10.244.0.7:8080/ready": context deadline exceeded');

    expect(byCode(result, 'cpu_high')).toEqual([expect.objectContaining({ subject: 'broken/api', message: `1 of 1 containers at or above 70 % of their CPU limit (highest 80 %: ${name(apiDep.pods[0]!)}/app, 400m of 500m)` })]);
    expect(byCode(result, 'memory_high')).toEqual([expect.objectContaining({ subject: 'broken/worker', message: `1 of 1 containers at or above 80 % of their memory limit (highest 86 %: ${name(worker.pods[0]!)}/app, 220 MB of 256 MB)` })]);
    expect(byCode(result, 'limits_missing')).toEqual([expect.objectContaining({ severity: 'info', details: { containers: [{ deployment: 'jobs', container: 'app', missing: ['cpu', 'memory'] }] } })]);

    expect(result.metrics).toEqual({
      pods_total: 8,
      pods_ready: 4,
      restarts_24h: 8, // the OOMKilled container's 1 and the crash loop's 7
      warning_events: 9,
      deployments_unavailable: 3,
      max_cpu_limit_ratio: 0.8,
      max_memory_limit_ratio: 225280 / 262144,
    });
    // The application's secret never reaches the result.
    expect(JSON.stringify(result)).not.toContain('hunter2');
  });

  it('with configured deployments, looks only at them and their pods and events; a missing one is critical', async () => {
    brokenNamespace('mixed');
    const web = api.addDeployment(deployment({ name: 'web', namespace: 'mixed', replicas: 2, containers: [{ name: 'app', resources: LIMITS }] }));
    api.addEvent(event({ involved: web.pods[0]!, type: 'Warning', reason: 'Unhealthy', message: 'Liveness probe failed: timeout', count: 2 }));
    // A pod whose name only looks like web's (another deployment, web-api): not web's.
    api.addEvent(event({ involved: { kind: 'Pod', name: 'web-api-6d4cf56db6-x2k4q', namespace: 'mixed' }, type: 'Warning', reason: 'BackOff', message: 'not ours' }));
    api.addEvent(event({ involved: { kind: 'ReplicaSet', name: 'web-6d4cf56db6', namespace: 'mixed' }, type: 'Warning', reason: 'FailedCreate', message: 'quota exceeded' }));

    const result = await run('mixed', {}, { deployments: ['web', 'ghost'] });
    expect(result.status).toBe('critical');
    expect(codes(result)).toEqual(['deployment_unavailable', 'restart_counts', 'warning_events']);
    expect(byCode(result, 'deployment_unavailable')[0]).toMatchObject({ severity: 'critical', subject: 'mixed/ghost', message: 'deployment ghost not found in namespace mixed' });
    expect(byCode(result, 'warning_events')[0]!.message).toBe('3 Warning events in the last 24 h: Unhealthy ×2, FailedCreate ×1');
    expect(result.metrics).toMatchObject({ pods_total: 2, pods_ready: 2, warning_events: 3, deployments_unavailable: 1 });
  });

  it('a deployment with no replica available is critical', async () => {
    api.addDeployment(deployment({ name: 'down', namespace: 'shop', replicas: 2 }), { readyPods: 0, unreadyState: 'crash-loop' });
    const result = await run('shop');
    expect(byCode(result, 'deployment_unavailable')[0]).toMatchObject({ severity: 'critical', message: '0/2 replicas available' });
  });
});

describe('k8s-health: restarts in 24 h against the previous run', () => {
  it('counts totals on the first run, then the delta since the stored previous result', async () => {
    const web = api.addDeployment(deployment({ name: 'web', namespace: 'shop', replicas: 2, containers: [{ name: 'app', resources: LIMITS }] }));
    const [a, b] = web.pods as [V1Pod, V1Pod];
    const crashed = { reason: 'Error', exitCode: 1 };
    setPodState(a, 'ready', { restartCount: 5, lastTerminated: crashed });
    setPodState(b, 'ready', { restartCount: 1, lastTerminated: crashed });

    const first = await run('shop');
    expect(first.metrics.restarts_24h).toBe(6);
    expect(byCode(first, 'pod_restarts')).toEqual([expect.objectContaining({ subject: `shop/${name(a)}`, message: '5 restarts in total (no previous run to compare with), above 3 (last terminated: Error)' })]);
    expect(byCode(first, 'restart_counts')[0]!.details).toMatchObject({ counts: { [`${name(a)}/app`]: 5, [`${name(b)}/app`]: 1 }, previousAt: null });
    await new ResultStore(db.pool).save(first);

    // A day later: a restarted once more (6), b five more times (6); a new pod with 2.
    setPodState(a, 'ready', { restartCount: 6, lastTerminated: crashed });
    setPodState(b, 'ready', { restartCount: 6, lastTerminated: crashed });
    const c = api.addPod(pod({ owner: web.deployment, restartCount: 2, lastTerminated: crashed }));

    const second = await run('shop');
    const at = (byCode(first, 'restart_counts')[0]!.details as { at: string }).at;
    expect(second.metrics.restarts_24h).toBe(1 + 5 + 2);
    expect(byCode(second, 'pod_restarts')).toEqual([
      expect.objectContaining({ subject: `shop/${name(b)}`, message: `5 restarts since the previous run (${at}), above 3 (last terminated: Error)`, details: expect.objectContaining({ restarts: 5, since: at }) }),
    ]);
    expect(byCode(second, 'restart_counts')[0]!.details).toMatchObject({ counts: { [`${name(a)}/app`]: 6, [`${name(b)}/app`]: 6, [`${name(c)}/app`]: 2 }, previousAt: at });
    expect(second.summary).toContain('8 restarts since the previous run');
  });

  it('the bound is a param', async () => {
    const web = api.addDeployment(deployment({ name: 'web', namespace: 'shop', replicas: 1 }));
    setPodState(web.pods[0]!, 'ready', { restartCount: 2, lastTerminated: { reason: 'Error', exitCode: 1 } });
    expect(byCode(await run('shop'), 'pod_restarts')).toEqual([]);
    expect(byCode(await run('shop', { maxRestarts: 1 }), 'pod_restarts')).toHaveLength(1);
  });
});

describe('k8s-health: when the API refuses or is gone', () => {
  it('a 403 on listing pods is an error result with the API\'s message', async () => {
    healthyNamespace('shop');
    api.forbid('list', 'pods', 'shop');
    const result = await run('shop');
    expect(result.status).toBe('error');
    expect(result.summary).toBe(
      `k8s-health failed on ${target}: cannot list pods in namespace shop: 403: pods is forbidden: User "system:serviceaccount:caretaker:caretaker" cannot list resource "pods" in API group "" in the namespace "shop"`,
    );
    expect(result.findings).toEqual([]);
  });

  it('a wrong token (401) is an error result', async () => {
    healthyNamespace('shop');
    const result = await run('shop', {}, { kubeconfig: api.writeKubeconfig(dir, { token: 'wrong', fileName: 'wrong.yaml' }) });
    expect(result.status).toBe('error');
    expect(result.summary).toMatch(/cannot list deployments in namespace shop: 401: Unauthorized \(check the kubeconfig credentials\)$/);
    expect(result.summary).not.toContain('wrong');
  });

  it('an unreachable API server is an error result', async () => {
    const kubeconfig = api.writeKubeconfig(dir, { fileName: 'gone.yaml' });
    await api.close();
    const result = await run('shop', {}, { kubeconfig });
    expect(result.status).toBe('error');
    expect(result.summary).toMatch(/cannot list deployments in namespace shop: .*ECONNREFUSED/);
  });
});
