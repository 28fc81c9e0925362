/**
 * `/health`, for Kubernetes probes and load balancers: is this replica
 * connected to Redis (the queue) and to the state database (history)?
 * Every check is bounded in time, so a probe never hangs on a dead backend.
 */
import type { Redis } from 'ioredis';
import type { RequestHandler } from 'express';
import type { Pool } from 'pg';
import { coerceError } from '../errors';
import { redactSecretsIn } from '../logger';
import { AlertState } from '../alerts/alert-state';
import { withTimeout } from '../util/timeout';

export const HEALTH_SQL = {
  ping: 'SELECT 1',
} as const;

/** Well under a probe's usual 1-5 s timeout, yet generous for a local round trip. */
export const REDIS_TIMEOUT_MS = 1_000;
/** A pool may have to open a connection first: a little longer than Redis. */
export const STATE_TIMEOUT_MS = 2_000;

/** `ok`, or why the dependency is down (secrets redacted). */
export type CheckResult = 'ok' | string;

export interface HealthReport {
  status: 'ok' | 'down';
  checks: { redis: CheckResult; state: CheckResult };
  /** The newest failure of each alert channel (SMTP, webhook): it does not make caretaker down, but silence is not "all clear". */
  notifiers?: Record<string, { at: string; error: string }>;
}

/*
 * caretaker's Redis client has maxRetriesPerRequest: null (BullMQ needs it),
 * so a command sent while disconnected waits in the offline queue forever:
 * look at the connection status first, then PING with a timeout.
 */
export async function checkRedis(redis: Redis): Promise<CheckResult> {
  if (redis.status !== 'ready') return `not connected (connection status "${redis.status}")`;
  try {
    const reply = await withTimeout(redis.ping(), REDIS_TIMEOUT_MS, 'PING');
    return reply === 'PONG' ? 'ok' : `unexpected PING reply ${JSON.stringify(reply)}`;
  } catch (err) {
    return describe(err);
  }
}

export async function checkState(state: Pool): Promise<CheckResult> {
  try {
    await withTimeout(state.query(HEALTH_SQL.ping), STATE_TIMEOUT_MS, 'SELECT 1');
    return 'ok';
  } catch (err) {
    return describe(err);
  }
}

/*
 * Node reports a refused connection to a host with several addresses as an
 * AggregateError with an empty message: use its first cause then.
 */
function describe(thrown: unknown): string {
  const err = coerceError(thrown);
  const inner = err instanceof AggregateError && err.errors.length > 0 ? coerceError(err.errors[0]) : undefined;
  const code = (err as { code?: unknown }).code;
  const message = err.message || inner?.message || (typeof code === 'string' ? code : err.name);
  return redactSecretsIn(message);
}

/** Both checks, run together. */
export async function checkHealth(deps: { redis: Redis; state: Pool }): Promise<HealthReport> {
  const [redis, state] = await Promise.all([checkRedis(deps.redis), checkState(deps.state)]);
  const report: HealthReport = { status: redis === 'ok' && state === 'ok' ? 'ok' : 'down', checks: { redis, state } };
  if (state === 'ok') {
    const failures = await withTimeout(new AlertState(deps.state).lastFailures(), STATE_TIMEOUT_MS, 'notifier failures').catch(() => undefined);
    if (failures && Object.keys(failures).length > 0) report.notifiers = failures;
  }
  return report;
}

/** 200 when both are up, else 503 with the report naming what is down and why. */
export function healthHandler(deps: { redis: Redis; state: Pool }): RequestHandler {
  return async (_req, res) => {
    const report = await checkHealth(deps);
    res.set('Cache-Control', 'no-store').status(report.status === 'ok' ? 200 : 503).json(report);
  };
}
