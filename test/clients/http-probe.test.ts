/**
 * The HTTP probe against real local servers (node:http and node:https, with
 * certificates from the openssl CLI): any status is an answer, no answer is
 * a reason, redirects are not followed, bodies are bounded, what comes back
 * is scrubbed, TLS is judged as a client would, and the kept-alive
 * connection of a latency sample is one socket, destroyed on close.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createHttpProbe, type ClosableHttpProbe } from '../../src/clients/http-probe';
import type { HttpTlsOptions } from '../../src/contract/http-probe';
import { scrubSecrets } from '../../src/logger';
import { eventually } from '../support/jobs';
import { closedPort, daysFromNow, makeCa, makeCertificate, startTestServer, type TestCertificate, type TestServer } from '../support/https-server';

const TOKEN = 'probe-token-3f9c2a';

let ca: TestCertificate;
let trusted: TestCertificate;
let selfSigned: TestCertificate;
const servers: { close(): Promise<void> }[] = [];
const probes: ClosableHttpProbe[] = [];

beforeAll(() => {
  ca = makeCa();
  // Half a day over the whole number, so "whole days left" is exact however long the tests take.
  trusted = makeCertificate({ notAfter: daysFromNow(40.5), signedBy: ca });
  selfSigned = makeCertificate({ notAfter: daysFromNow(40.5) });
});

afterEach(async () => {
  probes.splice(0).forEach((p) => p.close());
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function probe(opts: { tls?: Partial<HttpTlsOptions>; signal?: AbortSignal } = {}): ClosableHttpProbe {
  const p = createHttpProbe({
    signal: opts.signal ?? new AbortController().signal,
    tls: { insecure: false, ...opts.tls },
    scrub: (text) => scrubSecrets(text, [TOKEN]),
  });
  probes.push(p);
  return p;
}

async function server(opts: Parameters<typeof startTestServer>[0] = {}): Promise<TestServer> {
  const s = await startTestServer(opts);
  servers.push(s);
  return s;
}

/** A node:http server that records the client port of every request, to tell connections apart. */
async function socketServer(handle: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end('ok')) {
  const ports: number[] = [];
  const sockets = new Set<Socket>();
  const s: Server = createServer((req, res) => {
    ports.push(req.socket.remotePort!);
    handle(req, res);
  });
  s.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  const recorded = {
    origin,
    ports,
    open: () => sockets.size,
    close: () =>
      new Promise<void>((resolve) => {
        s.closeAllConnections();
        s.close(() => resolve());
      }),
  };
  servers.push(recorded);
  return recorded;
}

describe('a GET', () => {
  it('answers with status, reason phrase and body, sending the extra headers beside its accept and user-agent', async () => {
    const seen: IncomingMessage['headers'][] = [];
    const s = await socketServer((req, res) => {
      seen.push(req.headers);
      res.statusMessage = 'Service Unavailable';
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end('{"status":"down"}');
    });
    const r = await probe().get(new URL(`${s.origin}/health`), { timeoutMs: 5_000, headers: { authorization: `Bearer ${TOKEN}` } });
    expect(r.failure).toBeUndefined();
    expect(r.answer).toMatchObject({ status: 503, statusText: 'Service Unavailable', body: '{"status":"down"}', location: undefined });
    expect(r.answer!.ms).toBeGreaterThan(0);
    expect(seen[0]).toMatchObject({ authorization: `Bearer ${TOKEN}`, 'user-agent': 'caretaker api-health', accept: 'application/json, text/plain;q=0.9, */*;q=0.5' });
  });

  it('does not follow a redirect: the answer is the 302 and its Location, and the target is never asked', async () => {
    const s = await server();
    s.route('/health', { status: 302, headers: { location: '/login' } });
    s.route('/login', { body: { status: 'ok' } });
    const r = await probe().get(new URL(s.url('/health')), { timeoutMs: 5_000 });
    expect(r.answer).toMatchObject({ status: 302, location: '/login' });
    expect(s.requests.map((q) => q.path)).toEqual(['/health']);
  });

  it('keeps the first 64 KiB of a long body', async () => {
    const s = await server();
    s.route('/big', { body: 'x'.repeat(300 * 1024) });
    const r = await probe().get(new URL(s.url('/big')), { timeoutMs: 5_000 });
    expect(r.answer!.status).toBe(200);
    expect(r.answer!.body).toBe('x'.repeat(64 * 1024));
  });

  it('scrubs a secret the server echoes in its reason phrase, Location and body', async () => {
    const s = await server();
    s.route('/echo', { status: 301, statusText: `Moved ${TOKEN}`, headers: { location: `/next?t=${TOKEN}` }, body: `you sent ${TOKEN}` });
    s.route('/detailed', { requireToken: 'another-one' });
    const p = probe();
    const moved = await p.get(new URL(s.url('/echo')), { timeoutMs: 5_000 });
    expect(moved.answer).toMatchObject({ statusText: 'Moved ***', location: '/next?t=***', body: 'you sent ***' });
    // The test server's 401 echoes the Authorization header it got, as careless servers do.
    const denied = await p.get(new URL(s.url('/detailed')), { timeoutMs: 5_000, headers: { authorization: `Bearer ${TOKEN}` } });
    expect(denied.answer).toMatchObject({ status: 401, body: 'invalid credentials: Bearer ***' });
    expect(JSON.stringify([moved, denied])).not.toContain(TOKEN);
  });

  it('gives the reason when nothing answers: a refused connection, or no answer in time', async () => {
    const port = await closedPort();
    const refused = await probe().get(new URL(`http://127.0.0.1:${port}/health`), { timeoutMs: 5_000 });
    expect(refused.answer).toBeUndefined();
    expect(refused.failure).toBe(`connect ECONNREFUSED 127.0.0.1:${port}`);

    const s = await server();
    s.route('/slow', { delayMs: 10_000 });
    const slow = await probe().get(new URL(s.url('/slow')), { timeoutMs: 300 });
    expect(slow).toEqual({ failure: 'no answer within 300 ms' });
  });

  it("rejects with the run's abort reason once the run is aborted, rather than reporting no answer", async () => {
    const s = await server();
    s.route('/slow', { delayMs: 10_000 });
    const run = new AbortController();
    const pending = probe({ signal: run.signal }).get(new URL(s.url('/slow')), { timeoutMs: 20_000 });
    await eventually(async () => (s.requests.length > 0 ? true : undefined), 5_000, 'the request to arrive');
    const reason = new Error('timed out after 120000 ms');
    run.abort(reason);
    await expect(pending).rejects.toBe(reason);
  });
});

describe('TLS', () => {
  it('fails an untrusted certificate as a client would, accepts it when insecure, and trusts an extra CA', async () => {
    const self = await server({ tls: selfSigned, routes: { '/health': {} } });
    const url = new URL(self.url('/health'));
    const rejected = await probe().get(url, { timeoutMs: 5_000 });
    expect(rejected.failure).toMatch(/DEPTH_ZERO_SELF_SIGNED_CERT|self-signed certificate/);
    const insecure = await probe({ tls: { insecure: true } }).get(url, { timeoutMs: 5_000 });
    expect(insecure.answer?.status).toBe(200);

    const privateCa = await server({ tls: trusted, routes: { '/health': {} } });
    const privateUrl = new URL(privateCa.url('/health'));
    expect((await probe().get(privateUrl, { timeoutMs: 5_000 })).failure).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify/);
    expect((await probe({ tls: { extraCa: ca.cert } }).get(privateUrl, { timeoutMs: 5_000 })).answer?.status).toBe(200);
  });

  it('reads the certificate even when untrusted, judging trust with the extra CA', async () => {
    const self = await server({ tls: selfSigned });
    const read = await probe().certificate(self.origin, { timeoutMs: 5_000 });
    expect(read.certificate).toMatchObject({ endpoint: `127.0.0.1:${self.port}`, daysLeft: 40, expired: false, selfSigned: true, authorized: false, authorizationError: 'DEPTH_ZERO_SELF_SIGNED_CERT' });

    const privateCa = await server({ tls: trusted });
    expect((await probe().certificate(privateCa.origin, { timeoutMs: 5_000 })).certificate).toMatchObject({ authorized: false, selfSigned: false });
    // insecure does not make a certificate trusted: it only lets the GETs through.
    expect((await probe({ tls: { insecure: true } }).certificate(privateCa.origin, { timeoutMs: 5_000 })).certificate?.authorized).toBe(false);
    expect((await probe({ tls: { extraCa: ca.cert } }).certificate(privateCa.origin, { timeoutMs: 5_000 })).certificate).toMatchObject({ authorized: true, issuer: 'CN=caretaker test CA' });
  });

  it('says why a certificate could not be read', async () => {
    const port = await closedPort();
    const read = await probe().certificate(`https://127.0.0.1:${port}`, { timeoutMs: 5_000 });
    expect(read).toEqual({ failure: `connect ECONNREFUSED 127.0.0.1:${port}` });
  });
});

describe('a kept-alive connection', () => {
  it('sends its GETs over one socket, and closing it closes the socket', async () => {
    const s = await socketServer();
    const connection = probe().keptAlive(new URL(s.origin));
    for (let i = 0; i < 4; i++) expect((await connection.get(new URL(`${s.origin}/health`), { timeoutMs: 5_000 })).answer?.status).toBe(200);
    expect(s.ports).toHaveLength(4);
    expect(new Set(s.ports).size).toBe(1);
    connection.close();
    await eventually(async () => (s.open() === 0 ? true : undefined), 5_000, 'the kept-alive socket to close');
  });

  it('is destroyed by the probe\'s close when its user did not close it', async () => {
    const s = await socketServer();
    const p = probe();
    await p.keptAlive(new URL(s.origin)).get(new URL(`${s.origin}/health`), { timeoutMs: 5_000 });
    expect(s.open()).toBe(1);
    p.close();
    await eventually(async () => (s.open() === 0 ? true : undefined), 5_000, 'the kept-alive socket to close');
  });

  it('while a plain GET opens a fresh connection each time', async () => {
    const s = await socketServer();
    const p = probe();
    for (let i = 0; i < 3; i++) await p.get(new URL(`${s.origin}/health`), { timeoutMs: 5_000 });
    expect(new Set(s.ports).size).toBe(3);
  });
});
