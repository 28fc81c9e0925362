/**
 * The Kubernetes API, through `@kubernetes/client-node` (ESM-only since 1.0;
 * Node 20.19+ loads it with plain `require`).
 *
 * Where the cluster is: the target's `kubeconfig` file when set; else the
 * pod's service account when caretaker runs in a pod; else the standard
 * loading ($KUBECONFIG, then ~/.kube/config). The library reads its own
 * environment variables for the last two; nothing here reads process.env.
 *
 * The generated API has no per-call timeout: `callOptions(signal)` gives a
 * call an abort signal, so a hung API server cannot hold a run forever.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  AppsV1Api,
  AutoscalingV2Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  RbacAuthorizationV1Api,
  Observable,
  type ConfigurationOptions,
  type RequestContext,
  type ResponseContext,
} from '@kubernetes/client-node';
import type { KubernetesTarget } from '../config/schema';
import type { KubernetesApis } from '../contract/clients';

/** Where Kubernetes mounts a pod's service account (token, ca.crt, namespace). */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** A bound on any single API call; callers pass a shorter one near their deadline. */
export const API_REQUEST_TIMEOUT_MS = 10_000;

export interface LoadOptions {
  /**
   * Prefix of the service-account directory, for tests of the in-cluster
   * path (the library's own `loadFromCluster(pathPrefix)`); default none.
   */
  serviceAccountPrefix?: string;
}

/** How the configuration was found, for messages and tests. */
export type KubeConfigSource = 'kubeconfig' | 'in-cluster' | 'default';

/**
 * Loads the configuration of a kubernetes target; throws an Error naming
 * the file or the missing configuration.
 */
export function loadKubeConfig(target: KubernetesTarget, opts: LoadOptions = {}): { kubeConfig: KubeConfig; source: KubeConfigSource } {
  const kc = new KubeConfig();
  if (target.kubeconfig) {
    try {
      kc.loadFromFile(target.kubeconfig);
    } catch (err) {
      throw new Error(`kubernetes target ${target.name}: cannot load kubeconfig ${target.kubeconfig}: ${(err as Error).message}`, { cause: err });
    }
    assertCluster(kc, target, `kubeconfig ${target.kubeconfig}`);
    return { kubeConfig: kc, source: 'kubeconfig' };
  }
  const prefix = opts.serviceAccountPrefix ?? '';
  if (existsSync(join(`${prefix}${SERVICE_ACCOUNT_DIR}`, 'token'))) {
    kc.loadFromCluster(prefix);
    const server = kc.getCurrentCluster()?.server ?? '';
    // loadFromCluster builds the URL from KUBERNETES_SERVICE_HOST/PORT, which every pod has.
    if (/\/\/(undefined|):/.test(server)) {
      throw new Error(`kubernetes target ${target.name}: a service account is mounted but KUBERNETES_SERVICE_HOST/PORT are not set`);
    }
    return { kubeConfig: kc, source: 'in-cluster' };
  }
  kc.loadFromDefault();
  if (isLibraryFallback(kc)) {
    throw new Error(
      `kubernetes target ${target.name}: no Kubernetes configuration found (set the target's kubeconfig, run in a pod with a service account, or set KUBECONFIG)`,
    );
  }
  assertCluster(kc, target, 'the default kubeconfig');
  return { kubeConfig: kc, source: 'default' };
}

/** The API clients of a kubernetes target. Cheap: no connection is opened until a call. */
export function createKubernetesClients(target: KubernetesTarget, opts: LoadOptions = {}): KubernetesApis {
  const { kubeConfig } = loadKubeConfig(target, opts);
  return {
    server: kubeConfig.getCurrentCluster()?.server ?? '',
    core: kubeConfig.makeApiClient(CoreV1Api),
    apps: kubeConfig.makeApiClient(AppsV1Api),
    autoscaling: kubeConfig.makeApiClient(AutoscalingV2Api),
    rbac: kubeConfig.makeApiClient(RbacAuthorizationV1Api),
    custom: kubeConfig.makeApiClient(CustomObjectsApi),
  };
}

/**
 * Per-call options that abort the HTTP request when `signal` fires or after
 * `timeoutMs`: `core.listNamespacedPod({ namespace }, callOptions(signal))`.
 */
export function callOptions(signal: AbortSignal, timeoutMs = API_REQUEST_TIMEOUT_MS): ConfigurationOptions {
  const bounded = AbortSignal.any([signal, AbortSignal.timeout(Math.max(1, Math.round(timeoutMs)))]);
  return {
    middleware: [
      {
        pre: (ctx: RequestContext) => {
          ctx.setSignal(bounded);
          return new Observable(Promise.resolve(ctx));
        },
        post: (res: ResponseContext) => new Observable(Promise.resolve(res)),
      },
    ],
    // Keep the configuration's own middleware (none today), add ours.
    middlewareMergeStrategy: 'append',
  };
}

/** The HTTP status of a failed API call, when the server answered. */
export function apiStatusCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' && code >= 100 && code < 600 ? code : undefined;
}

/**
 * One line for a failed call: the API's own `Status` message when it sent
 * one (`pods "web-1" is forbidden: User ... cannot delete resource "pods"`),
 * else the transport error (`connect ECONNREFUSED 127.0.0.1:6443`).
 */
export function apiErrorMessage(err: unknown): string {
  const status = apiStatusCode(err);
  if (status !== undefined) {
    const body = (err as { body?: unknown }).body;
    const message = statusMessage(body);
    if (message) return `${status}: ${message}`;
    return status === 401 ? '401: Unauthorized (check the kubeconfig credentials)' : `HTTP ${status}`;
  }
  // Duck-typed: errors from undici may come from another realm (jest's VM), where instanceof fails.
  const e = err as { name?: unknown; message?: unknown; cause?: unknown } | null;
  if (e && typeof e.message === 'string') {
    if (e.name === 'AbortError') return 'request aborted';
    if (e.name === 'TimeoutError') return 'request timed out';
    const cause = causeText(e.cause);
    return cause && !e.message.includes(cause) ? `${e.message}: ${cause}` : e.message;
  }
  return String(err);
}

/** fetch's "fetch failed" hides the reason in `cause` (an Error, or an AggregateError of one per address). */
function causeText(cause: unknown): string | undefined {
  const c = cause as { message?: unknown; code?: unknown; errors?: unknown } | null | undefined;
  if (!c) return undefined;
  if (typeof c.message === 'string' && c.message) return c.message;
  if (Array.isArray(c.errors) && c.errors.length) return causeText(c.errors[0]);
  return typeof c.code === 'string' ? c.code : undefined;
}

/** `message` of a `kind: Status` body, which the generated client hands over as text or as an object. */
function statusMessage(body: unknown): string | undefined {
  let parsed = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      return body.trim().slice(0, 300) || undefined;
    }
  }
  const message = (parsed as { message?: unknown } | null)?.message;
  return typeof message === 'string' && message ? message : undefined;
}

function assertCluster(kc: KubeConfig, target: KubernetesTarget, where: string): void {
  if (!kc.getCurrentCluster()) {
    throw new Error(`kubernetes target ${target.name}: ${where} has no current context with a cluster`);
  }
}

/** loadFromDefault ends, when it finds nothing, on an unauthenticated http://localhost:8080. */
function isLibraryFallback(kc: KubeConfig): boolean {
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  return kc.clusters.length === 1 && cluster?.name === 'cluster' && cluster.server === 'http://localhost:8080' && user?.name === 'user' && !user.token;
}
