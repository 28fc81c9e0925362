/**
 * `caretaker checklist` (where each manual runbook line stands) and
 * `caretaker done ITEM [--note ...]` (someone did it). The "done" is kept in
 * the state database with who and when, so every replica, the console and
 * the weekly report see it; the next checklist run drops the item's finding.
 */
import { ChecklistStore } from '../checklist/store';
import { checklistStandings, type ItemReport } from '../checklist/standings';
import { formatInZone } from '../schedules/cron';
import { checkedNote, checklistItem } from '../checklist/requests';
import { EXIT_CODE } from '../contract/result';
import { configFor } from './common';
import { onState, who } from './state-access';
import { println, type CliIO } from './io';

/** The checklist tables came with schema version 5. */
const RECORDS = 'checklist records';
export async function doneCommand(io: CliIO, id: string, opts: { config?: string; note?: string; by?: string; json?: boolean }): Promise<number> {
  const config = configFor(io, opts.config);
  const item = checklistItem(config, id);
  const note = checkedNote(opts.note);
  const by = who(opts);
  const done = await onState(io, config, RECORDS, (pool) => new ChecklistStore(pool).markDone(item.id, by, note));
  if (opts.json) println(io.stdout, JSON.stringify({ item: done.item, at: done.at.toISOString(), by: done.by, ...(done.note ? { note: done.note } : {}) }));
  else println(io.stdout, `${item.id} marked done by ${done.by} at ${formatInZone(done.at, item.timezone)}${done.note ? `: ${done.note}` : ''}`);
  return EXIT_CODE.ok;
}

function line(r: ItemReport): string {
  const at = (d: Date) => formatInZone(d, r.item.timezone);
  const last = r.lastDone ? `last done ${at(r.lastDone.at)} by ${r.lastDone.by}` : 'never done';
  const when =
    r.standing.state === 'done'
      ? r.standing.nextPeriodAt
        ? `next due ${at(r.standing.nextPeriodAt)}`
        : 'no period ahead'
      : r.standing.state === 'overdue'
        ? `overdue since ${at(r.standing.overdueAt!)}`
        : `due since ${at(r.standing.dueSince!)}, overdue from ${at(r.standing.overdueAt!)}`;
  return `${r.item.id.padEnd(24)} ${r.standing.state.padEnd(8)} ${r.item.title}: ${when}; ${last}`;
}

/** Exit 1 (warning) when an item is overdue, as the checklist task's status; due alone is 0. */
export async function checklistCommand(io: CliIO, opts: { config?: string; json?: boolean }): Promise<number> {
  const config = configFor(io, opts.config);
  const reports = await onState(io, config, RECORDS, (pool) => checklistStandings(pool, config.checklist, new Date(), { record: false }));
  const overdue = reports.some((r) => r.standing.state === 'overdue');
  if (opts.json) {
    println(
      io.stdout,
      JSON.stringify(
        reports.map((r) => ({
          id: r.item.id,
          title: r.item.title,
          state: r.standing.state,
          ...(r.standing.dueSince ? { dueSince: r.standing.dueSince.toISOString(), overdueAt: r.standing.overdueAt!.toISOString() } : {}),
          ...(r.standing.nextPeriodAt ? { nextPeriodAt: r.standing.nextPeriodAt.toISOString() } : {}),
          ...(r.lastDone ? { lastDone: { at: r.lastDone.at.toISOString(), by: r.lastDone.by, ...(r.lastDone.note ? { note: r.lastDone.note } : {}) } } : {}),
          ...(r.item.link ? { link: r.item.link } : {}),
        })),
      ),
    );
  } else if (reports.length === 0) {
    println(io.stdout, config.checklist.length === 0 ? 'no checklist items configured (add them under checklist: in the config)' : 'every checklist item is disabled');
  } else {
    for (const r of reports) println(io.stdout, line(r));
  }
  return overdue ? EXIT_CODE.warning : EXIT_CODE.ok;
}
