/**
 * `/livez`: 200 while the process's loops make progress, 503 naming what is
 * stuck (src/liveness/liveness.ts). The web role serves it beside /health;
 * the worker and scheduler roles, which have no HTTP server of their own,
 * serve it alone on `liveness.port` when the config sets one. It says
 * nothing secret (loop names, job ids, task and target names), so it needs
 * no login and may listen on the pod's address for the kubelet.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { UsageError } from '../errors';
import type { Liveness } from './liveness';

export const LIVEZ_PATH = '/livez';

/** The answer to a GET /livez: status code and JSON body. */
export function livezAnswer(liveness: Liveness): { status: number; body: { status: 'ok' | 'stuck'; stuck?: string[] } } {
  const verdict = liveness.check();
  return verdict.live ? { status: 200, body: { status: 'ok' } } : { status: 503, body: { status: 'stuck', stuck: verdict.stuck } };
}

export interface LivenessServer {
  url: string;
  close(): Promise<void>;
}

/** Serves /livez alone on host:port (0: any free port); everything else is a 404. */
export async function startLivenessServer(opts: { liveness: Liveness; host: string; port: number; log: Logger }): Promise<LivenessServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    const { status, body } = path === LIVEZ_PATH && (req.method === 'GET' || req.method === 'HEAD') ? livezAnswer(opts.liveness) : { status: 404, body: { error: 'not found' } };
    res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
    res.end(req.method === 'HEAD' ? undefined : JSON.stringify(body));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' || err.code === 'EADDRNOTAVAIL' || err.code === 'EACCES' ? new UsageError(`liveness: cannot listen on ${opts.host}:${opts.port}: ${err.code}`, { cause: err }) : err),
    );
    server.listen(opts.port, opts.host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  opts.log.info({ host: opts.host, port }, 'liveness listening on /livez');
  return {
    url: `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
