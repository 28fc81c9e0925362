/**
 * checklist (hourly): the runbook's lines that need a person ("Update
 * documentation" monthly, "Review Grafana dashboards" daily, any an
 * operator adds under `checklist:`). Instead of dropping them silently,
 * each item is `checklist_due` (info) once its period starts and
 * `checklist_overdue` (warning) once its grace has passed without anyone
 * marking it done (`caretaker done ITEM`, or the console's Checklist page).
 * Reads caretaker's state database; records only when it first saw an item.
 */
import { z } from 'zod';
import { defineTask, type FindingCodes } from '../contract/task';
import type { Finding } from '../contract/result';
import { checklistStandings, type ItemReport } from '../checklist/standings';
import { formatInZone } from '../schedules/cron';

const codes = {
  checklist_due: 'A manual runbook line is due this period and nobody has marked it done yet',
  checklist_overdue: 'A manual runbook line is past its grace without anyone marking it done',
} as const satisfies FindingCodes;
type Code = keyof typeof codes;

function findingOf({ item, standing, lastDone }: ItemReport): Finding<Code> | undefined {
  if (standing.state === 'done') return undefined;
  const at = (d: Date) => formatInZone(d, item.timezone);
  const overdue = standing.state === 'overdue';
  const last = lastDone ? `last done ${at(lastDone.at)} by ${lastDone.by}` : 'never marked done';
  const when = overdue ? `overdue since ${at(standing.overdueAt!)} (due since ${at(standing.dueSince!)})` : `due since ${at(standing.dueSince!)}, overdue from ${at(standing.overdueAt!)}`;
  return {
    severity: overdue ? 'warning' : 'info',
    code: overdue ? 'checklist_overdue' : 'checklist_due',
    subject: item.id,
    message: `${item.title}: ${when}; ${last}`,
    suggestion: `${item.link ? `Do it (${item.link}), then mark` : 'Mark'} it done: caretaker done ${item.id} --note "...", or the console's Checklist page`,
    details: {
      item: item.id,
      title: item.title,
      dueSince: standing.dueSince!.toISOString(),
      overdueAt: standing.overdueAt!.toISOString(),
      ...(lastDone ? { lastDoneAt: lastDone.at.toISOString(), lastDoneBy: lastDone.by } : {}),
      ...(item.link ? { link: item.link } : {}),
    },
  };
}

export const checklist = defineTask({
  name: 'checklist',
  description: 'Says which manual runbook lines (checklist: in the config) are due or overdue until someone marks them done',
  target: 'caretaker',
  defaultSchedule: 'hourly',
  timeoutMs: 60_000,
  changesTarget: false,
  params: z.strictObject({}),
  codes,
  scheduledOn: (target) => target.checklist.some((i) => i.enabled),
  async run(ctx) {
    const items = ctx.target.checklist;
    const enabled = items.filter((i) => i.enabled).length;
    if (enabled === 0) {
      return { summary: items.length === 0 ? 'no checklist items configured' : `all ${items.length} checklist items are disabled`, findings: [], metrics: { checklist_items: 0, checklist_due: 0, checklist_overdue: 0 } };
    }
    // A dry run records nothing, not even that it saw a new item.
    const reports = await checklistStandings(ctx.clients.state, items, new Date(), { record: !ctx.dryRun });
    const findings = reports.flatMap((r) => findingOf(r) ?? []);
    const overdue = findings.filter((f) => f.code === 'checklist_overdue');
    const due = findings.filter((f) => f.code === 'checklist_due');
    const summary =
      findings.length === 0
        ? `all ${enabled} checklist items done for their period`
        : [overdue.length > 0 ? `${overdue.length} overdue (${overdue.map((f) => f.subject).join(', ')})` : '', due.length > 0 ? `${due.length} due (${due.map((f) => f.subject).join(', ')})` : '']
            .filter(Boolean)
            .join(', ') + ` of ${enabled} checklist items`;
    return { summary, findings, metrics: { checklist_items: enabled, checklist_due: due.length, checklist_overdue: overdue.length } };
  },
});
