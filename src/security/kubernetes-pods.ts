/**
 * security-audit's pod checks, on a namespace's pod list: `privileged_pod`
 * (a container with securityContext.privileged), `root_pod` (runAsUser 0,
 * or neither runAsNonRoot nor a non-zero runAsUser at pod or container
 * level: the image's USER decides, root unless it sets one; Windows pods
 * are not checked) and `host_namespace_pod` (hostNetwork / hostPID /
 * hostIPC). Init and ephemeral containers count. Findings are one per
 * workload (the Deployment behind a ReplicaSet, a StatefulSet, DaemonSet,
 * Job, or the bare pod), since the fix goes into its template.
 */
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import type { Finding } from '../contract/result';
import type { FindingCodes } from '../contract/task';

/** The codes of the pod checks; KUBERNETES_CODES (./kubernetes.ts) holds them with the others. */
export const POD_SECURITY_CODES = {
  privileged_pod: 'a workload of the namespace running privileged containers',
  root_pod: 'a workload whose containers run as root (runAsUser 0), or may (neither runAsNonRoot nor a runAsUser)',
  host_namespace_pod: "a workload sharing the node's network, PID or IPC namespace (with `checkHostNamespaces`)",
} satisfies FindingCodes;
type PodSecurityCode = keyof typeof POD_SECURITY_CODES;

interface Workload {
  kind: string;
  name: string;
}

/** The workload a pod belongs to: its Deployment (through the ReplicaSet's pod-template-hash), its controller, or itself. */
export function workloadOf(p: V1Pod): Workload {
  const refs = p.metadata?.ownerReferences ?? [];
  const owner = refs.find((o) => o.controller) ?? refs[0];
  if (!owner) return { kind: 'Pod', name: p.metadata?.name ?? '?' };
  const hash = p.metadata?.labels?.['pod-template-hash'];
  if (owner.kind === 'ReplicaSet' && hash && owner.name.endsWith(`-${hash}`)) {
    return { kind: 'Deployment', name: owner.name.slice(0, -(hash.length + 1)) };
  }
  return { kind: owner.kind, name: owner.name };
}

interface ContainerIssue {
  container: string;
  reason: string;
}

interface WorkloadIssues {
  workload: Workload;
  pods: string[];
  privileged: ContainerIssue[];
  root: ContainerIssue[];
  hostNamespaces: string[];
}

export function podFindings(namespace: string, pods: V1Pod[], checkHostNamespaces: boolean): Finding<PodSecurityCode>[] {
  const groups = new Map<string, WorkloadIssues>();
  for (const p of pods) {
    const workload = workloadOf(p);
    const key = `${workload.kind}/${workload.name}`;
    const g = groups.get(key) ?? { workload, pods: [], privileged: [], root: [], hostNamespaces: [] };
    groups.set(key, g);
    g.pods.push(p.metadata?.name ?? '?');
    const spec = p.spec;
    if (!spec) continue;
    const podContext = spec.securityContext ?? {};
    const containers: V1Container[] = [...(spec.initContainers ?? []), ...spec.containers, ...((spec.ephemeralContainers ?? []) as V1Container[])];
    for (const c of containers) {
      const sc = c.securityContext ?? {};
      if (sc.privileged === true) addOnce(g.privileged, { container: c.name, reason: 'securityContext.privileged: true' });
      if (spec.os?.name === 'windows') continue;
      const runAsUser = sc.runAsUser ?? podContext.runAsUser;
      const runAsNonRoot = sc.runAsNonRoot ?? podContext.runAsNonRoot;
      if (runAsUser === 0) addOnce(g.root, { container: c.name, reason: 'runAsUser: 0' });
      else if (runAsNonRoot !== true && runAsUser === undefined) addOnce(g.root, { container: c.name, reason: 'runAsNonRoot not set: runs as the image USER, root unless the image sets one' });
    }
    if (checkHostNamespaces) {
      for (const [flag, on] of [['hostNetwork', spec.hostNetwork], ['hostPID', spec.hostPID], ['hostIPC', spec.hostIPC]] as const) {
        if (on === true && !g.hostNamespaces.includes(flag)) g.hostNamespaces.push(flag);
      }
    }
  }

  const findings: Finding<PodSecurityCode>[] = [];
  for (const g of groups.values()) {
    const what = `${g.workload.kind.toLowerCase()} ${g.workload.name} (${g.pods.length} pod${g.pods.length === 1 ? '' : 's'})`;
    const subject = `${namespace}/${g.workload.kind.toLowerCase()}/${g.workload.name}`;
    const base = { namespace, workload: `${g.workload.kind}/${g.workload.name}`, pods: g.pods.slice(0, 20), podCount: g.pods.length };
    const names = (issues: ContainerIssue[]) => issues.map((i) => i.container).join(', ');
    if (g.privileged.length > 0) {
      findings.push({
        severity: 'critical',
        code: 'privileged_pod',
        subject,
        message: `${what} runs privileged containers (${names(g.privileged)}): root on the node, with every device and capability`,
        suggestion: 'Remove securityContext.privileged from the pod template; add only the capability it needs (securityContext.capabilities.add)',
        details: { ...base, containers: g.privileged },
      });
    }
    if (g.root.length > 0) {
      const certain = g.root.some((i) => i.reason === 'runAsUser: 0');
      findings.push({
        severity: 'warning',
        code: 'root_pod',
        subject,
        message: `${what} ${certain ? 'runs' : 'may run'} containers as root (${names(g.root)})`,
        suggestion: 'Set securityContext.runAsNonRoot: true and a non-zero runAsUser in the pod template (the image must work as a non-root user)',
        details: { ...base, containers: g.root },
      });
    }
    if (g.hostNamespaces.length > 0) {
      findings.push({
        severity: 'warning',
        code: 'host_namespace_pod',
        subject,
        message: `${what} shares the node's ${g.hostNamespaces.join(', ')}: it sees the node's traffic or processes`,
        suggestion: `Remove ${g.hostNamespaces.join(', ')} from the pod template unless it is a node agent that needs it`,
        details: { ...base, hostNamespaces: g.hostNamespaces },
      });
    }
  }
  return findings;
}

function addOnce(list: ContainerIssue[], issue: ContainerIssue): void {
  if (!list.some((i) => i.container === issue.container)) list.push(issue);
}
