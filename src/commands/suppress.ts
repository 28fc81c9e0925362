/**
 * `caretaker silence add|list|expire`, `caretaker waive`, `waivers` and
 * `unwaive`: the silences and waivers kept in the state database, so every
 * replica (and the console) sees the same ones. Who did it is `--by`,
 * else the login name, as amtool's `--author` does.
 */
import { TASKS } from '../jobs';
import { SilenceStore, silenceState, type Silence } from '../alerts/suppress/silences';
import { WaiverStore, byExpiry, expiresSoon, waiverFor, type Waiver } from '../alerts/suppress/waivers';
import { knownNames, silenceFromRequest, waiverFromRequest, type SilenceRequest, type WaiverRequest } from '../alerts/suppress/requests';
import { matcherText } from '../alerts/matchers';
import { openProblems } from '../status/status';
import { formatInZone } from '../schedules/cron';
import { durationText } from '../util/duration';
import { UsageError } from '../errors';
import { configFor } from './common';
import { onState, who } from './state-access';
import { println, type CliIO } from './io';

interface Common {
  config?: string;
  by?: string;
}

/** Silences and waivers came with schema version 4: an older state database has no table for them. */
const RECORDS = 'silences or waivers';

function silenceLine(s: Silence, now: Date, timezone: string): string {
  const state = silenceState(s, now);
  const ends = state === 'expired' ? `expired by ${s.expiredBy} at ${formatInZone(s.endsAt, timezone)}` : `${state === 'ended' ? 'ended' : 'until'} ${formatInZone(s.endsAt, timezone)}`;
  return `${s.id.padEnd(6)}${state.padEnd(9)}${matcherText(s.matchers)}  ${ends}  by ${s.createdBy}: ${s.reason}`;
}

const silenceJson = (s: Silence, now: Date) => ({ ...s, state: silenceState(s, now) });

export async function silenceAddCommand(io: CliIO, opts: Common & SilenceRequest & { json?: boolean }): Promise<number> {
  const config = configFor(io, opts.config);
  const now = new Date();
  const request = silenceFromRequest(opts, who(opts), knownNames(config, TASKS.keys()), now);
  const silence = await onState(io, config, RECORDS, (pool) => new SilenceStore(pool).add(request));
  if (opts.json) println(io.stdout, JSON.stringify(silenceJson(silence, now)));
  else {
    const length = durationText((silence.endsAt.getTime() - now.getTime()) / 1000);
    println(io.stdout, `silence ${silence.id} added: ${matcherText(silence.matchers)} until ${formatInZone(silence.endsAt, config.timezone)} (${length}): ${silence.reason}`);
  }
  return 0;
}

export async function silenceListCommand(io: CliIO, opts: Common & { json?: boolean }): Promise<number> {
  const config = configFor(io, opts.config);
  const now = new Date();
  const list = await onState(io, config, RECORDS, (pool) => new SilenceStore(pool).list(now));
  if (opts.json) {
    println(io.stdout, JSON.stringify(list.map((s) => silenceJson(s, now))));
    return 0;
  }
  if (list.length === 0) {
    println(io.stdout, 'no silence in force, to come, or ended in the last 7 days');
    return 0;
  }
  println(io.stdout, `${'id'.padEnd(6)}${'state'.padEnd(9)}matchers, end, who and why`);
  for (const s of list) println(io.stdout, silenceLine(s, now, config.timezone));
  return 0;
}

export async function silenceExpireCommand(io: CliIO, id: string, opts: Common): Promise<number> {
  const config = configFor(io, opts.config);
  const now = new Date();
  const by = who(opts);
  const expired = await onState(io, config, RECORDS, (pool) => new SilenceStore(pool).expire(id, by, now));
  if (!expired) throw new UsageError(`no silence ${JSON.stringify(id)} in force or to come (see "caretaker silence list")`);
  println(io.stdout, `silence ${expired.id} expired: ${matcherText(expired.matchers)}; problems it held alert within 30 s if still open`);
  return 0;
}

function waiverLine(w: Waiver, now: Date, timezone: string): string {
  const soon = expiresSoon(w.expiresAt, now) ? ' (expires soon)' : '';
  const until = w.expiresAt ? `until ${formatInZone(w.expiresAt, timezone)}${soon}` : 'no expiry';
  return `${w.id.padEnd(10)}${w.task} ${w.target} ${w.code} ${w.subject}  up to ${w.severity}, ${until}, by ${w.createdBy}: ${w.reason}`;
}

/** As JSON: dates as ISO 8601 (JSON.stringify leaves out those that are undefined). */
const waiverJson = (w: Waiver) => ({ ...w, createdAt: w.createdAt?.toISOString(), expiresAt: w.expiresAt?.toISOString() });

export async function waiveCommand(io: CliIO, opts: Common & WaiverRequest & { json?: boolean }): Promise<number> {
  const config = configFor(io, opts.config);
  const now = new Date();
  const by = who(opts);
  const { waiver, covered } = await onState(io, config, RECORDS, async (pool) => {
    const open = opts.task && opts.target ? await openProblems({ state: pool, entries: config.schedulers, suppress: config, now }, opts.task, opts.target) : [];
    const request = waiverFromRequest(opts, by, knownNames(config, TASKS.keys()), open, now);
    const added = await new WaiverStore(pool).add(request);
    return { waiver: added, covered: open.filter((p) => waiverFor([added], p, now) !== undefined).length };
  });
  if (opts.json) println(io.stdout, JSON.stringify({ ...waiverJson(waiver), covers: covered }));
  else {
    println(io.stdout, `waiver ${waiver.id} added: ${waiverLine(waiver, now, config.timezone).slice(10)}`);
    println(io.stdout, covered > 0 ? `it accepts ${covered} open finding${covered === 1 ? '' : 's'} now` : 'no open finding matches it now: it applies when one appears');
  }
  return 0;
}

export async function waiversCommand(io: CliIO, opts: Common & { json?: boolean }): Promise<number> {
  const config = configFor(io, opts.config);
  const now = new Date();
  const list = await onState(io, config, RECORDS, (pool) => new WaiverStore(pool, config.waivers).live(now));
  const sorted = byExpiry(list);
  if (opts.json) {
    println(io.stdout, JSON.stringify(sorted.map(waiverJson)));
    return 0;
  }
  if (sorted.length === 0) {
    println(io.stdout, 'no waiver in force');
    return 0;
  }
  for (const w of sorted) println(io.stdout, waiverLine(w, now, config.timezone));
  return 0;
}

export async function unwaiveCommand(io: CliIO, id: string, opts: Common): Promise<number> {
  const config = configFor(io, opts.config);
  if (/^config-\d+$/.test(id)) throw new UsageError(`waiver ${id} comes from the config's waivers: remove it there`);
  const by = who(opts);
  const removed = await onState(io, config, RECORDS, (pool) => new WaiverStore(pool).remove(id, by, new Date()));
  if (!removed) throw new UsageError(`no waiver ${JSON.stringify(id)} in force (see "caretaker waivers")`);
  println(io.stdout, `waiver ${removed.id} removed: ${removed.task} ${removed.target} ${removed.code} ${removed.subject} is open again, and alerts at its next run if still found`);
  return 0;
}
