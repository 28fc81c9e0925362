/**
 * A local Kubernetes API server for tests (DESIGN.md: no real API server runs
 * here). It answers the paths `@kubernetes/client-node` calls with the JSON
 * the real API server returns: lists (`PodList`, items without kind), single
 * objects, `kind: Status` errors (401, 403 Forbidden with RBAC's wording,
 * 404 NotFound, 400 BadRequest), plain-text pod logs. The client talks to it
 * over HTTP through a kubeconfig (`api.writeKubeconfig()`), as in production.
 *
 * State is plain, mutable objects shaped like `kubectl get -o json`, made
 * with the builders below (`deployment()`, `pod()`, `event()`, `hpa()`).
 * A small controller plays the ReplicaSet and Deployment controllers: when a
 * pod of a deployment is deleted, the deployment loses an available replica,
 * a replacement pod (new name) is created Pending and becomes Ready after a
 * configurable delay, or crash-loops forever (`replaceAfterMs: 'never'`).
 *
 *     const api = await startKubeApi();
 *     const { pods } = api.addDeployment(deployment({ name: 'web', namespace: 'shop', replicas: 2 }), { replaceAfterMs: 300 });
 *     const kubeconfig = api.writeKubeconfig(dir);   // → a kubernetes target's `kubeconfig`
 *     ...
 *     expect(api.requests.filter((r) => r.method === 'DELETE')).toEqual([]);
 *     await api.close();
 *
 * Built-in routes (GET unless said): pods (list, get, DELETE, `/log`) and
 * events in a namespace, pods across namespaces, deployments (list, get,
 * `/status`), autoscaling/v2 HPAs (list, get). Anything else is a 404
 * `Status` like the real server's; add more with `api.route(...)`.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type {
  CoreV1Event,
  V1Container,
  V1ContainerState,
  V1ContainerStatus,
  V1Deployment,
  V1DeploymentCondition,
  V1Pod,
  V1PodCondition,
  V1ResourceRequirements,
  V2HorizontalPodAutoscaler,
} from '@kubernetes/client-node';

/** The user RBAC messages name, like a real service account. */
export const FAKE_USER = 'system:serviceaccount:caretaker:caretaker';

// ---------------------------------------------------------------------------
// Builders: objects as the real API returns them.

/** Kubernetes' alphabet for generated name suffixes (no vowels, no 0/1/3). */
const SAFE_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

function safeSuffix(length: number, seed?: string): string {
  const bytes = seed ? createHash('sha256').update(seed).digest() : randomBytes(length);
  let out = '';
  for (let i = 0; i < length; i++) out += SAFE_ALPHABET[bytes[i]! % SAFE_ALPHABET.length];
  return out;
}

/** The `pod-template-hash` of a deployment's (only) ReplicaSet: stable per deployment name. */
export function podTemplateHash(deploymentName: string): string {
  return safeSuffix(10, deploymentName);
}

/** The name of a deployment's ReplicaSet, `<deployment>-<pod-template-hash>`, as the controller names it. */
export function replicaSetName(deploymentName: string): string {
  return `${deploymentName}-${podTemplateHash(deploymentName)}`;
}

let resourceVersion = 1000;
const nextResourceVersion = (): string => String(++resourceVersion);

export interface ContainerInput {
  name: string;
  image?: string;
  resources?: V1ResourceRequirements;
  securityContext?: V1Container['securityContext'];
}

export interface DeploymentInput {
  name: string;
  namespace?: string;
  /** spec.replicas; default 2. */
  replicas?: number;
  /** Selector matchLabels and template labels; default `{ app: name }`. */
  labels?: Record<string, string>;
  /** metadata.generation; status.observedGeneration follows it when the controller syncs. */
  generation?: number;
  containers?: ContainerInput[];
  createdAt?: Date;
}

/** A Deployment as `kubectl get deployment -o json` shows it; status is filled by `api.addDeployment`. */
export function deployment(input: DeploymentInput): V1Deployment {
  const labels = input.labels ?? { app: input.name };
  const created = input.createdAt ?? new Date(Date.now() - 86_400_000);
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: input.name,
      namespace: input.namespace ?? 'default',
      uid: randomUUID(),
      resourceVersion: nextResourceVersion(),
      generation: input.generation ?? 1,
      creationTimestamp: created,
      labels: { ...labels },
      annotations: { 'deployment.kubernetes.io/revision': '1' },
    },
    spec: {
      replicas: input.replicas ?? 2,
      selector: { matchLabels: { ...labels } },
      template: {
        metadata: { labels: { ...labels } },
        spec: { containers: containersOf(input.containers, input.name), restartPolicy: 'Always', terminationGracePeriodSeconds: 30, dnsPolicy: 'ClusterFirst' },
      },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } },
      revisionHistoryLimit: 10,
      progressDeadlineSeconds: 600,
    },
    status: {},
  };
}

/** What a pod's containers are doing. */
export type PodState = 'ready' | 'pending' | 'not-ready' | 'crash-loop';

export interface PodInput {
  /** Default: `<deployment>-<hash>-<5 chars>` for an owned pod, else `pod-<5 chars>`. */
  name?: string;
  /** Default: the owner's namespace, else "default". */
  namespace?: string;
  /** Makes the pod the deployment's: its ReplicaSet as controller owner, its template labels and containers. */
  owner?: V1Deployment;
  labels?: Record<string, string>;
  /** Default "ready": Running with every container ready. */
  state?: PodState;
  containers?: ContainerInput[];
  restartCount?: number;
  /** The containers' last termination (e.g. `{ reason: 'OOMKilled', exitCode: 137 }`). */
  lastTerminated?: { reason: string; exitCode: number; finishedAt?: Date; message?: string };
  createdAt?: Date;
  nodeName?: string;
}

/** A Pod as `kubectl get pod -o json` shows it. */
export function pod(input: PodInput = {}): V1Pod {
  const owner = input.owner;
  const ownerName = owner?.metadata?.name;
  const namespace = input.namespace ?? owner?.metadata?.namespace ?? 'default';
  const hash = ownerName ? podTemplateHash(ownerName) : undefined;
  const name = input.name ?? (ownerName ? `${replicaSetName(ownerName)}-${safeSuffix(5)}` : `pod-${safeSuffix(5)}`);
  const labels = { ...(owner?.spec?.template.metadata?.labels ?? {}), ...(hash ? { 'pod-template-hash': hash } : {}), ...(input.labels ?? {}) };
  const created = input.createdAt ?? new Date();
  const specContainers = input.containers ? containersOf(input.containers, name) : (owner?.spec?.template.spec?.containers ?? containersOf(undefined, name));
  const p: V1Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      ...(ownerName ? { generateName: `${replicaSetName(ownerName)}-` } : {}),
      namespace,
      uid: randomUUID(),
      resourceVersion: nextResourceVersion(),
      creationTimestamp: created,
      labels,
      ...(ownerName
        ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: replicaSetName(ownerName), uid: randomUUID(), controller: true, blockOwnerDeletion: true }] }
        : {}),
    },
    spec: {
      containers: structuredClone(specContainers),
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      serviceAccountName: 'default',
      nodeName: input.nodeName ?? 'node-1',
      schedulerName: 'default-scheduler',
      securityContext: {},
    },
    status: {},
  };
  setPodState(p, input.state ?? 'ready', { restartCount: input.restartCount, lastTerminated: input.lastTerminated, since: created });
  return p;
}

/** Rewrites a pod's status for a state, as the kubelet would report it. */
export function setPodState(
  p: V1Pod,
  state: PodState,
  opts: { restartCount?: number; lastTerminated?: PodInput['lastTerminated']; since?: Date } = {},
): void {
  const now = opts.since ?? new Date();
  const running = state !== 'pending';
  const ready = state === 'ready';
  const condition = (type: string, ok: boolean, reason?: string): V1PodCondition => ({
    type,
    status: ok ? 'True' : 'False',
    lastTransitionTime: now,
    ...(ok || !reason ? {} : { reason }),
  });
  const containerState = (): V1ContainerState => {
    if (state === 'pending') return { waiting: { reason: 'ContainerCreating' } };
    if (state === 'crash-loop') {
      return { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 40s restarting failed container' } };
    }
    return { running: { startedAt: now } };
  };
  const restartCount = opts.restartCount ?? (state === 'crash-loop' ? 4 : 0);
  const lastTerminated = opts.lastTerminated ?? (state === 'crash-loop' ? { reason: 'Error', exitCode: 1 } : undefined);
  const statuses: V1ContainerStatus[] = (p.spec?.containers ?? []).map((c) => ({
    name: c.name,
    image: c.image ?? 'registry.example.com/app:1.0.0',
    imageID: running ? `registry.example.com/app@sha256:${'ab12'.repeat(16)}` : '',
    ...(running ? { containerID: `containerd://${randomBytes(32).toString('hex')}` } : {}),
    ready,
    started: state === 'ready' || state === 'not-ready',
    restartCount,
    state: containerState(),
    lastState: lastTerminated
      ? {
          terminated: {
            exitCode: lastTerminated.exitCode,
            reason: lastTerminated.reason,
            ...(lastTerminated.message ? { message: lastTerminated.message } : {}),
            startedAt: new Date(now.getTime() - 60_000),
            finishedAt: lastTerminated.finishedAt ?? new Date(now.getTime() - 30_000),
            containerID: `containerd://${randomBytes(32).toString('hex')}`,
          },
        }
      : {},
  }));
  p.status = {
    phase: running ? 'Running' : 'Pending',
    conditions: [
      condition('PodReadyToStartContainers', running),
      condition('Initialized', true),
      condition('Ready', ready, 'ContainersNotReady'),
      condition('ContainersReady', ready, 'ContainersNotReady'),
      condition('PodScheduled', true),
    ],
    hostIP: '10.0.0.11',
    hostIPs: [{ ip: '10.0.0.11' }],
    ...(running ? { podIP: `10.244.0.${(resourceVersion % 250) + 2}`, podIPs: [{ ip: `10.244.0.${(resourceVersion % 250) + 2}` }] } : {}),
    startTime: now,
    containerStatuses: statuses,
    qosClass: 'BestEffort',
  };
  if (p.metadata) p.metadata.resourceVersion = nextResourceVersion();
}

export interface EventInput {
  namespace?: string;
  /** The object the event is about: a pod, deployment, or `{ kind, name }`. */
  involved: V1Pod | V1Deployment | { kind: string; name: string; namespace?: string; apiVersion?: string };
  reason: string;
  message: string;
  type?: 'Normal' | 'Warning';
  count?: number;
  /** Default now. */
  lastTimestamp?: Date;
  firstTimestamp?: Date;
  component?: string;
}

/** A core/v1 Event as `kubectl get events -o json` shows it. */
export function event(input: EventInput): CoreV1Event {
  const inv = input.involved as { kind?: string; name?: string; namespace?: string; apiVersion?: string; metadata?: V1Pod['metadata'] };
  const kind = inv.kind ?? 'Pod';
  const name = inv.metadata?.name ?? inv.name ?? 'unknown';
  const namespace = input.namespace ?? inv.metadata?.namespace ?? inv.namespace ?? 'default';
  const last = input.lastTimestamp ?? new Date();
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: `${name}.${randomBytes(8).toString('hex')}`, namespace, uid: randomUUID(), resourceVersion: nextResourceVersion(), creationTimestamp: last },
    involvedObject: {
      kind,
      namespace,
      name,
      uid: inv.metadata?.uid ?? randomUUID(),
      apiVersion: inv.apiVersion ?? (kind === 'Pod' ? 'v1' : 'apps/v1'),
      resourceVersion: inv.metadata?.resourceVersion,
    },
    reason: input.reason,
    message: input.message,
    source: { component: input.component ?? (kind === 'Pod' ? 'kubelet' : `${kind.toLowerCase()}-controller`) },
    firstTimestamp: input.firstTimestamp ?? last,
    lastTimestamp: last,
    count: input.count ?? 1,
    type: input.type ?? 'Normal',
    eventTime: undefined,
    reportingComponent: input.component ?? (kind === 'Pod' ? 'kubelet' : `${kind.toLowerCase()}-controller`),
    reportingInstance: '',
  };
}

export interface HpaInput {
  name: string;
  namespace?: string;
  /** The deployment it scales. */
  target: string;
  minReplicas?: number;
  maxReplicas: number;
  currentReplicas: number;
  desiredReplicas?: number;
  /** Target CPU utilization %, default 70. */
  cpuTarget?: number;
  /** Current average CPU utilization %. */
  cpuCurrent?: number;
}

/** An autoscaling/v2 HorizontalPodAutoscaler as `kubectl get hpa -o json` shows it. */
export function hpa(input: HpaInput): V2HorizontalPodAutoscaler {
  const atMax = input.currentReplicas >= input.maxReplicas;
  const now = new Date();
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: { name: input.name, namespace: input.namespace ?? 'default', uid: randomUUID(), resourceVersion: nextResourceVersion(), creationTimestamp: new Date(Date.now() - 86_400_000) },
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: input.target },
      minReplicas: input.minReplicas ?? 1,
      maxReplicas: input.maxReplicas,
      metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: input.cpuTarget ?? 70 } } }],
    },
    status: {
      currentReplicas: input.currentReplicas,
      desiredReplicas: input.desiredReplicas ?? input.currentReplicas,
      lastScaleTime: new Date(Date.now() - 3_600_000),
      ...(input.cpuCurrent === undefined
        ? {}
        : { currentMetrics: [{ type: 'Resource', resource: { name: 'cpu', current: { averageUtilization: input.cpuCurrent, averageValue: `${input.cpuCurrent * 5}m` } } }] }),
      conditions: [
        { type: 'AbleToScale', status: 'True', lastTransitionTime: now, reason: 'ReadyForNewScale', message: 'recommended size matches current size' },
        { type: 'ScalingActive', status: 'True', lastTransitionTime: now, reason: 'ValidMetricFound', message: 'the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)' },
        atMax
          ? { type: 'ScalingLimited', status: 'True', lastTransitionTime: now, reason: 'TooManyReplicas', message: 'the desired replica count is more than the maximum replica count' }
          : { type: 'ScalingLimited', status: 'False', lastTransitionTime: now, reason: 'DesiredWithinRange', message: 'the desired count is within the acceptable range' },
      ],
    },
  };
}

/** A `kind: Status` failure body, exactly as the API server sends it. */
export function statusBody(code: number, reason: string, message: string, details?: Record<string, unknown>): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code };
}

function containersOf(inputs: ContainerInput[] | undefined, name: string): V1Container[] {
  const list = inputs ?? [{ name: 'app' }];
  return list.map((c) => ({
    name: c.name,
    image: c.image ?? `registry.example.com/${name}:1.0.0`,
    imagePullPolicy: 'IfNotPresent',
    resources: c.resources ?? {},
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
    ...(c.securityContext ? { securityContext: c.securityContext } : {}),
  }));
}

// ---------------------------------------------------------------------------
// The server.

/** One request the server received, in order. `path` has no query string. */
export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  /** Date.now() when it arrived. */
  at: number;
}

/** How the simulated controllers react when a pod of a deployment is deleted. */
export interface ControllerBehaviour {
  /** Ms from the delete until the replacement pod is Ready; 'never' leaves it crash-looping. Default 100. */
  replaceAfterMs?: number | 'never';
  /** Ms after a delete before the replacement pod appears and the deployment status changes: the controllers' lag. Default 0. */
  statusLagMs?: number;
  /** Ms a deleted pod stays listed as Terminating (deletionTimestamp set, not ready). Default 0: gone at once. */
  terminatingMs?: number;
}

export interface AddDeploymentOptions extends ControllerBehaviour {
  /** How many of the pods are Ready; default all (spec.replicas). */
  readyPods?: number;
  /** What the others do; default 'crash-loop'. */
  unreadyState?: Exclude<PodState, 'ready'>;
}

/** What a custom route sees and answers. */
export interface RouteRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  match: RegExpMatchArray;
  body: string;
}
export interface RouteResponse {
  status?: number;
  /** Sent as application/json. */
  json?: unknown;
  /** Sent as text/plain. */
  text?: string;
}
export type RouteHandler = (req: RouteRequest) => RouteResponse | Promise<RouteResponse>;

type Verb = 'get' | 'list' | 'delete';

interface BuiltinRoute {
  method: 'GET' | 'DELETE';
  pattern: RegExp;
  verb: Verb;
  resource: string;
  group: string;
  handle: (m: RegExpMatchArray, query: Record<string, string>) => RouteResponse;
}

interface LogStore {
  current: { at: Date; text: string }[];
  previous?: { at: Date; text: string }[];
}

export interface KubeApiOptions {
  /** The bearer token the server accepts (401 otherwise); default random. */
  token?: string;
}

/** A running fake API server with its cluster state. Close it in afterAll/afterEach. */
export class KubeApi {
  /** Every request received, oldest first. */
  readonly requests: RecordedRequest[] = [];
  readonly deployments: V1Deployment[] = [];
  readonly pods: V1Pod[] = [];
  readonly events: CoreV1Event[] = [];
  readonly hpas: V2HorizontalPodAutoscaler[] = [];
  /** http://127.0.0.1:port */
  url = '';

  private readonly behaviours = new Map<string, ControllerBehaviour>();
  private readonly logs = new Map<string, LogStore>();
  private readonly forbidden: { verb: Verb; resource: string; namespace?: string }[] = [];
  private readonly custom: { method: string; pattern: RegExp; handler: RouteHandler }[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly builtins: BuiltinRoute[];
  private server?: Server;

  constructor(readonly token: string) {
    const ns = '([^/]+)';
    const name = '([^/]+)';
    this.builtins = [
      { method: 'GET', pattern: new RegExp(`^/api/v1/namespaces/${ns}/pods$`), verb: 'list', resource: 'pods', group: '', handle: (m, q) => this.list('PodList', 'v1', this.pods, m[1], q) },
      { method: 'GET', pattern: /^\/api\/v1\/pods$/, verb: 'list', resource: 'pods', group: '', handle: (_m, q) => this.list('PodList', 'v1', this.pods, undefined, q) },
      { method: 'GET', pattern: new RegExp(`^/api/v1/namespaces/${ns}/pods/${name}$`), verb: 'get', resource: 'pods', group: '', handle: (m) => this.get(this.pods, m[1]!, m[2]!, 'pods') },
      { method: 'DELETE', pattern: new RegExp(`^/api/v1/namespaces/${ns}/pods/${name}$`), verb: 'delete', resource: 'pods', group: '', handle: (m, q) => this.deletePod(m[1]!, m[2]!, q) },
      { method: 'GET', pattern: new RegExp(`^/api/v1/namespaces/${ns}/pods/${name}/log$`), verb: 'get', resource: 'pods/log', group: '', handle: (m, q) => this.podLog(m[1]!, m[2]!, q) },
      { method: 'GET', pattern: new RegExp(`^/api/v1/namespaces/${ns}/events$`), verb: 'list', resource: 'events', group: '', handle: (m, q) => this.list('EventList', 'v1', this.events, m[1], q) },
      { method: 'GET', pattern: new RegExp(`^/apis/apps/v1/namespaces/${ns}/deployments$`), verb: 'list', resource: 'deployments', group: 'apps', handle: (m, q) => this.list('DeploymentList', 'apps/v1', this.deployments, m[1], q) },
      { method: 'GET', pattern: new RegExp(`^/apis/apps/v1/namespaces/${ns}/deployments/${name}$`), verb: 'get', resource: 'deployments', group: 'apps', handle: (m) => this.get(this.deployments, m[1]!, m[2]!, 'deployments.apps') },
      { method: 'GET', pattern: new RegExp(`^/apis/apps/v1/namespaces/${ns}/deployments/${name}/status$`), verb: 'get', resource: 'deployments/status', group: 'apps', handle: (m) => this.get(this.deployments, m[1]!, m[2]!, 'deployments.apps') },
      { method: 'GET', pattern: new RegExp(`^/apis/autoscaling/v2/namespaces/${ns}/horizontalpodautoscalers$`), verb: 'list', resource: 'horizontalpodautoscalers', group: 'autoscaling', handle: (m, q) => this.list('HorizontalPodAutoscalerList', 'autoscaling/v2', this.hpas, m[1], q) },
      { method: 'GET', pattern: new RegExp(`^/apis/autoscaling/v2/namespaces/${ns}/horizontalpodautoscalers/${name}$`), verb: 'get', resource: 'horizontalpodautoscalers', group: 'autoscaling', handle: (m) => this.get(this.hpas, m[1]!, m[2]!, 'horizontalpodautoscalers.autoscaling') },
    ];
  }

  /** Starts listening on 127.0.0.1, a free port. */
  async listen(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** Stops the server and the controller's pending timers. */
  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    if (!this.server) return;
    const server = this.server;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /**
   * Writes a kubeconfig for this server (plain http, `skipTLSVerify: true`,
   * a token user) into `dir`; returns its path, for a kubernetes target's
   * `kubeconfig`.
   */
  writeKubeconfig(dir: string, opts: { namespace?: string; token?: string; fileName?: string } = {}): string {
    const path = join(dir, opts.fileName ?? 'kubeconfig.yaml');
    writeFileSync(path, kubeconfigYaml(this.url, opts.token ?? this.token, opts.namespace ?? 'default'), { mode: 0o600 });
    return path;
  }

  // -- state -----------------------------------------------------------------

  /**
   * Adds a deployment with `spec.replicas` pods owned by its ReplicaSet
   * (`readyPods` of them Ready), computes its status from them, and sets how
   * the controller replaces a deleted pod.
   */
  addDeployment(dep: V1Deployment, opts: AddDeploymentOptions = {}): { deployment: V1Deployment; pods: V1Pod[] } {
    const desired = dep.spec?.replicas ?? 1;
    const ready = opts.readyPods ?? desired;
    const created = new Date(Date.now() - 3_600_000);
    const pods: V1Pod[] = [];
    for (let i = 0; i < desired; i++) {
      pods.push(pod({ owner: dep, state: i < ready ? 'ready' : (opts.unreadyState ?? 'crash-loop'), createdAt: new Date(created.getTime() + i * 1000) }));
    }
    this.deployments.push(dep);
    this.pods.push(...pods);
    this.behaviours.set(key(dep.metadata!.namespace!, dep.metadata!.name!), {
      replaceAfterMs: opts.replaceAfterMs ?? 100,
      statusLagMs: opts.statusLagMs ?? 0,
      terminatingMs: opts.terminatingMs ?? 0,
    });
    this.syncDeployment(dep);
    return { deployment: dep, pods };
  }

  /** Adds any pod (owned pods of a deployment added here are replaced by the controller when deleted). */
  addPod(p: V1Pod): V1Pod {
    this.pods.push(p);
    return p;
  }

  addEvent(e: CoreV1Event): CoreV1Event {
    this.events.push(e);
    return e;
  }

  addHpa(h: V2HorizontalPodAutoscaler): V2HorizontalPodAutoscaler {
    this.hpas.push(h);
    return h;
  }

  findDeployment(namespace: string, name: string): V1Deployment | undefined {
    return this.deployments.find((d) => d.metadata?.namespace === namespace && d.metadata?.name === name);
  }

  findPod(namespace: string, name: string): V1Pod | undefined {
    return this.pods.find((p) => p.metadata?.namespace === namespace && p.metadata?.name === name);
  }

  /** The pods of a deployment (owned by its ReplicaSet), terminating ones included. */
  podsOf(dep: V1Deployment): V1Pod[] {
    const rs = replicaSetName(dep.metadata!.name!);
    return this.pods.filter(
      (p) => p.metadata?.namespace === dep.metadata?.namespace && p.metadata?.ownerReferences?.some((o) => o.kind === 'ReplicaSet' && o.name === rs),
    );
  }

  /**
   * Recomputes a deployment's status from its pods, as the deployment
   * controller does (zero counts omitted, as the API omits them).
   */
  syncDeployment(dep: V1Deployment): void {
    const desired = dep.spec?.replicas ?? 1;
    const active = this.podsOf(dep).filter((p) => !p.metadata?.deletionTimestamp);
    const ready = active.filter(isPodReady).length;
    const maxUnavailable = Math.floor(desired * 0.25);
    const available = ready >= desired - maxUnavailable;
    const previous = dep.status?.conditions ?? [];
    const now = new Date();
    const cond = (type: string, status: boolean, reason: string, message: string): V1DeploymentCondition => {
      const old = previous.find((c) => c.type === type);
      const s = status ? 'True' : 'False';
      return { type, status: s, lastUpdateTime: now, lastTransitionTime: old && old.status === s ? old.lastTransitionTime : now, reason, message };
    };
    const omitZero = (n: number) => (n > 0 ? n : undefined);
    dep.status = {
      observedGeneration: dep.metadata?.generation ?? 1,
      replicas: omitZero(active.length),
      updatedReplicas: omitZero(active.length),
      readyReplicas: omitZero(ready),
      availableReplicas: omitZero(ready),
      unavailableReplicas: omitZero(desired - ready),
      conditions: [
        available
          ? cond('Available', true, 'MinimumReplicasAvailable', 'Deployment has minimum availability.')
          : cond('Available', false, 'MinimumReplicasUnavailable', 'Deployment does not have minimum availability.'),
        cond('Progressing', true, 'NewReplicaSetAvailable', `ReplicaSet "${replicaSetName(dep.metadata!.name!)}" has successfully progressed.`),
      ],
    };
    for (const k of Object.keys(dep.status) as (keyof typeof dep.status)[]) if (dep.status[k] === undefined) delete dep.status[k];
    dep.metadata!.resourceVersion = nextResourceVersion();
  }

  /**
   * Sets a container's log (lines without a time are stamped now). The log
   * endpoint honours container, previous, sinceSeconds, sinceTime, tailLines,
   * limitBytes and timestamps.
   */
  setLogs(namespace: string, podName: string, container: string, lines: (string | { at: Date; text: string })[], opts: { previous?: boolean } = {}): void {
    const k = `${namespace}/${podName}/${container}`;
    const store = this.logs.get(k) ?? { current: [] };
    const stamped = lines.map((l) => (typeof l === 'string' ? { at: new Date(), text: l } : l));
    if (opts.previous) store.previous = stamped;
    else store.current = stamped;
    this.logs.set(k, store);
  }

  /**
   * Answers 403 Forbidden, with RBAC's message, to `verb` on `resource`
   * (e.g. 'delete', 'pods'; 'get', 'pods/log'), in one namespace or all.
   */
  forbid(verb: Verb, resource: string, namespace?: string): void {
    this.forbidden.push({ verb, resource, namespace });
  }

  /** Serves `method` on paths matching `pattern` before the built-in routes (metrics API, secrets, injected failures...). */
  route(method: string, pattern: RegExp, handler: RouteHandler): void {
    this.custom.push({ method: method.toUpperCase(), pattern, handler });
  }

  /** The requests with this method (and path prefix), e.g. `api.requestsOf('DELETE')`. */
  requestsOf(method: string, pathPrefix = ''): RecordedRequest[] {
    return this.requests.filter((r) => r.method === method.toUpperCase() && r.path.startsWith(pathPrefix));
  }

  // -- HTTP ------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const query = Object.fromEntries(url.searchParams.entries());
    const method = (req.method ?? 'GET').toUpperCase();
    const path = url.pathname;
    this.requests.push({ method, path, query, at: Date.now() });
    let body = '';
    for await (const chunk of req) body += String(chunk);
    let out: RouteResponse;
    try {
      out = await this.dispatch(method, path, query, body, req.headers.authorization);
    } catch (err) {
      out = { status: 500, json: statusBody(500, 'InternalError', `Internal error occurred: ${(err as Error).message}`) };
    }
    const status = out.status ?? 200;
    if (out.text !== undefined) {
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(out.text);
    } else {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(toApiJson(out.json ?? {}));
    }
  }

  private async dispatch(method: string, path: string, query: Record<string, string>, body: string, authorization?: string): Promise<RouteResponse> {
    if (authorization !== `Bearer ${this.token}`) return { status: 401, json: statusBody(401, 'Unauthorized', 'Unauthorized') };
    for (const c of this.custom) {
      const match = c.method === method ? path.match(c.pattern) : null;
      if (match) return c.handler({ method, path, query, match, body });
    }
    for (const r of this.builtins) {
      const m = r.method === method ? path.match(r.pattern) : null;
      if (!m) continue;
      const namespace = path.includes('/namespaces/') ? m[1] : undefined;
      const objectName = r.verb === 'list' ? undefined : m[2];
      if (this.forbidden.some((f) => f.verb === r.verb && f.resource === r.resource && (!f.namespace || f.namespace === namespace))) {
        const what = objectName ? `${r.resource.split('/')[0]}${r.group ? `.${r.group}` : ''} "${objectName}"` : `${r.resource.split('/')[0]}${r.group ? `.${r.group}` : ''}`;
        const where = namespace ? ` in the namespace "${namespace}"` : ' at the cluster scope';
        return {
          status: 403,
          json: statusBody(403, 'Forbidden', `${what} is forbidden: User "${FAKE_USER}" cannot ${r.verb} resource "${r.resource}" in API group "${r.group}"${where}`, {
            ...(objectName ? { name: objectName } : {}),
            ...(r.group ? { group: r.group } : {}),
            kind: r.resource.split('/')[0],
          }),
        };
      }
      try {
        return r.handle(m, query);
      } catch (err) {
        if (err instanceof BadRequest) return { status: 400, json: statusBody(400, 'BadRequest', err.message) };
        throw err;
      }
    }
    return { status: 404, json: statusBody(404, 'NotFound', 'the server could not find the requested resource', {}) };
  }

  private list<T extends { metadata?: { namespace?: string; labels?: Record<string, string> } }>(
    kind: string,
    apiVersion: string,
    items: T[],
    namespace: string | undefined,
    query: Record<string, string>,
  ): RouteResponse {
    const labelSel = query.labelSelector ? parseLabelSelector(query.labelSelector) : [];
    const fieldSel = query.fieldSelector ? parseFieldSelector(query.fieldSelector) : [];
    const selected = items
      .filter((o) => namespace === undefined || o.metadata?.namespace === namespace)
      .filter((o) => labelSel.every((req) => req(o.metadata?.labels ?? {})))
      .filter((o) => fieldSel.every((req) => req(o)))
      .map((o) => {
        // A list's items carry no kind/apiVersion in the API's own output.
        const { kind: _k, apiVersion: _a, ...rest } = o as T & { kind?: string; apiVersion?: string };
        return rest;
      });
    return { json: { kind, apiVersion, metadata: { resourceVersion: String(resourceVersion) }, items: selected } };
  }

  private get<T extends { metadata?: { namespace?: string; name?: string } }>(items: T[], namespace: string, name: string, kindForMessage: string): RouteResponse {
    const found = items.find((o) => o.metadata?.namespace === namespace && o.metadata?.name === name);
    if (found) return { json: found };
    return notFound(kindForMessage, name);
  }

  private deletePod(namespace: string, name: string, query: Record<string, string>): RouteResponse {
    const p = this.findPod(namespace, name);
    if (!p) return notFound('pods', name);
    if (query.dryRun === 'All') return { json: p };
    const dep = this.deployments.find((d) => d.metadata?.namespace === namespace && this.podsOf(d).includes(p));
    const behaviour = dep ? this.behaviours.get(key(namespace, dep.metadata!.name!)) : undefined;
    const now = new Date();
    p.metadata!.deletionTimestamp = new Date(now.getTime() + 30_000);
    p.metadata!.deletionGracePeriodSeconds = 30;
    p.metadata!.resourceVersion = nextResourceVersion();
    const answer = structuredClone(p);
    this.addEvent(event({ involved: p, reason: 'Killing', message: `Stopping container ${p.spec?.containers[0]?.name ?? 'app'}` }));
    if (behaviour?.terminatingMs) {
      setPodState(p, 'not-ready');
      this.later(behaviour.terminatingMs, () => this.removePod(p));
    } else {
      this.removePod(p);
    }
    if (dep && behaviour) this.replace(dep, behaviour);
    return { json: answer };
  }

  /** The ReplicaSet controller's reaction to a lost pod, then the kubelet's. */
  private replace(dep: V1Deployment, b: ControllerBehaviour): void {
    const lag = b.statusLagMs ?? 0;
    const apply = () => {
      const replacement = this.addPod(pod({ owner: dep, state: 'pending' }));
      this.addEvent(event({ involved: { kind: 'ReplicaSet', name: replicaSetName(dep.metadata!.name!), namespace: dep.metadata!.namespace }, reason: 'SuccessfulCreate', message: `Created pod: ${replacement.metadata!.name}` }));
      this.addEvent(event({ involved: replacement, reason: 'Scheduled', message: `Successfully assigned ${dep.metadata!.namespace}/${replacement.metadata!.name} to node-1`, component: 'default-scheduler' }));
      this.syncDeployment(dep);
      if (b.replaceAfterMs === 'never') {
        setPodState(replacement, 'crash-loop');
        this.addEvent(event({ involved: replacement, type: 'Warning', reason: 'BackOff', message: `Back-off restarting failed container ${replacement.spec?.containers[0]?.name ?? 'app'} in pod ${replacement.metadata!.name}`, count: 4 }));
        return;
      }
      this.later(Math.max(0, (b.replaceAfterMs ?? 100) - lag), () => {
        if (!this.pods.includes(replacement)) return;
        setPodState(replacement, 'ready');
        this.addEvent(event({ involved: replacement, reason: 'Started', message: `Started container ${replacement.spec?.containers[0]?.name ?? 'app'}` }));
        this.syncDeployment(dep);
      });
    };
    if (lag > 0) this.later(lag, apply);
    else apply();
  }

  private removePod(p: V1Pod): void {
    const i = this.pods.indexOf(p);
    if (i >= 0) this.pods.splice(i, 1);
  }

  private podLog(namespace: string, name: string, query: Record<string, string>): RouteResponse {
    const p = this.findPod(namespace, name);
    if (!p) return notFound('pods', name);
    const containers = (p.spec?.containers ?? []).map((c) => c.name);
    let container = query.container;
    if (!container) {
      if (containers.length !== 1) throw new BadRequest(`a container name must be specified for pod ${name}, choose one of: [${containers.join(' ')}]`);
      container = containers[0]!;
    }
    if (!containers.includes(container)) throw new BadRequest(`container ${container} is not valid for pod ${name}`);
    const store = this.logs.get(`${namespace}/${name}/${container}`) ?? { current: [] };
    const previous = query.previous === 'true';
    if (previous && !store.previous) throw new BadRequest(`previous terminated container "${container}" in pod "${name}" not found`);
    let lines = previous ? store.previous! : store.current;
    const since = query.sinceSeconds ? Date.now() - Number(query.sinceSeconds) * 1000 : query.sinceTime ? Date.parse(query.sinceTime) : undefined;
    if (since !== undefined) lines = lines.filter((l) => l.at.getTime() >= since);
    if (query.tailLines) lines = lines.slice(-Number(query.tailLines));
    let text = lines.map((l) => (query.timestamps === 'true' ? `${l.at.toISOString().replace(/\.(\d{3})Z$/, '.$1000000Z')} ${l.text}` : l.text) + '\n').join('');
    if (query.limitBytes) text = Buffer.from(text).subarray(0, Number(query.limitBytes)).toString();
    return { text };
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }
}

/** Starts a fake API server on 127.0.0.1 (free port). */
export async function startKubeApi(opts: KubeApiOptions = {}): Promise<KubeApi> {
  return new KubeApi(opts.token ?? randomBytes(16).toString('hex')).listen();
}

/** A kubeconfig (YAML) for a plain-http test server: `skipTLSVerify: true` (the client refuses http otherwise) and a token user. */
export function kubeconfigYaml(server: string, token: string, namespace = 'default'): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '  - name: fake',
    '    cluster:',
    `      server: ${server}`,
    '      insecure-skip-tls-verify: true',
    'users:',
    '  - name: caretaker',
    '    user:',
    `      token: ${token}`,
    'contexts:',
    '  - name: fake',
    '    context:',
    '      cluster: fake',
    '      user: caretaker',
    `      namespace: ${namespace}`,
    'current-context: fake',
    '',
  ].join('\n');
}

/** Ready as the API reports it: Running, not terminating, condition Ready True. */
export function isPodReady(p: V1Pod): boolean {
  return p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp && (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

function key(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

function notFound(kind: string, name: string): RouteResponse {
  const [resource, group] = kind.split('.');
  return { status: 404, json: statusBody(404, 'NotFound', `${kind} "${name}" not found`, { name, ...(group ? { group } : {}), kind: resource }) };
}

class BadRequest extends Error {}

/** JSON as the API server writes it: RFC 3339 times to the second (Dates carry milliseconds). */
function toApiJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(v) ? v.replace(/\.\d{3}Z$/, 'Z') : v));
}

/**
 * Label selectors as the API parses them: `a=b`, `a==b`, `a!=b`, `a`, `!a`,
 * `a in (x,y)`, `a notin (x,y)`, comma-separated (all must hold).
 */
export function parseLabelSelector(selector: string): ((labels: Record<string, string>) => boolean)[] {
  const parts = selector.split(/,(?![^()]*\))/).map((s) => s.trim()).filter(Boolean);
  return parts.map((part) => {
    let m: RegExpMatchArray | null;
    if ((m = part.match(/^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/))) {
      const [, k, op, list] = m;
      const values = list!.split(',').map((v) => v.trim());
      return op === 'in' ? (l) => l[k!] !== undefined && values.includes(l[k!]!) : (l) => l[k!] === undefined || !values.includes(l[k!]!);
    }
    if ((m = part.match(/^([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)$/))) {
      const [, k, op, v] = m;
      return op === '!=' ? (l) => l[k!] !== v : (l) => l[k!] === v;
    }
    if ((m = part.match(/^(!?)([\w./-]+)$/))) {
      const [, not, k] = m;
      return not ? (l) => l[k!] === undefined : (l) => l[k!] !== undefined;
    }
    throw new BadRequest(`unable to parse requirement: found '${part}', expected: in, notin, =, ==, !=, gt, lt`);
  });
}

/** Field selectors: `a.b=c`, `a.b==c`, `a.b!=c` on dotted paths, comma-separated. */
function parseFieldSelector(selector: string): ((o: unknown) => boolean)[] {
  return selector.split(',').map((part) => {
    const m = part.trim().match(/^([\w.]+)\s*(==|=|!=)\s*(.*)$/);
    if (!m) throw new BadRequest(`invalid field selector: '${part}'`);
    const [, path, op, value] = m;
    const read = (o: unknown) => String(path!.split('.').reduce<unknown>((acc, k) => (acc as Record<string, unknown> | undefined)?.[k], o) ?? '');
    return op === '!=' ? (o) => read(o) !== value : (o) => read(o) === value;
  });
}
