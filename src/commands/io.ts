/**
 * What a command may touch of the outside world, passed in so tests run
 * the real CLI in-process: output streams, the environment, and how the
 * long-running `start` learns it should stop.
 */
import type { Writable } from 'node:stream';
import type { Env } from '../config/load';

export interface CliIO {
  /** Results and listings (`--json` output goes here and nowhere else). */
  stdout: Writable;
  /** Logs (pino JSON) and one-line errors. */
  stderr: Writable;
  env: Env;
  /** Resolves with the signal name when `start` should stop; default: SIGTERM or SIGINT. */
  waitForStop?: () => Promise<string>;
}

export function processIO(): CliIO {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    waitForStop: () =>
      new Promise((resolve) => {
        process.once('SIGTERM', () => resolve('SIGTERM'));
        process.once('SIGINT', () => resolve('SIGINT'));
      }),
  };
}

export function println(stream: Writable, line = ''): void {
  stream.write(`${line}\n`);
}
