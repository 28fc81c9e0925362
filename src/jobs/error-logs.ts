/**
 * error-logs (daily): the runbook's "Review error logs". Reads the last 24 h
 * of logs of a kubernetes target's deployments' pods (every container; also
 * the previous instance of a container that restarted within the window,
 * where a crash-looping service's errors are), counts the error lines
 * (src/kubernetes/log-lines.ts), groups them by signature, and reports
 * `error_log_spike` above a bound or well above the previous run's count.
 * Read-only: lists pods and reads logs.
 *
 * Memory stays bounded: every log request carries `limitBytes` (5 MiB per
 * container by default), so the API never sends more; the text of one
 * container at a time is held as one string (the generated client has no
 * streaming variant of readNamespacedPodLog) and walked line by line
 * without splitting it; the tally keeps at most MAX_SIGNATURES signatures
 * with one cut sample each. A log cut by limitBytes makes the count a lower
 * bound (`log_truncated`): the API returns the oldest bytes of the window.
 *
 * A container whose log cannot be read (403 on pods/log, a container not
 * started yet) is noted (`log_unreadable`, info); not being able to list
 * the pods at all is an `error`.
 */
import { z } from 'zod';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { defineTask, type FindingCodes, type PreviousResult } from '../contract/task';
import type { Finding } from '../contract/result';
import { apiErrorMessage, callOptions } from '../clients/kubernetes';
import { coerceError } from '../errors';
import { formatBytes, windowText } from '../util/format';
import { loadWorkloads } from '../kubernetes/workloads';
import { ErrorTally, type SignatureCount } from '../kubernetes/log-lines';

/** A bound on one log request: 5 MiB over a slow link takes a while, a hung one must not hold the run. */
export const LOG_REQUEST_TIMEOUT_MS = 30_000;

const MiB = 1024 * 1024;

const codes = {
  error_log_spike: "error lines in the window above `maxErrors`, or above `spikeFactor` × the previous run's (≥ `spikeMinimum`)",
  error_log_summary: 'error lines in the window, none a spike: their count and top signatures',
  log_truncated: 'container logs that reached `limitBytes`: their error counts are a lower bound',
  log_unreadable: 'container logs that could not be read (no pods/log permission, a container not started)',
  deployment_missing: 'a listed deployment not found in the namespace: its logs were not read',
} satisfies FindingCodes;
type Code = keyof typeof codes;

const params = z.strictObject({
  /** How far back to read (the API's sinceSeconds). */
  sinceSeconds: z.number().int().min(60).max(30 * 86_400).default(86_400),
  /** At most this many bytes of log per container and request (the API's limitBytes). */
  limitBytes: z.number().int().min(1_024).max(256 * MiB).default(5 * MiB),
  /** More error lines than this in the window raise `error_log_spike`. */
  maxErrors: z.number().int().min(0).default(100),
  /** `error_log_spike` also when the count is more than this many times the previous run's... */
  spikeFactor: z.number().gt(1).max(1_000).default(3),
  /** ...and at least this many lines (a jump from 1 to 4 errors is not a spike). */
  spikeMinimum: z.number().int().min(1).default(20),
  /** Also read the previous instance of a container that terminated within the window. */
  includePrevious: z.boolean().default(true),
  /** Signatures listed in details. */
  topSignatures: z.number().int().min(1).max(100).default(10),
  /** A sample line is cut to this many characters (after redaction). */
  sampleChars: z.number().int().min(40).max(4_000).default(300),
  /** Containers listed in details of log_unreadable / log_truncated. */
  maxListed: z.number().int().min(1).max(500).default(20),
});

type Params = z.infer<typeof params>;

/** One log request to make. */
interface LogSource {
  deployment: string;
  pod: string;
  container: string;
  previous: boolean;
}

export const errorLogs = defineTask({
  name: 'error-logs',
  description: 'Error lines in the last 24 h of the deployments\' pod logs, grouped by signature; spikes against a bound and the previous run',
  target: 'kubernetes',
  defaultSchedule: 'daily',
  timeoutMs: 600_000,
  changesTarget: false,
  params,
  codes,
  async run(ctx, p) {
    const k8s = ctx.clients.kubernetes();
    const namespace = ctx.target.namespace;
    const { workloads, missing } = await loadWorkloads(k8s, ctx.target, ctx.signal);
    const sources = workloads.flatMap((w) => w.pods.flatMap((pod) => sourcesOf(w.name, pod, p)));
    await ctx.progress(5);

    const tally = new ErrorTally(p.sampleChars);
    const unreadable: (LogSource & { error: string })[] = [];
    const truncated: (LogSource & { bytes: number })[] = [];
    const byDeployment: Record<string, number> = Object.fromEntries(workloads.map((w) => [w.name, 0]));
    const podsRead = new Set<string>();
    let bytesRead = 0;
    for (const [i, s] of sources.entries()) {
      if (ctx.signal.aborted) throw coerceError(ctx.signal.reason);
      let text: string;
      try {
        text = await k8s.core.readNamespacedPodLog(
          { name: s.pod, namespace, container: s.container, sinceSeconds: p.sinceSeconds, limitBytes: p.limitBytes, ...(s.previous ? { previous: true } : {}) },
          callOptions(ctx.signal, LOG_REQUEST_TIMEOUT_MS),
        );
      } catch (err) {
        if (ctx.signal.aborted) throw coerceError(ctx.signal.reason);
        unreadable.push({ ...s, error: apiErrorMessage(err) });
        ctx.log.info({ pod: s.pod, container: s.container, previous: s.previous, err: apiErrorMessage(err) }, 'cannot read a container log');
        continue;
      }
      const bytes = Buffer.byteLength(text ?? '');
      bytesRead += bytes;
      podsRead.add(s.pod);
      const cut = bytes >= p.limitBytes;
      if (cut) truncated.push({ ...s, bytes });
      byDeployment[s.deployment]! += tally.addText(text ?? '', s.deployment, { dropPartialLast: cut }).errors;
      await ctx.progress(5 + Math.round((90 * (i + 1)) / sources.length));
    }

    const previous = previousRun(await ctx.previousResult());
    const top = tally.top(p.topSignatures);
    const window = windowText(p.sinceSeconds);
    const findings: Finding<Code>[] = [];
    const spike = spikeOf(tally.errors, previous, p);
    const details = {
      errorLines: tally.errors,
      logLines: tally.lines,
      windowSeconds: p.sinceSeconds,
      bound: p.maxErrors,
      previous: previous ? { errorLines: previous.errorLines, at: previous.at } : null,
      byDeployment,
      distinctSignatures: tally.distinct,
      topSignatures: top,
      lowerBound: truncated.length > 0,
    };
    if (spike.reasons.length > 0) {
      findings.push({
        severity: 'warning',
        code: 'error_log_spike',
        subject: namespace,
        message: `${tally.errors} error lines in ${window}${truncated.length ? ' (at least)' : ''} from ${podsRead.size} pods: ${spike.text.join('; ')}; top: ${topText(top)}`,
        suggestion: `Look at the top signatures first: kubectl -n ${namespace} logs deployment/<name> --since=${Math.round(p.sinceSeconds / 3600)}h | grep <signature words>; correlate with deploys and k8s-health`,
        details: { ...details, reasons: spike.reasons, spikeFactor: p.spikeFactor, spikeMinimum: p.spikeMinimum },
      });
    } else if (tally.errors > 0) {
      findings.push({
        severity: 'info',
        code: 'error_log_summary',
        subject: namespace,
        message: `${tally.errors} error lines in ${window} from ${podsRead.size} pods (bound ${p.maxErrors}); top: ${topText(top)}`,
        details,
      });
    }
    if (unreadable.length > 0) {
      findings.push({
        severity: 'info',
        code: 'log_unreadable',
        subject: namespace,
        message: `${unreadable.length} container logs not read: ${unreadable.slice(0, 3).map((u) => `${u.pod}/${u.container}${u.previous ? ' (previous)' : ''}: ${u.error}`).join('; ')}${unreadable.length > 3 ? '; ...' : ''}`,
        suggestion: unreadable.some((u) => u.error.startsWith('403'))
          ? 'Grant get on pods/log in the namespace to caretaker\'s service account'
          : 'A container that has not started has no log yet; look at the pod with k8s-health',
        details: { count: unreadable.length, containers: unreadable.slice(0, p.maxListed) },
      });
    }
    if (truncated.length > 0) {
      findings.push({
        severity: 'info',
        code: 'log_truncated',
        subject: namespace,
        message: `${truncated.length} container logs reached limitBytes (${formatBytes(p.limitBytes)}): their error counts are a lower bound`,
        suggestion: 'Raise tasks.error-logs.limitBytes, or lower sinceSeconds, if the full count matters; a service logging this much may log too much',
        details: { limitBytes: p.limitBytes, count: truncated.length, containers: truncated.slice(0, p.maxListed) },
      });
    }
    for (const name of missing) {
      findings.push({
        severity: 'info',
        code: 'deployment_missing',
        subject: `${namespace}/${name}`,
        message: `deployment ${name} not found in namespace ${namespace}: its logs were not read`,
        suggestion: 'k8s-health reports it as deployment_unavailable; fix the target\'s deployments list if it was renamed',
      });
    }

    const summary =
      `${namespace}: ${tally.errors} error line${tally.errors === 1 ? '' : 's'} in ${window}${truncated.length ? ' (at least)' : ''}`
      + ` from ${podsRead.size} pods (${formatBytes(bytesRead)} read), ${tally.distinct} signature${tally.distinct === 1 ? '' : 's'}`
      + (top[0] ? `; top: ${topText(top.slice(0, 1))}` : '')
      + (unreadable.length ? `; ${unreadable.length} logs not readable` : '');
    return { summary, findings, metrics: { error_lines: tally.errors, log_bytes_read: bytesRead, pods_read: podsRead.size } };
  },
});

/** The log requests for one pod: every container, plus the previous instance of those that terminated within the window. */
function sourcesOf(deployment: string, pod: V1Pod, p: Params): LogSource[] {
  const name = pod.metadata?.name ?? '';
  const statuses = new Map((pod.status?.containerStatuses ?? []).map((s) => [s.name, s]));
  const since = Date.now() - p.sinceSeconds * 1000;
  return (pod.spec?.containers ?? []).flatMap((c: V1Container) => {
    const out: LogSource[] = [{ deployment, pod: name, container: c.name, previous: false }];
    const finished = statuses.get(c.name)?.lastState?.terminated?.finishedAt;
    const t = finished === undefined ? NaN : new Date(finished as unknown as string).getTime();
    if (p.includePrevious && !Number.isNaN(t) && t >= since) out.push({ deployment, pod: name, container: c.name, previous: true });
    return out;
  });
}

interface PreviousRun {
  errorLines: number;
  at: string;
}

/** The previous run's error count; the history's trouble must not cost the check. */
function previousRun({ result: prev }: PreviousResult): PreviousRun | undefined {
  const n = prev?.metrics?.error_lines;
  return typeof n === 'number' && Number.isFinite(n) ? { errorLines: n, at: prev!.finishedAt } : undefined;
}

/** Why the count is a spike: over the bound, and/or more than spikeFactor × the previous run's (and at least spikeMinimum). */
function spikeOf(errors: number, previous: PreviousRun | undefined, p: Params): { reasons: ('bound' | 'previous')[]; text: string[] } {
  const reasons: ('bound' | 'previous')[] = [];
  const text: string[] = [];
  if (errors > p.maxErrors) {
    reasons.push('bound');
    text.push(`above the bound of ${p.maxErrors}`);
  }
  if (previous && errors >= p.spikeMinimum && errors > p.spikeFactor * previous.errorLines) {
    reasons.push('previous');
    text.push(previous.errorLines > 0
      ? `${(errors / previous.errorLines).toFixed(1)}× the previous run's ${previous.errorLines} (${previous.at})`
      : `the previous run (${previous.at}) had none`);
  }
  return { reasons, text };
}

function topText(top: SignatureCount[]): string {
  return top.slice(0, 3).map((s) => `"${s.signature.length > 80 ? `${s.signature.slice(0, 79)}…` : s.signature}" ×${s.count}`).join(', ') || 'none';
}
