/**
 * Where alerts go: email (nodemailer, to `onCall ?? to`) and a webhook
 * (POST JSON with a Slack-compatible `text` plus structured fields). Each
 * `send` tries a few times with a short backoff and either resolves or
 * throws one error whose message carries no secret (no SMTP password, no
 * webhook credentials, path or token): see `cleanNotifierError`.
 */
import type { Config } from '../config/schema';
import type { ChannelConfig } from '../config/alerting-schema';
import { createAlertmanagerNotifier } from './channels/alertmanager';
import { createPagerdutyNotifier } from './channels/pagerduty';
import { webhookSecrets } from '../config/secrets';
import { createSmtpTransport, type EmailSettings } from '../clients/smtp';
import { coerceError } from '../errors';
import { requestWithoutCredentials } from '../util/url-credentials';
import { DEFAULT_RETRY, PermanentError, withRetry, type AlertMessage, type Notifier, type RetryPolicy } from './notifier';
import { urlOrigin, fetchFailureReason } from '../util/fetch-errors';

/**
 * The alert webhook: POSTs each message as JSON. Its errors name only the
 * endpoint's scheme, host and port, and are scrubbed of `secrets` and of
 * the webhook URL's own.
 */
export function createWebhookNotifier(opts: { name?: string; url: string; retry?: RetryPolicy; secrets?: readonly string[] }): Notifier {
  const retry = opts.retry ?? DEFAULT_RETRY;
  const endpoint = urlOrigin(opts.url);
  const request = requestWithoutCredentials(opts.url);
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
