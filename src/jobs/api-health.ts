/**
 * api-health (daily): the runbook's "curl /health" and "p95 < 200 ms". For
 * one HTTP target: GETs the health URL (anything but a 2xx, or no answer,
 * is `health_down`), the authenticated detailed health URL when configured
 * (its components' statuses), a short sequential latency sample (p50, p95,
 * max by nearest rank), and the TLS certificate of every https URL (days
 * left, trusted or not). Read-only: only GETs, never follows redirects (so
 * the token goes to the configured URL and nowhere else).
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { defineTask, type FindingCodes } from '../contract/task';
import type { Finding } from '../contract/result';
import type { HttpAnswer, HttpAttempt, HttpProbe } from '../contract/http-probe';
import { TLS_CERTIFICATE_CODES, certificateFindings, type PeerCertificate } from '../util/tls';
import { scrubSecrets, secretsOfUrl } from '../logger';
import { classifyStatus, readDetailedHealth, worstClass, type HealthComponent } from '../clients/detailed-health';

/** How much of an unexpected body a finding quotes. */
const BODY_EXCERPT_CHARS = 300;

const params = z
  .strictObject({
    /** Bound on each request (connect, TLS handshake, answer). */
    timeoutMs: z.number().int().min(100).max(60_000).default(5_000),
    /** Requests in the latency sample, one after the other; 0 skips it. */
    samples: z.number().int().min(0).max(100).default(10),
    /** Bound on the whole latency sample: it stops early and reports what it has. */
    sampleBudgetMs: z.number().int().min(100).max(300_000).default(30_000),
    /** p95 above this raises `latency_high` as a warning (the runbook's "p95 < 200 ms")... */
    p95Ms: z.number().positive().default(200),
    /** ...and above this as critical. */
    p95CriticalMs: z.number().positive().default(1_000),
    /** A certificate with fewer whole days left raises `tls_expiring` as a warning... */
    tlsWarningDays: z.number().int().min(0).max(3650).default(21),
    /** ...and as critical (an expired one always is). */
    tlsCriticalDays: z.number().int().min(0).max(3650).default(7),
    /**
     * Accept an untrusted certificate (self-signed, private CA, wrong name) for
     * the GETs. Off: the GETs fail as a real client's would (`health_down`).
     */
    insecureSkipVerify: z.boolean().default(false),
    /** PEM file of extra CAs to trust (a private CA), on top of Node's bundled roots. */
    caFile: z.string().min(1).optional(),
  })
  .refine((p) => p.p95Ms <= p.p95CriticalMs, { error: 'p95Ms must not be above p95CriticalMs', path: ['p95Ms'] })
  .refine((p) => p.tlsCriticalDays <= p.tlsWarningDays, { error: 'tlsCriticalDays must not be above tlsWarningDays', path: ['tlsCriticalDays'] });

type Params = z.infer<typeof params>;

const codes = {
  health_down: 'the health URL gave no answer (refused, DNS, TLS, timeout) or answered other than 2xx (redirects not followed)',
  health_detailed_failed: 'the detailed health URL (with the token) gave no answer or answered other than 2xx',
  health_degraded: 'the detailed health JSON says the service or a component is degraded or down (terminus, Spring, IETF)',
  health_intermittent: 'requests of the latency sample failed though the first GET of the health URL answered',
  latency_high: 'the latency sample\'s p95 over `p95Ms` (critical over `p95CriticalMs`)',
  ...TLS_CERTIFICATE_CODES,
  tls_check_failed: 'the TLS certificate of an https origin could not be read (the origin answered otherwise)',
} satisfies FindingCodes;
type Code = keyof typeof codes;

export const apiHealth = defineTask({
  name: 'api-health',
  description: 'HTTP health endpoint up, detailed health (with the token), p50/p95 latency sample, TLS certificate expiry and trust',
  target: 'http',
  defaultSchedule: 'daily',
  timeoutMs: 120_000,
  changesTarget: false,
  params,
  codes,
  async run(ctx, p) {
    const { target, signal } = ctx;
    const token = target.token;
    /**
     * Whatever a server sends back may echo the request (the token, a key in
     * the URL's query): nothing from a response reaches the result unscrubbed.
     */
    const secrets = [token, ...secretsOfUrl(target.url), ...secretsOfUrl(target.detailedUrl)];
    const scrub = (text: string) => scrubSecrets(text, secrets);
    const extraCa = p.caFile ? readFileSync(p.caFile, 'utf8') : undefined;
    const probe = ctx.clients.http({ tls: { insecure: p.insecureSkipVerify, extraCa }, scrub });
    const findings: Finding<Code>[] = [];
    const metrics: Record<string, number> = {};
    const summary: string[] = [];

    // 1. The health URL, as a client (or a load balancer) calls it.
    const healthUrl = new URL(target.url);
    const health = await probe.get(healthUrl, { timeoutMs: p.timeoutMs });
    const up = health.answer !== undefined && isSuccess(health.answer.status);
    metrics.health_up = up ? 1 : 0;
    if (health.answer) {
      metrics.health_status_code = health.answer.status;
      metrics.health_response_ms = round(health.answer.ms);
    }
    if (up) {
      summary.push(`up (${health.answer!.status} in ${Math.round(health.answer!.ms)} ms)`);
    } else {
      const finding = healthDownFinding(healthUrl, health);
      summary.push(`DOWN: ${finding.details!.reason}`);
      findings.push(finding);
    }
    /** An origin that gave no answer at all: the other checks on it would only repeat why. */
    const unreachable = health.answer ? undefined : healthUrl.origin;

    // 2. The certificate of every https origin, inspected even when untrusted.
    const httpsOrigins = [...new Set([target.url, target.detailedUrl].filter((u): u is string => !!u).map((u) => new URL(u)).filter((u) => u.protocol === 'https:').map((u) => u.origin))];
    for (const origin of httpsOrigins) {
      const read = await probe.certificate(origin, { timeoutMs: p.timeoutMs });
      if (read.certificate) {
        const cert = read.certificate;
        findings.push(...tlsFindings(cert, p));
        metrics.tls_days_left = Math.min(metrics.tls_days_left ?? Infinity, cert.daysLeft);
        summary.push(cert.expired ? `certificate EXPIRED ${cert.validTo.slice(0, 10)}` : `certificate ${cert.daysLeft} days left`);
      } else if (origin !== unreachable) {
        findings.push({
          severity: 'info',
          code: 'tls_check_failed',
          subject: new URL(origin).host,
          message: `could not read the TLS certificate of ${origin}: ${read.failure}`,
          details: { origin, reason: read.failure },
        });
      }
    }

    // 3. The detailed health URL, with the token.
    if (target.detailedUrl) {
      const detailedUrl = new URL(target.detailedUrl);
      if (detailedUrl.origin === unreachable) {
        summary.push('detailed: not tried');
      } else {
        const headers = token ? { authorization: `Bearer ${token}` } : undefined;
        const detailed = await probe.get(detailedUrl, { timeoutMs: p.timeoutMs, headers });
        const finding = detailedFinding(detailedUrl, detailed, !!token, scrub);
        metrics.health_detailed_up = detailed.answer && isSuccess(detailed.answer.status) ? 1 : 0;
        summary.push(finding ? `detailed: ${finding.code === 'health_detailed_failed' ? 'FAILED' : finding.details!.status}` : 'detailed: ok');
        if (finding) findings.push(finding);
      }
    }

    // 4. The latency sample, over one kept-alive connection.
    if (up && p.samples > 0) {
      const sample = await sampleLatency(healthUrl, p, probe, signal);
      findings.push(...latencyFindings(healthUrl, sample, p));
      metrics.latency_samples = sample.times.length;
      metrics.latency_sample_errors = sample.errors.length;
      if (sample.times.length > 0) {
        const s = stats(sample.times);
        metrics.latency_p50_ms = s.p50;
        metrics.latency_p95_ms = s.p95;
        metrics.latency_max_ms = s.max;
        summary.push(`p95 ${Math.round(s.p95)} ms (p50 ${Math.round(s.p50)}, max ${Math.round(s.max)}) over ${sample.times.length} requests`);
      } else {
        summary.push(`no latency figure: all ${sample.errors.length} sample requests failed`);
      }
    }

    return { summary: `${target.name}: ${summary.join('; ')}`, findings, metrics };
  },
});

// --- findings ---------------------------------------------------------------

function healthDownFinding(url: URL, health: HttpAttempt): Finding<Code> {
  const { answer } = health;
  const reason = answer ? `answered ${statusLine(answer)}` : `no answer (${health.failure!})`;
  let suggestion = 'Check that the service runs and that caretaker can reach it (DNS, network policy, firewall)';
  if (answer?.location) suggestion = "caretaker does not follow redirects: set the target's url to where this one points";
  else if (answer) suggestion = 'Look at the service: its pods (k8s-health), its error logs (error-logs) and what its health check depends on (the detailed health URL)';
  else if (tlsReason(health.failure!)) {
    suggestion = 'The certificate is not accepted (see tls_untrusted): fix it, add its CA with caFile, or set insecureSkipVerify for an endpoint known to serve a self-signed certificate';
  }
  return {
    severity: 'critical',
    code: 'health_down',
    subject: display(url),
    message: `${display(url)} ${reason}`,
    suggestion,
    details: {
      url: display(url),
      reason,
      status: answer?.status,
      responseMs: answer ? round(answer.ms) : undefined,
      location: answer?.location ? redirectTarget(url, answer.location) : undefined,
      body: answer ? excerpt(answer.body) : undefined,
    },
  };
}

/** The shared TLS judgement, with this task's thresholds; an accepted (insecureSkipVerify) certificate is only info. */
function tlsFindings(cert: PeerCertificate, p: Params): Finding<Code>[] {
  return certificateFindings(cert, {
    warningDays: p.tlsWarningDays,
    criticalDays: p.tlsCriticalDays,
    untrusted: p.insecureSkipVerify ? 'info' : 'warning',
    untrustedNote: p.insecureSkipVerify ? '; accepted because insecureSkipVerify is set' : '',
  });
}

/** `scrub` again on what is read from the JSON: it may escape a secret's characters (`\/`, `\u00e9`), which the scrub of the raw text misses. */
function detailedFinding(url: URL, detailed: HttpAttempt, withToken: boolean, scrub: (s: string) => string): Finding<Code> | undefined {
  const health = detailed.answer ? readDetailedHealth(detailed.answer.body) : undefined;
  const unhealthy = health?.components.filter((c) => classifyStatus(c.status) !== 'ok') ?? [];
  const named = unhealthy.map((c) => `${c.name} ${c.status}`).join(', ');
  if (!detailed.answer || !isSuccess(detailed.answer.status)) {
    const reason = detailed.answer ? `answered ${statusLine(detailed.answer)}` : `no answer (${detailed.failure!})`;
    const denied = detailed.answer?.status === 401 || detailed.answer?.status === 403;
    return {
      severity: 'warning',
      code: 'health_detailed_failed',
      subject: display(url),
      message: `${display(url)} ${reason}${named ? `: ${scrub(named)}` : ''}`,
      suggestion: denied
        ? withToken
          ? 'The token was refused: check the value of the environment variable the target\'s token names'
          : 'The endpoint wants a token: set the target\'s token to "${VAR}"'
        : 'Look at the failing components the detailed health names, and at the service\'s logs',
      details: {
        url: display(url),
        status: detailed.answer?.status,
        reason: detailed.failure,
        tokenSent: withToken,
        components: scrubComponents(unhealthy, scrub),
        body: health || !detailed.answer ? undefined : excerpt(detailed.answer.body),
      },
    };
  }
  if (!health) return undefined;
  const overall = worstClass([health.status, ...health.components.map((c) => c.status)].filter((s): s is string => s !== undefined));
  if (overall === 'ok') return undefined;
  // The service's own word, unless it says healthy while a component is not ("reports ok: redis down" misleads).
  const shown = health.status !== undefined && classifyStatus(health.status) !== 'ok' ? health.status : overall;
  return {
    severity: overall === 'down' ? 'warning' : 'info',
    code: 'health_degraded',
    subject: display(url),
    message: `${display(url)} reports ${scrub(shown)}${named ? `: ${scrub(named)}` : ''}`,
    suggestion: 'The service answers but some of what it depends on does not: look at the components named',
    details: { url: display(url), status: scrub(shown), components: scrubComponents(unhealthy, scrub) },
  };
}

function latencyFindings(url: URL, sample: Sample, p: Params): Finding<Code>[] {
  const findings: Finding<Code>[] = [];
  const requested = sample.times.length + sample.errors.length;
  if (sample.times.length > 0) {
    const s = stats(sample.times);
    if (s.p95 > p.p95Ms) {
      const critical = s.p95 > p.p95CriticalMs;
      findings.push({
        severity: critical ? 'critical' : 'warning',
        code: 'latency_high',
        subject: display(url),
        message: `p95 ${Math.round(s.p95)} ms over ${sample.times.length} requests (${critical ? 'critical' : 'warning'} above ${critical ? p.p95CriticalMs : p.p95Ms} ms; p50 ${Math.round(s.p50)} ms, max ${Math.round(s.max)} ms)`,
        suggestion: 'Compare with the service\'s own p95 (metrics-review); look at its database (slow-queries, pg-health) and its pods\' CPU (k8s-health)',
        details: {
          ...s,
          samples: sample.times.length,
          percentiles: 'nearest rank over the successful requests',
          measured: 'each GET from sending to the end of the body, one at a time over one kept-alive connection (connection set-up excluded)',
          warningMs: p.p95Ms,
          criticalMs: p.p95CriticalMs,
          sampleCutShort: sample.cutShort,
        },
      });
    }
  }
  if (sample.errors.length > 0) {
    findings.push({
      severity: 'warning',
      code: 'health_intermittent',
      subject: display(url),
      message: `${sample.errors.length} of ${requested} sample requests to ${display(url)} failed (${sample.errors[0]!}), though the first answered`,
      suggestion: 'Some instances or requests fail: look at the pods behind the service (k8s-health) and its error logs',
      details: { failed: sample.errors.length, requested, reasons: [...new Set(sample.errors)].slice(0, 10) },
    });
  }
  return findings;
}

// --- the latency sample -----------------------------------------------------

interface Sample {
  /** Milliseconds of the successful requests, in order. */
  times: number[];
  errors: string[];
  /** Stopped before `samples` requests because the budget ran out. */
  cutShort: boolean;
}

async function sampleLatency(url: URL, p: Params, probe: HttpProbe, signal: AbortSignal): Promise<Sample> {
  const connection = probe.keptAlive(url);
  const deadline = performance.now() + p.sampleBudgetMs;
  const sample: Sample = { times: [], errors: [], cutShort: false };
  try {
    for (let i = 0; i < p.samples; i++) {
      if (signal.aborted) throw signal.reason;
      const remaining = deadline - performance.now();
      if (remaining <= 0) {
        sample.cutShort = true;
        break;
      }
      const timeoutMs = Math.max(1, Math.floor(Math.min(p.timeoutMs, remaining)));
      const r = await connection.get(url, { timeoutMs });
      if (r.answer && isSuccess(r.answer.status)) sample.times.push(r.answer.ms);
      else if (r.answer) sample.errors.push(`answered ${statusLine(r.answer)}`);
      else if (timeoutMs < p.timeoutMs) sample.cutShort = true; // the budget, not the service, ran out
      else sample.errors.push(r.failure!);
    }
  } finally {
    connection.close();
  }
  return sample;
}

/**
 * The p-th percentile by nearest rank: the smallest value with at least p %
 * of the values at or below it (no interpolation). `sorted` ascending, non-empty.
 */
export function nearestRank(sorted: readonly number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

function stats(times: readonly number[]): { p50: number; p95: number; max: number; min: number } {
  const sorted = [...times].sort((a, b) => a - b);
  return { p50: round(nearestRank(sorted, 50)), p95: round(nearestRank(sorted, 95)), max: round(sorted.at(-1)!), min: round(sorted[0]!) };
}

// --- detailed health ---------------------------------------------------------

/** readDetailedHealth keeps at most 100 components: all of them are shown. */
function scrubComponents(components: HealthComponent[], scrub: (s: string) => string): HealthComponent[] {
  return components.map((c) => ({ name: scrub(c.name), status: scrub(c.status) }));
}

// --- small helpers ----------------------------------------------------------

function isSuccess(status: number): boolean {
  return status >= 200 && status < 300;
}

function statusLine(a: HttpAnswer): string {
  return `${a.status}${a.statusText ? ` ${a.statusText}` : ''}`;
}

/** The URL as findings show it: no credentials, no query string (either may hold a secret). */
function display(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

/** Where a redirect points, shown like any URL (relative ones resolved). */
function redirectTarget(from: URL, location: string): string {
  try {
    return display(new URL(location, from));
  } catch {
    return '(unreadable Location header)';
  }
}

/** TLS verification failures, by their OpenSSL / Node codes. */
function tlsReason(reason: string): boolean {
  return /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ALTNAME|certificate/i.test(reason);
}

function excerpt(text: string): string | undefined {
  const t = text.trim();
  if (!t) return undefined;
  return t.length > BODY_EXCERPT_CHARS ? `${t.slice(0, BODY_EXCERPT_CHARS)}…` : t;
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
