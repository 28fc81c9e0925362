/**
 * Where a checklist item stands: due from the start of the first period its
 * last "done" does not cover (never done: the period caretaker first saw it
 * in), overdue `graceHours` later; a "done" covers its period and those
 * missed before it. Fire times are BullMQ's, in the item's timezone.
 */
import { itemStanding } from '../../src/checklist/periods';

const monthly = { cron: '0 5 1 * *', timezone: 'UTC', graceHours: 168 };
const at = (iso: string) => new Date(iso);

describe('a monthly item (the 1st, 05:00 UTC; a week of grace)', () => {
  const firstSeen = at('2026-10-15T00:00:00Z');

  it('never done, seen mid-period: due since that period\'s start, overdue a week later', () => {
    expect(itemStanding(monthly, { firstSeen }, at('2026-10-16T00:00:00Z'))).toEqual({
      state: 'overdue',
      periodStart: at('2026-10-01T05:00:00Z'),
      nextPeriodAt: at('2026-11-01T05:00:00Z'),
      dueSince: at('2026-10-01T05:00:00Z'),
      overdueAt: at('2026-10-08T05:00:00Z'),
    });
  });

  it('done in this period: done, next due at the next period', () => {
    const s = itemStanding(monthly, { firstSeen, lastDone: at('2026-12-02T10:00:00Z') }, at('2026-12-04T00:00:00Z'));
    expect(s).toEqual({ state: 'done', periodStart: at('2026-12-01T05:00:00Z'), nextPeriodAt: at('2027-01-01T05:00:00Z') });
  });

  it('done last period: due when this one starts, overdue after the grace', () => {
    const history = { firstSeen, lastDone: at('2026-11-20T10:00:00Z') };
    expect(itemStanding(monthly, history, at('2026-12-01T04:59:59Z')).state).toBe('done');
    expect(itemStanding(monthly, history, at('2026-12-01T05:00:00Z'))).toMatchObject({ state: 'due', dueSince: at('2026-12-01T05:00:00Z'), overdueAt: at('2026-12-08T05:00:00Z') });
    expect(itemStanding(monthly, history, at('2026-12-08T04:59:59Z')).state).toBe('due');
    expect(itemStanding(monthly, history, at('2026-12-08T05:00:00Z')).state).toBe('overdue');
  });

  it('a "done" exactly at a period\'s start covers that period', () => {
    expect(itemStanding(monthly, { firstSeen, lastDone: at('2026-12-01T05:00:00Z') }, at('2026-12-20T00:00:00Z')).state).toBe('done');
  });
});

describe('a daily item whose grace is longer than its period', () => {
  const daily = { cron: '0 9 * * *', timezone: 'Europe/Berlin', graceHours: 72 };

  it('stays due across periods from the first one missed, and is overdue three days after it', () => {
    const history = { firstSeen: at('2026-01-01T00:00:00Z'), lastDone: at('2026-12-01T10:00:00Z') };
    // 09:00 in Berlin is 08:00 UTC in winter: the first period not covered starts on the 2nd.
    expect(itemStanding(daily, history, at('2026-12-03T12:00:00Z'))).toMatchObject({ state: 'due', dueSince: at('2026-12-02T08:00:00Z'), periodStart: at('2026-12-03T08:00:00Z') });
    expect(itemStanding(daily, history, at('2026-12-05T08:00:00Z'))).toMatchObject({ state: 'overdue', overdueAt: at('2026-12-05T08:00:00Z') });
  });

  it('one "done" after missing several covers them all', () => {
    const history = { firstSeen: at('2026-01-01T00:00:00Z'), lastDone: at('2026-12-05T09:00:00Z') };
    expect(itemStanding(daily, history, at('2026-12-05T10:00:00Z')).state).toBe('done');
  });
});
