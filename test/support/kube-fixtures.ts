/**
 * Builders of Kubernetes API objects for tests, shaped like `kubectl get -o
 * json` output: `deployment()`, `pod()` (and `setPodState()` to move it
 * between states as the kubelet reports them), `event()`, `hpa()`, and the
 * `kind: Status` failure body (`statusBody()`). Also the small pieces of API
 * semantics the fake server and the tests share: ReplicaSet and pod naming,
 * pod readiness, label selector parsing, and the resourceVersion counter.
 *
 * Pure data and functions: no server here. The fake API server
 * (`./kube-api.ts`) serves these objects and re-exports the builders, so
 * tests import from either.
 *
 *     const web = deployment({ name: 'web', namespace: 'shop', replicas: 2 });
 *     const p = pod({ owner: web, state: 'crash-loop', restartCount: 7 });
 *     setPodState(p, 'ready');
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type {
  CoreV1Event,
  V1Container,
  V1ContainerState,
  V1ContainerStatus,
  V1Deployment,
  V1Pod,
  V1PodCondition,
  V1ResourceRequirements,
  V2HorizontalPodAutoscaler,
} from '@kubernetes/client-node';
import type { V1ClusterRoleBinding, V1RoleBinding, V1Secret } from '@kubernetes/client-node';

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

/** The last resourceVersion handed out: one counter for every object, so it only grows. */
let resourceVersion = 1000;

/** The next resourceVersion, as a string like the API's; each write to an object takes one. */
export function nextResourceVersion(): string {
  return String(++resourceVersion);
}

/** The latest resourceVersion handed out, as a list's `metadata.resourceVersion` reports it. */
export function currentResourceVersion(): string {
  return String(resourceVersion);
}

/** A container of a deployment's template or a pod; image defaults to `registry.example.com/<name>:1.0.0`. */
export interface ContainerInput {
  name: string;
  image?: string;
  resources?: V1ResourceRequirements;
  securityContext?: V1Container['securityContext'];
}

/** What `deployment()` builds from; everything but the name has a default. */
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

/** What `pod()` builds from; every field has a default. */
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

/** What `event()` builds from. */
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

/** What `hpa()` builds from: a CPU-based HPA and its current status. */
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

/** Containers with the fields the API server fills in by default (pull policy, termination message). */
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

/** Ready as the API reports it: Running, not terminating, condition Ready True. */
export function isPodReady(p: V1Pod): boolean {
  return p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp && (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** A request the API server rejects with 400 BadRequest; the message is the Status message. */
export class BadRequest extends Error {}

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

// -- metrics.k8s.io (metrics-server): k8s-health's CPU and memory check ------

/** A metrics.k8s.io/v1beta1 PodMetrics, as metrics-server serves it. */
export interface PodMetricsObject {
  kind?: 'PodMetrics';
  apiVersion?: 'metrics.k8s.io/v1beta1';
  metadata: { name: string; namespace: string; creationTimestamp: Date; labels?: Record<string, string> };
  timestamp: Date;
  window: string;
  containers: { name: string; usage: { cpu: string; memory: string } }[];
}

/** What `podMetrics()` builds from. */
export interface PodMetricsInput {
  pod: V1Pod;
  /**
   * Container name → usage as metrics-server writes it: CPU in nanocores
   * (`'350000000n'` = 350m), memory in Ki (`'204800Ki'` = 200 MiB). Any
   * quantity the API accepts works.
   */
  containers: Record<string, { cpu: string; memory: string }>;
  /** When the sample was taken; default 15 s ago. */
  timestamp?: Date;
}

/** A PodMetrics item as `kubectl get --raw /apis/metrics.k8s.io/v1beta1/namespaces/NS/pods` shows it. */
export function podMetrics(input: PodMetricsInput): PodMetricsObject {
  const now = new Date();
  return {
    kind: 'PodMetrics',
    apiVersion: 'metrics.k8s.io/v1beta1',
    metadata: {
      name: input.pod.metadata!.name!,
      namespace: input.pod.metadata!.namespace!,
      // metrics-server stamps the object when it is served, not when the pod was made.
      creationTimestamp: now,
      labels: { ...(input.pod.metadata?.labels ?? {}) },
    },
    timestamp: input.timestamp ?? new Date(now.getTime() - 15_000),
    window: '15.023s',
    containers: Object.entries(input.containers).map(([name, usage]) => ({ name, usage: { cpu: usage.cpu, memory: usage.memory } })),
  };
}

// -- secrets and RBAC bindings: security-audit ---------------------------------

/** What `secret()` builds from. */
export interface SecretInput {
  name: string;
  namespace?: string;
  /** Default "Opaque". */
  type?: string;
  /** Plain values; the builder base64-encodes them as the API does. */
  data?: Record<string, string>;
  /** Default now. */
  createdAt?: Date;
  /** When the data was last written (the time of the managedFields entry that owns `f:data`); default createdAt. */
  dataWrittenAt?: Date;
  /** Leave out metadata.managedFields (a server or proxy that strips them). */
  noManagedFields?: boolean;
  /** Add `kubectl.kubernetes.io/last-applied-configuration`, which holds the applied object, data included, as `kubectl apply` does. */
  lastApplied?: boolean;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** A core/v1 Secret as `kubectl get secret -o json` shows it (data base64-encoded). */
export function secret(input: SecretInput): V1Secret {
  const namespace = input.namespace ?? 'default';
  const created = input.createdAt ?? new Date();
  const type = input.type ?? 'Opaque';
  const data = Object.fromEntries(Object.entries(input.data ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
  const annotations = { ...(input.annotations ?? {}) };
  if (input.lastApplied) {
    annotations['kubectl.kubernetes.io/last-applied-configuration'] =
      JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: input.name, namespace }, type, data }) + '\n';
  }
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: input.name,
      namespace,
      uid: randomUUID(),
      resourceVersion: nextResourceVersion(),
      creationTimestamp: created,
      ...(input.labels ? { labels: { ...input.labels } } : {}),
      ...(Object.keys(annotations).length ? { annotations } : {}),
      ...(input.noManagedFields
        ? {}
        : {
            managedFields: [
              {
                manager: input.lastApplied ? 'kubectl-client-side-apply' : 'kubectl-create',
                operation: 'Update',
                apiVersion: 'v1',
                time: input.dataWrittenAt ?? created,
                fieldsType: 'FieldsV1',
                fieldsV1: { 'f:data': { '.': {}, ...Object.fromEntries(Object.keys(data).map((k) => [`f:${k}`, {}])) }, 'f:type': {} },
              },
            ],
          }),
    },
    type,
    data,
  };
}

/** A subject of a binding: service accounts carry their namespace, users and groups the RBAC apiGroup. */
export interface BindingSubjectInput {
  kind: 'ServiceAccount' | 'User' | 'Group';
  name: string;
  /** ServiceAccount only; default the binding's namespace (RoleBinding) or "default". */
  namespace?: string;
}

/** What `roleBinding()` and `clusterRoleBinding()` build from. */
export interface BindingInput {
  name: string;
  /** RoleBinding only; default "default". */
  namespace?: string;
  roleRef: { kind: 'ClusterRole' | 'Role'; name: string };
  subjects: BindingSubjectInput[];
}

const RBAC_GROUP = 'rbac.authorization.k8s.io';

function bindingParts(input: BindingInput, namespace?: string): Pick<V1RoleBinding, 'roleRef' | 'subjects'> {
  return {
    roleRef: { apiGroup: RBAC_GROUP, kind: input.roleRef.kind, name: input.roleRef.name },
    subjects: input.subjects.map((s) =>
      s.kind === 'ServiceAccount' ? { kind: s.kind, name: s.name, namespace: s.namespace ?? namespace ?? 'default' } : { apiGroup: RBAC_GROUP, kind: s.kind, name: s.name },
    ),
  };
}

/** An rbac.authorization.k8s.io/v1 RoleBinding as `kubectl get rolebinding -o json` shows it. */
export function roleBinding(input: BindingInput): V1RoleBinding {
  const namespace = input.namespace ?? 'default';
  return {
    apiVersion: `${RBAC_GROUP}/v1`,
    kind: 'RoleBinding',
    metadata: { name: input.name, namespace, uid: randomUUID(), resourceVersion: nextResourceVersion(), creationTimestamp: new Date(Date.now() - 86_400_000) },
    ...bindingParts(input, namespace),
  };
}

/** An rbac.authorization.k8s.io/v1 ClusterRoleBinding (cluster-scoped: no namespace). */
export function clusterRoleBinding(input: Omit<BindingInput, 'namespace'>): V1ClusterRoleBinding {
  return {
    apiVersion: `${RBAC_GROUP}/v1`,
    kind: 'ClusterRoleBinding',
    metadata: { name: input.name, uid: randomUUID(), resourceVersion: nextResourceVersion(), creationTimestamp: new Date(Date.now() - 86_400_000) },
    ...bindingParts(input),
  };
}
