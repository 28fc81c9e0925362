import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import type { Task } from '../contract/task';
import type { Config } from '../config/schema';
import { loadConfig } from '../config/load';
import { cliEnvironment } from '../config/environment';
import { TASKS } from '../jobs';
import { UsageError } from '../errors';
import { createLogger, type Logger } from '../logger';
import { humanLogStream } from './human-log';
import type { CliIO } from './io';

/** Loads and validates the config named by `--config`, `CARETAKER_CONFIG`, or the local defaults. */
export function configFor(io: CliIO, path: string | undefined): Config {
  return loadConfig({ path, env: io.env, registry: TASKS });
}

/** How a command logs: pino JSON (the default: services, `--json`), or readable lines for a person at a terminal. */
export interface LogMode {
  human?: boolean;
  /** In the human form, fields the command line already names, left out of each line. */
  context?: readonly string[];
}

/**
 * The command's logger, on stderr. CARETAKER_LOG_LEVEL wins when set;
 * otherwise the config's level, except that the human form shows only
 * warnings and worse: info lines would bury the result a person asked for.
 */
export function loggerFor(io: CliIO, config: Pick<Config, 'logLevel'>, mode: LogMode = {}): Logger {
  const forced = cliEnvironment(io.env).logLevel;
  if (!mode.human) return createLogger(forced || config.logLevel, io.stderr);
  // A config that asks for less than warnings (error, fatal) is still obeyed.
  const level = forced || (pino.levels.values[config.logLevel]! > pino.levels.values.warn! ? config.logLevel : 'warn');
  return createLogger(level, humanLogStream(io.stderr, { omit: mode.context }));
}

/** What check-config prints and `start` warns when no notification channel is configured. */
export const NO_ALERT_CHANNELS = 'alerts go nowhere: configure notifications (notifications.email, notifications.webhook or notifications.channels)';

/**
 * caretaker's version, from its package.json: two directories up from
 * src/commands (the sources, as the tests run them) or three from
 * dist/src/commands (the compiled CLI, also in the image). The name is
 * checked so a package.json further up (a monorepo's) is never taken for
 * ours; "unknown" rather than a failure when neither is there, so a copy
 * without package.json still runs its commands.
 */
export function packageVersion(): string {
  for (const candidate of [join(__dirname, '../../package.json'), join(__dirname, '../../../package.json')]) {
    try {
      const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'caretaker' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // Not there (the other layout) or unreadable: try the next.
    }
  }
  return 'unknown';
}

/** The task registered under `name`; a UsageError naming the known ones otherwise. */
export function taskNamed(name: string): Task {
  const task = TASKS.get(name);
  if (!task) throw new UsageError(`unknown task ${JSON.stringify(name)} (known: ${[...TASKS.keys()].join(', ')})`);
  return task;
}
