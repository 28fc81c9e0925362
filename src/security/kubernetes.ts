/**
 * security-audit on a Kubernetes namespace, through the API with the
 * target's kubeconfig (or in-cluster service account):
 *
 * - pods (always; ./kubernetes-pods.ts): `privileged_pod`, `root_pod`
 *   (runAsUser 0, or no runAsNonRoot at pod or container level and no
 *   non-zero runAsUser), and `host_namespace_pod` (hostNetwork / hostPID /
 *   hostIPC), one finding per workload (Deployment, StatefulSet, DaemonSet,
 *   Job, or a bare pod);
 * - secrets (opt-in, `checkSecrets`): `secret_rotation_due` for secrets whose
 *   data was last written longer ago than the rotation age. Secrets are
 *   listed as metadata only (`PartialObjectMetadataList`): the API server
 *   never sends their values, and this module reads nothing but the name,
 *   creation time, the write times of metadata.managedFields and two
 *   identifying labels/annotations. Annotations can hold values
 *   (`kubectl.kubernetes.io/last-applied-configuration`): none is ever put
 *   into a finding or a log;
 * - RBAC (opt-in, `checkRbac`): `cluster_admin_binding` for service accounts
 *   of the namespace bound to the ClusterRole cluster-admin by a
 *   ClusterRoleBinding (critical) or by a RoleBinding in the namespace
 *   (warning), including through the groups `system:serviceaccounts[:ns]`.
 *
 * A check the API refuses is an `audit_incomplete` warning; when every
 * requested check fails (API unreachable, bad credentials) it throws.
 */
import {
  Observable,
  type ConfigurationOptions,
  type RbacV1Subject,
  type RequestContext,
  type ResponseContext,
  type V1ClusterRoleBinding,
  type V1Pod,
  type V1RoleBinding,
  type V1Secret,
} from '@kubernetes/client-node';
import type { KubernetesTarget } from '../config/schema';
import type { Finding } from '../contract/result';
import type { FindingCodes } from '../contract/task';
import { apiErrorMessage, callOptions } from '../clients/kubernetes';
import type { KubernetesApis } from '../contract/clients';
import { KubernetesApiError, LIST_PAGE_SIZE, listAll } from '../kubernetes/workloads';
import { AUDIT_INCOMPLETE, AUDIT_INCOMPLETE_CODES, countsByCode, wholeDaysBetween, type AuditIncomplete, type AuditResult } from './audit';
import { POD_SECURITY_CODES, podFindings } from './kubernetes-pods';

/** The codes of this check's findings, besides audit_incomplete; security-audit declares them. */
export const KUBERNETES_CODES = {
  ...POD_SECURITY_CODES,
  secret_rotation_due: 'a secret whose data was last written `secretRotationDays` or more ago (with `checkSecrets`)',
  cluster_admin_binding: 'a service account of the namespace bound to cluster-admin (with `checkRbac`; critical cluster-wide)',
} satisfies FindingCodes;
type KubernetesCode = keyof typeof KUBERNETES_CODES | AuditIncomplete;

/** Asks the API server for object metadata only: a Secret's data never leaves it. */
export const METADATA_ONLY_ACCEPT = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1';


/** The ClusterRole that grants everything. */
const CLUSTER_ADMIN = 'cluster-admin';

/** What the kubernetes check needs from security-audit's params. */
export interface KubernetesAuditOptions {
  /** List secrets (metadata only) and report those due for rotation. */
  checkSecrets: boolean;
  /** A secret whose data is older than this is `secret_rotation_due`. */
  secretRotationDays: number;
  /** Secret names never reported (they hold no credential, or rotate elsewhere). */
  ignoreSecrets: readonly string[];
  /** List RoleBindings and ClusterRoleBindings for cluster-admin bindings. */
  checkRbac: boolean;
  /** Report pods sharing the node's network, PID or IPC namespace. */
  checkHostNamespaces: boolean;
  /** Bound on each API call. */
  timeoutMs: number;
  now?: Date;
}

/** Audits the target's namespace. */
export async function auditKubernetes(
  target: KubernetesTarget,
  opts: KubernetesAuditOptions,
  signal: AbortSignal,
  open: (target: KubernetesTarget) => KubernetesApis,
): Promise<AuditResult<KubernetesCode>> {
  const clients = open(target);
  const rbac = clients.rbac;
  const namespace = target.namespace;
  const now = opts.now ?? new Date();
  const call = () => callOptions(signal, opts.timeoutMs);
  const findings: Finding<KubernetesCode>[] = [];
  const metrics: Record<string, number> = {};
  const failures: Error[] = [];
  let attempted = 0;

  /** Runs one check; a refusal becomes an audit_incomplete finding naming what to grant. */
  const check = async (what: string, hint: string, fn: () => Promise<void>) => {
    attempted += 1;
    try {
      await fn();
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      // listAll names what it listed; the API's own words are in the cause.
      const message = apiErrorMessage(err instanceof KubernetesApiError && err.cause ? err.cause : err);
      failures.push(new Error(`kubernetes ${target.name}: cannot list ${what} in ${namespace}: ${message}`, { cause: err }));
      findings.push({
        severity: 'warning',
        code: AUDIT_INCOMPLETE,
        subject: `${namespace}/${what}`,
        message: `cannot list ${what}: ${message}`,
        suggestion: hint,
        details: { namespace, check: what },
      });
    }
  };

  let pods: V1Pod[] = [];
  await check('pods', 'Grant caretaker list on pods in the namespace (k8s/ Role)', async () => {
    pods = await listAll('pods', signal, (cont) => clients.core.listNamespacedPod({ namespace, limit: LIST_PAGE_SIZE, _continue: cont }, call()));
    findings.push(...podFindings(namespace, pods, opts.checkHostNamespaces));
    metrics.kubernetes_pods_checked = pods.length;
  });

  if (opts.checkSecrets) {
    await check('secrets', 'checkSecrets needs its own Role with list on secrets (k8s/, opt-in); or set checkSecrets: false', async () => {
      const secrets = await listAll('secrets', signal, (cont) =>
        clients.core.listNamespacedSecret({ namespace, limit: LIST_PAGE_SIZE, _continue: cont }, metadataOnly(call())),
      );
      const described = secrets.map(describeSecret);
      const audited = described.filter((s) => !s.skipped && !opts.ignoreSecrets.includes(s.name));
      findings.push(...secretFindings(namespace, audited, opts.secretRotationDays, now));
      metrics.kubernetes_secrets_checked = audited.length;
      metrics.kubernetes_secrets_skipped = described.length - audited.length;
    });
  }

  if (opts.checkRbac) {
    const usedBy = podsByServiceAccount(pods);
    await check('rolebindings', 'checkRbac needs list on rolebindings in the namespace', async () => {
      const bindings = await listAll('rolebindings', signal, (cont) => rbac.listNamespacedRoleBinding({ namespace, limit: LIST_PAGE_SIZE, _continue: cont }, call()));
      findings.push(...bindingFindings(namespace, 'RoleBinding', bindings, usedBy));
      metrics.kubernetes_rolebindings_checked = bindings.length;
    });
    await check('clusterrolebindings', 'checkRbac needs a ClusterRole with list on clusterrolebindings (k8s/, opt-in)', async () => {
      const bindings = await listAll('clusterrolebindings', signal, (cont) => rbac.listClusterRoleBinding({ limit: LIST_PAGE_SIZE, _continue: cont }, call()));
      findings.push(...bindingFindings(namespace, 'ClusterRoleBinding', bindings, usedBy));
      metrics.kubernetes_clusterrolebindings_checked = bindings.length;
    });
  }

  if (failures.length === attempted) throw failures[0]!;
  return { findings, metrics: { ...countsByCode({ ...KUBERNETES_CODES, ...AUDIT_INCOMPLETE_CODES }, findings), ...metrics } };
}

// -- pods by service account (for cluster_admin_binding's details) -------------

function podsByServiceAccount(pods: V1Pod[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const p of pods) {
    const sa = p.spec?.serviceAccountName ?? 'default';
    out.set(sa, [...(out.get(sa) ?? []), p.metadata?.name ?? '?']);
  }
  return out;
}

// -- secrets ------------------------------------------------------------------

/** What the audit keeps of a secret: never its data, labels or annotations. */
interface SecretFacts {
  name: string;
  createdAt?: Date;
  /** When its data was last written, from metadata.managedFields; else its creation. */
  lastWrittenAt?: Date;
  basis: 'managedFields' | 'creationTimestamp';
  /** Why it is not audited. */
  skipped?: string;
}

/**
 * Reads only the name, times and the two marks of secrets that need no
 * rotation here: service-account tokens (Kubernetes issues them) and Helm's
 * release records (no credentials). `type` is used when the server sent it
 * (metadata-only lists have none).
 */
function describeSecret(s: V1Secret): SecretFacts {
  const meta = s.metadata ?? {};
  const name = meta.name ?? '?';
  const createdAt = meta.creationTimestamp ? new Date(meta.creationTimestamp) : undefined;
  let lastWrittenAt: Date | undefined;
  for (const f of meta.managedFields ?? []) {
    const fields = f.fieldsV1 as Record<string, unknown> | undefined;
    const writesData = !!fields && ('f:data' in fields || 'f:stringData' in fields);
    if (writesData && f.time) {
      const t = new Date(f.time);
      if (!lastWrittenAt || t > lastWrittenAt) lastWrittenAt = t;
    }
  }
  const facts: SecretFacts = { name, createdAt, lastWrittenAt: lastWrittenAt ?? createdAt, basis: lastWrittenAt ? 'managedFields' : 'creationTimestamp' };
  const type = s.type;
  if (type === 'kubernetes.io/service-account-token' || meta.annotations?.['kubernetes.io/service-account.name'] !== undefined) {
    facts.skipped = 'service-account token';
  } else if (type?.startsWith('helm.sh/release') || (meta.labels?.owner === 'helm' && name.startsWith('sh.helm.release.'))) {
    facts.skipped = 'helm release record';
  }
  return facts;
}

function secretFindings(namespace: string, secrets: SecretFacts[], rotationDays: number, now: Date): Finding<KubernetesCode>[] {
  const findings: Finding<KubernetesCode>[] = [];
  const due = secrets
    .filter((s) => s.lastWrittenAt && wholeDaysBetween(s.lastWrittenAt, now) >= rotationDays)
    .sort((a, b) => a.lastWrittenAt!.getTime() - b.lastWrittenAt!.getTime());
  for (const s of due) {
    const ageDays = wholeDaysBetween(s.lastWrittenAt!, now);
    findings.push({
      severity: 'warning',
      code: 'secret_rotation_due',
      subject: `${namespace}/secret/${s.name}`,
      message: `secret ${s.name} was last written ${ageDays} days ago (rotation age ${rotationDays} days)`,
      suggestion: `Issue a new credential at its source, update the secret, then \`kubectl -n ${namespace} rollout restart\` the workloads that use it; list it in ignoreSecrets if it holds no credential`,
      details: {
        namespace,
        secret: s.name,
        ageDays,
        lastWrittenAt: s.lastWrittenAt!.toISOString(),
        createdAt: s.createdAt?.toISOString(),
        basis: s.basis,
        rotationDays,
      },
    });
  }
  return findings;
}

/** Per-call options plus the Accept header that asks for metadata only. */
function metadataOnly(options: ConfigurationOptions): ConfigurationOptions {
  return {
    ...options,
    middleware: [
      ...(options.middleware ?? []),
      {
        pre: (ctx: RequestContext) => {
          ctx.setHeaderParam('Accept', METADATA_ONLY_ACCEPT);
          return new Observable(Promise.resolve(ctx));
        },
        post: (res: ResponseContext) => new Observable(Promise.resolve(res)),
      },
    ],
  };
}

// -- RBAC ---------------------------------------------------------------------

function bindingFindings(
  namespace: string,
  kind: 'RoleBinding' | 'ClusterRoleBinding',
  bindings: (V1RoleBinding | V1ClusterRoleBinding)[],
  usedBy: Map<string, string[]>,
): Finding<KubernetesCode>[] {
  const findings: Finding<KubernetesCode>[] = [];
  const groups = new Set(['system:serviceaccounts', `system:serviceaccounts:${namespace}`]);
  for (const b of bindings) {
    if (b.roleRef.kind !== 'ClusterRole' || b.roleRef.name !== CLUSTER_ADMIN) continue;
    const bindingName = b.metadata?.name ?? '?';
    const bindingNamespace = b.metadata?.namespace;
    for (const s of b.subjects ?? []) {
      const who = subjectInNamespace(s, namespace, kind === 'RoleBinding' ? bindingNamespace : undefined, groups);
      if (!who) continue;
      const scope = kind === 'ClusterRoleBinding' ? 'the whole cluster' : `everything in namespace ${namespace}`;
      const ref = kind === 'ClusterRoleBinding' ? `clusterrolebinding ${bindingName}` : `rolebinding ${bindingName} in ${bindingNamespace}`;
      findings.push({
        severity: kind === 'ClusterRoleBinding' ? 'critical' : 'warning',
        code: 'cluster_admin_binding',
        subject: who.subject,
        message: `${who.label} is bound to ClusterRole ${CLUSTER_ADMIN} by ${ref}: a compromised pod running as it controls ${scope}`,
        suggestion: `Bind a Role with only the verbs it needs, and remove ${who.label} from ${ref} (kubectl edit ${kind.toLowerCase()} ${bindingName}${kind === 'RoleBinding' ? ` -n ${bindingNamespace}` : ''})`,
        details: {
          namespace,
          bindingKind: kind,
          binding: bindingName,
          bindingNamespace,
          subjectKind: s.kind,
          subjectName: s.name,
          usedByPods: who.serviceAccount ? (usedBy.get(who.serviceAccount) ?? []).slice(0, 20) : undefined,
        },
      });
    }
  }
  return findings;
}

/** A binding subject that is a service account of `namespace` (or a group of them), else undefined. */
function subjectInNamespace(
  s: RbacV1Subject,
  namespace: string,
  bindingNamespace: string | undefined,
  groups: Set<string>,
): { subject: string; label: string; serviceAccount?: string } | undefined {
  if (s.kind === 'ServiceAccount') {
    const saNamespace = s.namespace ?? bindingNamespace;
    // A RoleBinding in our namespace grants it to any service account it names, wherever that one lives.
    if (saNamespace !== namespace && bindingNamespace !== namespace) return undefined;
    return {
      subject: `${saNamespace}/serviceaccount/${s.name}`,
      label: `service account ${saNamespace}/${s.name}`,
      serviceAccount: saNamespace === namespace ? s.name : undefined,
    };
  }
  if (s.kind === 'Group' && groups.has(s.name)) return { subject: `group ${s.name}`, label: `every service account of group ${s.name}` };
  return undefined;
}
