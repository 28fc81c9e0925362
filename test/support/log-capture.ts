/**
 * A pino logger that keeps what it writes, for tests that assert on what
 * was logged (a warning given once) or on what never was (a secret).
 */
import pino, { type Logger } from 'pino';
import { logLines, type LogLine } from './processes';

export interface CapturedLog {
  log: Logger;
  /** Everything written so far, as pino wrote it. */
  text(): string;
  /** The lines written so far, parsed. */
  lines(): LogLine[];
}

/** A logger at `level` (default: trace, every line) writing to memory. */
export function captureLog(level: pino.LevelWithSilent = 'trace'): CapturedLog {
  const out: string[] = [];
  const log = pino({ level }, { write: (line: string) => void out.push(line) });
  return { log, text: () => out.join(''), lines: () => logLines(out.join('')) };
}
