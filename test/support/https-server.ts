/**
 * A local HTTP or HTTPS server for api-health and other HTTP checks, with
 * certificates made by the `openssl` CLI: self-signed or signed by a test CA,
 * valid over any dates (past ones too, through `openssl ca -startdate
 * -enddate`, which OpenSSL 3.0 has; `req -x509` only takes -days).
 *
 *     const ca = makeCa();
 *     const server = await startTestServer({ tls: makeCertificate({ notAfter: daysFromNow(10), signedBy: ca }) });
 *     server.route('/health', { status: 503, delayMs: 250 });
 *     server.route('/health/detailed', { body: { status: 'degraded' }, requireToken: 's3cret' });
 *     ... server.url('/health') ...
 *     await server.close();
 *
 * Unknown paths answer 404. Every request is recorded (method, path, the
 * Authorization header as received).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const DAY_MS = 86_400_000;

/** A key and certificate, PEM. */
export interface TestCertificate {
  key: string;
  cert: string;
}

export interface CertificateOptions {
  /** Default: one hour ago. */
  notBefore?: Date;
  notAfter: Date;
  /** The CA that signs it; default: self-signed. */
  signedBy?: TestCertificate;
  /** Default "localhost". */
  commonName?: string;
  /** The subjectAltName; default "IP:127.0.0.1,DNS:localhost" (another name makes a certificate for the wrong host). */
  altNames?: string;
}

/** `Date.now() + days` (fractions allowed), for notAfter. */
export function daysFromNow(days: number): Date {
  return new Date(Date.now() + days * DAY_MS);
}

/** A test CA (self-signed, CA:TRUE, 30 days). */
export function makeCa(commonName = 'caretaker test CA'): TestCertificate {
  return withTempDir((dir) => {
    const key = join(dir, 'ca.key');
    const cert = join(dir, 'ca.pem');
    openssl(dir, [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '30', '-keyout', key, '-out', cert, '-subj', `/CN=${commonName}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
  });
}

/** A server certificate for localhost / 127.0.0.1 valid from notBefore to notAfter (to the second). */
export function makeCertificate(opts: CertificateOptions): TestCertificate {
  const notBefore = opts.notBefore ?? new Date(Date.now() - 3600_000);
  return withTempDir((dir) => {
    writeFileSync(join(dir, 'ca.cnf'), `${CA_CONFIG}subjectAltName = ${opts.altNames ?? 'IP:127.0.0.1,DNS:localhost'}\n`);
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(join(dir, 'serial'), `01${randomBytes(7).toString('hex')}\n`);
    openssl(dir, ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-config', 'ca.cnf', '-subj', `/CN=${opts.commonName ?? 'localhost'}`]);
    const sign = ['ca', '-batch', '-config', 'ca.cnf', '-in', 'server.csr', '-out', 'server.pem', '-notext', '-extensions', 'server_ext',
      '-startdate', opensslDate(notBefore), '-enddate', opensslDate(opts.notAfter)];
    if (opts.signedBy) {
      writeFileSync(join(dir, 'ca.key'), opts.signedBy.key);
      writeFileSync(join(dir, 'ca.pem'), opts.signedBy.cert);
      openssl(dir, [...sign, '-cert', 'ca.pem', '-keyfile', 'ca.key']);
    } else {
      openssl(dir, [...sign, '-selfsign', '-keyfile', 'server.key']);
    }
    return { key: readFileSync(join(dir, 'server.key'), 'utf8'), cert: readFileSync(join(dir, 'server.pem'), 'utf8') };
  });
}

/** How the server answers one path. */
export interface RouteSpec {
  /** Default 200. */
  status?: number;
  /** Statuses of successive requests to this path, cycling (overrides `status`): [200, 503] fails every other one. */
  statuses?: number[];
  /** The status line's reason phrase; default: the standard one for the status. */
  statusText?: string;
  /** Extra response headers (a redirect's Location). */
  headers?: Record<string, string>;
  /** Waits this long before answering. */
  delayMs?: number;
  /** An object is sent as JSON. Default: `{ status: 'ok' }`, or `{ status: 'down' }` for a 4xx/5xx. */
  body?: string | Record<string, unknown>;
  /**
   * When set, a request without `Authorization: Bearer <token>` gets 401,
   * and the body echoes the header it got (as careless servers do).
   */
  requireToken?: string;
}

export interface RecordedHttpRequest {
  method: string;
  path: string;
  authorization?: string;
}

export interface TestServer {
  /** `http://127.0.0.1:PORT` or `https://...`. */
  origin: string;
  port: number;
  url(path: string): string;
  route(path: string, spec: RouteSpec): void;
  requests: RecordedHttpRequest[];
  /** Connections open right now (a client that gave up has closed its own). */
  openConnections(): Promise<number>;
  close(): Promise<void>;
}

/** Starts a server on 127.0.0.1 and a free port: HTTPS when `tls` is given, else HTTP. */
export async function startTestServer(opts: { tls?: TestCertificate; routes?: Record<string, RouteSpec> } = {}): Promise<TestServer> {
  const routes = new Map<string, RouteSpec>(Object.entries(opts.routes ?? {}));
  const requests: RecordedHttpRequest[] = [];
  const served = new Map<string, number>();
  const timers = new Set<NodeJS.Timeout>();
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    requests.push({ method: req.method ?? 'GET', path, authorization: req.headers.authorization });
    const spec = routes.get(path);
    const answer = () => {
      if (!spec) return send(res, 404, { error: 'not found' });
      if (spec.requireToken !== undefined && req.headers.authorization !== `Bearer ${spec.requireToken}`) {
        return send(res, 401, `invalid credentials: ${req.headers.authorization ?? '(none)'}`);
      }
      const n = served.get(path) ?? 0;
      served.set(path, n + 1);
      const status = spec.statuses?.length ? spec.statuses[n % spec.statuses.length]! : (spec.status ?? 200);
      send(res, status, spec.body ?? { status: status < 400 ? 'ok' : 'down' }, spec.headers, spec.statusText);
    };
    if (!spec?.delayMs) return answer();
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (!res.destroyed) answer();
    }, spec.delayMs);
    timers.add(timer);
  };
  const server: Server = opts.tls ? createHttpsServer({ key: opts.tls.key, cert: opts.tls.cert }, handler) : createHttpServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const origin = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  return {
    origin,
    port,
    url: (path) => `${origin}${path}`,
    route: (path, spec) => {
      routes.set(path, spec);
      served.delete(path);
    },
    requests,
    openConnections: () => new Promise<number>((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n)))),
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port nothing listens on (it did a moment ago): connections to it are refused. */
export async function closedPort(): Promise<number> {
  const server = createHttpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function send(res: ServerResponse, status: number, body: string | Record<string, unknown>, headers: Record<string, string> = {}, statusText?: string): void {
  const json = typeof body !== 'string';
  if (statusText !== undefined) res.statusMessage = statusText;
  res.writeHead(status, { 'content-type': json ? 'application/json' : 'text/plain', ...headers });
  res.end(json ? JSON.stringify(body) : body);
}

/** A minimal `openssl ca` setup: any subject; makeCertificate appends the subjectAltName to server_ext. */
const CA_CONFIG = `
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = .
database = ./index.txt
new_certs_dir = .
serial = ./serial
default_md = sha256
policy = policy_any
unique_subject = no
[ policy_any ]
commonName = supplied
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = localhost
[ server_ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
`;

/** YYYYMMDDHHMMSSZ, what `openssl ca -startdate/-enddate` take. */
function opensslDate(d: Date): string {
  return `${d.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

function openssl(cwd: string, args: string[]): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`openssl ${args[0]} failed: ${stderr.trim() || String(err)}`);
  }
}

function withTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'caretaker-cert-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
