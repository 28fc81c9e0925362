/**
 * Alerts on results: a run that ends `critical` or `error` alerts at once;
 * the same problem (task, target, code, subject) alerts once, then again
 * only after `notifications.repeatAlertSeconds`, and a "resolved" message
 * goes out when a later run of the same (task, target) no longer has it.
 * An `error` run is the problem (code `run_error`, subject = target).
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
import { AlertState, RUN_ERROR_CODE, type AlertProblem, type AlertRow } from './alert-state';
import { alertMessage, jobLink, resolvedMessage } from './messages';
import { cleanNotifierError, createNotifiers, type AlertMessage, type Notifier, type RetryPolicy } from './notifiers';

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
  /** Resolves when every `onResult` started so far has finished (call before closing the state pool). */
  drain(): Promise<void>;
}

/** The problems a result alerts on: its critical findings, or the run error. */
function problemsOf(result: TaskResult): AlertProblem[] {
  if (result.status === 'error') {
    return [{ code: RUN_ERROR_CODE, subject: result.target, severity: 'critical', message: redactSecretsIn(result.summary) }];
  }
  const seen = new Set<string>();
  const out: AlertProblem[] = [];
  for (const f of result.findings) {
    const k = `${f.code}\u0000${f.subject}`;
    if (f.severity !== 'critical' || seen.has(k)) continue;
    seen.add(k);
    out.push({ code: f.code, subject: f.subject, severity: f.severity, message: redactSecretsIn(f.message) });
  }
  return out;
}

/** An alerter on the channels `opts.config` enables (or `opts.notifiers`), its state in `opts.state`. */
export function createAlerter(opts: AlerterOptions): Alerter {
  const { config, log } = opts;
  const state = new AlertState(opts.state);
  const now = opts.now ?? (() => new Date());
  // Collected once: every channel error goes through them before it is stored, logged or shown.
  const secrets = configSecrets(config);
  const clean = (text: string) => cleanNotifierError(text, secrets);
  const notifiers = opts.notifiers ?? createNotifiers(config.notifications, opts.retry, secrets);
  const repeatSeconds = config.notifications.repeatAlertSeconds;
  const lastFailure: Record<string, ChannelFailure> = {};
  const inFlight = new Set<Promise<void>>();

  /** Sends on every channel; returns how many delivered. Failures are logged and recorded, never thrown. */
  async function deliver(message: AlertMessage, context: Record<string, unknown>): Promise<number> {
    const outcomes = await Promise.allSettled(notifiers.map((n) => n.send(message)));
    let delivered = 0;
    for (const [i, outcome] of outcomes.entries()) {
      const channel = notifiers[i]!.channel;
      if (outcome.status === 'fulfilled') {
        delivered++;
        continue;
      }
      const error = clean(coerceError(outcome.reason).message);
      const at = now();
      lastFailure[channel] = { at: at.toISOString(), error };
      log.error({ ...context, channel, kind: message.kind, err: error }, 'notifier failed');
      await state.recordFailure(channel, error, at).catch((err) => log.error({ channel, err: redactSecretsIn(coerceError(err).message) }, 'could not record the notifier failure'));
    }
    return delivered;
  }

  async function handle(result: TaskResult, jobId: string | undefined, resolves: boolean): Promise<void> {
    const at = now();
    const context = { task: result.task, target: result.target, jobId };
    const link = jobLink(config.web.publicUrl, jobId);
    const problems = problemsOf(result);

    // An `error` run says nothing about the findings: only a run that did its work resolves.
    const resolved: AlertRow[] = result.status === 'error' || !resolves ? [] : await state.resolveGone(result.task, result.target, problems, at);

    const alerting = result.status === 'critical' || result.status === 'error';
    const claimed = alerting ? await state.claim(result.task, result.target, problems, { now: at, jobId, repeatSeconds }) : [];
    if (claimed.length > 0) {
      const delivered = await deliver(alertMessage(result, claimed, link, jobId), context);
      if (delivered === 0) {
        for (const row of claimed) await state.release(row, row.lastSentAt ?? at);
      } else {
        log.info({ ...context, alerts: claimed.map((r) => `${r.code}:${r.subject}`) }, 'alert sent');
      }
    }

    // Only problems someone was told about get a "resolved" message.
    const announced = resolved.filter((r) => r.lastSentAt !== null);
    if (announced.length > 0) {
      const delivered = await deliver(resolvedMessage(result, announced, link, jobId), context);
      if (delivered === 0) {
        for (const row of announced) await state.unresolve(row, row.resolvedAt ?? at);
      } else {
        log.info({ ...context, resolved: announced.map((r) => `${r.code}:${r.subject}`) }, 'resolved message sent');
      }
    }
  }

  return {
    onResult(result, jobId, opts) {
      if (result.skipped || notifiers.length === 0) return Promise.resolve();
      const work = handle(result, jobId, opts?.resolves ?? true).catch((err: unknown) => {
        log.error({ task: result.task, target: result.target, jobId, err: clean(coerceError(err).message) }, 'alerting failed');
      });
      inFlight.add(work);
      void work.finally(() => inFlight.delete(work));
      return work;
    },
    health() {
      return Object.keys(lastFailure).length > 0 ? { lastFailure: { ...lastFailure } } : {};
    },
    async drain() {
      await Promise.all([...inFlight]);
    },
  };
}
