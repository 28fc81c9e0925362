/**
 * pino JSON on stderr (stdout is for `--json` results). Secrets are redacted
 * by key wherever they appear in a log object; URLs we log on purpose go
 * through `redactUrl` first.
 */
import pino, { type Logger } from 'pino';

export type { Logger };

/** Keys whose values never reach a log line, at any depth we log at. */
const SECRET_KEYS = ['password', 'pass', 'token', 'secret', 'authorization', 'auth', 'admin', 'viewer', 'url', 'connectionString'];

export function createLogger(level = 'info', destination: pino.DestinationStream = pino.destination(2)): Logger {
  return pino(
    {
      level,
      base: { service: 'caretaker' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [...SECRET_KEYS, ...SECRET_KEYS.map((k) => `*.${k}`), ...SECRET_KEYS.map((k) => `*.*.${k}`)],
        censor: '[redacted]',
      },
    },
    destination,
  );
}

/** `postgres://app:s3cret@db/x` → `postgres://app:***@db/x`; anything unparsable is hidden whole. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    for (const key of [...parsed.searchParams.keys()]) {
      if (/pass|token|secret|key/i.test(key)) parsed.searchParams.set(key, '***');
    }
    return parsed.toString();
  } catch {
    return '[unparsable url]';
  }
}

/** Replaces any URL-with-password inside free text (error messages from drivers). */
export function redactSecretsIn(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/[^:\s/@]*:)[^@\s/]+@/gi, '$1***@');
}
