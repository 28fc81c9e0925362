/**
 * What holds a problem back at one moment: its waiver (it does not alert
 * at all), else a silence or a maintenance window (it alerts when that
 * ends). Loaded once per result, sweep or page: two statements on the state
 * database, then every problem is judged in memory.
 */
import type { Pool } from 'pg';
import type { Config } from '../../config/schema';
import { problemMatches, type ProblemIdentity } from '../matchers';
import { openWindows, windowFor, type OpenWindow } from './maintenance';
import { SilenceStore, type Silence } from './silences';
import { WaiverStore, waiverFor, type Waiver } from './waivers';

/** Why a problem does not notify now, and until when. */
export type Hold =
  | { kind: 'silence'; silence: Silence; until: Date; text: string }
  | { kind: 'maintenance'; window: OpenWindow; until: Date; text: string };

export interface Suppressions {
  at: Date;
  silences: Silence[];
  windows: OpenWindow[];
  waivers: Waiver[];
  waiverFor(p: ProblemIdentity): Waiver | undefined;
  /** The silence or window holding `p` back (the one that ends last). */
  holdFor(p: ProblemIdentity): Hold | undefined;
}

export function silenceText(s: Silence): string {
  return `silenced by ${s.createdBy} until ${s.endsAt.toISOString()}: ${s.reason}`;
}

export function windowText(w: OpenWindow): string {
  return `maintenance window ${w.name} until ${w.endsAt.toISOString()}${w.reason ? `: ${w.reason}` : ''}`;
}

export function suppressionsOf(at: Date, silences: Silence[], windows: OpenWindow[], waivers: Waiver[]): Suppressions {
  return {
    at,
    silences,
    windows,
    waivers,
    waiverFor: (p) => waiverFor(waivers, p, at),
    holdFor(p) {
      const silence = silences.filter((s) => problemMatches(s.matchers, p)).sort((a, b) => b.endsAt.getTime() - a.endsAt.getTime())[0];
      const window = windowFor(windows, p);
      if (silence && (!window || silence.endsAt >= window.endsAt)) return { kind: 'silence', silence, until: silence.endsAt, text: silenceText(silence) };
      if (window) return { kind: 'maintenance', window, until: window.endsAt, text: windowText(window) };
      return undefined;
    },
  };
}

/** The silences, windows and waivers in force at `at`. */
export async function loadSuppressions(state: Pool, config: Pick<Config, 'maintenance' | 'waivers' | 'timezone'>, at: Date): Promise<Suppressions> {
  const [silences, waivers] = await Promise.all([new SilenceStore(state).active(at), new WaiverStore(state, config.waivers).live(at)]);
  return suppressionsOf(at, silences, openWindows(config.maintenance, config.timezone, at), waivers);
}
