/**
 * The web role: the console at / (status, findings, runs, run now; see
 * console/router.ts), Bull Board at /admin/queues (admin or read-only
 * viewer), /reports and /api/runs (history, logged in), /health and
 * /metrics (open: probes and Prometheus call them). Failed logins are throttled per client
 * (login-throttle.ts) and cross-site writes refused (same-origin.ts).
 * `createWebApp` only builds; `startWeb` listens.
 */
import http from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import express from 'express';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Pool } from 'pg';
import type { Config } from '../config/schema';
import { UsageError } from '../errors';
import type { Logger } from '../logger';
import type { JobData } from '../queue/queue';
import type { ResultStore } from '../results/store';
import { apiRouter } from './api-runs';
import { reportsRouter } from './reports';
import { authEnabled, authenticate, viewersReadOnly } from './auth';
import { createBoards } from './board';
import { healthHandler } from './health';
import { errorHandler, notFound } from './http-errors';
import { LoginThrottle, type LoginThrottleOptions } from './login-throttle';
import { createMetricsRegistry, metricsHandler } from './metrics';
import { sameOriginOnly } from './same-origin';
import { ASSETS_PATH, BOARD_PATH, REPORTS_PATH } from './paths';
import { securityHeaders } from './security-headers';
import { Liveness } from '../liveness/liveness';
import { LIVEZ_PATH, livezAnswer } from '../liveness/server';
import { loopbackHostOnly } from './host-guard';
import { isLoopbackHost } from './loopback';
import { assetsRouter } from './console/assets';
import { consoleRouter } from './console/router';

export interface WebDeps {
  config: Config;
  queue: Queue<JobData>;
  /** caretaker's own Redis connection (the queue's), checked by /health. */
  redis: Redis;
  /** A pool on the state database: /metrics and /health read it. */
  state: Pool;
  store: ResultStore;
  log: Logger;
  /** The process's heartbeats, answered on /livez; without it /livez says the web role itself answers. */
  liveness?: Liveness;
  /** Overrides of the failed-login throttle's limits and clock (tests); the defaults are in login-throttle.ts. */
  loginThrottle?: Partial<LoginThrottleOptions>;
}

export interface WebServer {
  /** Where it listens, e.g. `http://127.0.0.1:3000` (the real port when 0 was asked). */
  url: string;
  server: http.Server;
  /** Stops accepting, lets in-flight requests finish (bounded), resolves when closed. Safe to call twice. */
  close(): Promise<void>;
}

/** How long `close()` lets open requests finish before cutting their connections. */
const CLOSE_GRACE_MS = 5_000;

/** Listen errors that are the operator's to fix: one line, exit 3, no stack. */
const USAGE_LISTEN_ERRORS = new Set(['EADDRINUSE', 'EADDRNOTAVAIL', 'EACCES', 'ENOTFOUND', 'EAI_AGAIN']);

/** Builds the app without listening, so tests drive it with supertest. */
export function createWebApp(deps: WebDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  // JSON bodies write <, > and & as \u003c...: an error that quotes a hostile path stays inert even if sniffed as HTML.
  app.set('json escape', true);
  const login = authenticate(deps.config.web.auth, new LoginThrottle(deps.log, deps.loginThrottle));

  app.use(securityHeaders());
  if (!authEnabled(deps.config.web.auth)) app.use(loopbackHostOnly(deps.config.web.publicUrl));
  app.use(sameOriginOnly(deps.config.web.publicUrl));
  app.get('/health', healthHandler({ ...deps, login }));
  const liveness = deps.liveness ?? new Liveness();
  app.get(LIVEZ_PATH, (_req, res) => {
    const { status, body } = livezAnswer(liveness);
    res.status(status).set('Cache-Control', 'no-store').json(body);
  });
  app.get('/metrics', metricsHandler(createMetricsRegistry(deps.state)));
  app.use(ASSETS_PATH, assetsRouter());
  app.use(consoleRouter({ config: deps.config, state: deps.state, queue: deps.queue, store: deps.store, login }));
  app.use('/api', login, apiRouter(deps.store));
  app.use(REPORTS_PATH, login, reportsRouter({ config: deps.config, state: deps.state }));
  app.use(BOARD_PATH, login, viewersReadOnly(), ...createBoards(deps.queue));

  app.use(notFound());
  app.use(errorHandler(deps.log));
  return app;
}

/**
 * Listens on `config.web.host:port`. Refuses, with a UsageError, to serve
 * a non-loopback address without credentials: without them everyone is admin.
 */
export async function startWeb(deps: WebDeps): Promise<WebServer> {
  const { host, port, auth } = deps.config.web;
  if (!authEnabled(auth)) {
    if (!isLoopbackHost(host)) {
      throw new UsageError(
        `web.host ${host}: refusing to serve without credentials; set web.auth.admin / CARETAKER_ADMIN or bind 127.0.0.1`,
      );
    }
    deps.log.warn({ host }, 'web: no credentials configured, serving without auth (everyone is admin) on loopback only');
  }

  const server = http.createServer(createWebApp(deps));
  await listen(server, port, host);
  const { port: actualPort } = server.address() as AddressInfo;
  const url = `http://${isIP(host) === 6 ? `[${host}]` : host}:${actualPort}`;
  // Not `url`: the logger redacts that key everywhere.
  deps.log.info({ host, port: actualPort, auth: authEnabled(auth) ? 'basic' : 'off' }, 'web listening');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve, reject) => {
      // Idle keep-alive sockets (a browser on the board) would hold close() open.
      const cut = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS).unref();
      server.close((err) => {
        clearTimeout(cut);
        if (err) reject(err);
        else resolve();
      });
      server.closeIdleConnections();
    });
    return closing;
  };
  return { url, server, close };
}

function listen(server: http.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      if (err.code && USAGE_LISTEN_ERRORS.has(err.code)) {
        reject(new UsageError(`web: cannot listen on ${host}:${port}: ${err.code}`, { cause: err }));
      } else {
        reject(err);
      }
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}
