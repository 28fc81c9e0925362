/**
 * What the command line takes from the environment beside the config
 * (which loadConfig reads): needed before a config is loaded, or when it
 * cannot be. Read here, so no other module names an environment variable.
 */
/** The environment's variables, as process.env holds them. */
export type Env = Record<string, string | undefined>;

export interface CliEnvironment {
  /** CARETAKER_LOG_LEVEL: the log level that wins over the config's, when set. */
  logLevel?: string;
  /** CARETAKER_DEBUG=1: a failed command prints its stack after the one-line error. */
  debug: boolean;
}

export function cliEnvironment(env: Env): CliEnvironment {
  return { logLevel: env.CARETAKER_LOG_LEVEL || undefined, debug: env.CARETAKER_DEBUG === '1' };
}
