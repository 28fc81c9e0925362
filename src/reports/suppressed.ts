/**
 * Waivers, silences and maintenance windows in the weekly report. They are
 * judged at one instant, the report's time: the end of a past week, or now
 * for the week to date. A waived finding leaves the open list and is listed
 * apart with its waiver; a silenced one (a silence or an open maintenance
 * window) stays open, marked with why, who and until when. Waivers that
 * lapse soon are called out: their findings are about to come back.
 */
import type { Pool } from 'pg';
import type { Config } from '../config/schema';
import { loadSuppressions, suppressionsOf, type Hold, type Suppressions } from '../alerts/suppress/suppressions';
import { EXPIRING_WAIVER_DAYS, byExpiry, expiresSoon as lapsesSoon, waiverFor, type Waiver } from '../alerts/suppress/waivers';
import type { ExpiringWaiver, OpenFinding, ReportFinding, ReportHold, ReportWaiver, ReportWeek, WaivedFinding } from './model';

export { EXPIRING_WAIVER_DAYS };

/** What the report reads from the config to judge findings: its maintenance windows, its waivers, and the zone of the windows' crons. */
export type ReportSuppressConfig = Pick<Config, 'maintenance' | 'waivers' | 'timezone'>;

/** The report's time: the week's end, or `now` while the week has not ended. */
export function reportInstant(week: Pick<ReportWeek, 'end'>, now: Date): Date {
  const end = new Date(week.end);
  return now < end ? now : end;
}

/**
 * The silences, windows and waivers in force at `at` (two statements).
 * A stored waiver made after `at` did not cover anything then: a past
 * week's report does not change when someone waives a finding today.
 */
export async function loadReportSuppressions(state: Pool, config: ReportSuppressConfig, at: Date): Promise<Suppressions> {
  const s = await loadSuppressions(state, config, at);
  const waivers = s.waivers.filter((w) => w.createdAt === undefined || w.createdAt <= at);
  return waivers.length === s.waivers.length ? s : suppressionsOf(at, s.silences, s.windows, waivers);
}

/** A waiver as the report shows it. */
export function reportWaiver(w: Waiver): ReportWaiver {
  return {
    id: w.id,
    source: w.source,
    match: { task: w.task, target: w.target, code: w.code, subject: w.subject },
    severity: w.severity,
    reason: w.reason,
    by: w.createdBy,
    ...(w.createdAt ? { createdAt: w.createdAt.toISOString() } : {}),
    ...(w.expiresAt ? { expiresAt: w.expiresAt.toISOString() } : {}),
  };
}

/** A hold as the report shows it. */
export function reportHold(hold: Hold): ReportHold {
  return hold.kind === 'silence'
    ? { kind: 'silence', id: hold.silence.id, text: hold.text, by: hold.silence.createdBy, reason: hold.silence.reason, until: hold.until.toISOString() }
    : { kind: 'maintenance', id: hold.window.name, text: hold.text, ...(hold.window.reason ? { reason: hold.window.reason } : {}), until: hold.until.toISOString() };
}

export interface JudgedFindings {
  /** Not waived, in the given order; silenced ones marked. */
  open: ReportFinding[];
  /** Waived, in the given order. */
  waived: WaivedFinding[];
  expiring: ExpiringWaiver[];
}

/** Splits the week's findings into open and waived at `s.at`, and lists the waivers lapsing within EXPIRING_WAIVER_DAYS. */
export function judgeFindings(findings: readonly OpenFinding[], s: Suppressions): JudgedFindings {
  const open: ReportFinding[] = [];
  const waived: WaivedFinding[] = [];
  const covers = new Map<string, number>();
  for (const f of findings) {
    const waiver = s.waiverFor(f);
    if (waiver) {
      waived.push({ ...f, waiver: reportWaiver(waiver) });
      covers.set(waiver.id, (covers.get(waiver.id) ?? 0) + 1);
      continue;
    }
    const hold = s.holdFor(f);
    // Matching at the lowest severity finds a waiver that matches but accepts less than this finding is now.
    const outgrown = waiverFor(s.waivers, { ...f, severity: 'info' }, s.at);
    open.push({ ...f, ...(hold ? { silenced: reportHold(hold) } : {}), ...(outgrown ? { outgrew: reportWaiver(outgrown) } : {}) });
  }
  const expiring = byExpiry(s.waivers.filter((w): w is Waiver & { expiresAt: Date } => lapsesSoon(w.expiresAt, s.at)))
    .map((w) => ({ ...reportWaiver(w), expiresAt: w.expiresAt.toISOString(), covers: covers.get(w.id) ?? 0 }));
  return { open, waived, expiring };
}

/** True when the waiver lapses within EXPIRING_WAIVER_DAYS of the report's time (`asOf`). */
export function expiresSoon(w: Pick<ReportWaiver, 'expiresAt'>, asOf: string): boolean {
  return lapsesSoon(w.expiresAt === undefined ? undefined : new Date(w.expiresAt), new Date(asOf));
}
