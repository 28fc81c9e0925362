/**
 * How the status shows what holds a finding back: the silence or
 * maintenance window it is silenced by (still open), or the waiver that
 * accepts it (not open). Plain data, so `caretaker status --json` carries
 * it as the console shows it.
 */
import type { Hold } from '../alerts/suppress/suppressions';
import type { Waiver } from '../alerts/suppress/waivers';

/** Why an open finding does not notify now: a silence or a maintenance window. */
export interface SilencedBy {
  kind: Hold['kind'];
  /** The silence's id, or the window's name. */
  id: string;
  /** `silenced by alice until ...: reason`, as the alerts say it. */
  text: string;
  /** Who silenced it; undefined for a maintenance window (the config's). */
  by?: string;
  reason?: string;
  /** When the hold ends (ISO 8601). */
  until: string;
}

/** The waiver a finding is accepted under, as the console and `caretaker status --json` show it. */
export interface WaivedBy {
  id: string;
  source: Waiver['source'];
  reason: string;
  by: string;
  /** The worst severity accepted. */
  severity: Waiver['severity'];
  createdAt?: string;
  /** When it lapses (ISO 8601); undefined: never. */
  expiresAt?: string;
}

/** A hold as the status shows it. */
export function silencedBy(hold: Hold): SilencedBy {
  return hold.kind === 'silence'
    ? { kind: 'silence', id: hold.silence.id, text: hold.text, by: hold.silence.createdBy, reason: hold.silence.reason, until: hold.until.toISOString() }
    : { kind: 'maintenance', id: hold.window.name, text: hold.text, ...(hold.window.reason ? { reason: hold.window.reason } : {}), until: hold.until.toISOString() };
}

/** A waiver as the status shows it. */
export function waivedBy(w: Waiver): WaivedBy {
  return {
    id: w.id,
    source: w.source,
    reason: w.reason,
    by: w.createdBy,
    severity: w.severity,
    ...(w.createdAt ? { createdAt: w.createdAt.toISOString() } : {}),
    ...(w.expiresAt ? { expiresAt: w.expiresAt.toISOString() } : {}),
  };
}

/** `silenced by alice until <when>: reason`, or the maintenance window's, with the end written by `when`. */
export function silencedText(s: SilencedBy, when: (iso: string) => string): string {
  return s.kind === 'silence'
    ? `silenced by ${s.by} until ${when(s.until)}: ${s.reason}`
    : `maintenance window ${s.id} until ${when(s.until)}${s.reason ? `: ${s.reason}` : ''}`;
}
