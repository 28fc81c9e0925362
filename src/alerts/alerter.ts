/**
 * Alerts on results. Each finding (or, for an `error` run, the run itself:
 * code `run_error`, subject = target, critical) is a problem identified by
 * (task, target, code, subject). For each:
 * - a waiver that accepts it: it does not alert (and an open alert on it
 *   is resolved, with the waiver's reason);
 * - the first route that matches picks its channels (none: nobody is told);
 * - a silence or maintenance window that covers it: it is stored as held
 *   and sent by the sweep once the hold ends, if still open;
 * - otherwise it is sent once, again after its route's repeat interval or
 *   at once if its severity rises, and a "resolved" message goes out when a
 *   later run of the same (task, target) no longer has it.
 * Each channel gets one message per run with the problems routed to it.
 *
 * State lives in caretaker.alerts (see alert-state.ts), so several workers
 * send one alert, not one each. `onResult` never throws: a failing channel
 * is retried, logged, recorded in caretaker.notifier_failures and shown by
 * `health()`; when no channel delivered, the state is rolled back so the
 * next run tries again. A channel's error text is cleaned once, before any
 * of those: scrubbed of every secret value in the config and with its URLs
 * cut to scheme, host and port (cleanNotifierError).
 */
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config/schema';
import type { TaskResult } from '../contract/result';
import { configSecrets } from '../config/secrets';
import { coerceError } from '../errors';
import { redactSecretsIn } from '../logger';
import type { Finding, Severity } from '../contract/result';
import { AlertState, RUN_ERROR_CODE, type AlertProblem, type AlertRow } from './alert-state';
import { alertEvent, alertMessage, heldAlertMessage, problemKey, resolvedMessage } from './messages';
import { createNotifiers } from './notifiers';
import { cleanNotifierError, type AlertMessage, type Notifier, type RetryPolicy } from './notifier';
import { routeFor } from './routing';
import { loadSuppressions } from './suppress/suppressions';
import type { ProblemIdentity } from './matchers';

/** One failed delivery: when, and why (cleaned: no secret, no webhook path). */
export interface ChannelFailure {
  at: string;
  error: string;
}

/** What this process knows of its channels' health. */
export interface AlerterHealth {
  /** The newest failure per channel (`email`, `webhook`) in this process, if any. */
  lastFailure?: Record<string, ChannelFailure>;
}

/** What `createAlerter` needs. */
export interface AlerterOptions {
  /** The whole config: its channels, the public URL for job links, and every secret value, scrubbed from the channels' errors. */
  config: Config;
  /** The state database. */
  state: Pool;
  log: Logger;
  /** The clock (tests move it past the repeat interval). */
  now?: () => Date;
  /** Default: the channels `config.notifications` enables. */
  notifiers?: Notifier[];
  /** Retries of the default notifiers. */
  retry?: RetryPolicy;
}

/** Alerts and "resolved" messages on final results (see the file's comment). */
export interface Alerter {
  /** Alerts or resolves for one final result; never throws. */
  /**
   * `resolves: false` for a result that is not a full picture of its target
   * (a missed-run notice): it may open alerts but closes none.
   */
  onResult(result: TaskResult, jobId?: string, opts?: { resolves?: boolean }): Promise<void>;
  health(): AlerterHealth;
  /**
   * The background half, every `sweepIntervalMs`: sends what a silence or
   * window held back once the hold has ended, and re-posts open alerts to
   * channels that forget them (Alertmanager). Never throws.
   */
  sweep(): Promise<void>;
  /** How often `sweep` should run: 30 s, or more often for a channel that re-posts sooner. */
  readonly sweepIntervalMs: number;
  /** Resolves when every `onResult` and `sweep` started so far has finished (call before closing the state pool). */
  drain(): Promise<void>;
}

/** How often held alerts are looked at when no channel needs re-posts sooner. */
const SWEEP_INTERVAL_MS = 30_000;

/** A problem before routing: what the result says about it. */
type Candidate = Omit<AlertProblem, 'channels' | 'repeatSeconds'>;

/** The problems a result may alert on: its findings (each code+subject once), or the run error. */
function problemsOf(result: TaskResult): Candidate[] {
  if (result.status === 'error') {
    return [{ code: RUN_ERROR_CODE, subject: result.target, severity: 'critical', message: redactSecretsIn(result.summary) }];
  }
  const seen = new Set<string>();
  const out: Candidate[] = [];
  for (const f of result.findings) {
    const k = problemKey(f.code, f.subject);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push({ code: f.code, subject: f.subject, severity: f.severity, message: redactSecretsIn(f.message), ...(f.suggestion ? { suggestion: redactSecretsIn(f.suggestion) } : {}) });
  }
  return out;
}

const identityOf = (task: string, target: string, p: { code: string; subject: string; severity: Severity }): ProblemIdentity => ({ task, target, code: p.code, subject: p.subject, severity: p.severity });

/** An alerter on the channels `opts.config` enables (or `opts.notifiers`), its state in `opts.state`. */
export function createAlerter(opts: AlerterOptions): Alerter {
  const { config, log } = opts;
  const state = new AlertState(opts.state);
  const now = opts.now ?? (() => new Date());
  // Collected once: every channel error goes through them before it is stored, logged or shown.
  const secrets = configSecrets(config);
  const clean = (text: string) => cleanNotifierError(text, secrets);
  const notifiers = opts.notifiers ?? createNotifiers(config, opts.retry, secrets);
  const byName = new Map(notifiers.map((n) => [n.channel, n]));
  const publicUrl = config.web.publicUrl;
  const lastFailure: Record<string, ChannelFailure> = {};
  const lastRepost = new Map<string, number>();
  const inFlight = new Set<Promise<void>>();

  async function recordFailure(channel: string, reason: unknown, context: Record<string, unknown>): Promise<void> {
    const error = clean(coerceError(reason).message);
    const at = now();
    lastFailure[channel] = { at: at.toISOString(), error };
    log.error({ ...context, channel, err: error }, 'notifier failed');
    await state.recordFailure(channel, error, at).catch((err) => log.error({ channel, err: redactSecretsIn(coerceError(err).message) }, 'could not record the notifier failure'));
  }

  /** The channels a row goes to: those its route chose, or (rows older than routes) today's route. */
  function channelsOf(row: AlertRow): string[] {
    if (row.channels.length > 0) return row.channels;
    return routeFor(config, identityOf(row.task, row.target, row))?.channels ?? [];
  }

  /**
   * Sends each channel one message with the rows routed to it; returns
   * the keys of the rows at least one channel delivered. Failures are
   * logged and recorded, never thrown.
   */
  async function deliver(rows: readonly AlertRow[], build: (rows: AlertRow[]) => AlertMessage, context: Record<string, unknown>): Promise<Set<string>> {
    const perChannel = new Map<string, AlertRow[]>();
    for (const row of rows) {
      for (const c of channelsOf(row)) {
        if (!byName.has(c)) continue;
        perChannel.set(c, [...(perChannel.get(c) ?? []), row]);
      }
    }
    const sends = [...perChannel].map(([channel, list]) => ({ channel, list, work: byName.get(channel)!.send(build(list)) }));
    const outcomes = await Promise.allSettled(sends.map((s) => s.work));
    const delivered = new Set<string>();
    for (const [i, outcome] of outcomes.entries()) {
      const { channel, list } = sends[i]!;
      if (outcome.status === 'fulfilled') {
        for (const r of list) delivered.add(problemKey(r.code, r.subject));
      } else {
        await recordFailure(channel, outcome.reason, context);
      }
    }
    return delivered;
  }

  async function handle(result: TaskResult, jobId: string | undefined, resolves: boolean): Promise<void> {
    const at = now();
    const context = { task: result.task, target: result.target, jobId };
    const links = { publicUrl, jobId };
    const suppressions = await loadSuppressions(opts.state, config, at);

    const waived = new Map<string, string>();
    const present: AlertProblem[] = [];
    const sendable: AlertProblem[] = [];
    const held = new Map<string, AlertProblem[]>();
    for (const candidate of problemsOf(result)) {
      const identity = identityOf(result.task, result.target, candidate);
      const waiver = suppressions.waiverFor(identity);
      if (waiver) {
        waived.set(problemKey(candidate.code, candidate.subject), `${waiver.reason} (by ${waiver.createdBy})`);
        continue;
      }
      const route = routeFor(config, identity);
      if (!route) continue;
      const problem: AlertProblem = { ...candidate, channels: route.channels, repeatSeconds: route.repeatSeconds };
      present.push(problem);
      const hold = suppressions.holdFor(identity);
      if (hold) held.set(hold.text, [...(held.get(hold.text) ?? []), problem]);
      else sendable.push(problem);
    }

    // An `error` run says nothing about the findings: only a run that did its work resolves.
    const resolved: AlertRow[] = result.status === 'error' || !resolves ? [] : await state.resolveGone(result.task, result.target, present, at);
    for (const [why, list] of held) {
      await state.hold(result.task, result.target, list, why, { now: at, jobId });
      log.info({ ...context, held: list.map((p) => `${p.code}:${p.subject}`), why }, 'alert held back');
    }

    const claimed = await state.claim(result.task, result.target, sendable, { now: at, jobId });
    if (claimed.length > 0) {
      const shown: Finding[] = result.findings.filter((f) => f.severity !== 'info' && !waived.has(problemKey(f.code, f.subject)));
      const delivered = await deliver(claimed, (rows) => alertMessage(result, rows, shown, links), context);
      for (const row of claimed) if (!delivered.has(problemKey(row.code, row.subject))) await state.release(row, row.lastSentAt ?? at);
      const sent = claimed.filter((r) => delivered.has(problemKey(r.code, r.subject)));
      if (sent.length > 0) log.info({ ...context, alerts: sent.map((r) => `${r.code}:${r.subject}`) }, 'alert sent');
    }

    // Only problems someone was told about get a "resolved" message.
    const announced = resolved.filter((r) => r.lastSentAt !== null);
    if (announced.length > 0) {
      const delivered = await deliver(announced, (rows) => resolvedMessage(result, rows, links, waived), context);
      for (const row of announced) if (!delivered.has(problemKey(row.code, row.subject))) await state.unresolve(row, row.resolvedAt ?? at);
      const sent = announced.filter((r) => delivered.has(problemKey(r.code, r.subject)));
      if (sent.length > 0) log.info({ ...context, resolved: sent.map((r) => `${r.code}:${r.subject}`) }, 'resolved message sent');
    }
  }

  /** Sends what a hold kept back, once nothing holds it (and no waiver took it since). */
  async function sendReleased(at: Date): Promise<void> {
    const rows = await state.held();
    if (rows.length === 0) return;
    const suppressions = await loadSuppressions(opts.state, config, at);
    const free = rows.filter((r) => {
      const identity = identityOf(r.task, r.target, r);
      return !suppressions.holdFor(identity) && !suppressions.waiverFor(identity);
    });
    const byCheck = new Map<string, AlertRow[]>();
    for (const r of free) byCheck.set(`${r.task}\u0000${r.target}`, [...(byCheck.get(`${r.task}\u0000${r.target}`) ?? []), r]);
    for (const list of byCheck.values()) {
      const claimed: AlertRow[] = [];
      for (const r of list) {
        const row = await state.claimHeld(r, at);
        if (row) claimed.push(row);
      }
      if (claimed.length === 0) continue;
      const context = { task: claimed[0]!.task, target: claimed[0]!.target };
      const delivered = await deliver(claimed, (group) => heldAlertMessage(group, publicUrl), context);
      for (const row of claimed) if (!delivered.has(problemKey(row.code, row.subject))) await state.release(row, row.lastSentAt ?? at);
      log.info({ ...context, alerts: claimed.map((r) => `${r.code}:${r.subject}`) }, 'held alert sent: its silence or window ended');
    }
  }

  /** Re-posts the open alerts of each channel that forgets them, when its interval has passed. */
  async function repostOpen(at: Date): Promise<void> {
    for (const n of notifiers) {
      if (!n.repost || !n.repostSeconds) continue;
      const last = lastRepost.get(n.channel);
      if (last !== undefined && at.getTime() - last < n.repostSeconds * 1000) continue;
      lastRepost.set(n.channel, at.getTime());
      const rows = await state.openOn(n.channel);
      if (rows.length === 0) continue;
      await n.repost(rows.map((r) => alertEvent(r, { publicUrl }))).catch((err: unknown) => recordFailure(n.channel, err, { repost: rows.length }));
    }
  }

  const track = (work: Promise<void>) => {
    inFlight.add(work);
    void work.finally(() => inFlight.delete(work));
    return work;
  };

  const repostEvery = notifiers.flatMap((n) => (n.repost && n.repostSeconds ? [n.repostSeconds * 1000] : []));

  return {
    onResult(result, jobId, opts) {
      if (result.skipped || notifiers.length === 0) return Promise.resolve();
      return track(
        handle(result, jobId, opts?.resolves ?? true).catch((err: unknown) => {
          log.error({ task: result.task, target: result.target, jobId, err: clean(coerceError(err).message) }, 'alerting failed');
        }),
      );
    },
    sweep() {
      if (notifiers.length === 0) return Promise.resolve();
      const at = now();
      return track(
        (async () => {
          await sendReleased(at).catch((err: unknown) => log.error({ err: clean(coerceError(err).message) }, 'sending held alerts failed'));
          await repostOpen(at).catch((err: unknown) => log.error({ err: clean(coerceError(err).message) }, 're-posting open alerts failed'));
        })(),
      );
    },
    sweepIntervalMs: Math.min(SWEEP_INTERVAL_MS, ...repostEvery),
    health() {
      return Object.keys(lastFailure).length > 0 ? { lastFailure: { ...lastFailure } } : {};
    },
    async drain() {
      await Promise.all([...inFlight]);
    },
  };
}
