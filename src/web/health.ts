/**
 * `/health`, for Kubernetes probes and load balancers: is this replica
 * connected to Redis (the queue) and to the state database (history)?
 * Every check is bounded in time, so a probe never hangs on a dead backend.
 *
 * It also shows the background loops (the outbox flush, the re-sync, the
 * missed-run check, the alert sweep) of its own process and of every other
 * caretaker process on the same Redis prefix, which publish theirs there
 * (src/liveness/shared-loops.ts): one failing anywhere makes the answer
 * `degraded`, still 200.
 * The replica serves and reaches its backends, so a load balancer must keep
 * it, and a restart would not mend what the loop fails on; the 503 stays
 * for a backend this replica cannot reach.
 *
 * It is open, so it says only what is down and since when. Why (a driver's
 * error, an SMTP server's reply) is for `/health?detail`, behind the same
 * login as the console: an error text may quote more than it should, and
 * even scrubbed it tells a stranger which hosts and users exist.
 */
import type { Redis } from 'ioredis';
import type { RequestHandler, Response } from 'express';
import type { Pool } from 'pg';
import type { Config } from '../config/schema';
import { configSecrets } from '../config/secrets';
import { scrubSecrets } from '../logger';
import { AlertState } from '../alerts/alert-state';
import { cleanNotifierError } from '../alerts/notifier';
import { withTimeout } from '../util/timeout';
import { failureReason, type BackgroundLoops, type LoopState } from '../liveness/background';
import type { Liveness } from '../liveness/liveness';
import { LoopBoard, mergeLoops } from '../liveness/shared-loops';
import { authEnabled } from './auth';
import { isLoopbackHost } from './loopback';

export const HEALTH_SQL = {
  ping: 'SELECT 1',
} as const;

/** Well under a probe's usual 1-5 s timeout, yet generous for a local round trip. */
export const REDIS_TIMEOUT_MS = 1_000;
/** A pool may have to open a connection first: a little longer than Redis. */
export const STATE_TIMEOUT_MS = 2_000;

/** `ok`, or why the dependency is down (secrets redacted). */
export type CheckResult = 'ok' | string;

/** The dependencies /health checks. */
export type CheckName = 'redis' | 'state';

/** A background loop in one process as /health shows it: its state, and why its last failure happened with `?detail` only. */
export type ProcessLoopHealth = Omit<LoopState, 'lastError'> & { error?: string };

/** A background loop over every process that runs it; with `?detail`, each process's own state by process name (`host:pid`). */
export type LoopHealth = ProcessLoopHealth & { processes?: Record<string, ProcessLoopHealth> };

/** What /health answers. */
export interface HealthReport {
  /** `down` (503): a dependency is down; `degraded` (200): both are up but a background loop is failing; else `ok`. */
  status: 'ok' | 'degraded' | 'down';
  /** `ok` or `down` for each dependency; never why (that is `errors`, with `?detail`). */
  checks: Record<CheckName, 'ok' | 'down'>;
  /** When each check that is down started failing, as this replica saw it (ISO time); absent when all are up. */
  since?: Partial<Record<CheckName, string>>;
  /** `?detail` only: why each check that is down failed, scrubbed of every configured secret. */
  errors?: Partial<Record<CheckName, string>>;
  /**
   * The newest failure of each alert channel (SMTP, webhook): it does not
   * make caretaker down, but silence is not "all clear". `at` always;
   * `error` (cleaned) with `?detail` only.
   */
  notifiers?: Record<string, { at: string; error?: string }>;
  /**
   * The background loops of every caretaker process on this Redis prefix,
   * by name, when any runs: `status` (`failing` until a round works again,
   * in any process that runs it), `lastSuccessAt`, `lastFailureAt`,
   * `consecutiveFailures`; with `?detail` only, `error` (the newest
   * failure's reason, scrubbed) and `processes` (each one's own state).
   */
  loops?: Record<string, LoopHealth>;
}

/** How checkHealth builds its report. */
export interface HealthOptions {
  /** Include the error texts (`errors`, `notifiers.*.error`): for an authenticated caller only. */
  detail?: boolean;
  /** Every secret value of the config (configSecrets), scrubbed from the error texts shown. */
  secrets?: readonly string[];
  /** The start of each outage so far, kept between calls (a handler's own map); without it `since` is this call's time. */
  outages?: Map<CheckName, string>;
  now?: () => Date;
}

/**
 * `ok`, or why caretaker's Redis connection is not usable. Its client has
 * maxRetriesPerRequest: null (BullMQ needs it), so a command sent while
 * disconnected waits in the offline queue forever: look at the connection
 * status first, then PING with a timeout.
 */
export async function checkRedis(redis: Redis): Promise<CheckResult> {
  if (redis.status !== 'ready') return `not connected (connection status "${redis.status}")`;
  try {
    const reply = await withTimeout(redis.ping(), REDIS_TIMEOUT_MS, 'PING');
    return reply === 'PONG' ? 'ok' : `unexpected PING reply ${JSON.stringify(reply)}`;
  } catch (err) {
    return failureReason(err);
  }
}

/** `ok`, or why the state database did not answer `SELECT 1` in time. */
export async function checkState(state: Pool): Promise<CheckResult> {
  try {
    await withTimeout(state.query(HEALTH_SQL.ping), STATE_TIMEOUT_MS, 'SELECT 1');
    return 'ok';
  } catch (err) {
    return failureReason(err);
  }
}

/** Where checkHealth finds the loops: this process's, named `self`, and the others' on `board`. */
export interface LoopSources {
  loops?: Pick<BackgroundLoops, 'snapshot'>;
  /** This process's name on the board (`liveness.processName`): its own entry there is older than `loops`. */
  self?: string;
  board?: Pick<LoopBoard, 'read'>;
}

/** Both checks, run together, the alert channels' last failures and the loops' states; error texts only with `opts.detail`. */
export async function checkHealth(deps: { redis: Redis; state: Pool } & LoopSources, opts: HealthOptions = {}): Promise<HealthReport> {
  const at = (opts.now ?? (() => new Date()))().toISOString();
  const outages = opts.outages ?? new Map<CheckName, string>();
  const secrets = opts.secrets ?? [];
  const [redis, state] = await Promise.all([checkRedis(deps.redis), checkState(deps.state)]);
  const results: Record<CheckName, CheckResult> = { redis, state };

  const report: HealthReport = { status: redis === 'ok' && state === 'ok' ? 'ok' : 'down', checks: { redis: 'ok', state: 'ok' } };
  const since: Partial<Record<CheckName, string>> = {};
  const errors: Partial<Record<CheckName, string>> = {};
  for (const name of ['redis', 'state'] as const) {
    const result = results[name];
    if (result === 'ok') {
      outages.delete(name);
      continue;
    }
    report.checks[name] = 'down';
    if (!outages.has(name)) outages.set(name, at);
    since[name] = outages.get(name)!;
    if (opts.detail) errors[name] = scrubSecrets(result, secrets);
  }
  if (Object.keys(since).length > 0) report.since = since;
  if (Object.keys(errors).length > 0) report.errors = errors;

  const loops = Object.entries(mergeLoops(await loopsByProcess(deps, redis === 'ok')));
  if (loops.length > 0) {
    const shown = ({ lastError, ...state }: LoopState): ProcessLoopHealth => (opts.detail && lastError !== undefined ? { ...state, error: scrubSecrets(lastError, secrets) } : state);
    report.loops = Object.fromEntries(
      loops.map(([name, merged]) => [
        name,
        opts.detail ? { ...shown(merged.state), processes: Object.fromEntries(Object.entries(merged.byProcess).map(([p, s]) => [p, shown(s)])) } : shown(merged.state),
      ]),
    );
    if (report.status === 'ok' && loops.some(([, l]) => l.state.status === 'failing')) report.status = 'degraded';
  }

  if (state === 'ok') {
    const failures = await withTimeout(new AlertState(deps.state).lastFailures(), STATE_TIMEOUT_MS, 'notifier failures').catch(() => undefined);
    if (failures && Object.keys(failures).length > 0) {
      // Cleaned again when shown: a row may predate the cleaning at write time, or come from an older version.
      report.notifiers = Object.fromEntries(
        Object.entries(failures).map(([channel, f]) => [channel, opts.detail ? { at: f.at, error: cleanNotifierError(f.error, secrets) } : { at: f.at }]),
      );
    }
  }
  return report;
}

/**
 * Each process's loops: those published on the board (when Redis answers;
 * without it only this process's are known), then this process's own,
 * which are newer than what it last published.
 */
async function loopsByProcess(deps: LoopSources, redisUp: boolean): Promise<Map<string, Record<string, LoopState>>> {
  const byProcess = new Map<string, Record<string, LoopState>>();
  if (deps.board && redisUp) {
    const published = await withTimeout(deps.board.read(), REDIS_TIMEOUT_MS, 'reading the loops').catch(() => undefined);
    for (const [process, entry] of published ?? []) byProcess.set(process, entry.loops);
  }
  const own = deps.loops?.snapshot() ?? {};
  if (Object.keys(own).length > 0) byProcess.set(deps.self ?? 'this process', own);
  return byProcess;
}

/** What healthHandler needs: the two clients, the config (its secrets, whether auth is on), the console's login, and this process's loops. */
export interface HealthDeps {
  redis: Redis;
  state: Pool;
  config: Config;
  /** The process's heartbeats, which carry its loops' outcomes (`liveness.background`); without it /health shows only other processes' loops. */
  liveness?: Liveness;
  /** `authenticate(config.web.auth, throttle)`: `?detail` goes through it. */
  login: RequestHandler;
}

/**
 * 200 when both are up (`degraded` when a loop fails), else 503 naming
 * what is down and since when, to anyone. `?detail` adds why, to a viewer or admin: 401 without
 * credentials when auth is on; with auth off (the web role then serves
 * loopback only) to a loopback caller.
 */
export function healthHandler(deps: HealthDeps): RequestHandler {
  const secrets = configSecrets(deps.config);
  const outages = new Map<CheckName, string>();
  const board = new LoopBoard(deps.redis, deps.config.redis.prefix);
  const answer = async (res: Response, detail: boolean) => {
    const loops: LoopSources = { loops: deps.liveness?.background, self: deps.liveness?.processName, board };
    const report = await checkHealth({ redis: deps.redis, state: deps.state, ...loops }, { detail, secrets, outages });
    res.set('Cache-Control', 'no-store').status(report.status === 'down' ? 503 : 200).json(report);
  };
  return (req, res, next) => {
    if (req.query.detail === undefined) {
      answer(res, false).catch(next);
      return;
    }
    void deps.login(req, res, (err?: unknown) => {
      if (err) return next(err);
      // Without credentials everyone is admin: that is safe only for a caller on this machine.
      if (!authEnabled(deps.config.web.auth) && !isLoopbackHost(req.socket.remoteAddress ?? '')) {
        res.set('Cache-Control', 'no-store').status(403).json({ error: 'forbidden: /health?detail without credentials answers loopback callers only' });
        return;
      }
      answer(res, true).catch(next);
    });
  };
}
