/**
 * The composition root: builds the clients from the config, starts the
 * roles asked for, and owns their orderly stop. Nothing else creates
 * long-lived connections.
 */
import type { Pool } from 'pg';
import type { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import type { Logger } from 'pino';
import type { TaskResult } from './contract/result';
import type { Config } from './config/schema';
import { TASKS, type TaskRegistry } from './jobs';
import { createPool, stateLimits } from './clients/postgres';
import { createRedis } from './clients/redis';
import { createQueue, jobOptions, type JobData } from './queue/queue';
import { ResultStore } from './results/store';
import { migrate } from './results/migrate';
import { startScheduler, type SchedulerRole } from './schedules/scheduler';
import { MISSED_RUN_INTERVAL_MS, startMissedRunWatch, type MissedRun } from './schedules/missed-runs';
import { Liveness } from './liveness/liveness';
import { LoopBoard, publishLoops } from './liveness/shared-loops';
import { configSecrets } from './config/secrets';
import { startLivenessServer } from './liveness/server';
import { startWorker, type WorkerRole } from './worker/worker';
import { startWeb } from './web/server';
import { coerceError } from './errors';
import { createAlerter } from './alerts/alerter';
import { startAlertSweep } from './alerts/sweep-loop';
import { alertChannels } from './alerts/notifiers';
import { redactUrl } from './logger';
import { withTimeout } from './util/timeout';

export const ROLES = ['scheduler', 'worker', 'web'] as const;
export type Role = (typeof ROLES)[number];

/** The state pool's connections for everything but the worker's jobs: the status page's parallel statements, the missed-run check, /health, the alerter. */
const STATE_POOL_BASE = 5;

/**
 * The state pool of a process running `roles`: the base, plus one
 * connection per job the worker runs at once (each stores its result, and
 * some read the history), so stored results do not queue for a connection.
 */
export function statePoolSize(worker: Pick<Config['worker'], 'concurrency'>, roles: readonly Role[]): number {
  return STATE_POOL_BASE + (roles.includes('worker') ? worker.concurrency : 0);
}

/** How long stopping waits for each client to close before leaving it to the process's exit. */
const CLIENT_CLOSE_MS = 5_000;

export interface Caretaker {
  config: Config;
  log: Logger;
  state: Pool;
  redis: Redis;
  queue: Queue<JobData>;
  store: ResultStore;
  /** Where the web role listens, when it runs. */
  webUrl?: string;
  /** Stops the roles (web, scheduler, worker with its grace period), then the clients. */
  stop(): Promise<void>;
}

/** A missed run as the alert path sees it: a critical `missed_run` on the (task, target), resolved by its next real run. */
function missedRunResult(m: MissedRun): TaskResult {
  const now = new Date().toISOString();
  const message = `${m.task} on ${m.target} was due at ${m.dueAt.toISOString()} (schedule ${m.schedule}) and has not run`;
  return {
    task: m.task,
    target: m.target,
    status: 'critical',
    startedAt: now,
    finishedAt: now,
    durationMs: 0,
    dryRun: false,
    summary: message,
    findings: [{ severity: 'critical', code: 'missed_run', subject: m.schedule, message, suggestion: 'Check that a worker is running and Redis holds the job schedulers (caretaker schedules); set catchUp: true on the schedule to run it at once' }],
    actions: [],
    metrics: {},
  };
}

export async function startCaretaker(opts: {
  config: Config;
  roles: readonly Role[];
  log: Logger;
  registry?: TaskRegistry;
  /** How often the scheduler looks for missed runs (default 1 min); tests shorten it. */
  missedRunIntervalMs?: number;
  /** How often the scheduler re-syncs the job schedulers (default `scheduler.resyncSeconds`); tests shorten it. */
  resyncMs?: number;
  /** How often the worker flushes the outbox (default `worker.outboxFlushSeconds`); tests shorten it. */
  outboxFlushMs?: number;
  /** The pause between alert sweeps (default the alerter's: 30 s, or sooner for a channel that re-posts sooner); tests shorten it. */
  sweepIntervalMs?: number;
  /** The heartbeats /livez reads and the loops' outcomes /health shows; tests pass one with a clock of their own. */
  liveness?: Liveness;
}): Promise<Caretaker> {
  const { config, roles, log } = opts;
  const registry = opts.registry ?? TASKS;
  const state = createPool(config.state.url, stateLimits(config.state), log, statePoolSize(config.worker, roles));
  const redis = createRedis(config.redis.url, log);
  const queue = createQueue(redis, config.redis.prefix, config.worker, log);
  const store = new ResultStore(state);
  // Routes each result's problems to their channels; never fails a run (see src/alerts/alerter.ts).
  const alerter = createAlerter({ config, state, log: log.child({ component: 'alerts' }) });
  const stops: (() => Promise<void>)[] = [];
  // The roles' heartbeats, for /livez (the web role's, or liveness.port's for the others), and
  // their loops' outcomes, for the web role's /health when it runs in this process.
  const liveness = opts.liveness ?? new Liveness();

  // Bounded: a pool ends by saying goodbye on each connection, and a peer that is gone never answers.
  const closeClients = async () => {
    await withTimeout(queue.close(), CLIENT_CLOSE_MS, 'closing the queue').catch(() => undefined);
    redis.disconnect();
    await withTimeout(state.end(), CLIENT_CLOSE_MS, 'ending the state pool').catch(() => undefined);
  };

  try {
    const applied = await migrate(state).catch((err: unknown) => {
      throw new Error(`state database ${redactUrl(config.state.url)}: ${coerceError(err).message}`, { cause: err });
    });
    if (applied.length > 0) log.info({ migrations: applied.map((m) => m.version) }, 'state database migrated');

    // Stopped in reverse order of start: web first (no new "run now"), the worker last (grace period).
    if (roles.includes('worker')) {
      const worker: WorkerRole = startWorker({
        config,
        registry,
        store,
        state,
        redis,
        connection: redis,
        log: log.child({ role: 'worker' }),
        onResult: (result, job) => void alerter.onResult(result, job.id),
        liveness,
        outboxFlushMs: opts.outboxFlushMs,
      });
      stops.unshift(() => worker.close(config.worker.shutdownGraceMs));
    }
    if (roles.includes('scheduler')) {
      const entries = config.schedulers;
      const missedRunInterval = opts.missedRunIntervalMs ?? MISSED_RUN_INTERVAL_MS;
      const resyncMs = opts.resyncMs ?? config.scheduler.resyncSeconds * 1000;
      // Silent for twice (thrice) its period plus a minute: stuck, not slow.
      const synced = liveness.loop('job scheduler re-sync', 2 * resyncMs + 60_000);
      const checked = liveness.loop('missed-run check', 3 * missedRunInterval + 60_000);
      const scheduler: SchedulerRole = await startScheduler({
        queue,
        connection: redis,
        entries,
        jobOpts: jobOptions(config.worker),
        log: log.child({ role: 'scheduler' }),
        resyncMs,
        onSynced: synced,
      });
      stops.unshift(scheduler.close);
      // The dead man's switch: a scheduled run that did not happen is an alert, whoever was down.
      const watch = startMissedRunWatch({
        entries,
        state,
        queue,
        jobOpts: jobOptions(config.worker),
        log: log.child({ role: 'scheduler', component: 'missed-runs' }),
        intervalMs: missedRunInterval,
        catchUpFor: (e) => e.catchUp,
        // A replica whose config a newer one replaced would report the removed schedules as missed.
        active: scheduler.isCurrent,
        onChecked: checked,
        onMissed: async (missed) => {
          for (const m of missed) await alerter.onResult(missedRunResult(m), undefined, { resolves: false });
        },
      });
      stops.unshift(watch.close);
      // Held alerts go out when their silence or window ends; Alertmanager keeps hearing of open ones.
      if (alertChannels(config).length > 0) {
        const sweepIntervalMs = opts.sweepIntervalMs ?? alerter.sweepIntervalMs;
        const swept = liveness.loop('alert sweep', 3 * sweepIntervalMs + 60_000);
        const sweeps = startAlertSweep(alerter, { intervalMs: sweepIntervalMs, onSwept: swept });
        stops.unshift(sweeps.close);
      }
    }
    // The loops' states travel to the web role of whatever process serves /health.
    let publisher: { close(): Promise<void> } | undefined;
    if (roles.includes('worker') || roles.includes('scheduler')) {
      publisher = publishLoops({
        board: new LoopBoard(redis, config.redis.prefix),
        loops: liveness.background,
        process: liveness.processName,
        secrets: configSecrets(config),
        log: log.child({ component: 'loops' }),
      });
    }
    let webUrl: string | undefined;
    if (roles.includes('web')) {
      const web = await startWeb({ config, queue, redis, state, store, liveness, log: log.child({ role: 'web' }) });
      webUrl = web.url;
      stops.unshift(web.close);
    } else if (config.liveness.port !== undefined) {
      const probe = await startLivenessServer({ liveness, host: config.liveness.host, port: config.liveness.port, log: log.child({ component: 'liveness' }) });
      stops.unshift(probe.close);
    }

    let stopping: Promise<void> | undefined;
    return {
      config,
      log,
      state,
      redis,
      queue,
      store,
      webUrl,
      stop() {
        stopping ??= (async () => {
          for (const stop of stops) {
            await stop().catch((err) => log.error({ err: coerceError(err).message }, 'error while stopping a role'));
          }
          // Its loops have stopped: /health elsewhere stops showing them now, not when they expire.
          await publisher?.close();
          await alerter.drain();
          await closeClients();
          log.info('caretaker stopped');
        })();
        return stopping;
      },
    };
  } catch (err) {
    for (const stop of stops) await stop().catch(() => undefined);
    await closeClients();
    throw err;
  }
}
