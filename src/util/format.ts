/** Human-readable figures for summaries and messages; metrics keep raw numbers. */

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];

/** 1536 → "1.5 kB", 10485760 → "10 MB" (binary multiples, like pg_size_pretty). */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  const sign = bytes < 0 ? '-' : '';
  let value = Math.abs(bytes);
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  const digits = unit === 0 || value >= 100 || Number.isInteger(value) ? 0 : 1;
  return `${sign}${value.toFixed(digits)} ${UNITS[unit]}`;
}

/** 90_500 → "1 min 31 s", 4_000 → "4 s", 250 → "250 ms". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} days`;
}

/** 0.4237 → "42 %"; with `digits` 1, "42.4 %" (trailing zeros dropped: 0.42 → "42 %"). */
export function formatPercent(ratio: number, digits = 0): string {
  const scale = 10 ** digits;
  return `${Math.round(ratio * 100 * scale) / scale} %`;
}

/** `text` on one line (whitespace runs collapsed), cut to `max` characters with an ellipsis. */
export function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** A look-back window in seconds: 86400 → "24 h"; others as formatDuration writes them. */
export function windowText(seconds: number): string {
  return seconds % 3600 === 0 ? `${seconds / 3600} h` : formatDuration(seconds * 1000);
}
