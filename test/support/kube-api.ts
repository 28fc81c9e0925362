/**
 * A local Kubernetes API server for tests (no real API server can run on
 * the development machine or in CI). It answers the paths `@kubernetes/client-node` calls with the JSON
 * the real API server returns: lists (`PodList`, items without kind), single
 * objects, `kind: Status` errors (401, 403 Forbidden with RBAC's wording,
 * 404 NotFound, 400 BadRequest), plain-text pod logs. The client talks to it
 * over HTTP through a kubeconfig (`api.writeKubeconfig()`), as in production.
 *
 * State is plain, mutable objects shaped like `kubectl get -o json`, made
 * with the builders of `./kube-fixtures.ts` (`deployment()`, `pod()`,
 * `event()`, `hpa()`), re-exported here. A small controller
 * (`./kube-controller.ts`) plays the ReplicaSet and Deployment controllers:
 * when a pod of a deployment is deleted, a replacement pod (new name) is
 * created Pending and becomes Ready after a configurable delay, or
 * crash-loops forever (`replaceAfterMs: 'never'`).
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
 * `/status`), autoscaling/v2 HPAs (list, get), metrics.k8s.io PodMetrics
 * (list; `metricsApi` makes it 404 or 503), secrets (list, metadata-only
 * on request) and rbac.authorization.k8s.io/v1 RoleBindings and
 * ClusterRoleBindings (list). Anything else is a 404
 * `Status` like the real server's; add more with `api.route(...)`.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { CoreV1Event, V1Deployment, V1Pod, V2HorizontalPodAutoscaler } from '@kubernetes/client-node';
import { KubeController, type ControllerBehaviour } from './kube-controller';
import { BadRequest, currentResourceVersion, nextResourceVersion, parseLabelSelector, pod, statusBody, type PodState } from './kube-fixtures';
import type { PodMetricsObject } from './kube-fixtures';
// secrets and RBAC bindings (security-audit)
import type { V1ClusterRoleBinding, V1RoleBinding, V1Secret } from '@kubernetes/client-node';

// The builders and API helpers, for the tests that import them from here.
export {
  deployment,
  event,
  hpa,
  isPodReady,
  parseLabelSelector,
  pod,
  podTemplateHash,
  replicaSetName,
  setPodState,
  statusBody,
} from './kube-fixtures';
export type { ContainerInput, DeploymentInput, EventInput, HpaInput, PodInput, PodState } from './kube-fixtures';
export type { ControllerBehaviour } from './kube-controller';
// metrics.k8s.io (k8s-health)
export { podMetrics } from './kube-fixtures';
export type { PodMetricsInput, PodMetricsObject } from './kube-fixtures';
// secrets and RBAC bindings (security-audit)
export { clusterRoleBinding, roleBinding, secret } from './kube-fixtures';
export type { BindingInput, BindingSubjectInput, SecretInput } from './kube-fixtures';

/** The user RBAC messages name, like a real service account. */
export const FAKE_USER = 'system:serviceaccount:caretaker:caretaker';

/** One request the server received, in order. `path` has no query string. */
export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  /** Date.now() when it arrived. */
  at: number;
  /** The Accept header, when sent (security-audit asks for metadata-only lists). */
  accept?: string;
}

/** How `api.addDeployment()` starts a deployment's pods, and how the controller replaces them. */
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

/** A custom route's answer: `json` or `text`, status 200 unless said. */
export interface RouteResponse {
  status?: number;
  /** Sent as application/json. */
  json?: unknown;
  /** Sent as text/plain. */
  text?: string;
}

/** Answers a custom route added with `api.route(...)`. */
export type RouteHandler = (req: RouteRequest) => RouteResponse | Promise<RouteResponse>;

type Verb = 'get' | 'list' | 'delete';

interface BuiltinRoute {
  method: 'GET' | 'DELETE';
  pattern: RegExp;
  verb: Verb;
  resource: string;
  group: string;
  handle: (m: RegExpMatchArray, query: Record<string, string>, req: { accept?: string }) => RouteResponse;
}

interface LogStore {
  current: { at: Date; text: string }[];
  previous?: { at: Date; text: string }[];
}

/** Options of `startKubeApi()`. */
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
  /** metrics.k8s.io: the PodMetrics the metrics API serves (`api.addPodMetrics(podMetrics({...}))`). */
  readonly podMetrics: PodMetricsObject[] = [];
  /** core/v1 Secrets (security-audit); listed in full, or as metadata only when the client asks for PartialObjectMetadataList. */
  readonly secrets: V1Secret[] = [];
  /** rbac.authorization.k8s.io/v1 RoleBindings and ClusterRoleBindings (security-audit). */
  readonly roleBindings: V1RoleBinding[] = [];
  readonly clusterRoleBindings: V1ClusterRoleBinding[] = [];
  /**
   * How the metrics API answers: 'available' (default: serves `podMetrics`),
   * 'missing' (404 NotFound, as when metrics-server is not installed),
   * 'unavailable' (503 ServiceUnavailable, as when it is installed but down).
   */
  metricsApi: 'available' | 'missing' | 'unavailable' = 'available';
  /** http://127.0.0.1:port */
  url = '';

  private readonly logs = new Map<string, LogStore>();
  private readonly forbidden: { verb: Verb; resource: string; namespace?: string }[] = [];
  private readonly custom: { method: string; pattern: RegExp; handler: RouteHandler }[] = [];
  private readonly controller = new KubeController(this);
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
    // -- metrics.k8s.io (metrics-server), for k8s-health: forbid('list', 'pods.metrics.k8s.io') refuses only this one.
    this.builtins.push(
      { method: 'GET', pattern: new RegExp(`^/apis/metrics.k8s.io/v1beta1/namespaces/${ns}/pods$`), verb: 'list', resource: 'pods', group: 'metrics.k8s.io', handle: (m, q) => this.podMetricsList(m[1]!, q) },
    );
    // -- secrets (list; metadata only on request) and RBAC bindings (list), for security-audit.
    this.builtins.push(
      { method: 'GET', pattern: new RegExp(`^/api/v1/namespaces/${ns}/secrets$`), verb: 'list', resource: 'secrets', group: '', handle: (m, q, req) => this.secretList(m[1]!, q, req.accept) },
      { method: 'GET', pattern: new RegExp(`^/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings$`), verb: 'list', resource: 'rolebindings', group: 'rbac.authorization.k8s.io', handle: (m, q) => this.list('RoleBindingList', 'rbac.authorization.k8s.io/v1', this.roleBindings, m[1], q) },
      { method: 'GET', pattern: /^\/apis\/rbac.authorization.k8s.io\/v1\/clusterrolebindings$/, verb: 'list', resource: 'clusterrolebindings', group: 'rbac.authorization.k8s.io', handle: (_m, q) => this.list('ClusterRoleBindingList', 'rbac.authorization.k8s.io/v1', this.clusterRoleBindings, undefined, q) },
    );
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
    this.controller.stop();
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
    this.controller.manage(dep, {
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

  /** Adds an event, as listed by the events route. */
  addEvent(e: CoreV1Event): CoreV1Event {
    this.events.push(e);
    return e;
  }

  /** Adds a HorizontalPodAutoscaler, as served by the autoscaling/v2 routes. */
  addHpa(h: V2HorizontalPodAutoscaler): V2HorizontalPodAutoscaler {
    this.hpas.push(h);
    return h;
  }

  /** The deployment with this name in this namespace, if any. */
  findDeployment(namespace: string, name: string): V1Deployment | undefined {
    return this.deployments.find((d) => d.metadata?.namespace === namespace && d.metadata?.name === name);
  }

  /** The pod with this name in this namespace (terminating ones included), if any. */
  findPod(namespace: string, name: string): V1Pod | undefined {
    return this.pods.find((p) => p.metadata?.namespace === namespace && p.metadata?.name === name);
  }

  /** The pods of a deployment (owned by its ReplicaSet), terminating ones included. */
  podsOf(dep: V1Deployment): V1Pod[] {
    return this.controller.podsOf(dep);
  }

  /**
   * Recomputes a deployment's status from its pods, as the deployment
   * controller does (zero counts omitted, as the API omits them).
   */
  syncDeployment(dep: V1Deployment): void {
    this.controller.syncDeployment(dep);
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

  // -- metrics.k8s.io (k8s-health) -------------------------------------------

  /** Adds a PodMetrics item (built with `podMetrics()`), as served by the metrics API route. */
  addPodMetrics(m: PodMetricsObject): PodMetricsObject {
    this.podMetrics.push(m);
    return m;
  }

  /** The PodMetricsList of a namespace, or the 404 / 503 of a missing or down metrics-server. */
  private podMetricsList(namespace: string, query: Record<string, string>): RouteResponse {
    if (this.metricsApi === 'missing') return { status: 404, json: statusBody(404, 'NotFound', 'the server could not find the requested resource', {}) };
    if (this.metricsApi === 'unavailable') {
      return {
        status: 503,
        json: statusBody(503, 'ServiceUnavailable', 'the server is currently unable to handle the request', { causes: [{ reason: 'UnexpectedServerResponse', message: 'service unavailable' }] }),
      };
    }
    const list = this.list('PodMetricsList', 'metrics.k8s.io/v1beta1', this.podMetrics, namespace, query);
    // metrics-server's list metadata carries no resourceVersion.
    return { json: { ...(list.json as Record<string, unknown>), metadata: {} } };
  }

  // -- secrets and RBAC bindings (security-audit) ---------------------------

  /** Adds a Secret (built with `secret()`), as listed by the secrets route. */
  addSecret(s: V1Secret): V1Secret {
    this.secrets.push(s);
    return s;
  }

  /** Adds a RoleBinding (built with `roleBinding()`). */
  addRoleBinding(b: V1RoleBinding): V1RoleBinding {
    this.roleBindings.push(b);
    return b;
  }

  /** Adds a ClusterRoleBinding (built with `clusterRoleBinding()`). */
  addClusterRoleBinding(b: V1ClusterRoleBinding): V1ClusterRoleBinding {
    this.clusterRoleBindings.push(b);
    return b;
  }

  /**
   * A SecretList, or, when the Accept header asks for
   * `as=PartialObjectMetadataList;g=meta.k8s.io;v=v1`, the metadata only
   * (no type, no data), as the real API server answers; any other `as=`
   * is 406 NotAcceptable.
   */
  private secretList(namespace: string, query: Record<string, string>, accept?: string): RouteResponse {
    const full = this.list('SecretList', 'v1', this.secrets, namespace, query);
    const asParams = (accept ?? '').split(',').map((part) => part.trim()).filter((part) => /;\s*as=/.test(part));
    if (asParams.length === 0) return full;
    const metadataOnly = asParams.some((part) => /;\s*as=PartialObjectMetadataList\b/.test(part) && /;\s*g=meta\.k8s\.io\b/.test(part) && /;\s*v=v1\b/.test(part));
    if (!metadataOnly) return { status: 406, json: statusBody(406, 'NotAcceptable', `only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf`) };
    const items = (full.json as { items: V1Secret[]; metadata: unknown }).items.map((s) => ({ kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: s.metadata }));
    return { json: { kind: 'PartialObjectMetadataList', apiVersion: 'meta.k8s.io/v1', metadata: (full.json as { metadata: unknown }).metadata, items } };
  }

  // -- HTTP ------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const query = Object.fromEntries(url.searchParams.entries());
    const method = (req.method ?? 'GET').toUpperCase();
    const path = url.pathname;
    this.requests.push({ method, path, query, at: Date.now(), ...(req.headers.accept ? { accept: req.headers.accept } : {}) });
    let body = '';
    for await (const chunk of req) body += String(chunk);
    let out: RouteResponse;
    try {
      out = await this.dispatch(method, path, query, body, req.headers.authorization, req.headers.accept);
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

  private async dispatch(method: string, path: string, query: Record<string, string>, body: string, authorization?: string, accept?: string): Promise<RouteResponse> {
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
      if (this.forbidden.some((f) => f.verb === r.verb && (f.resource === r.resource || f.resource === `${r.resource}.${r.group}`) && (!f.namespace || f.namespace === namespace))) {
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
        return r.handle(m, query, { accept });
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
    return { json: { kind, apiVersion, metadata: { resourceVersion: currentResourceVersion() }, items: selected } };
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
    const now = new Date();
    p.metadata!.deletionTimestamp = new Date(now.getTime() + 30_000);
    p.metadata!.deletionGracePeriodSeconds = 30;
    p.metadata!.resourceVersion = nextResourceVersion();
    const answer = structuredClone(p);
    this.controller.podDeleted(p);
    return { json: answer };
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
    const waiting = p.status?.containerStatuses?.find((c) => c.name === container)?.state?.waiting?.reason;
    if (query.previous !== 'true' && (waiting === 'ContainerCreating' || waiting === 'PodInitializing')) {
      throw new BadRequest(`container "${container}" in pod "${name}" is waiting to start: ${waiting}`);
    }
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

function notFound(kind: string, name: string): RouteResponse {
  const [resource, group] = kind.split('.');
  return { status: 404, json: statusBody(404, 'NotFound', `${kind} "${name}" not found`, { name, ...(group ? { group } : {}), kind: resource }) };
}

/** JSON as the API server writes it: RFC 3339 times to the second (Dates carry milliseconds). */
function toApiJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(v) ? v.replace(/\.\d{3}Z$/, 'Z') : v));
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