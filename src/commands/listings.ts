/**
 * `caretaker tasks`, `caretaker schedules` and `caretaker check-config`:
 * what caretaker knows and will do, without touching Redis or a target
 * (except `check-config --connect`, which tries each one: connect-check.ts).
 */
import { z } from 'zod';
import type { Config } from '../config/schema';
import { TASKS } from '../jobs';
import { expandSchedulers, resolveSchedules, type ResolvedSchedule } from '../schedules/resolve';
import { formatInZone, nextFireTimes } from '../schedules/cron';
import { alertChannels } from '../alerts/notifiers';
import { routingNotes } from '../alerts/routing';
import { matcherText } from '../alerts/matchers';
import { NO_ALERT_CHANNELS, configFor, loggerFor } from './common';
import { CONNECT_TIMEOUT_MS, checkConnections, outcomeLine } from './connect-check';
import { println, type CliIO } from './io';

/** How many upcoming fire times `schedules` shows. */
const NEXT_FIRES = 3;

export function tasksCommand(io: CliIO, opts: { json?: boolean }): number {
  const tasks = [...TASKS.values()].map((t) => ({
    name: t.name,
    description: t.description,
    target: t.target,
    defaultSchedule: t.defaultSchedule,
    timeoutMs: t.timeoutMs,
    changesTarget: t.changesTarget,
    params: z.toJSONSchema(t.params, { io: 'input', unrepresentable: 'any' }),
    /** Every code the task's findings may carry, with its meaning. */
    codes: t.codes,
  }));
  if (opts.json) {
    println(io.stdout, JSON.stringify(tasks, null, 2));
    return 0;
  }
  for (const t of tasks) {
    println(io.stdout, `${t.name.padEnd(16)} ${t.defaultSchedule.padEnd(8)} ${t.target.padEnd(10)} ${t.changesTarget ? 'changes' : 'read-only'}  ${t.description}`);
  }
  return 0;
}

interface ScheduleListing extends ResolvedSchedule {
  /** The next fire times (ISO 8601), the same for each of its schedulers; empty when disabled. */
  next: string[];
  schedulers: { id: string; task: string; target: string; next: string[] }[];
}

export function listSchedules(config: Config, now = new Date()): ScheduleListing[] {
  return resolveSchedules(config, TASKS).schedules.map((s) => {
    const next = s.enabled ? nextFireTimes(s.cron, s.timezone, NEXT_FIRES, now).map((d) => d.toISOString()) : [];
    // Listed even when disabled, so the operator sees what enabling it would schedule.
    const entries = expandSchedulers([{ ...s, enabled: true }], config, TASKS);
    return { ...s, next, schedulers: entries.map((e) => ({ id: e.id, task: e.task, target: e.target, next })) };
  });
}

function printSchedules(io: CliIO, listing: ScheduleListing[]): void {
  for (const s of listing) {
    const state = s.enabled ? '' : ' (disabled)';
    println(io.stdout, `${s.id}${state}: "${s.cron}" ${s.timezone}`);
    if (s.enabled) println(io.stdout, `  next: ${s.next.map((iso) => formatInZone(new Date(iso), s.timezone)).join(', ')}`);
    for (const e of s.schedulers) println(io.stdout, `  ${e.id}`);
    const idle = s.tasks.filter((t) => !s.schedulers.some((e) => e.task === t));
    if (idle.length > 0) println(io.stdout, `  no targets configured for: ${idle.join(', ')}`);
    if (s.unavailable.length > 0) println(io.stdout, `  not in this version yet (not scheduled): ${s.unavailable.join(', ')}`);
  }
}

export function schedulesCommand(io: CliIO, opts: { config?: string; json?: boolean }): number {
  const listing = listSchedules(configFor(io, opts.config));
  if (opts.json) println(io.stdout, JSON.stringify(listing, null, 2));
  else printSchedules(io, listing);
  return 0;
}

/** Validates the config and prints what it resolves to; with `connect`, also tries every server it names (exit 3 if one fails). */
export async function checkConfigCommand(io: CliIO, opts: { config?: string; connect?: boolean }): Promise<number> {
  const config = configFor(io, opts.config);
  printConfigCheck(io, config);
  return opts.connect ? printConnections(io, config) : 0;
}

function printConfigCheck(io: CliIO, config: Config): void {
  const targets = Object.entries(config.targets)
    .filter(([, list]) => list.length > 0)
    .map(([kind, list]) => `${kind}: ${list.map((t) => t.name).join(', ')}`);
  println(io.stdout, `config OK (${config.source})`);
  println(io.stdout, `targets: ${targets.join('; ') || 'none'}`);
  println(io.stdout, `web: ${config.web.host}:${config.web.port}, auth ${config.web.auth.admin || config.web.auth.viewer ? 'on' : 'off (loopback only)'}`);
  // Valid, but critical findings would reach nobody: worth a line, not a failed check (exit stays 0).
  const channels = alertChannels(config);
  println(io.stdout, channels.length > 0 ? `alerts: ${channels.join(', ')}` : NO_ALERT_CHANNELS);
  if (channels.length > 0) {
    const routes = config.alerting.defaultRoutes
      ? ['default: critical → every channel; warning → webhooks and Alertmanager; info → the report']
      : config.alerting.routes.map((r) => `${matcherText(r.match)} → ${r.channels.join(', ') || 'nobody'}${r.repeatSeconds ? ` (repeat ${r.repeatSeconds} s)` : ''}`);
    println(io.stdout, `routes: ${routes.join('; ')}`);
  }
  const targetNames = ['caretaker', ...Object.values(config.targets).flatMap((list) => list.map((t) => t.name))];
  for (const note of routingNotes(config, [...TASKS.keys()], targetNames)) println(io.stdout, `note: ${note}`);
  println(io.stdout, 'schedules:');
  printSchedules(io, listSchedules(config));
}

async function printConnections(io: CliIO, config: Config): Promise<number> {
  println(io.stdout, `connections (each within ${CONNECT_TIMEOUT_MS / 1000} s):`);
  const outcomes = await checkConnections(config, loggerFor(io, config, { human: true }));
  for (const o of outcomes) println(io.stdout, `  ${outcomeLine(o)}`);
  const failed = outcomes.filter((o) => !o.ok).length;
  // A server that does not answer is what the 3 a.m. run would find: the same exit code as that run's error.
  return failed > 0 ? 3 : 0;
}
