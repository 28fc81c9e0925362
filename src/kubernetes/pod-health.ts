/**
 * k8s-health's checks of single pods, from their status as `kubectl get pod
 * -o json` shows it: `crash_loop`, `oom_killed`, `pod_not_ready` and
 * `pod_restarts`, each one finding per pod naming its containers.
 *
 * Restarts in the last 24 h: the API only keeps a container's total
 * `restartCount`. Each run stores every container's count in its
 * `restart_counts` info finding; the next run subtracts the previous run's
 * count for the same pod and container (pods keep their name for life, a
 * replacement pod has a new one). A container the previous run did not see,
 * a count that went down, or no previous run at all: the total is used.
 */
import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import type { Finding } from '../contract/result';
import type { FindingCodes } from '../contract/task';
import { formatDuration } from '../util/format';
import { redactText } from './redact';
import { qualifiedName } from './workloads';

/** The codes of these checks' findings, one per pod; k8s-health declares them with its own. */
export const POD_HEALTH_CODES = {
  pod_not_ready: 'a pod Pending longer than `pendingSeconds`, or Running but not Ready longer than `notReadySeconds`',
  crash_loop: 'a pod with a container waiting in CrashLoopBackOff, with its last exit reason and code',
  oom_killed: 'a pod with a container whose current or last termination was OOMKilled',
  pod_restarts: 'a pod whose containers restarted more than `maxRestarts` times since the previous run (first run: in total)',
} satisfies FindingCodes;
type PodHealthCode = keyof typeof POD_HEALTH_CODES;

/** The thresholds these checks use (k8s-health's params). */
export interface PodThresholds {
  /** A Pending pod older than this is not ready. */
  pendingSeconds: number;
  /** A Running pod not Ready for longer than this is not ready. */
  notReadySeconds: number;
  /** More restarts than this in the window raise pod_restarts. */
  maxRestarts: number;
}

/** Restart counts by `pod/container`, as stored in `restart_counts` details. */
export type RestartCounts = Record<string, number>;

/** The previous run's counts, when there was one. */
export interface RestartBaseline {
  counts: RestartCounts;
  at: string;
}

/** Termination messages and waiting messages are the application's text: cut and redacted. */
const MESSAGE_CHARS = 200;

interface ContainerLine {
  pod: string;
  container: string;
  init: boolean;
  status: V1ContainerStatus;
}

function containersOf(p: V1Pod): ContainerLine[] {
  const pod = p.metadata?.name ?? '';
  return [
    ...(p.status?.initContainerStatuses ?? []).map((status) => ({ pod, container: status.name, init: true, status })),
    ...(p.status?.containerStatuses ?? []).map((status) => ({ pod, container: status.name, init: false, status })),
  ];
}

function iso(d: Date | string | undefined): string | undefined {
  if (d === undefined) return undefined;
  const t = d instanceof Date ? d : new Date(d);
  return Number.isNaN(t.getTime()) ? undefined : t.toISOString();
}

function ageMs(d: Date | string | undefined, now: number): number {
  if (d === undefined) return 0;
  const t = (d instanceof Date ? d : new Date(d)).getTime();
  return Number.isNaN(t) ? 0 : now - t;
}

function lastTermination(s: V1ContainerStatus) {
  const t = s.lastState?.terminated;
  if (!t) return undefined;
  return {
    reason: t.reason ?? 'unknown',
    exitCode: t.exitCode,
    ...(t.signal !== undefined ? { signal: t.signal } : {}),
    finishedAt: iso(t.finishedAt),
    ...(t.message ? { message: redactText(t.message, MESSAGE_CHARS) } : {}),
  };
}

/** The `crash_loop` finding of a pod with a container waiting in CrashLoopBackOff. */
export function crashLoopFinding(p: V1Pod): Finding<PodHealthCode> | undefined {
  const looping = containersOf(p).filter((c) => c.status.state?.waiting?.reason === 'CrashLoopBackOff');
  if (looping.length === 0) return undefined;
  const containers = looping.map((c) => ({ container: c.container, init: c.init, restartCount: c.status.restartCount, lastTerminated: lastTermination(c.status) }));
  const first = containers[0]!;
  const last = first.lastTerminated;
  const why = last ? `last terminated ${last.reason} (exit ${last.exitCode}${last.finishedAt ? ` at ${last.finishedAt}` : ''})` : 'no last termination recorded';
  const name = qualifiedName(p);
  return {
    severity: 'warning',
    code: 'crash_loop',
    subject: name,
    message: `container ${first.container} in CrashLoopBackOff after ${first.restartCount} restarts, ${why}${looping.length > 1 ? ` (and ${looping.length - 1} more containers)` : ''}`,
    suggestion: `kubectl -n ${p.metadata?.namespace} logs ${p.metadata?.name} -c ${first.container} --previous; kubectl -n ${p.metadata?.namespace} describe pod ${p.metadata?.name}`,
    details: { pod: name, containers },
  };
}

/** The `oom_killed` finding of a pod with a container whose last (or current) termination was OOMKilled. */
export function oomKilledFinding(p: V1Pod): Finding<PodHealthCode> | undefined {
  const limits = new Map((p.spec?.containers ?? []).map((c) => [c.name, c.resources?.limits?.memory]));
  const killed = containersOf(p)
    .map((c) => {
      const t = c.status.state?.terminated?.reason === 'OOMKilled' ? c.status.state.terminated : c.status.lastState?.terminated;
      return t?.reason === 'OOMKilled' ? { container: c.container, exitCode: t.exitCode, finishedAt: iso(t.finishedAt), memoryLimit: limits.get(c.container) ?? null, restartCount: c.status.restartCount } : undefined;
    })
    .filter((c) => c !== undefined);
  if (killed.length === 0) return undefined;
  const first = killed[0]!;
  const name = qualifiedName(p);
  return {
    severity: 'warning',
    code: 'oom_killed',
    subject: name,
    message: `container ${first.container} was OOMKilled${first.finishedAt ? ` at ${first.finishedAt}` : ''} (memory limit ${first.memoryLimit ?? 'none'})${killed.length > 1 ? `, and ${killed.length - 1} more containers` : ''}`,
    suggestion: 'Raise the container\'s memory limit, or find what grows (heap size, caches, a leak) before it is killed again',
    details: { pod: name, containers: killed },
  };
}

/**
 * The `pod_not_ready` finding: Pending longer than `pendingSeconds`, or
 * Running without being Ready for longer than `notReadySeconds`. Terminating
 * and crash-looping pods are left to other findings.
 */
export function notReadyFinding(p: V1Pod, t: PodThresholds, now: number): Finding<PodHealthCode> | undefined {
  if (p.metadata?.deletionTimestamp) return undefined;
  if (containersOf(p).some((c) => c.status.state?.waiting?.reason === 'CrashLoopBackOff')) return undefined;
  const phase = p.status?.phase;
  const name = qualifiedName(p);
  const waiting = containersOf(p)
    .filter((c) => c.status.state?.waiting)
    .map((c) => ({ container: c.container, reason: c.status.state!.waiting!.reason ?? 'unknown', ...(c.status.state!.waiting!.message ? { message: redactText(c.status.state!.waiting!.message, MESSAGE_CHARS) } : {}) }));
  if (phase === 'Pending') {
    const age = ageMs(p.metadata?.creationTimestamp, now);
    if (age < t.pendingSeconds * 1000) return undefined;
    const scheduled = p.status?.conditions?.find((c) => c.type === 'PodScheduled');
    const why = scheduled?.status === 'False'
      ? `not scheduled: ${scheduled.reason ?? ''}${scheduled.message ? ` ${redactText(scheduled.message, MESSAGE_CHARS)}` : ''}`.trim()
      : waiting.length ? waiting.map((w) => `${w.container} ${w.reason}`).join(', ') : 'waiting';
    return {
      severity: 'warning',
      code: 'pod_not_ready',
      subject: name,
      message: `Pending for ${formatDuration(age)} (${why})`,
      suggestion: `kubectl -n ${p.metadata?.namespace} describe pod ${p.metadata?.name} (events: scheduling, image pulls, volumes)`,
      details: { pod: name, phase, pendingSeconds: Math.round(age / 1000), waiting, scheduled: scheduled ? { status: scheduled.status, reason: scheduled.reason } : null },
    };
  }
  if (phase !== 'Running') return undefined;
  const ready = p.status?.conditions?.find((c) => c.type === 'Ready');
  if (ready?.status === 'True') return undefined;
  const since = ready?.lastTransitionTime ?? p.status?.startTime ?? p.metadata?.creationTimestamp;
  const age = ageMs(since, now);
  if (age < t.notReadySeconds * 1000) return undefined;
  const notReady = containersOf(p).filter((c) => !c.init && !c.status.ready).map((c) => c.container);
  return {
    severity: 'warning',
    code: 'pod_not_ready',
    subject: name,
    message: `Running but not Ready for ${formatDuration(age)} (containers not ready: ${notReady.join(', ') || 'none reported'})`,
    suggestion: `The readiness probe fails: kubectl -n ${p.metadata?.namespace} describe pod ${p.metadata?.name} (Readiness probe failed events), and the container's logs`,
    details: { pod: name, phase, notReadySeconds: Math.round(age / 1000), containersNotReady: notReady, waiting },
  };
}

/** Every container's restart count, by `pod/container`. */
export function restartCounts(pods: V1Pod[]): RestartCounts {
  const counts: RestartCounts = {};
  for (const p of pods) for (const c of containersOf(p)) counts[`${c.pod}/${c.container}`] = c.status.restartCount ?? 0;
  return counts;
}

/** Restarts since the baseline per `pod/container` (the total where the baseline has no usable count). */
export function restartDeltas(current: RestartCounts, baseline: RestartBaseline | undefined): RestartCounts {
  const out: RestartCounts = {};
  for (const [key, total] of Object.entries(current)) {
    const before = baseline?.counts[key];
    out[key] = typeof before === 'number' && before <= total ? total - before : total;
  }
  return out;
}

/** The `pod_restarts` finding of a pod restarted more than `maxRestarts` times since the baseline. */
export function restartsFinding(p: V1Pod, deltas: RestartCounts, baseline: RestartBaseline | undefined, t: PodThresholds): Finding<PodHealthCode> | undefined {
  const containers = containersOf(p)
    .map((c) => ({ container: c.container, restarts: deltas[`${c.pod}/${c.container}`] ?? 0, restartCount: c.status.restartCount ?? 0, lastTerminated: lastTermination(c.status) }))
    .filter((c) => c.restarts > 0);
  const restarts = containers.reduce((n, c) => n + c.restarts, 0);
  if (restarts <= t.maxRestarts) return undefined;
  const name = qualifiedName(p);
  const window = baseline ? `since the previous run (${baseline.at})` : 'in total (no previous run to compare with)';
  const reasons = [...new Set(containers.map((c) => c.lastTerminated?.reason).filter((r) => r !== undefined))];
  return {
    severity: 'warning',
    code: 'pod_restarts',
    subject: name,
    message: `${restarts} restarts ${window}, above ${t.maxRestarts}${reasons.length ? ` (last terminated: ${reasons.join(', ')})` : ''}`,
    suggestion: `kubectl -n ${p.metadata?.namespace} logs ${p.metadata?.name} --previous; check liveness probes and memory limits`,
    details: { pod: name, restarts, bound: t.maxRestarts, since: baseline?.at ?? null, containers },
  };
}

/** Reads the previous run's `restart_counts` finding back, when it has a usable one. */
export function baselineFrom(previous: { findings?: Finding[]; finishedAt?: string } | undefined): RestartBaseline | undefined {
  const details = previous?.findings?.find((f) => f.code === 'restart_counts')?.details;
  const counts = details?.counts;
  if (!counts || typeof counts !== 'object' || Array.isArray(counts)) return undefined;
  const clean: RestartCounts = {};
  for (const [k, v] of Object.entries(counts as Record<string, unknown>)) if (typeof v === 'number' && Number.isFinite(v)) clean[k] = v;
  return { counts: clean, at: typeof details.at === 'string' ? details.at : (previous?.finishedAt ?? 'unknown') };
}
