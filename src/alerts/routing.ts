/**
 * Which channels hear of a problem: the first route whose match covers it
 * (severity, task, target, code, subject; exact or glob). No matching
 * route, or a route with no channels: nobody is told (the console and the
 * report still show it). See src/config/alerting.ts for the default routes.
 */
import type { Config } from '../config/schema';
import { defaultRepeatSeconds, type ResolvedRoute } from '../config/alerting';
import { globMatch, isGlob, matcherText, problemMatches, type ProblemIdentity, type ProblemMatcher } from './matchers';

export interface Routing {
  channels: string[];
  repeatSeconds: number;
  route: ResolvedRoute;
}

/** The route for `p`, or undefined when no channel hears of it. */
export function routeFor(config: Pick<Config, 'alerting' | 'notifications'>, p: ProblemIdentity): Routing | undefined {
  const route = config.alerting.routes.find((r) => problemMatches(r.match, p));
  if (!route || route.channels.length === 0) return undefined;
  return { channels: route.channels, repeatSeconds: route.repeatSeconds ?? defaultRepeatSeconds(p.severity, config.notifications.repeatAlertSeconds), route };
}

const severities = (m: ProblemMatcher) => (m.severity === undefined ? undefined : typeof m.severity === 'string' ? [m.severity] : [...m.severity]);

/** True when every problem `later` matches, `earlier` matches too: `later` can never be reached. */
function covers(earlier: ProblemMatcher, later: ProblemMatcher): boolean {
  const e = severities(earlier);
  const l = severities(later);
  if (e !== undefined && (l === undefined || !l.every((s) => e.includes(s)))) return false;
  return (['task', 'target', 'code', 'subject'] as const).every((k) => {
    const a = earlier[k];
    const b = later[k];
    if (a === undefined) return true;
    if (b === undefined) return false;
    return a === b || (isGlob(a) && !isGlob(b) && globMatch(a, b));
  });
}

/**
 * What check-config says about the routes (the config is valid either
 * way): a route that can never match (it names no known task or target,
 * or an earlier route takes all it would), and a channel no route uses.
 */
export function routingNotes(config: Pick<Config, 'alerting' | 'schedulers'>, knownTasks: readonly string[], knownTargets: readonly string[]): string[] {
  const notes: string[] = [];
  const { routes, channels } = config.alerting;
  routes.forEach((r, i) => {
    const where = `${r.source} (${matcherText(r.match)})`;
    if (r.match.task !== undefined && !knownTasks.some((t) => globMatch(r.match.task!, t))) {
      notes.push(`${where} can never match: no task ${JSON.stringify(r.match.task)}`);
      return;
    }
    if (r.match.target !== undefined && !knownTargets.some((t) => globMatch(r.match.target!, t))) {
      notes.push(`${where} can never match: no target ${JSON.stringify(r.match.target)}`);
      return;
    }
    const earlier = routes.slice(0, i).findIndex((e) => covers(e.match, r.match));
    if (earlier >= 0) notes.push(`${where} can never match: ${routes[earlier]!.source} (${matcherText(routes[earlier]!.match)}) takes every problem it would`);
  });
  const used = new Set(routes.flatMap((r) => r.channels));
  for (const name of Object.keys(channels)) if (!used.has(name)) notes.push(`channel ${name} is in no route: it is never sent anything`);
  return notes;
}
