/**
 * The workloads k8s-health and error-logs look at: a kubernetes target's
 * deployments (those it lists, or every deployment of its namespace when the
 * list is empty) and the pods each one selects.
 *
 * Two paginated list calls, whatever the number of deployments: the
 * namespace's deployments and its pods, matched to each other here with the
 * deployments' label selectors, as the ReplicaSet controller matches them.
 * API failures are thrown with the API's own message (`403: pods is
 * forbidden: User ...`): a task that cannot list what it checks has not done
 * its work.
 */
import type { V1Deployment, V1LabelSelector, V1Pod } from '@kubernetes/client-node';
import type { KubernetesTarget } from '../config/schema';
import { apiErrorMessage, callOptions } from '../clients/kubernetes';
import type { KubernetesApis } from '../contract/clients';

/** Page size of list calls: bounds each response, not the total. */
export const LIST_PAGE_SIZE = 500;

/** One deployment and the pods its selector matches. */
export interface Workload {
  deployment: V1Deployment;
  name: string;
  pods: V1Pod[];
}

export interface Workloads {
  namespace: string;
  workloads: Workload[];
  /** Configured deployments that do not exist in the namespace. */
  missing: string[];
}

/** An API failure while listing what a task checks: the run ends as `error` with this message. */
export class KubernetesApiError extends Error {
  override name = 'KubernetesApiError';
}

/** A bound on pages per list (50 000 objects at LIST_PAGE_SIZE): a runaway `continue` cannot loop for ever. */
export const MAX_LIST_PAGES = 100;

/**
 * Lists a paginated API collection (`limit` + `continue`), checking the
 * signal between pages. A failed call is a KubernetesApiError naming `what`
 * (its `cause` is the API's error).
 */
export async function listAll<T>(
  what: string,
  signal: AbortSignal,
  page: (cont: string | undefined) => Promise<{ items: T[]; metadata?: { _continue?: string } }>,
): Promise<T[]> {
  const items: T[] = [];
  let cont: string | undefined;
  let pages = 0;
  do {
    if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('aborted');
    if (pages++ === MAX_LIST_PAGES) throw new KubernetesApiError(`cannot list ${what}: more than ${MAX_LIST_PAGES} pages`);
    let list;
    try {
      list = await page(cont);
    } catch (err) {
      throw new KubernetesApiError(`cannot list ${what}: ${apiErrorMessage(err)}`, { cause: err });
    }
    items.push(...list.items);
    cont = list.metadata?._continue || undefined;
  } while (cont);
  return items;
}

/** The target's deployments and their pods; each pod belongs to the first deployment (in order) that selects it. */
export async function loadWorkloads(k8s: KubernetesApis, target: KubernetesTarget, signal: AbortSignal): Promise<Workloads> {
  const namespace = target.namespace;
  const all = await listAll(`deployments in namespace ${namespace}`, signal, (cont) =>
    k8s.apps.listNamespacedDeployment({ namespace, limit: LIST_PAGE_SIZE, _continue: cont }, callOptions(signal)),
  );
  const byName = new Map(all.map((d) => [d.metadata?.name ?? '', d]));
  const wanted = target.deployments.length > 0 ? target.deployments : [...byName.keys()].sort();
  const missing = wanted.filter((n) => !byName.has(n));
  const deployments = wanted.filter((n) => byName.has(n)).map((n) => byName.get(n)!);

  const pods = deployments.length === 0
    ? []
    : await listAll(`pods in namespace ${namespace}`, signal, (cont) =>
        k8s.core.listNamespacedPod({ namespace, limit: LIST_PAGE_SIZE, _continue: cont }, callOptions(signal)),
      );
  const taken = new Set<V1Pod>();
  const workloads = deployments.map((deployment) => {
    const matches = selectorMatcher(deployment.spec?.selector);
    const mine = pods.filter((p) => !taken.has(p) && matches(p.metadata?.labels ?? {}));
    for (const p of mine) taken.add(p);
    return { deployment, name: deployment.metadata!.name!, pods: mine };
  });
  return { namespace, workloads, missing };
}

/**
 * A label selector as a predicate on labels: matchLabels and matchExpressions
 * (In, NotIn, Exists, DoesNotExist), all of which must hold. A missing
 * selector matches nothing (apps/v1 requires one).
 */
export function selectorMatcher(selector: V1LabelSelector | undefined): (labels: Record<string, string>) => boolean {
  if (!selector) return () => false;
  const required = Object.entries(selector.matchLabels ?? {});
  const expressions = selector.matchExpressions ?? [];
  return (labels) =>
    required.every(([k, v]) => labels[k] === v) &&
    expressions.every((e) => {
      const value = labels[e.key];
      switch (e.operator) {
        case 'In':
          return value !== undefined && (e.values ?? []).includes(value);
        case 'NotIn':
          return value === undefined || !(e.values ?? []).includes(value);
        case 'Exists':
          return value !== undefined;
        case 'DoesNotExist':
          return value === undefined;
        default:
          return false;
      }
    });
}

/** `namespace/name` of an object, the subject of its findings. */
export function qualifiedName(obj: { metadata?: { namespace?: string; name?: string } }): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}
