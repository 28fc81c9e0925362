/** A time bound on a promise, for calls whose own timeouts cannot be trusted to fire. */

/**
 * `work`'s outcome, or a rejection (`<what> timed out after <ms> ms`) when
 * `ms` pass first. `work` itself goes on: cut it through its own timeouts
 * or signal. The timer never keeps the process alive.
 */
export async function withTimeout<T>(work: Promise<T>, ms: number, what?: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what ? `${what} ` : ''}timed out after ${ms} ms`)), ms);
    timer.unref();
  });
  try {
    // race() handles a rejection of `work` that comes after the timeout: it is never unhandled.
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
