/**
 * A TCP proxy that can turn into a black hole, as a network partition or a
 * NAT that forgot the flow does: `blackhole()` keeps every socket open but
 * drops every byte both ways, and the connections open at that moment stay
 * dead for good (their peer never answers again, as on a half-open TCP
 * connection). `restore()` lets new connections through; only a client that
 * gives up on a dead one and reconnects gets going again.
 */
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { TEST_PG_ADMIN_URL } from './env';

export interface BlackholeProxy {
  port: number;
  blackhole(): void;
  restore(): void;
  /** Connections that are passing bytes right now. */
  live(): number;
  /** Bytes clients sent into the black hole so far: a test waits for it instead of a clock. */
  swallowed(): number;
  close(): Promise<void>;
}

export async function startBlackholeProxy(upstreamPort: number, upstreamHost = '127.0.0.1'): Promise<BlackholeProxy> {
  let swallowing = false;
  let swallowedBytes = 0;
  const sessions = new Set<{ client: Socket; upstream: Socket; dead: boolean }>();
  // Half-open allowed: a dead session must not answer the client's FIN either (a gone peer sends nothing).
  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    const upstream = createConnection({ port: upstreamPort, host: upstreamHost, allowHalfOpen: true });
    const s = { client, upstream, dead: swallowing };
    sessions.add(s);
    const end = () => {
      sessions.delete(s);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.on('data', (chunk: Buffer) => {
      if (!s.dead) upstream.write(chunk);
      else swallowedBytes += chunk.length;
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!s.dead) client.write(chunk);
    });
    client.on('end', () => {
      if (!s.dead) upstream.end();
    });
    upstream.on('end', () => {
      if (!s.dead) client.end();
    });
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    blackhole() {
      swallowing = true;
      for (const s of sessions) s.dead = true;
    },
    restore() {
      swallowing = false;
    },
    live: () => [...sessions].filter((s) => !s.dead).length,
    swallowed: () => swallowedBytes,
    async close() {
      for (const s of sessions) {
        s.client.destroy();
        s.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A black-hole proxy in front of the test PostgreSQL server (TEST_PG_URL's host and port). */
export function startBlackholeProxyToPostgres(): Promise<BlackholeProxy> {
  const server = new URL(TEST_PG_ADMIN_URL);
  return startBlackholeProxy(Number(server.port || 5432), server.hostname);
}
