/**
 * Where alerts go: email (nodemailer, to `onCall ?? to`) and a webhook
 * (POST JSON with a Slack-compatible `text` plus structured fields). Each
 * `send` tries a few times with a short backoff and either resolves or
 * throws one error whose message carries no secret (no SMTP password, no
 * webhook credentials, path or token): see `cleanNotifierError`.
 */
import type { Config } from '../config/schema';
import type { ChannelConfig } from '../config/alerting-schema';
import type { Severity } from '../contract/result';
import { createAlertmanagerNotifier } from './channels/alertmanager';
import { createPagerdutyNotifier } from './channels/pagerduty';
import { webhookSecrets } from '../config/secrets';
import { createSmtpTransport, type EmailSettings } from '../clients/smtp';
import { coerceError } from '../errors';
import { basicAuthToken, originsOnlyIn, redactSecretsIn, safeDecode, scrubSecrets } from '../logger';
import { withTimeout } from '../util/timeout';
import { urlOrigin, fetchFailureReason } from '../util/fetch-errors';

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
class PermanentError extends Error {
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

/**
 * Where the webhook's POST goes and how it logs in. fetch refuses a URL
 * with `user:pass@` in it, so credentials in the configured URL become an
 * `Authorization: Basic` header and leave the URL fetch is given.
 */
export function webhookRequest(url: string): { url: string; headers: Record<string, string> } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { url, headers: {} };
  }
  if (!parsed.username && !parsed.password) return { url, headers: {} };
  const user = safeDecode(parsed.username);
  const password = safeDecode(parsed.password);
  parsed.username = '';
  parsed.password = '';
  return { url: parsed.toString(), headers: { authorization: `Basic ${basicAuthToken(user, password)}` } };
}

/**
 * The alert webhook: POSTs each message as JSON. Its errors name only the
 * endpoint's scheme, host and port, and are scrubbed of `secrets` and of
 * the webhook URL's own.
 */
export function createWebhookNotifier(opts: { name?: string; url: string; retry?: RetryPolicy; secrets?: readonly string[] }): Notifier {
  const retry = opts.retry ?? DEFAULT_RETRY;
  const endpoint = urlOrigin(opts.url);
  const request = webhookRequest(opts.url);
  const secrets = [...(opts.secrets ?? []), ...webhookSecrets(opts.url)];
  return {
    channel: opts.name ?? 'webhook',
    async send(message) {
      const body = JSON.stringify({ text: message.text, kind: message.kind, title: message.title, ...message.fields });
      await withRetry(retry, async () => {
        let res: Response;
        try {
          res = await fetch(request.url, {
            method: 'POST',
            headers: { 'content-type': 'application/json', ...request.headers },
            body,
            signal: AbortSignal.timeout(retry.attemptTimeoutMs),
          });
        } catch (err) {
          throw new Error(`webhook ${endpoint}: ${fetchFailureReason(err)}`);
        }
        // Drain the body so the connection is released.
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) return;
        const msg = `webhook ${endpoint}: HTTP ${res.status}`;
        throw res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429 ? new PermanentError(msg) : new Error(msg);
      }, secrets);
    },
  };
}

/**
 * Alert emails through the configured SMTP server. Its errors are scrubbed
 * of `secrets` and of the SMTP password: a server may quote the password
 * it refused in its 535 reply.
 */
export function createEmailNotifier(opts: { name?: string; email: EmailSettings; retry?: RetryPolicy; secrets?: readonly string[] }): Notifier {
  const retry = opts.retry ?? DEFAULT_RETRY;
  const secrets = [...(opts.secrets ?? []), ...(opts.email.smtp.password ? [opts.email.smtp.password] : [])];
  const { smtp, from } = opts.email;
  const to = opts.email.to;
  const where = `smtp ${smtp.host}:${smtp.port}`;
  return {
    channel: opts.name ?? 'email',
    async send(message) {
      await withRetry(retry, async () => {
        // A transport per attempt: no pooled connection outlives a failed attempt.
        const transport = createSmtpTransport(smtp, { connectMs: retry.attemptTimeoutMs, socketMs: retry.attemptTimeoutMs });
        try {
          await transport.sendMail({ from, to, subject: message.title, text: message.text });
        } catch (err) {
          throw new Error(`${where}: ${coerceError(err).message}`);
        } finally {
          transport.close();
        }
      }, secrets);
    },
  };
}

/** The names of the alert channels the config enables; empty: alerts reach nobody. */
export function alertChannels(config: Pick<Config, 'alerting'>): string[] {
  return Object.keys(config.alerting.channels);
}

/** The notifier of one configured channel; its errors are scrubbed of `secrets` too. */
export function createNotifier(name: string, channel: ChannelConfig, retry?: RetryPolicy, secrets: readonly string[] = []): Notifier {
  switch (channel.kind) {
    case 'email':
      return createEmailNotifier({ name, email: { smtp: channel.smtp, from: channel.from, to: channel.to }, retry, secrets });
    case 'webhook':
      return createWebhookNotifier({ name, url: channel.url, retry, secrets });
    case 'alertmanager':
      return createAlertmanagerNotifier({ name, channel, retry, secrets });
    case 'pagerduty':
      return createPagerdutyNotifier({ name, channel, retry, secrets });
  }
}

/** Every configured channel's notifier, by name. */
export function createNotifiers(config: Pick<Config, 'alerting'>, retry?: RetryPolicy, secrets: readonly string[] = []): Notifier[] {
  return Object.entries(config.alerting.channels).map(([name, channel]) => createNotifier(name, channel, retry, secrets));
}
