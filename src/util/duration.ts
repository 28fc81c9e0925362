/**
 * Durations as operators write them: "90s", "15m", "2h", "1d", "1w", or
 * several in a row ("1h30m"); a bare number is seconds.
 */
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };
const PART = /(\d+)\s*([smhdw])/gy;

/** The seconds `text` says, or undefined when it is not a duration (or is zero). */
export function parseDurationSeconds(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isInteger(text) && text > 0 ? text : undefined;
  const s = text.trim();
  if (/^\d+$/.test(s)) return Number(s) > 0 ? Number(s) : undefined;
  if (s === '') return undefined;
  PART.lastIndex = 0;
  let total = 0;
  let end = 0;
  for (let m = PART.exec(s); m; m = PART.exec(s)) {
    total += Number(m[1]) * UNIT_SECONDS[m[2]!]!;
    end = PART.lastIndex;
  }
  return end === s.length && total > 0 ? total : undefined;
}

/** `2h`, `1d 6h`, `45m`: the largest two units of `seconds`, for messages. */
export function durationText(seconds: number): string {
  const parts: string[] = [];
  let rest = Math.max(0, Math.round(seconds));
  for (const [unit, size] of [['d', 86_400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    if (rest >= size && parts.length < 2) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.join(' ') || '0s';
}
