/**
 * Typed errors only where behaviour differs: a user mistake prints one line
 * and exits 3 (no stack trace); anything else is a bug or a target failure.
 */

/** A mistake in how caretaker was called or configured: one-line message, exit 3. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** An invalid config: each problem names its path, e.g. `schedules.daily.cron: ...`. */
export class ConfigError extends UsageError {
  override name = 'ConfigError';
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid config (${source}): ${problems.join('; ')}`);
  }
}

/** Anything thrown, as an Error (libraries throw strings and plain objects too). */
export function coerceError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  // An Error from another realm (a vm context, jest's sandbox) fails instanceof but is one.
  if (thrown !== null && typeof thrown === 'object' && typeof (thrown as Error).message === 'string' && typeof (thrown as Error).name === 'string') {
    return thrown as Error;
  }
  if (typeof thrown === 'string') return new Error(thrown);
  try {
    return new Error(JSON.stringify(thrown));
  } catch {
    return new Error(String(thrown));
  }
}
