/**
 * The PagerDuty channel, through the Events API v2: one `trigger` event per
 * problem, and a `resolve` with the same `dedup_key` when it clears, so
 * PagerDuty opens one alert per problem and closes it by itself. Repeats
 * of an open problem are triggers with the same key, which PagerDuty folds
 * into the open alert. PagerDuty keeps alerts until resolved: no re-post.
 *
 * The routing key is the integration's credential and travels in the body:
 * it is scrubbed from every error, including a reply that quotes it.
 */
import { createHash } from 'node:crypto';
import type { ChannelConfig } from '../../config/alerting-schema';
import type { Severity } from '../../contract/result';
import { coerceError } from '../../errors';
import { secretsOfUrl } from '../../logger';
import { DEFAULT_RETRY, withRetry, type AlertEvent, type Notifier, type RetryPolicy } from '../notifier';
import { urlOrigin, fetchFailureReason } from '../../util/fetch-errors';

/** PagerDuty's limits on an event (Events API v2, "Send an alert event"). */
export const PAGERDUTY_DEDUP_KEY_MAX = 255;
export const PAGERDUTY_SUMMARY_MAX = 1024;

/** PagerDuty's severities are critical, error, warning and info: caretaker's three map to their namesakes. */
const SEVERITY: Record<Severity, 'critical' | 'warning' | 'info'> = { critical: 'critical', warning: 'warning', info: 'info' };

/** How much of an error reply goes into the message: PagerDuty's list what is invalid in the event. */
const REPLY_EXCERPT_CHARS = 300;

/** The body of POST /v2/enqueue. */
export interface PagerdutyEvent {
  routing_key: string;
  event_action: 'trigger' | 'resolve';
  dedup_key: string;
  payload?: {
    summary: string;
    source: string;
    severity: 'critical' | 'error' | 'warning' | 'info';
    timestamp?: string;
    component?: string;
    group?: string;
    class?: string;
    custom_details?: Record<string, unknown>;
  };
  links?: { href: string; text: string }[];
  client?: string;
  client_url?: string;
}

/**
 * The problem's stable identity, `caretaker/<task>/<target>/<code>/<subject>`.
 * Past PagerDuty's 255 (counted in bytes, so it also holds for characters),
 * the tail becomes a SHA-256 of the whole key: still stable, still unique.
 */
export function pagerdutyDedupKey(e: Pick<AlertEvent, 'task' | 'target' | 'code' | 'subject'>): string {
  const key = `caretaker/${e.task}/${e.target}/${e.code}/${e.subject}`;
  if (Buffer.byteLength(key, 'utf8') <= PAGERDUTY_DEDUP_KEY_MAX) return key;
  const hash = createHash('sha256').update(key, 'utf8').digest('hex');
  return `${fitBytes(key, PAGERDUTY_DEDUP_KEY_MAX - hash.length - 1)}~${hash}`;
}

/** The longest prefix of `text` within `max` UTF-8 bytes, never splitting a character. */
function fitBytes(text: string, max: number): string {
  let out = '';
  let bytes = 0;
  for (const ch of text) {
    const n = Buffer.byteLength(ch, 'utf8');
    if (bytes + n > max) break;
    out += ch;
    bytes += n;
  }
  return out;
}

function cut(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`;
}

/** One event as the Events API v2 takes it: a full trigger, or a resolve that only names the key. */
export function pagerdutyEvent(routingKey: string, event: AlertEvent, action: 'trigger' | 'resolve'): PagerdutyEvent {
  const dedup_key = pagerdutyDedupKey(event);
  if (action === 'resolve') return { routing_key: routingKey, event_action: 'resolve', dedup_key };
  const links = [
    ...(event.runUrl ? [{ href: event.runUrl, text: 'The run in caretaker' }] : []),
    ...(event.checkUrl ? [{ href: event.checkUrl, text: 'The check’s history in caretaker' }] : []),
  ];
  const clientUrl = event.checkUrl ?? event.runUrl;
  return {
    routing_key: routingKey,
    event_action: 'trigger',
    dedup_key,
    payload: {
      summary: cut(event.summary || `${event.code} on ${event.target}`, PAGERDUTY_SUMMARY_MAX),
      source: event.target,
      severity: SEVERITY[event.severity],
      timestamp: event.openedAt.toISOString(),
      ...(event.subject ? { component: event.subject } : {}),
      group: event.task,
      class: event.code,
      custom_details: {
        message: event.message,
        ...(event.suggestion ? { suggestion: event.suggestion } : {}),
        task: event.task,
        target: event.target,
        code: event.code,
        subject: event.subject,
        severity: event.severity,
        opened_at: event.openedAt.toISOString(),
      },
    },
    ...(links.length ? { links } : {}),
    client: 'caretaker',
    ...(clientUrl ? { client_url: clientUrl } : {}),
  };
}

/** A failed POST; `permanent` for a refusal that will not pass by asking again (4xx but 408 and 429). */
class EnqueueError extends Error {
  constructor(
    message: string,
    readonly permanent: boolean,
  ) {
    super(message);
  }
}

export function createPagerdutyNotifier(opts: { name: string; channel: Extract<ChannelConfig, { kind: 'pagerduty' }>; retry?: RetryPolicy; secrets?: readonly string[] }): Notifier {
  const retry = opts.retry ?? DEFAULT_RETRY;
  const { routingKey, url } = opts.channel;
  const secrets = [...(opts.secrets ?? []), routingKey, encodeURIComponent(routingKey), ...secretsOfUrl(url)];
  const endpoint = urlOrigin(url);

  async function enqueue(body: PagerdutyEvent): Promise<void> {
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(retry.attemptTimeoutMs),
        // The routing key is in the body: never resend it wherever a redirect points.
        redirect: 'error',
      });
      text = await res.text();
    } catch (err) {
      throw new EnqueueError(`pagerduty ${endpoint}: ${fetchFailureReason(err)}`, false);
    }
    // PagerDuty answers 202 Accepted; any 2xx means it took the event.
    if (res.ok) return;
    const permanent = res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429;
    throw new EnqueueError(`pagerduty ${endpoint}: HTTP ${res.status}${replyReason(text)}`, permanent);
  }

  return {
    channel: opts.name,
    async send(message) {
      const action = message.kind === 'resolved' ? 'resolve' : 'trigger';
      // One event per request (the API takes no batches); the same problem twice is one event.
      const pending = new Map<string, PagerdutyEvent>();
      for (const e of message.events) pending.set(pagerdutyDedupKey(e), pagerdutyEvent(routingKey, e, action));
      const total = pending.size;
      let refused: Error | undefined;
      await withRetry(
        retry,
        async () => {
          // Refused events will not pass by asking again: later attempts repeat the refusal.
          if (refused) throw refused;
          // Each attempt sends only what PagerDuty has not accepted yet.
          const results = await Promise.allSettled(
            [...pending].map(async ([key, body]) => {
              await enqueue(body);
              pending.delete(key);
            }),
          );
          const failures = results.flatMap((r) => (r.status === 'rejected' ? [coerceError(r.reason)] : []));
          if (failures.length === 0) return;
          const first = failures[0]!;
          const error = new Error(failures.length > 1 || total > 1 ? `${first.message} (${failures.length} of ${total} events not accepted)` : first.message);
          if (failures.every((f) => f instanceof EnqueueError && f.permanent)) refused = error;
          throw error;
        },
        secrets,
      );
    },
  };
}

/** PagerDuty's own words on a refusal (`message` and `errors`), or the start of the reply. */
function replyReason(text: string): string {
  let reason = text.trim();
  try {
    const body = JSON.parse(text) as { message?: unknown; errors?: unknown };
    const errors = Array.isArray(body.errors) ? body.errors.filter((e): e is string => typeof e === 'string') : [];
    const parts = [typeof body.message === 'string' ? body.message : '', ...errors].filter(Boolean);
    if (parts.length) reason = parts.join('; ');
  } catch {
    // Not JSON (a proxy's page): its first words.
  }
  reason = reason.replace(/\s+/g, ' ').slice(0, REPLY_EXCERPT_CHARS);
  return reason ? ` (${reason})` : '';
}

