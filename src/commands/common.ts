import type { Task } from '../contract/task';
import type { Config } from '../config/schema';
import { loadConfig } from '../config/load';
import { TASKS } from '../jobs';
import { UsageError } from '../errors';
import { createLogger, type Logger } from '../logger';
import type { CliIO } from './io';

/** Loads and validates the config named by `--config`, `CARETAKER_CONFIG`, or the local defaults. */
export function configFor(io: CliIO, path: string | undefined): Config {
  return loadConfig({ path, env: io.env, registry: TASKS });
}

export function loggerFor(io: CliIO, config: Pick<Config, 'logLevel'>): Logger {
  return createLogger(io.env.CARETAKER_LOG_LEVEL || config.logLevel, io.stderr);
}

export function taskNamed(name: string): Task {
  const task = TASKS.get(name);
  if (!task) throw new UsageError(`unknown task ${JSON.stringify(name)} (known: ${[...TASKS.keys()].join(', ')})`);
  return task;
}
