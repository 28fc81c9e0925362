/**
 * Where alerts go: email (nodemailer, to `onCall ?? to`) and a webhook
 * (POST JSON with a Slack-compatible `text` plus structured fields). Each
 * `send` tries a few times with a short backoff and either resolves or
 * throws one error whose message carries no secret (no SMTP password, no
 * webhook path or token).
 */
import type { Config } from '../config/schema';
import { createSmtpTransport, type EmailSettings } from '../clients/smtp';
import { coerceError } from '../errors';
import { redactSecretsIn } from '../logger';
import { withTimeout } from '../util/timeout';

/** What one notification says, channel-neutral. */
export interface AlertMessage {
  kind: 'alert' | 'resolved';
  /** One line: the email subject. */
  title: string;
  /** Plain text: the email body and the webhook's `text`. */
  text: string;
  /** Structured fields for the webhook's consumers. */
  fields: Record<string, unknown>;
}

export interface Notifier {
  /** `email` or `webhook`: the channel named in notifier_failures and health(). */
  readonly channel: string;
  send(message: AlertMessage): Promise<void>;
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

/** Runs `attempt` up to policy.attempts times; throws the last error, message redacted. */
export async function withRetry(policy: RetryPolicy, attempt: () => Promise<void>): Promise<void> {
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
  throw new Error(`${redactSecretsIn(last.message)} (after ${policy.attempts > 1 && !(last instanceof PermanentError) ? `${policy.attempts} attempts` : 'one attempt'})`);
}

/** Only scheme, host and port: a webhook's path or query is often its secret (Slack, Teams). */
function describeEndpoint(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return '[unparsable url]';
  }
}

/** Network errors from fetch hide the reason in `cause`. */
function fetchReason(err: unknown): string {
  const e = coerceError(err);
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'timed out';
  const cause = (e as { cause?: unknown }).cause;
  if (cause) {
    const c = coerceError(cause);
    const code = (c as { code?: unknown }).code;
    return typeof code === 'string' ? code : c.message || e.message;
  }
  return e.message;
}

export function createWebhookNotifier(opts: { url: string; retry?: RetryPolicy }): Notifier {
  const retry = opts.retry ?? DEFAULT_RETRY;
  const endpoint = describeEndpoint(opts.url);
  return {
    channel: 'webhook',
    async send(message) {
      const body = JSON.stringify({ text: message.text, kind: message.kind, title: message.title, ...message.fields });
      await withRetry(retry, async () => {
        let res: Response;
        try {
          res = await fetch(opts.url, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body,
            signal: AbortSignal.timeout(retry.attemptTimeoutMs),
          });
        } catch (err) {
          throw new Error(`webhook ${endpoint}: ${fetchReason(err)}`);
        }
        // Drain the body so the connection is released.
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) return;
        const msg = `webhook ${endpoint}: HTTP ${res.status}`;
        throw res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429 ? new PermanentError(msg) : new Error(msg);
      });
    },
  };
}

export function createEmailNotifier(opts: { email: EmailSettings; retry?: RetryPolicy }): Notifier {
  const retry = opts.retry ?? DEFAULT_RETRY;
  const { smtp, from } = opts.email;
  const to = opts.email.onCall ?? opts.email.to;
  const where = `smtp ${smtp.host}:${smtp.port}`;
  return {
    channel: 'email',
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
      });
    },
  };
}

/** The names of the alert channels the config enables (`email`, `webhook`); empty: alerts reach nobody. */
export function alertChannels(notifications: Config['notifications']): string[] {
  return [notifications.email ? 'email' : undefined, notifications.webhook ? 'webhook' : undefined].filter((c): c is string => c !== undefined);
}

/** The notifiers the config enables (none, one or both). */
export function createNotifiers(notifications: Config['notifications'], retry?: RetryPolicy): Notifier[] {
  const out: Notifier[] = [];
  if (notifications.email) out.push(createEmailNotifier({ email: notifications.email, retry }));
  if (notifications.webhook) out.push(createWebhookNotifier({ url: notifications.webhook.url, retry }));
  return out;
}
