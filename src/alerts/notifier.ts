/**
 * What every alert channel is (a Notifier), what it is told (an
 * AlertMessage of AlertEvents) and how it retries: the channels in
 * channels/ and notifiers.ts build on this, and nothing here knows them.
 */
import type { Severity } from '../contract/result';
import { coerceError } from '../errors';
import { originsOnlyIn, redactSecretsIn, scrubSecrets } from '../logger';
import { withTimeout } from '../util/timeout';

/**
 * A notifier's error text as it may be stored, logged and shown: every
 * known secret value replaced by `***` (a server's reply may quote the
 * password it refused), then every URL cut to its scheme, host and port (a
 * webhook's path and query are its credential, whatever the list of
 * secrets holds), then any URL password left in an unparsable URL masked.
 */
export function cleanNotifierError(text: string, secrets: readonly string[]): string {
  return redactSecretsIn(originsOnlyIn(scrubSecrets(text, secrets)));
}

/**
 * One problem as event-based channels (Alertmanager, PagerDuty) see it:
 * its identity, words and links. Strings are already scrubbed of secrets.
 */
export interface AlertEvent {
  task: string;
  target: string;
  code: string;
  subject: string;
  severity: Severity;
  /** One line: Alertmanager's summary, PagerDuty's payload.summary. */
  summary: string;
  message: string;
  suggestion?: string;
  openedAt: Date;
  /** Set on a "resolved" event. */
  resolvedAt?: Date;
  /** The console's page of the run that raised (or resolved) it, when `web.publicUrl` is set. */
  runUrl?: string;
  /** The console's page of the check (task on target), when `web.publicUrl` is set. */
  checkUrl?: string;
}

/** What one notification says, channel-neutral. */
export interface AlertMessage {
  kind: 'alert' | 'resolved';
  /** One line: the email subject. */
  title: string;
  /** Plain text: the email body and the webhook's `text`. */
  text: string;
  /** Structured fields for the webhook's consumers. */
  fields: Record<string, unknown>;
  /** The problems this message announces (kind alert) or resolves (kind resolved), one event each. */
  events: AlertEvent[];
}

/** One alert channel. */
export interface Notifier {
  /** The channel's name (`email`, `webhook`, or its key under notifications.channels): in notifier_failures and health(). */
  readonly channel: string;
  send(message: AlertMessage): Promise<void>;
  /**
   * Channels that forget an alert they stop hearing about (Alertmanager)
   * re-post the open ones: the alerter calls this every `repostSeconds`
   * with every open, delivered alert routed to this channel.
   */
  readonly repostSeconds?: number;
  repost?(open: readonly AlertEvent[]): Promise<void>;
}

/** Attempts and waits between them; the defaults keep a dead channel under ~10 s in total. */
export interface RetryPolicy {
  attempts: number;
  /** Wait before attempt 2, 3, ... (the last entry repeats). */
  backoffMs: readonly number[];
  /** One attempt's bound (connect + send). */
  attemptTimeoutMs: number;
}

/** 3 attempts of at most 2.5 s, 0.2 s and 0.8 s apart: at most 8.5 s per channel. */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 3, backoffMs: [200, 800], attemptTimeoutMs: 2_500 };

/** An error not worth retrying (a webhook answering 4xx). */
export class PermanentError extends Error {
  override name = 'PermanentError';
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/**
 * Runs `attempt` up to policy.attempts times; throws the last error, its
 * message cleaned with `cleanNotifierError` of `secrets`.
 */
export async function withRetry(policy: RetryPolicy, attempt: () => Promise<void>, secrets: readonly string[] = []): Promise<void> {
  let last: Error = new Error('no attempt made');
  for (let i = 0; i < policy.attempts; i++) {
    if (i > 0) await sleep(policy.backoffMs[Math.min(i - 1, policy.backoffMs.length - 1)] ?? 0);
    try {
      await withTimeout(attempt(), policy.attemptTimeoutMs);
      return;
    } catch (err) {
      last = coerceError(err);
      if (last instanceof PermanentError) break;
    }
  }
  throw new Error(`${cleanNotifierError(last.message, secrets)} (after ${policy.attempts > 1 && !(last instanceof PermanentError) ? `${policy.attempts} attempts` : 'one attempt'})`);
}
