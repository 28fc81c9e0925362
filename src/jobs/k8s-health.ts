/**
 * k8s-health (daily): the runbook's "kubectl get pods / svc / hpa",
 * "describe pod" and events, for a kubernetes target's deployments (all of
 * its namespace's when the target lists none). Read-only: lists and gets.
 *
 * What it reads, a constant number of calls whatever the namespace's size:
 * deployments, pods, HPAs, Warning events (each one paginated list), and the
 * metrics API's PodMetricsList. Pods of crash-looping, OOMKilled, not-ready
 * or often-restarted containers, deployments without their replicas or with
 * a stuck rollout, HPAs at their maximum, the last 24 h of Warning events
 * grouped by reason, and CPU / memory against the containers' limits.
 *
 * Restarts in 24 h are computed against the previous run (see
 * src/kubernetes/pod-health.ts): every run stores its containers' restart
 * counts in a `restart_counts` info finding.
 *
 * An API server that cannot be reached, or that refuses (401/403) a list
 * this check needs, ends the run as `error`; the metrics API is optional
 * (`metrics_unavailable`, info).
 */
import { z } from 'zod';
import type { V1Deployment, V2HorizontalPodAutoscaler } from '@kubernetes/client-node';
import { defineTask, type FindingCodes } from '../contract/task';
import type { Finding } from '../contract/result';
import { callOptions } from '../clients/kubernetes';
import { listAll, LIST_PAGE_SIZE, loadWorkloads, qualifiedName } from '../kubernetes/workloads';
import {
  baselineFrom,
  crashLoopFinding,
  notReadyFinding,
  oomKilledFinding,
  POD_HEALTH_CODES,
  restartCounts,
  restartDeltas,
  restartsFinding,
  type RestartBaseline,
} from '../kubernetes/pod-health';
import {
  containerUsage,
  fetchPodMetrics,
  limitsMissingFinding,
  maxRatio,
  metricsUnavailableFinding,
  RESOURCE_USAGE_CODES,
  usageFindings,
} from '../kubernetes/resource-usage';
import { redactText } from '../kubernetes/redact';
import { EVENT_MESSAGE_CHARS, eventCountOf, eventTime, relevantTo, WARNING_EVENTS_CODES, warningEventsFinding } from '../kubernetes/warning-events';
import { windowText, formatPercent } from '../util/format';

const codes = {
  ...POD_HEALTH_CODES,
  deployment_unavailable: 'a deployment with fewer available replicas than desired, a rollout past its deadline, or missing',
  hpa_at_max: 'an HPA of a watched deployment whose current replicas reached its maxReplicas',
  ...WARNING_EVENTS_CODES,
  ...RESOURCE_USAGE_CODES,
  restart_counts: "every container's restart count, stored each run so the next one counts restarts since it",
  no_deployments: 'the namespace has no deployments: nothing checked',
} satisfies FindingCodes;
type Code = keyof typeof codes;

const params = z.strictObject({
  /** Share of a container's CPU limit that raises `cpu_high` (the runbook's CPU < 70 %). */
  cpu: z.number().gt(0).max(10).default(0.7),
  /** Share of a container's memory limit that raises `memory_high` (the runbook's memory < 80 %). */
  memory: z.number().gt(0).max(10).default(0.8),
  /** A pod Pending longer than this is `pod_not_ready`. */
  pendingSeconds: z.number().int().min(0).max(7 * 86_400).default(300),
  /** A pod Running but not Ready longer than this is `pod_not_ready` (a rollout's new pod gets this long). */
  notReadySeconds: z.number().int().min(0).max(7 * 86_400).default(120),
  /** More container restarts than this in a pod since the previous run (normally 24 h) raise `pod_restarts`. */
  maxRestarts: z.number().int().min(0).max(100_000).default(3),
  /** Warning events younger than this are counted. */
  eventWindowSeconds: z.number().int().min(60).max(30 * 86_400).default(86_400),
  /** `warning_events` is raised from this many Warning events in the window. */
  minWarningEvents: z.number().int().min(1).max(1_000_000).default(1),
  /** Bound on the entries listed in a finding's details (reasons, containers). */
  maxListed: z.number().int().min(1).max(500).default(20),
});

export const k8sHealth = defineTask({
  name: 'k8s-health',
  description: 'Pods (not ready, crash loops, OOMKilled, restarts), deployments, HPAs at max, Warning events, CPU/memory vs limits',
  target: 'kubernetes',
  defaultSchedule: 'daily',
  timeoutMs: 120_000,
  changesTarget: false,
  params,
  codes,
  async run(ctx, p) {
    const k8s = ctx.clients.kubernetes();
    const namespace = ctx.target.namespace;
    const now = Date.now();
    const findings: Finding<Code>[] = [];

    const { workloads, missing } = await loadWorkloads(k8s, ctx.target, ctx.signal);
    await ctx.progress(30);
    const hpas = await listAll(`horizontalpodautoscalers in namespace ${namespace}`, ctx.signal, (cont) =>
      k8s.autoscaling.listNamespacedHorizontalPodAutoscaler({ namespace, limit: LIST_PAGE_SIZE, _continue: cont }, callOptions(ctx.signal)),
    );
    const events = await listAll(`events in namespace ${namespace}`, ctx.signal, (cont) =>
      k8s.core.listNamespacedEvent({ namespace, fieldSelector: 'type=Warning', limit: LIST_PAGE_SIZE, _continue: cont }, callOptions(ctx.signal)),
    );
    const metricsAnswer = workloads.length > 0 ? await fetchPodMetrics(k8s, namespace, ctx.signal) : undefined;
    await ctx.progress(70);

    // Deployments.
    for (const name of missing) {
      findings.push({
        severity: 'critical',
        code: 'deployment_unavailable',
        subject: `${namespace}/${name}`,
        message: `deployment ${name} not found in namespace ${namespace}`,
        suggestion: `kubectl -n ${namespace} get deployments; fix the target's deployments list if it was renamed`,
        details: { deployment: name, found: false },
      });
    }
    for (const w of workloads) {
      const f = deploymentFinding(w.deployment);
      if (f) findings.push(f);
    }
    const deploymentsUnavailable = findings.filter((f) => f.code === 'deployment_unavailable').length;

    // HPAs scaling these deployments.
    const names = new Set(workloads.map((w) => w.name));
    const scalers = hpas.filter((h) => h.spec?.scaleTargetRef?.kind === 'Deployment' && names.has(h.spec.scaleTargetRef.name));
    for (const h of scalers) {
      const f = hpaAtMaxFinding(h);
      if (f) findings.push(f);
    }

    // Pods.
    const pods = workloads.flatMap((w) => w.pods);
    const baseline = baselineFrom((await ctx.previousResult()).result);
    const counts = restartCounts(pods);
    const deltas = restartDeltas(counts, baseline);
    for (const pod of pods) {
      for (const f of [crashLoopFinding(pod), oomKilledFinding(pod), notReadyFinding(pod, p, now), restartsFinding(pod, deltas, baseline, p)]) {
        if (f) findings.push(f);
      }
    }
    const restarts = Object.values(deltas).reduce((n, d) => n + d, 0);
    const ready = pods.filter((pod) => pod.status?.phase === 'Running' && pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length;
    if (pods.length > 0) findings.push(restartCountsFinding(namespace, counts, restarts, baseline, new Date(now)));

    // Warning events.
    const relevant = events.filter(relevantTo(workloads, scalers, ctx.target.deployments.length === 0)).filter((e) => now - eventTime(e) <= p.eventWindowSeconds * 1000);
    const eventCount = relevant.reduce((n, e) => n + eventCountOf(e), 0);
    if (eventCount >= p.minWarningEvents) findings.push(warningEventsFinding(namespace, relevant, eventCount, p));

    // CPU and memory against limits.
    const metrics: Record<string, number> = {
      pods_total: pods.length,
      pods_ready: ready,
      restarts_24h: restarts,
      warning_events: eventCount,
      deployments_unavailable: deploymentsUnavailable,
    };
    let usage = 'CPU/memory not checked (no deployments)';
    if (metricsAnswer && !metricsAnswer.ok) {
      findings.push(metricsUnavailableFinding(namespace, metricsAnswer));
      usage = 'metrics API unavailable';
    } else if (metricsAnswer?.ok) {
      const rows = containerUsage(workloads, metricsAnswer.items);
      findings.push(...usageFindings(namespace, rows, p));
      const limits = limitsMissingFinding(namespace, workloads);
      if (limits) findings.push(limits);
      const cpu = maxRatio(rows, 'cpu');
      const mem = maxRatio(rows, 'memory');
      if (cpu !== undefined) metrics.max_cpu_limit_ratio = cpu;
      if (mem !== undefined) metrics.max_memory_limit_ratio = mem;
      usage = `highest CPU ${cpu === undefined ? 'n/a' : pct(cpu)}, memory ${mem === undefined ? 'n/a' : pct(mem)} of limits`;
    }

    if (workloads.length === 0 && missing.length === 0) {
      findings.push({
        severity: 'info',
        code: 'no_deployments',
        subject: namespace,
        message: `no deployments in namespace ${namespace}: nothing checked`,
        suggestion: 'Check the kubernetes target\'s namespace',
      });
    }

    const summary = [
      `${namespace}: ${workloads.length} deployment${workloads.length === 1 ? '' : 's'}${deploymentsUnavailable ? ` (${deploymentsUnavailable} unavailable)` : ''}`,
      `${ready}/${pods.length} pods ready`,
      `${restarts} restart${restarts === 1 ? '' : 's'} ${baseline ? 'since the previous run' : 'in total (first run)'}`,
      `${eventCount} Warning event${eventCount === 1 ? '' : 's'} in ${windowText(p.eventWindowSeconds)}`,
      usage,
    ];
    return { summary: summary.join(', '), findings, metrics };
  },
});

/** `deployment_unavailable`: fewer available replicas than desired, or a rollout past its progress deadline. */
function deploymentFinding(d: V1Deployment): Finding<Code> | undefined {
  const desired = d.spec?.replicas ?? 1;
  const available = d.status?.availableReplicas ?? 0;
  const progressing = d.status?.conditions?.find((c) => c.type === 'Progressing');
  const stuck = progressing?.status === 'False' && progressing.reason === 'ProgressDeadlineExceeded';
  if (available >= desired && !stuck) return undefined;
  const name = d.metadata?.name ?? '';
  const parts = [`${available}/${desired} replicas available`];
  if (stuck) parts.push(`rollout stuck past its progress deadline of ${d.spec?.progressDeadlineSeconds ?? 600} s${progressing.message ? `: ${redactText(progressing.message, EVENT_MESSAGE_CHARS)}` : ''}`);
  return {
    severity: available === 0 && desired > 0 ? 'critical' : 'warning',
    code: 'deployment_unavailable',
    subject: qualifiedName(d),
    message: parts.join('; '),
    suggestion: stuck
      ? `kubectl -n ${d.metadata?.namespace} rollout status deployment/${name}; look at the new pods' events, then fix or kubectl rollout undo`
      : `kubectl -n ${d.metadata?.namespace} describe deployment ${name}, and the pods that are not ready`,
    details: {
      deployment: name,
      desired,
      available,
      ready: d.status?.readyReplicas ?? 0,
      updated: d.status?.updatedReplicas ?? 0,
      unavailable: d.status?.unavailableReplicas ?? 0,
      progressDeadlineExceeded: stuck,
      conditions: (d.status?.conditions ?? []).map((c) => ({ type: c.type, status: c.status, reason: c.reason })),
    },
  };
}

/** `hpa_at_max`: an HPA whose current replicas reached its maximum, so load beyond it is not absorbed. */
function hpaAtMaxFinding(h: V2HorizontalPodAutoscaler): Finding<Code> | undefined {
  const max = h.spec?.maxReplicas;
  const current = h.status?.currentReplicas ?? 0;
  if (max === undefined || current < max) return undefined;
  const limited = h.status?.conditions?.find((c) => c.type === 'ScalingLimited' && c.status === 'True');
  const observed = (h.status?.currentMetrics ?? [])
    .map((m) => ({ name: m.resource?.name ?? m.type, utilization: m.resource?.current?.averageUtilization }))
    .filter((m) => m.utilization !== undefined);
  const targets = (h.spec?.metrics ?? []).map((m) => ({ name: m.resource?.name ?? m.type, utilization: m.resource?.target?.averageUtilization }));
  const load = observed.map((o) => `${o.name} ${o.utilization} %${targets.find((t) => t.name === o.name)?.utilization !== undefined ? ` against a target of ${targets.find((t) => t.name === o.name)!.utilization} %` : ''}`);
  return {
    severity: 'warning',
    code: 'hpa_at_max',
    subject: qualifiedName(h),
    message: `at its maximum of ${max} replicas${load.length ? ` (${load.join(', ')})` : ''}${limited?.reason === 'TooManyReplicas' ? ', and wants more' : ''}`,
    suggestion: 'Raise maxReplicas if the cluster has room, or find why the load grew (traffic, a slow dependency)',
    details: {
      hpa: h.metadata?.name,
      deployment: h.spec?.scaleTargetRef?.name,
      minReplicas: h.spec?.minReplicas ?? 1,
      maxReplicas: max,
      currentReplicas: current,
      desiredReplicas: h.status?.desiredReplicas ?? null,
      metrics: observed,
      scalingLimited: limited ? { reason: limited.reason, message: limited.message } : null,
    },
  };
}

/** The info finding that carries this run's restart counts to the next run. */
function restartCountsFinding(namespace: string, counts: Record<string, number>, restarts: number, baseline: RestartBaseline | undefined, at: Date): Finding<Code> {
  const containers = Object.keys(counts).length;
  const total = Object.values(counts).reduce((n, c) => n + c, 0);
  return {
    severity: 'info',
    code: 'restart_counts',
    subject: namespace,
    message: `${containers} containers, ${total} restarts in their lifetime, ${restarts} ${baseline ? `since the previous run (${baseline.at})` : 'counted (no previous run)'}`,
    details: { at: at.toISOString(), counts, previousAt: baseline?.at ?? null },
  };
}

const pct = (ratio: number) => formatPercent(ratio);
