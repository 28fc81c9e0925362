/** `caretaker start`: runs the roles until SIGTERM or SIGINT, then stops in order and exits 0. */
import { startCaretaker, ROLES, type Role } from '../main';
import { alertChannels } from '../alerts/notifiers';
import { NO_ALERT_CHANNELS, configFor, loggerFor } from './common';
import type { CliIO } from './io';

/** Starts the roles `opts.role` names, waits for the stop signal, stops them in order and resolves with 0. */
export async function startCommand(io: CliIO, opts: { config?: string; role: 'all' | Role }): Promise<number> {
  const config = configFor(io, opts.config);
  const log = loggerFor(io, config);
  const roles: readonly Role[] = opts.role === 'all' ? ROLES : [opts.role];
  // The worker (failed runs) and the scheduler (missed runs) raise alerts; without a channel they reach nobody, silently.
  if ((roles.includes('worker') || roles.includes('scheduler')) && alertChannels(config).length === 0) log.warn(NO_ALERT_CHANNELS);
  const caretaker = await startCaretaker({ config, roles, log });
  log.info({ roles, config: config.source, console: caretaker.webUrl ? `${caretaker.webUrl}/` : undefined }, 'caretaker started');
  const signal = await (io.waitForStop ?? (() => new Promise<string>(() => undefined)))();
  log.info({ signal }, 'stopping: no new jobs, waiting for running ones');
  await caretaker.stop();
  return 0;
}
