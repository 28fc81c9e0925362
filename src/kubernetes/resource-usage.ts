/**
 * k8s-health's CPU and memory check: each container's current usage, from
 * the metrics API (metrics-server's `metrics.k8s.io/v1beta1` PodMetrics, what
 * `kubectl top pod` shows), against its own limits, and the runbook's
 * "CPU < 70 %, memory < 80 %" as `cpu_high` / `memory_high`, one finding
 * per deployment naming its containers.
 *
 * The metrics API is an add-on: when it is not installed (404), not serving
 * (503) or not granted (403), the check says so in one `metrics_unavailable`
 * info finding and the rest of the run goes on. Containers without a limit
 * have nothing to be measured against: they are listed once in
 * `limits_missing` (info).
 */
import type { Finding } from '../contract/result';
import type { FindingCodes } from '../contract/task';
import { apiErrorMessage, apiStatusCode, callOptions } from '../clients/kubernetes';
import type { KubernetesApis } from '../contract/clients';
import { formatBytes, formatPercent } from '../util/format';
import { parseQuantity } from './quantity';
import type { Workload } from './workloads';

/** The codes of this check's findings; k8s-health declares them with its own. */
export const RESOURCE_USAGE_CODES = {
  cpu_high: "a deployment's containers at or above `cpu` of their CPU limit",
  memory_high: "a deployment's containers at or above `memory` of their memory limit",
  metrics_unavailable: 'the metrics API (metrics-server) is missing, not serving or not granted: CPU and memory not checked',
  limits_missing: 'containers without a CPU or memory limit: their usage has nothing to be judged against',
} satisfies FindingCodes;
type ResourceUsageCode = keyof typeof RESOURCE_USAGE_CODES;

/** One container of a PodMetrics item, as metrics-server serves it. */
interface ContainerMetrics {
  name: string;
  usage?: { cpu?: string; memory?: string };
}

/** A PodMetrics item (`items[]` of a PodMetricsList). */
export interface PodMetrics {
  metadata?: { name?: string; namespace?: string };
  timestamp?: string;
  window?: string;
  containers?: ContainerMetrics[];
}

export type MetricsAnswer = { ok: true; items: PodMetrics[] } | { ok: false; status?: number; message: string };

/** The usage of one container against its limits; a ratio only where the container has that limit. */
export interface ContainerUsage {
  deployment: string;
  pod: string;
  container: string;
  cpuCores?: number;
  cpuLimitCores?: number;
  cpuRatio?: number;
  memoryBytes?: number;
  memoryLimitBytes?: number;
  memoryRatio?: number;
}

/** The thresholds (k8s-health's `cpu` and `memory` params, shares of the limit) and the listing bound. */
export interface UsageThresholds {
  cpu: number;
  memory: number;
  maxListed: number;
}

/** The namespace's PodMetricsList; a failure is returned, not thrown: the metrics API is optional. */
export async function fetchPodMetrics(k8s: KubernetesApis, namespace: string, signal: AbortSignal): Promise<MetricsAnswer> {
  try {
    const list = (await k8s.custom.listNamespacedCustomObject(
      { group: 'metrics.k8s.io', version: 'v1beta1', namespace, plural: 'pods' },
      callOptions(signal),
    )) as { items?: PodMetrics[] };
    return { ok: true, items: Array.isArray(list?.items) ? list.items : [] };
  } catch (err) {
    return { ok: false, status: apiStatusCode(err), message: apiErrorMessage(err) };
  }
}

/** The `metrics_unavailable` info finding for a failed metrics call. */
export function metricsUnavailableFinding(namespace: string, answer: { status?: number; message: string }): Finding<ResourceUsageCode> {
  const why =
    answer.status === 404
      ? 'the metrics API is not installed (no metrics-server)'
      : answer.status === 503
        ? 'the metrics API is installed but not serving'
        : answer.status === 403
          ? 'caretaker may not read the metrics API'
          : 'the metrics API did not answer';
  return {
    severity: 'info',
    code: 'metrics_unavailable',
    subject: namespace,
    message: `CPU and memory not checked: ${why} (${answer.message})`,
    suggestion:
      answer.status === 403
        ? 'Grant get/list on pods in API group metrics.k8s.io to caretaker\'s service account'
        : 'Install metrics-server (kubectl top pod must work) to have CPU and memory checked against the limits',
    details: { status: answer.status ?? null, error: answer.message },
  };
}

/** Every container of the workloads' pods that the metrics API reports, with its limits. */
export function containerUsage(workloads: Workload[], items: PodMetrics[]): ContainerUsage[] {
  const byPod = new Map(items.map((i) => [i.metadata?.name ?? '', i]));
  const rows: ContainerUsage[] = [];
  for (const w of workloads) {
    for (const p of w.pods) {
      const m = byPod.get(p.metadata?.name ?? '');
      if (!m) continue;
      const usage = new Map((m.containers ?? []).map((c) => [c.name, c.usage ?? {}]));
      for (const c of p.spec?.containers ?? []) {
        const u = usage.get(c.name);
        if (!u) continue;
        const row: ContainerUsage = { deployment: w.name, pod: p.metadata!.name!, container: c.name };
        const cpu = parseQuantity(u.cpu);
        const mem = parseQuantity(u.memory);
        const cpuLimit = parseQuantity(c.resources?.limits?.cpu);
        const memLimit = parseQuantity(c.resources?.limits?.memory);
        if (cpu !== undefined) row.cpuCores = cpu;
        if (mem !== undefined) row.memoryBytes = mem;
        if (cpuLimit) row.cpuLimitCores = cpuLimit;
        if (memLimit) row.memoryLimitBytes = memLimit;
        if (cpu !== undefined && cpuLimit) row.cpuRatio = cpu / cpuLimit;
        if (mem !== undefined && memLimit) row.memoryRatio = mem / memLimit;
        rows.push(row);
      }
    }
  }
  return rows;
}

/** `cpu_high` and `memory_high`, one finding per deployment with a container at or above the share of its limit. */
export function usageFindings(namespace: string, rows: ContainerUsage[], t: UsageThresholds): Finding<ResourceUsageCode>[] {
  const findings: Finding<ResourceUsageCode>[] = [];
  const deployments = [...new Set(rows.map((r) => r.deployment))];
  for (const resource of ['cpu', 'memory'] as const) {
    const bound = resource === 'cpu' ? t.cpu : t.memory;
    for (const deployment of deployments) {
      const measured = rows.filter((r) => r.deployment === deployment && ratioOf(r, resource) !== undefined);
      const high = measured.filter((r) => ratioOf(r, resource)! >= bound).sort((a, b) => ratioOf(b, resource)! - ratioOf(a, resource)!);
      if (high.length === 0) continue;
      const top = high[0]!;
      const used = resource === 'cpu' ? `${cores(top.cpuCores!)} of ${cores(top.cpuLimitCores!)}` : `${formatBytes(top.memoryBytes!)} of ${formatBytes(top.memoryLimitBytes!)}`;
      findings.push({
        severity: 'warning',
        code: resource === 'cpu' ? 'cpu_high' : 'memory_high',
        subject: `${namespace}/${deployment}`,
        message: `${high.length} of ${measured.length} containers at or above ${pct(bound)} of their ${resource === 'cpu' ? 'CPU' : 'memory'} limit (highest ${pct(ratioOf(top, resource)!)}: ${top.pod}/${top.container}, ${used})`,
        suggestion:
          resource === 'cpu'
            ? 'Containers at their CPU limit are throttled: raise the limit, add replicas (HPA max), or find the hot path'
            : 'Containers reaching their memory limit get OOMKilled: raise the limit or find what grows',
        details: {
          bound,
          measured: measured.length,
          containers: high.slice(0, t.maxListed).map((r) =>
            resource === 'cpu'
              ? { pod: r.pod, container: r.container, ratio: r.cpuRatio, cpuCores: r.cpuCores, cpuLimitCores: r.cpuLimitCores }
              : { pod: r.pod, container: r.container, ratio: r.memoryRatio, memoryBytes: r.memoryBytes, memoryLimitBytes: r.memoryLimitBytes },
          ),
        },
      });
    }
  }
  return findings;
}

/** The `limits_missing` info finding: the deployments' containers without a CPU or memory limit, each listed once. */
export function limitsMissingFinding(namespace: string, workloads: Workload[]): Finding<ResourceUsageCode> | undefined {
  const missing: { deployment: string; container: string; missing: string[] }[] = [];
  for (const w of workloads) {
    for (const c of w.deployment.spec?.template?.spec?.containers ?? []) {
      const lacks = (['cpu', 'memory'] as const).filter((r) => !parseQuantity(c.resources?.limits?.[r]));
      if (lacks.length) missing.push({ deployment: w.name, container: c.name, missing: [...lacks] });
    }
  }
  if (missing.length === 0) return undefined;
  return {
    severity: 'info',
    code: 'limits_missing',
    subject: namespace,
    message: `not checked against limits, none set: ${missing.map((m) => `${m.deployment}/${m.container} (${m.missing.join(', ')})`).join('; ')}`,
    suggestion: 'Set resources.limits (and requests) on these containers so usage can be judged and the scheduler can place them',
    details: { containers: missing },
  };
}

/** The highest usage/limit ratio of a resource, when any container has one. */
export function maxRatio(rows: ContainerUsage[], resource: 'cpu' | 'memory'): number | undefined {
  const ratios = rows.map((r) => ratioOf(r, resource)).filter((r) => r !== undefined);
  return ratios.length ? Math.max(...ratios) : undefined;
}

function ratioOf(r: ContainerUsage, resource: 'cpu' | 'memory'): number | undefined {
  return resource === 'cpu' ? r.cpuRatio : r.memoryRatio;
}

const pct = (ratio: number) => formatPercent(ratio);

function cores(n: number): string {
  return n < 1 ? `${Math.round(n * 1000)}m` : `${Number(n.toFixed(2))} cores`;
}
