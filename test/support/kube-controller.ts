/**
 * The simulated controllers behind the fake Kubernetes API server
 * (`./kube-api.ts`). They play the ReplicaSet and Deployment controllers and
 * the kubelet: when a pod of a deployment is deleted, the deployment loses an
 * available replica, a replacement pod (new name) is created Pending and
 * becomes Ready after a configurable delay, or crash-loops forever
 * (`replaceAfterMs: 'never'`); the deployment's status is recomputed from its
 * pods at each step, with the events the real controllers record.
 *
 * The controller works on the server's state (its arrays of objects) and owns
 * only the per-deployment behaviours and its pending timers; the server calls
 * `podDeleted()` after a DELETE and `stop()` when it closes.
 */
import type { CoreV1Event, V1Deployment, V1DeploymentCondition, V1Pod } from '@kubernetes/client-node';
import { event, isPodReady, nextResourceVersion, pod, replicaSetName, setPodState } from './kube-fixtures';

/** How the simulated controllers react when a pod of a deployment is deleted. */
export interface ControllerBehaviour {
  /** Ms from the delete until the replacement pod is Ready; 'never' leaves it crash-looping. Default 100. */
  replaceAfterMs?: number | 'never';
  /** Ms after a delete before the replacement pod appears and the deployment status changes: the controllers' lag. Default 0. */
  statusLagMs?: number;
  /** Ms a deleted pod stays listed as Terminating (deletionTimestamp set, not ready). Default 0: gone at once. */
  terminatingMs?: number;
}

/** The cluster state the controller reads and changes: the fake server's own. */
export interface ClusterState {
  readonly deployments: V1Deployment[];
  readonly pods: V1Pod[];
  addPod(p: V1Pod): V1Pod;
  addEvent(e: CoreV1Event): CoreV1Event;
}

/** The ReplicaSet and Deployment controllers (and the kubelet's part) of one fake cluster. */
export class KubeController {
  private readonly behaviours = new Map<string, ControllerBehaviour>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly cluster: ClusterState) {}

  /** Sets how the controller replaces a deleted pod of this deployment; deployments without one are left alone. */
  manage(dep: V1Deployment, behaviour: ControllerBehaviour): void {
    this.behaviours.set(key(dep.metadata!.namespace!, dep.metadata!.name!), behaviour);
  }

  /** Cancels the pending reactions (replacements, pods still terminating). */
  stop(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  /** The pods of a deployment (owned by its ReplicaSet), terminating ones included. */
  podsOf(dep: V1Deployment): V1Pod[] {
    const rs = replicaSetName(dep.metadata!.name!);
    return this.cluster.pods.filter(
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
   * The reaction to a pod's deletion (the server has already marked it
   * deleted): the kubelet stops it, it goes at once or after `terminatingMs`,
   * and the controllers replace it if it belongs to a managed deployment.
   */
  podDeleted(p: V1Pod): void {
    const namespace = p.metadata!.namespace!;
    const dep = this.cluster.deployments.find((d) => d.metadata?.namespace === namespace && this.podsOf(d).includes(p));
    const behaviour = dep ? this.behaviours.get(key(namespace, dep.metadata!.name!)) : undefined;
    this.cluster.addEvent(event({ involved: p, reason: 'Killing', message: `Stopping container ${p.spec?.containers[0]?.name ?? 'app'}` }));
    if (behaviour?.terminatingMs) {
      setPodState(p, 'not-ready');
      this.later(behaviour.terminatingMs, () => this.removePod(p));
    } else {
      this.removePod(p);
    }
    if (dep && behaviour) this.replace(dep, behaviour);
  }

  /** The ReplicaSet controller's reaction to a lost pod, then the kubelet's. */
  private replace(dep: V1Deployment, b: ControllerBehaviour): void {
    const lag = b.statusLagMs ?? 0;
    const apply = () => {
      const replacement = this.cluster.addPod(pod({ owner: dep, state: 'pending' }));
      this.cluster.addEvent(event({ involved: { kind: 'ReplicaSet', name: replicaSetName(dep.metadata!.name!), namespace: dep.metadata!.namespace }, reason: 'SuccessfulCreate', message: `Created pod: ${replacement.metadata!.name}` }));
      this.cluster.addEvent(event({ involved: replacement, reason: 'Scheduled', message: `Successfully assigned ${dep.metadata!.namespace}/${replacement.metadata!.name} to node-1`, component: 'default-scheduler' }));
      this.syncDeployment(dep);
      if (b.replaceAfterMs === 'never') {
        setPodState(replacement, 'crash-loop');
        this.cluster.addEvent(event({ involved: replacement, type: 'Warning', reason: 'BackOff', message: `Back-off restarting failed container ${replacement.spec?.containers[0]?.name ?? 'app'} in pod ${replacement.metadata!.name}`, count: 4 }));
        return;
      }
      this.later(Math.max(0, (b.replaceAfterMs ?? 100) - lag), () => {
        if (!this.cluster.pods.includes(replacement)) return;
        setPodState(replacement, 'ready');
        this.cluster.addEvent(event({ involved: replacement, reason: 'Started', message: `Started container ${replacement.spec?.containers[0]?.name ?? 'app'}` }));
        this.syncDeployment(dep);
      });
    };
    if (lag > 0) this.later(lag, apply);
    else apply();
  }

  private removePod(p: V1Pod): void {
    const i = this.cluster.pods.indexOf(p);
    if (i >= 0) this.cluster.pods.splice(i, 1);
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }
}

function key(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}
