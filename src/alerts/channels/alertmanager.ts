/**
 * The Alertmanager channel: each problem becomes one Alertmanager alert,
 * so the team's existing routes, inhibitions, silences and receivers apply
 * to caretaker's findings as to any Prometheus alert.
 *
 * Identity is the label set: `alertname` (the finding code), `severity`,
 * `task`, `target` and `subject`. Open alerts are posted without `endsAt`:
 * Alertmanager then resolves one by itself `resolve_timeout` after it last
 * heard of it, which is what it should do if caretaker dies. The alerter
 * re-posts every open alert every third of that (`repostSeconds`) to keep
 * them firing, and posts a resolution with `endsAt` as soon as a problem
 * clears.
 */
import type { ChannelConfig } from '../../config/alerting-schema';
import { AlertmanagerError, alertmanagerUrlSecrets, createAlertmanagerClient, type PostableAlert } from '../../clients/alertmanager';
import { DEFAULT_RETRY, withRetry, type AlertEvent, type Notifier, type RetryPolicy } from '../notifier';

/**
 * One event as Alertmanager's postableAlert. Empty values are left out:
 * Alertmanager drops an empty label anyway, so leaving it out keeps the
 * open and the resolved post of one problem on the same label set.
 */
export function alertmanagerAlert(event: AlertEvent, state: 'open' | 'resolved'): PostableAlert {
  const labels = nonEmpty({
    alertname: event.code,
    severity: event.severity,
    task: event.task,
    target: event.target,
    subject: event.subject,
  });
  const annotations = nonEmpty({
    summary: event.summary,
    description: event.message,
    suggestion: event.suggestion,
    runbook_url: event.runUrl,
  });
  const alert: PostableAlert = { labels, annotations, startsAt: event.openedAt.toISOString() };
  const generatorURL = event.checkUrl ?? event.runUrl;
  if (generatorURL) alert.generatorURL = generatorURL;
  if (state === 'resolved') {
    // Alertmanager refuses an alert that ends before it starts (400 "start time must be before end time").
    const endsAt = Math.max(event.resolvedAt?.getTime() ?? Date.now(), event.openedAt.getTime());
    alert.endsAt = new Date(endsAt).toISOString();
  }
  return alert;
}

function nonEmpty(fields: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(fields).filter((e): e is [string, string] => typeof e[1] === 'string' && e[1] !== ''));
}

export function createAlertmanagerNotifier(opts: { name: string; channel: Extract<ChannelConfig, { kind: 'alertmanager' }>; retry?: RetryPolicy; secrets?: readonly string[] }): Notifier {
  const retry = opts.retry ?? DEFAULT_RETRY;
  const secrets = [...(opts.secrets ?? []), ...alertmanagerUrlSecrets(opts.channel.url)];
  const client = createAlertmanagerClient({ url: opts.channel.url, timeoutMs: retry.attemptTimeoutMs, secrets });

  async function post(alerts: PostableAlert[]): Promise<void> {
    if (alerts.length === 0) return;
    // A 4xx will not pass by asking again: later attempts repeat the refusal without re-posting.
    let refused: AlertmanagerError | undefined;
    await withRetry(
      retry,
      async () => {
        if (refused) throw refused;
        try {
          await client.postAlerts(alerts);
        } catch (err) {
          if (err instanceof AlertmanagerError && err.permanent) refused = err;
          throw err;
        }
      },
      secrets,
    );
  }

  return {
    channel: opts.name,
    repostSeconds: Math.floor(opts.channel.resolveTimeoutSeconds / 3),
    send: (message) => post(message.events.map((e) => alertmanagerAlert(e, message.kind === 'resolved' ? 'resolved' : 'open'))),
    repost: (open) => post(open.map((e) => alertmanagerAlert(e, 'open'))),
  };
}
