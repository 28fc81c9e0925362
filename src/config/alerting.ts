/**
 * Resolves the alerting config into what the alerter uses: every channel
 * by name (the legacy `notifications.email` and `notifications.webhook`
 * become the channels `email` and `webhook`) and the routes, with the
 * runbook's default when none are configured:
 *   critical → every channel (page on-call now);
 *   warning  → the team's channels (webhooks) and Alertmanager, once a day;
 *   info     → nobody (the weekly report).
 */
import type { ChannelConfig, ProblemMatch, RouteConfig } from './alerting-schema';
import type { Severity } from '../contract/result';

/** A route as the alerter applies it. */
export interface ResolvedRoute {
  match: ProblemMatch;
  channels: string[];
  /** Set when the config gave one; otherwise by severity (defaultRepeatSeconds). */
  repeatSeconds?: number;
  /** Where it came from, for messages: `notifications.routes[2]` or `default`. */
  source: string;
}

export interface ResolvedAlerting {
  channels: Record<string, ChannelConfig>;
  routes: ResolvedRoute[];
  /** true when the routes are the runbook's default (no `notifications.routes`). */
  defaultRoutes: boolean;
}

/** The part of the parsed config this reads. */
export interface NotificationsInput {
  email?: { smtp: Extract<ChannelConfig, { kind: 'email' }>['smtp']; from: string; to: string[]; onCall?: string[] };
  webhook?: { url: string };
  channels: Record<string, ChannelConfig>;
  routes?: RouteConfig[];
  repeatAlertSeconds: number;
}

/** Kinds that reach the team rather than page someone: where warnings go by default. */
const TEAM_KINDS = new Set<ChannelConfig['kind']>(['webhook', 'alertmanager']);

export const WARNING_REPEAT_SECONDS = 86_400;

/** A route without `repeatSeconds`: a day for warnings, `repeatAlertSeconds` for the rest. */
export function defaultRepeatSeconds(severity: Severity, repeatAlertSeconds: number): number {
  return severity === 'warning' ? WARNING_REPEAT_SECONDS : repeatAlertSeconds;
}

/** Every channel by name; `problems` lists names given twice. */
export function resolveChannels(n: NotificationsInput): { channels: Record<string, ChannelConfig>; problems: string[] } {
  const channels: Record<string, ChannelConfig> = {};
  const problems: string[] = [];
  if (n.email) channels.email = { kind: 'email', smtp: n.email.smtp, from: n.email.from, to: n.email.onCall ?? n.email.to };
  if (n.webhook) channels.webhook = { kind: 'webhook', url: n.webhook.url };
  for (const [name, channel] of Object.entries(n.channels)) {
    if (Object.hasOwn(channels, name)) {
      problems.push(`notifications.channels.${name}: the name is taken by notifications.${name}; rename the channel`);
      continue;
    }
    channels[name] = channel;
  }
  return { channels, problems };
}

export function resolveAlerting(n: NotificationsInput): { alerting: ResolvedAlerting; problems: string[] } {
  const { channels, problems } = resolveChannels(n);
  const names = Object.keys(channels);
  if (!n.routes) {
    const team = names.filter((c) => TEAM_KINDS.has(channels[c]!.kind));
    const routes: ResolvedRoute[] = [
      { match: { severity: 'critical' }, channels: names, source: 'default' },
      { match: { severity: 'warning' }, channels: team, source: 'default' },
    ];
    return { alerting: { channels, routes, defaultRoutes: true }, problems };
  }
  const routes = n.routes.map((r, i): ResolvedRoute => {
    for (const [j, c] of r.channels.entries()) {
      if (!Object.hasOwn(channels, c)) problems.push(`notifications.routes[${i}].channels[${j}]: no channel named ${JSON.stringify(c)} (channels: ${names.join(', ') || 'none'})`);
    }
    return { match: r.match, channels: [...new Set(r.channels)], repeatSeconds: r.repeatSeconds, source: `notifications.routes[${i}]` };
  });
  return { alerting: { channels, routes, defaultRoutes: false }, problems };
}
