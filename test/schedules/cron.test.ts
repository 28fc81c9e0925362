import { cronProblem, formatInZone, isValidTimezone, nextFireTimes } from '../../src/schedules/cron';

/** Berlin calendar day of an instant, e.g. "2027-03-28". */
const berlinDay = (d: Date) => new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Berlin' }).format(d);

describe('cron and timezones', () => {
  it('fires a daily 02:30 Europe/Berlin schedule once a day across the March change', () => {
    // 2027-03-28: clocks jump from 02:00 to 03:00, so 02:30 does not exist that day.
    const fires = nextFireTimes('30 2 * * *', 'Europe/Berlin', 6, new Date('2027-03-25T12:00:00Z'));
    const days = fires.map(berlinDay);
    expect(days).toEqual(['2027-03-26', '2027-03-27', '2027-03-28', '2027-03-29', '2027-03-30', '2027-03-31']);
    // 02:30 CET before the change, 02:30 CEST after; on the day itself BullMQ fires at 03:30 CEST.
    expect(fires.map((d) => d.toISOString())).toEqual([
      '2027-03-26T01:30:00.000Z',
      '2027-03-27T01:30:00.000Z',
      '2027-03-28T01:30:00.000Z',
      '2027-03-29T00:30:00.000Z',
      '2027-03-30T00:30:00.000Z',
      '2027-03-31T00:30:00.000Z',
    ]);
  });

  it('fires it once, not twice, when 02:30 happens twice in October', () => {
    const fires = nextFireTimes('30 2 * * *', 'Europe/Berlin', 5, new Date('2027-10-29T12:00:00Z'));
    const days = fires.map(berlinDay);
    expect(new Set(days).size).toBe(5);
    expect(days).toEqual(['2027-10-30', '2027-10-31', '2027-11-01', '2027-11-02', '2027-11-03']);
  });

  it('supports 6 fields with seconds', () => {
    const fires = nextFireTimes('* * * * * *', 'UTC', 3, new Date('2026-01-01T00:00:00.000Z'));
    expect(fires.map((d) => d.toISOString())).toEqual(['2026-01-01T00:00:01.000Z', '2026-01-01T00:00:02.000Z', '2026-01-01T00:00:03.000Z']);
  });

  it('tells what is wrong with a cron expression', () => {
    expect(cronProblem('0 3 * * *')).toBeUndefined();
    expect(cronProblem('*/5 * * * * *')).toBeUndefined();
    expect(cronProblem('61 * * * *')).toMatch(/^"61 \* \* \* \*" is not a valid cron expression/);
    expect(cronProblem('0 3 * *')).toMatch(/5 fields, or 6/);
    expect(cronProblem('0 0 3 * * * 2030')).toMatch(/5 fields, or 6/);
    expect(cronProblem('')).toMatch(/not a valid cron/);
    expect(cronProblem('a b c d e')).toMatch(/not a valid cron/);
  });

  it('knows IANA timezones', () => {
    expect(isValidTimezone('UTC')).toBe(true);
    expect(isValidTimezone('America/New_York')).toBe(true);
    expect(isValidTimezone('Mars/Olympus')).toBe(false);
    expect(isValidTimezone('')).toBe(false);
  });

  it('prints wall-clock time in the zone', () => {
    expect(formatInZone(new Date('2027-03-29T00:30:00Z'), 'Europe/Berlin')).toBe('2027-03-29 02:30:00 GMT+2');
  });
});
