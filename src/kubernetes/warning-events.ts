/**
 * k8s-health's `warning_events`: the namespace's Warning events of the last
 * 24 h about the watched deployments, grouped by reason, with each reason's
 * count (an event's own `count`, or its series' count) and its latest
 * message as a sample (redacted: event messages quote the application).
 */
import type { CoreV1Event, V2HorizontalPodAutoscaler } from '@kubernetes/client-node';
import type { Finding } from '../contract/result';
import type { FindingCodes } from '../contract/task';
import { windowText } from '../util/format';
import { redactText } from './redact';
import type { Workload } from './workloads';

/** The code of this check's finding; k8s-health declares it with its own. */
export const WARNING_EVENTS_CODES = {
  warning_events: 'at least `minWarningEvents` Warning events about the watched deployments in `eventWindowSeconds`, by reason',
} satisfies FindingCodes;

/** Event messages in details are the cluster's text: cut and redacted. */
export const EVENT_MESSAGE_CHARS = 300;

/** When the event last happened: core/v1 events fill lastTimestamp, events.k8s.io-style ones series or eventTime. */
export function eventTime(e: CoreV1Event): number {
  const t = e.lastTimestamp ?? e.series?.lastObservedTime ?? e.eventTime ?? e.metadata?.creationTimestamp;
  const ms = t === undefined ? NaN : new Date(t as unknown as string).getTime();
  return Number.isNaN(ms) ? 0 : ms;
}

export function eventCountOf(e: CoreV1Event): number {
  return Math.max(1, e.series?.count ?? e.count ?? 1);
}

/**
 * Events about the watched deployments: the deployments, their HPAs, their
 * ReplicaSets (`<deployment>-<hash>`) and pods (`<deployment>-<hash>-<id>`,
 * gone ones included). With no deployments configured, every event of the
 * namespace counts.
 */
export function relevantTo(workloads: Workload[], hpas: V2HorizontalPodAutoscaler[], everything: boolean): (e: CoreV1Event) => boolean {
  if (everything) return () => true;
  const names = new Set([...workloads.map((w) => w.name), ...workloads.flatMap((w) => w.pods.map((p) => p.metadata?.name ?? '')), ...hpas.map((h) => h.metadata?.name ?? '')]);
  const owned = workloads.map((w) => new RegExp(`^${w.name.replace(/[.-]/g, '\\$&')}-[a-z0-9]{1,10}(-[a-z0-9]{5})?$`));
  return (e) => {
    const name = e.involvedObject?.name ?? '';
    if (names.has(name)) return true;
    const kind = e.involvedObject?.kind;
    return (kind === 'Pod' || kind === 'ReplicaSet') && owned.some((re) => re.test(name));
  };
}

/** `warning_events`: the window's Warning events grouped by reason, with counts and the latest message of each. */
export function warningEventsFinding(namespace: string, events: CoreV1Event[], total: number, p: { eventWindowSeconds: number; maxListed: number }): Finding<keyof typeof WARNING_EVENTS_CODES> {
  const groups = new Map<string, { count: number; objects: Set<string>; latest: CoreV1Event }>();
  for (const e of events) {
    const reason = e.reason ?? 'Unknown';
    const g = groups.get(reason) ?? { count: 0, objects: new Set<string>(), latest: e };
    g.count += eventCountOf(e);
    g.objects.add(`${e.involvedObject?.kind ?? ''}/${e.involvedObject?.name ?? ''}`);
    if (eventTime(e) >= eventTime(g.latest)) g.latest = e;
    groups.set(reason, g);
  }
  const reasons = [...groups.entries()]
    .sort((a, b) => b[1].count - a[1].count || a[0].localeCompare(b[0]))
    .map(([reason, g]) => ({
      reason,
      count: g.count,
      objects: g.objects.size,
      sample: {
        object: `${g.latest.involvedObject?.kind ?? ''}/${g.latest.involvedObject?.name ?? ''}`,
        message: redactText(g.latest.message ?? '', EVENT_MESSAGE_CHARS),
        at: new Date(eventTime(g.latest)).toISOString(),
      },
    }));
  return {
    severity: 'warning',
    code: 'warning_events',
    subject: namespace,
    message: `${total} Warning events in the last ${windowText(p.eventWindowSeconds)}: ${reasons.slice(0, 5).map((r) => `${r.reason} ×${r.count}`).join(', ')}${reasons.length > 5 ? `, and ${reasons.length - 5} more reasons` : ''}`,
    suggestion: `kubectl -n ${namespace} get events --field-selector type=Warning --sort-by=.lastTimestamp`,
    details: { total, windowSeconds: p.eventWindowSeconds, reasons: reasons.slice(0, p.maxListed) },
  };
}


