/**
 * The DR drill's pod-kill (issue #4): delete one Ready pod of a deployment
 * and measure how long until the deployment is fully available again and,
 * when configured, its health URL answers 2xx.
 *
 * Safety (the README's Safety section): it acts only in a namespace listed in the kubernetes
 * target's `allow.podKillNamespaces` (none by default), never on a
 * deployment that is not fully available or whose health URL does not
 * answer (a drill must not make a degraded service worse), deletes exactly
 * one pod with its normal grace period, and every wait is bounded by
 * `timeoutMs` and the run's abort signal. API failures come back as
 * `error`, never as a throw.
 */
import type { V1Deployment, V1LabelSelector, V1Pod } from '@kubernetes/client-node';
import type { KubernetesTarget } from '../config/schema';
import type { Logger } from '../logger';
import { apiErrorMessage, apiStatusCode, callOptions, API_REQUEST_TIMEOUT_MS } from '../clients/kubernetes';
import type { KubernetesApis } from '../contract/clients';

export interface PodRecoveryRequest {
  kubernetes: KubernetesTarget;
  /** Opens the target's APIs (the run's clients); a throw (no configuration) ends the drill with `error`. */
  open: (target: KubernetesTarget) => KubernetesApis;
  namespace: string;
  deployment: string;
  healthUrl?: string;
  timeoutMs: number;
  signal: AbortSignal;
  log: Logger;
  /**
   * Runs once the pod to delete is chosen, just before the delete (dr-drill
   * silences the deployment's alerts there). A throw ends the drill with
   * `error`, nothing deleted.
   */
  beforeDelete?: (pod: string) => Promise<void>;
}

export interface PodRecoveryResult {
  podDeleted?: string;
  recoverySeconds?: number;
  healthy: boolean;
  steps: string[];
  error?: string;
  refused?: string;
  /** Refused because the namespace is not in allow.podKillNamespaces: the safe default, no API call made. */
  notAllowed?: true;
}

/** Polling interval while the replacement comes up: short at first, then gentler on the API server. */
export const POLL_FAST_MS = 250;
export const POLL_SLOW_MS = 1_000;
/** How long polling stays fast after the delete. */
export const POLL_FAST_FOR_MS = 10_000;
/** A bound on one health-URL request. */
export const HEALTH_REQUEST_TIMEOUT_MS = 5_000;

/** A failure that ends the drill with `error` (or `refused`), carrying the message for the result. */
class DrillStop extends Error {
  constructor(
    message: string,
    readonly kind: 'error' | 'refused',
    /** The API's HTTP status, when the API answered. */
    readonly status?: number,
  ) {
    super(message);
  }
}

/**
 * Deletes one Ready pod of `req.deployment` in `req.namespace` and measures
 * the recovery. See the module comment for what it refuses to do.
 */
export async function measurePodRecovery(req: PodRecoveryRequest): Promise<PodRecoveryResult> {
  const steps: string[] = [];
  const { namespace, deployment: name, log } = req;
  const subject = `${namespace}/${name}`;
  const allowed = req.kubernetes.allow?.podKillNamespaces ?? [];
  if (!allowed.includes(namespace)) {
    const refused = `namespace ${namespace} is not in allow.podKillNamespaces of kubernetes target ${req.kubernetes.name} (${allowed.length ? allowed.join(', ') : 'none allowed'})`;
    steps.push(`refused: ${refused}`);
    log.warn({ namespace, deployment: name }, 'pod-kill refused: namespace not allowed');
    return { healthy: false, refused, notAllowed: true, steps };
  }

  const deadline = Date.now() + req.timeoutMs;
  let podDeleted: string | undefined;
  try {
    if (req.signal.aborted) throw new DrillStop('aborted before the drill started', 'error');
    let clients: KubernetesApis;
    try {
      clients = req.open(req.kubernetes);
    } catch (err) {
      throw new DrillStop((err as Error).message, 'error');
    }
    const api = new Api(clients, req.signal, deadline);

    // 1. The deployment must be fully available, and its health URL answer, before we touch it.
    const before = await api.deployment(namespace, name, 'read the deployment');
    const state = availability(before);
    if (state.desired === 0) throw new DrillStop(`deployment ${subject} is scaled to 0: there is no pod to delete`, 'refused');
    if (!state.available) {
      throw new DrillStop(`deployment ${subject} is not fully available before the drill (${state.text}): a pod-kill would make a degraded service worse`, 'refused');
    }
    steps.push(`deployment ${subject} fully available before the drill (${state.text})`);
    if (state.desired === 1) steps.push(`deployment ${subject} has 1 replica: it serves nothing until the replacement is ready`);
    if (req.healthUrl) {
      const probe = await probeHealth(req.healthUrl, req.signal, deadline);
      if (!probe.ok) throw new DrillStop(`health URL ${probe.text} before the drill: a pod-kill would make a degraded service worse`, 'refused');
      steps.push(`health URL ${probe.text} before the drill`);
    }

    // 2. Pick one Ready pod of this deployment.
    const selector = selectorString(before.spec?.selector);
    if (!selector) throw new DrillStop(`deployment ${subject} has no selector matchLabels/matchExpressions`, 'refused');
    const pods = await api.pods(namespace, selector, 'list the deployment\'s pods');
    const candidates = pods.filter((p) => ownedBy(p, name) && isPodReady(p)).sort(oldestFirst);
    const victim = candidates[0]?.metadata?.name;
    if (!victim) throw new DrillStop(`no Ready pod of deployment ${subject} found with selector ${selector}`, 'refused');

    // 3. Delete it, with its normal grace period: the drill also tests a clean shutdown.
    if (req.beforeDelete) {
      try {
        await req.beforeDelete(victim);
      } catch (err) {
        throw new DrillStop(`before deleting pod ${victim}: ${(err as Error).message ?? String(err)}`, 'error');
      }
    }
    if (req.signal.aborted) throw new DrillStop('aborted before deleting a pod', 'error');
    const t0 = performance.now();
    await api.call(`delete pod ${victim}`, (o) => clients.core.deleteNamespacedPod({ name: victim, namespace }, o)).catch((err: unknown) => {
      // Without an answer (timeout, lost connection) the API server may have deleted it anyway: say so.
      if (err instanceof DrillStop && err.status === undefined) throw new DrillStop(`${err.message} (the pod may have been deleted all the same)`, 'error');
      throw err;
    });
    podDeleted = victim;
    steps.push(`deleted pod ${victim}`);
    log.info({ namespace, deployment: name, pod: victim }, 'dr-drill: deleted pod, waiting for recovery');

    // 4. Wait for the deployment: available, and with enough Ready pods that are not the deleted one.
    const desired = state.desired;
    let last = '';
    for (;;) {
      await pause(pollInterval(performance.now() - t0), req.signal, deadline);
      const [dep, current] = await Promise.all([
        api.deployment(namespace, name, 'read the deployment', true),
        api.pods(namespace, selector, 'list the deployment\'s pods', true),
      ]);
      if (dep && current) {
        const now = availability(dep);
        const replacements = current.filter((p) => ownedBy(p, name) && isPodReady(p) && p.metadata?.name !== victim).length;
        last = `${now.text}, ${replacements}/${desired} Ready pods besides the deleted one`;
        if (now.available && replacements >= desired) break;
      }
      if (Date.now() >= deadline) {
        const seen = last || `no answer from the API: ${api.lastFailure}`;
        throw new DrillStop(`timed out: deployment ${subject} not fully available ${secs(performance.now() - t0)} s after deleting pod ${victim} (${seen})`, 'error');
      }
    }
    steps.push(`deployment available after ${secs(performance.now() - t0)} s`);

    // 5. Then the health URL.
    if (req.healthUrl) {
      let probe = await probeHealth(req.healthUrl, req.signal, deadline);
      while (!probe.ok) {
        if (Date.now() >= deadline) {
          throw new DrillStop(`timed out: health URL ${probe.text} ${secs(performance.now() - t0)} s after deleting pod ${victim} (deployment available)`, 'error');
        }
        await pause(pollInterval(performance.now() - t0), req.signal, deadline);
        const next = await probeHealth(req.healthUrl, req.signal, deadline);
        if (next.text !== OUT_OF_TIME || next.ok) probe = next;
      }
      steps.push(`health URL ${probe.text} after ${secs(performance.now() - t0)} s`);
    }

    const recoverySeconds = Math.round(performance.now() - t0) / 1000;
    log.info({ namespace, deployment: name, pod: victim, recoverySeconds }, 'dr-drill: recovered');
    return { podDeleted, recoverySeconds, healthy: true, steps };
  } catch (err) {
    const stop = err instanceof DrillStop ? err : new DrillStop(`unexpected: ${(err as Error).message ?? String(err)}`, 'error');
    const message = req.signal.aborted && stop.kind === 'error' && !/abort/.test(stop.message) ? `aborted: ${stop.message}` : stop.message;
    steps.push(`${stop.kind === 'refused' ? 'refused' : 'failed'}: ${message}`);
    log.warn({ namespace, deployment: name, pod: podDeleted, [stop.kind]: message }, `dr-drill pod-kill ${stop.kind === 'refused' ? 'refused' : 'failed'}`);
    return stop.kind === 'refused' ? { podDeleted, healthy: false, steps, refused: message } : { podDeleted, healthy: false, steps, error: message };
  }
}

/** API calls bounded by the run's signal and the drill's deadline, failures turned into DrillStop. */
class Api {
  constructor(
    private readonly clients: KubernetesApis,
    private readonly signal: AbortSignal,
    private readonly deadline: number,
  ) {}

  async call<T>(what: string, fn: (options: ReturnType<typeof callOptions>) => Promise<T>): Promise<T> {
    const remaining = this.deadline - Date.now();
    if (this.signal.aborted) throw new DrillStop(`aborted before we could ${what}`, 'error');
    if (remaining <= 0) throw new DrillStop(`timed out before we could ${what}`, 'error');
    try {
      return await fn(callOptions(this.signal, Math.min(API_REQUEST_TIMEOUT_MS, remaining)));
    } catch (err) {
      if (this.signal.aborted) throw new DrillStop(`aborted while trying to ${what}`, 'error');
      throw new DrillStop(`cannot ${what} (${this.clients.server}): ${apiErrorMessage(err)}`, 'error', apiStatusCode(err));
    }
  }

  /** While polling (`tolerant`), a failure that may pass (network, timeout, 5xx, 429) gives undefined instead of ending the drill. */
  deployment(namespace: string, name: string, what: string): Promise<V1Deployment>;
  deployment(namespace: string, name: string, what: string, tolerant: true): Promise<V1Deployment | undefined>;
  async deployment(namespace: string, name: string, what: string, tolerant = false): Promise<V1Deployment | undefined> {
    return this.tolerate(tolerant, () => this.call(what, (o) => this.clients.apps.readNamespacedDeployment({ name, namespace }, o)));
  }

  pods(namespace: string, labelSelector: string, what: string): Promise<V1Pod[]>;
  pods(namespace: string, labelSelector: string, what: string, tolerant: true): Promise<V1Pod[] | undefined>;
  async pods(namespace: string, labelSelector: string, what: string, tolerant = false): Promise<V1Pod[] | undefined> {
    return this.tolerate(tolerant, async () => (await this.call(what, (o) => this.clients.core.listNamespacedPod({ namespace, labelSelector }, o))).items);
  }

  private async tolerate<T>(tolerant: boolean, fn: () => Promise<T>): Promise<T | undefined> {
    try {
      return await fn();
    } catch (err) {
      if (!tolerant || !(err instanceof DrillStop) || this.signal.aborted) throw err;
      // Lasting refusals (401, 403, 404...) end the drill; the rest may pass before the deadline.
      if (err.status !== undefined && err.status < 500 && err.status !== 429) throw err;
      this.lastFailure = err.message;
      return undefined;
    }
  }

  /** The last tolerated failure, for the timeout message. */
  lastFailure = '';
}

/** "fully available" as `kubectl rollout status` sees it, with the figures for messages. */
export function availability(dep: V1Deployment): { available: boolean; desired: number; text: string } {
  const desired = dep.spec?.replicas ?? 1;
  const s = dep.status ?? {};
  const current = (s.observedGeneration ?? 0) >= (dep.metadata?.generation ?? 0);
  const updated = s.updatedReplicas ?? 0;
  const available = s.availableReplicas ?? 0;
  const ok = current && updated >= desired && available >= desired;
  const text = `${available}/${desired} available, ${updated} updated${current ? '' : ', status not yet observed for the current generation'}`;
  return { available: ok, desired, text };
}

/** A label selector in the API's query syntax, from matchLabels and matchExpressions. */
export function selectorString(selector: V1LabelSelector | undefined): string {
  const parts = Object.entries(selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of selector?.matchExpressions ?? []) {
    const values = (e.values ?? []).join(',');
    if (e.operator === 'In') parts.push(`${e.key} in (${values})`);
    else if (e.operator === 'NotIn') parts.push(`${e.key} notin (${values})`);
    else if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
  }
  return parts.join(',');
}

/**
 * The pod belongs to the deployment: its controller is the deployment's
 * ReplicaSet, which the deployment controller names `<deployment>-<pod-template-hash>`.
 * Guards against another deployment whose labels overlap the selector.
 */
function ownedBy(p: V1Pod, deployment: string): boolean {
  const hash = p.metadata?.labels?.['pod-template-hash'];
  const owner = p.metadata?.ownerReferences?.find((o) => o.controller);
  return !!hash && owner?.kind === 'ReplicaSet' && owner.name === `${deployment}-${hash}`;
}

function isPodReady(p: V1Pod): boolean {
  return p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp && (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

function oldestFirst(a: V1Pod, b: V1Pod): number {
  const ta = new Date(a.metadata?.creationTimestamp ?? 0).getTime();
  const tb = new Date(b.metadata?.creationTimestamp ?? 0).getTime();
  return ta - tb || (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? '');
}

const OUT_OF_TIME = 'not checked: out of time';

/** One GET of the health URL: ok on 2xx; the text says what it answered, never the URL (it may carry a token). */
async function probeHealth(url: string, signal: AbortSignal, deadline: number): Promise<{ ok: boolean; text: string }> {
  const remaining = deadline - Date.now();
  if (remaining <= 0) return { ok: false, text: OUT_OF_TIME };
  try {
    const res = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(Math.min(HEALTH_REQUEST_TIMEOUT_MS, remaining))]), redirect: 'follow' });
    await res.arrayBuffer().catch(() => undefined);
    return { ok: res.status >= 200 && res.status < 300, text: `answered ${res.status}` };
  } catch (err) {
    if (signal.aborted) throw new DrillStop('aborted while checking the health URL', 'error');
    return { ok: false, text: `did not answer (${apiErrorMessage(err)})` };
  }
}

function pollInterval(sinceDeleteMs: number): number {
  return sinceDeleteMs < POLL_FAST_FOR_MS ? POLL_FAST_MS : POLL_SLOW_MS;
}

/** Sleeps up to `ms`, never past the deadline; an abort ends it with DrillStop. */
function pause(ms: number, signal: AbortSignal, deadline: number): Promise<void> {
  const wait = Math.max(0, Math.min(ms, deadline - Date.now()));
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new DrillStop('aborted while waiting for the recovery', 'error'));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new DrillStop('aborted while waiting for the recovery', 'error'));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, wait);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function secs(ms: number): string {
  return (ms / 1000).toFixed(1);
}
