import { formatBytes, formatDuration, formatPercent, oneLine, windowText } from '../../src/util/format';

describe('format', () => {
  it('formats bytes like pg_size_pretty', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.5 kB');
    expect(formatBytes(10 * 1024 * 1024)).toBe('10 MB');
    expect(formatBytes(5.25 * 1024 ** 3)).toBe('5.3 GB');
    expect(formatBytes(-2048)).toBe('-2 kB');
  });

  it('formats durations', () => {
    expect(formatDuration(250)).toBe('250 ms');
    expect(formatDuration(4_000)).toBe('4 s');
    expect(formatDuration(90_500)).toBe('1 min 31 s');
    expect(formatDuration(3 * 3600_000 + 5 * 60_000)).toBe('3 h 5 min');
    expect(formatDuration(5 * 86_400_000)).toBe('5 days');
  });

  it('formats look-back windows: whole hours in hours, others as durations', () => {
    expect(windowText(86_400)).toBe('24 h');
    expect(windowText(3_600)).toBe('1 h');
    expect(windowText(5_400)).toBe('1 h 30 min');
    expect(windowText(90)).toBe('1 min 30 s');
  });

  it('formats ratios as percentages, whole or to a tenth', () => {
    expect(formatPercent(0.4237)).toBe('42 %');
    expect(formatPercent(0.4237, 1)).toBe('42.4 %');
    expect(formatPercent(0.42, 1)).toBe('42 %');
    expect(formatPercent(1)).toBe('100 %');
  });

  it('puts text on one line and cuts it with an ellipsis', () => {
    expect(oneLine('  SELECT *\n  FROM t\twhere x  ', 100)).toBe('SELECT * FROM t where x');
    expect(oneLine('abcdefghij', 5)).toBe('abcd…');
    expect(oneLine('abcde', 5)).toBe('abcde');
  });
});
