/**
 * The frame every page of the web role shares: the header (console,
 * silences, waivers, this week's report so far, last week's, the board), the banner that says
 * when alerts reach nobody, and the HTML shell. Server-rendered; every
 * value that came from a target, a job or a config is escaped here or by
 * the caller with `escapeHtml`.
 */
import { escapeHtml as e } from '../../reports/render-html';
import { lastCompleteWeek, weekContaining } from '../../reports/week';
import { formatDuration } from '../../util/format';
import { formatInZone } from '../../schedules/cron';
import type { Response } from 'express';
import type { Config } from '../../config/schema';
import { alertChannels } from '../../alerts/notifiers';
import { roleOf, type Role } from '../auth';
import { ASSETS_PATH, BOARD_PATH, CHECKLIST_PATH, CONSOLE_PATH, REPORTS_PATH, SILENCES_PATH, WAIVERS_PATH } from '../paths';
import { ASSET_FILES } from './assets';

/** What the frame needs to know about the request and the config. */
export interface FrameContext {
  /** The report's title (the service's name), shown as the brand. */
  title: string;
  timezone: string;
  now: Date;
  role?: Role;
  /** The configured alert channels; none: the banner says alerts go nowhere. */
  alertChannels: readonly string[];
}

/** The frame of a request's page: the config's title, zone and alert channels, the caller's role, now. */
export function frameFor(config: Pick<Config, 'report' | 'timezone' | 'alerting'>): (res: Response, now?: Date) => FrameContext {
  const channels = alertChannels(config);
  return (res, now = new Date()) => ({ title: config.report.title, timezone: config.timezone, now, role: roleOf(res), alertChannels: channels });
}

export type NavItem = 'console' | 'checklist' | 'silences' | 'waivers' | 'this-week' | 'last-week';

/** Where the header's report links point, in the config's zone. */
export function reportLinks(now: Date, timezone: string): { thisWeek: string; lastWeek: string } {
  return {
    thisWeek: `${REPORTS_PATH}/${weekContaining(now, timezone).id}`,
    lastWeek: `${REPORTS_PATH}/${lastCompleteWeek(now, timezone).id}`,
  };
}

/** The header bar: the same links on every page, the current one marked for screen readers and the eye. */
export function headerHtml(ctx: FrameContext, current?: NavItem): string {
  const links = reportLinks(ctx.now, ctx.timezone);
  const item = (id: NavItem | 'board', href: string, label: string) =>
    `<a href="${e(href)}"${id === current ? ' aria-current="page"' : ''}>${e(label)}</a>`;
  return (
    `<header class="top"><span class="brand">${e(ctx.title)}</span><nav>` +
    [
      item('console', CONSOLE_PATH, 'Console'),
      item('checklist', CHECKLIST_PATH, 'Checklist'),
      item('silences', SILENCES_PATH, 'Silences'),
      item('waivers', WAIVERS_PATH, 'Waivers'),
      item('this-week', links.thisWeek, 'This week (to date)'),
      item('last-week', links.lastWeek, 'Last week'),
      item('board', BOARD_PATH, 'Queue board'),
    ].join(' · ') +
    `</nav>${ctx.role ? `<span class="who">signed in as ${e(ctx.role)}</span>` : ''}</header>`
  );
}

/** The warning every page carries while no alert channel is configured. */
export function alertBannerHtml(channels: readonly string[]): string {
  if (channels.length > 0) return '';
  return (
    `<div class="banner alarm" role="alert"><b>Alerts go nowhere: configure notifications.</b> ` +
    `No notification channel is configured, so critical findings and missed runs reach nobody. ` +
    `Set <code>notifications.email</code>, <code>notifications.webhook</code> or <code>notifications.channels</code> in the config.</div>`
  );
}

/** The stylesheet and script tags, for pages that carry the header (the report page too). */
export function assetTags(): string {
  return (
    `<link rel="stylesheet" href="${ASSETS_PATH}${ASSET_FILES.style}">` +
    `<script defer src="${ASSETS_PATH}${ASSET_FILES.script}"></script>`
  );
}

/** A whole console page: `body` is trusted HTML, built with escaped values. */
export function pageHtml(ctx: FrameContext, opts: { title: string; current?: NavItem; body: string }): string {
  return (
    `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width,initial-scale=1">` +
    `<meta name="robots" content="noindex">` +
    // No favicon of its own: an empty one keeps the browser from asking for /favicon.ico.
    `<link rel="icon" href="data:,">` +
    `<title>${e(opts.title)} · ${e(ctx.title)}</title>${assetTags()}</head>` +
    `<body>${headerHtml(ctx, opts.current)}<main class="console">${alertBannerHtml(ctx.alertChannels)}${opts.body}</main></body></html>`
  );
}

/** How far `iso` is from now: "3 h 5 min ago", "in 20 min", "now". */
function relativeText(iso: string, now: Date): string {
  const delta = new Date(iso).getTime() - now.getTime();
  return Math.abs(delta) < 1000 ? 'now' : delta < 0 ? `${formatDuration(-delta)} ago` : `in ${formatDuration(delta)}`;
}

/** `2026-12-02 03:00:00 UTC (3 h ago)`: a time in the config's zone and how far it is, as plain text. */
export function whenText(iso: string, ctx: Pick<FrameContext, 'now' | 'timezone'>): string {
  return `${formatInZone(new Date(iso), ctx.timezone)} (${relativeText(iso, ctx.now)})`;
}

/** The same as HTML: the time, and under it how far it is. */
export function whenHtml(iso: string, ctx: Pick<FrameContext, 'now' | 'timezone'>): string {
  const at = new Date(iso);
  return `<time datetime="${e(at.toISOString())}">${e(formatInZone(at, ctx.timezone))}</time><br><span class="muted">${e(relativeText(iso, ctx.now))}</span>`;
}

/** A coloured badge that also says its state in words. */
export function badgeHtml(state: string, label: string = state): string {
  return `<span class="badge s-${e(state)}">${e(label)}</span>`;
}
