/**
 * A real OCI registry for tests (Debian's `docker-registry`, distribution
 * 2.8): started on a free port with a temp storage directory, images pushed
 * through its HTTP API without docker (a config blob and an OCI manifest
 * with no layers per tag), stopped and removed after.
 *
 * With `tokenAuth`, the registry trusts a token service run here (node:http)
 * the way registries trust theirs: it checks basic credentials, and issues
 * RS256 JWTs signed by a key whose self-signed certificate (made with the
 * openssl CLI) is the registry's rootcertbundle and travels in the token's
 * `x5c` header. An anonymous request gets a token with no access, as Docker
 * Hub's service gives one.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, createPrivateKey, randomUUID, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { waitUntil } from './alertmanager';
import { freePort } from './ports';
import { startServer, type TestServer } from './prometheus';
import { stopChild } from './child-process';

const BINARY = '/usr/bin/docker-registry';
const STOP_GRACE_MS = 5_000;
const REQUEST_TIMEOUT_MS = 10_000;
const OPENSSL_TIMEOUT_MS = 30_000;
/** What the registry calls itself in challenges, and the audience of its tokens. */
export const TEST_REGISTRY_SERVICE = 'caretaker-test-registry';
const TOKEN_ISSUER = 'caretaker-test-token-service';
const TOKEN_SECONDS = 300;

export interface TokenRequest {
  /** The Authorization header the token service got, if any. */
  authorization?: string;
  scope?: string;
  service?: string;
  /** The token it issued, when it issued one. */
  token?: string;
}

export interface TestRegistry {
  /** 127.0.0.1:port, as a client's `registry` option takes it. */
  host: string;
  url: string;
  /**
   * Pushes a tag whose config carries `revision` (default: a fresh one, so a
   * re-push moves the tag) and resolves with the manifest digest the
   * registry answered (`Docker-Content-Digest`).
   */
  push(repository: string, tag: string, revision?: string): Promise<string>;
  /** With tokenAuth: every request the token service got, in order. */
  tokenRequests: TokenRequest[];
  /** With tokenAuth: the token service's base URL. */
  tokenServiceUrl?: string;
  stop(): Promise<void>;
}

export interface RegistryOptions {
  /** Token auth, with these users (name → password) allowed to pull everything. */
  tokenAuth?: { users: Record<string, string> };
}

interface Signer {
  key: KeyObject;
  certificateDer: string;
}

/** Starts the registry (and its token service, with tokenAuth) and waits until `/v2/` answers. */
export async function startOciRegistry(opts: RegistryOptions = {}): Promise<TestRegistry> {
  if (!existsSync(BINARY)) throw new Error(`these tests need a real OCI registry: ${BINARY} is missing (apt-get install docker-registry, Debian's package)`);
  const dir = await mkdtemp(path.join(tmpdir(), 'caretaker-registry-'));
  let tokenServer: TestServer | undefined;
  try {
    const tokenRequests: TokenRequest[] = [];
    let signer: Signer | undefined;
    if (opts.tokenAuth) {
      signer = await makeSigner(dir);
      tokenServer = await startServer(tokenService(signer, opts.tokenAuth.users, tokenRequests));
    }
    const started = await startProcess(dir, tokenServer ? { realm: `${tokenServer.url}/token`, bundle: path.join(dir, 'token-cert.pem') } : undefined);
    const host = `127.0.0.1:${started.port}`;
    const url = `http://${host}`;
    const pushAuth = (repository: string): Record<string, string> =>
      signer ? { authorization: `Bearer ${issueToken(signer, 'pusher', [{ type: 'repository', name: repository, actions: ['pull', 'push'] }])}` } : {};
    const server = tokenServer;
    return {
      host,
      url,
      tokenRequests,
      ...(server ? { tokenServiceUrl: server.url } : {}),
      push: (repository, tag, revision = randomUUID()) => pushImage(url, repository, tag, revision, pushAuth(repository)),
      async stop() {
        await stopChild(started.child);
        await server?.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await tokenServer?.close();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function startProcess(dir: string, token: { realm: string; bundle: string } | undefined): Promise<{ child: ChildProcess; port: number }> {
  let lastError: Error | undefined;
  // Another process may take the free port between our check and the registry binding it: try again.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const config = {
      version: 0.1,
      log: { level: 'error', accesslog: { disabled: true } },
      storage: { filesystem: { rootdirectory: path.join(dir, 'data') } },
      http: { addr: `127.0.0.1:${port}` },
      ...(token ? { auth: { token: { realm: token.realm, service: TEST_REGISTRY_SERVICE, issuer: TOKEN_ISSUER, rootcertbundle: token.bundle } } } : {}),
    };
    const configFile = path.join(dir, 'registry.yml');
    // YAML is a superset of JSON.
    await writeFile(configFile, JSON.stringify(config, null, 2));
    const child = spawn(BINARY, ['serve', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4_000);
    });
    try {
      await waitUntil(async () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`docker-registry exited (${child.exitCode ?? child.signalCode}): ${stderr.trim()}`);
        const res = await fetch(`http://127.0.0.1:${port}/v2/`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) }).catch(() => undefined);
        await res?.arrayBuffer().catch(() => undefined);
        // With token auth /v2/ answers 401 with its challenge: that too is the registry, up.
        return res?.status === 200 || (!!token && res?.status === 401);
      }, 'docker-registry to answer /v2/');
      return { child, port };
    } catch (err) {
      lastError = err as Error;
      await stopChild(child, STOP_GRACE_MS);
      if (!/address already in use/.test(stderr)) break;
    }
  }
  throw lastError ?? new Error('docker-registry did not start');
}

/** A config blob, then an OCI manifest pointing at it under `tag`; the registry's digest of the manifest. */
async function pushImage(url: string, repository: string, tag: string, revision: string, auth: Record<string, string>): Promise<string> {
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: { Labels: { 'caretaker.test.revision': revision } } }),
  );
  const configDigest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  const started = await call(`${url}/v2/${repository}/blobs/uploads/`, { method: 'POST', headers: auth }, 202);
  const location = new URL(started.headers.get('location') ?? '', url);
  location.searchParams.set('digest', configDigest);
  await call(location.href, { method: 'PUT', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: config }, 201);

  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [],
    }),
  );
  const put = await call(`${url}/v2/${repository}/manifests/${tag}`, { method: 'PUT', headers: { ...auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest }, 201);
  const digest = put.headers.get('docker-content-digest');
  const ours = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
  if (digest !== ours) throw new Error(`pushed ${repository}:${tag}: the registry says ${digest}, the manifest's sha256 is ${ours}`);
  return digest;
}

async function call(url: string, init: RequestInit, expected: number): Promise<Response> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  const text = await res.text();
  if (res.status !== expected) throw new Error(`${init.method} ${url}: HTTP ${res.status} (expected ${expected}): ${text}`);
  return res;
}

/** An RSA key and its self-signed certificate, in `dir`, by the openssl CLI. */
async function makeSigner(dir: string): Promise<Signer> {
  const keyFile = path.join(dir, 'token-key.pem');
  const certFile = path.join(dir, 'token-cert.pem');
  await promisify(execFile)(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=caretaker test token signer'],
    { timeout: OPENSSL_TIMEOUT_MS },
  );
  const key = createPrivateKey(await readFile(keyFile));
  const certificateDer = new X509Certificate(await readFile(certFile)).raw.toString('base64');
  return { key, certificateDer };
}

interface Access {
  type: string;
  name: string;
  actions: string[];
}

/** A token as distribution verifies it: RS256, `x5c` with the certificate, issuer, audience, time window, access. */
function issueToken(signer: Signer, subject: string, access: Access[]): string {
  const now = Math.floor(Date.now() / 1000);
  const header = { typ: 'JWT', alg: 'RS256', x5c: [signer.certificateDer] };
  const claims = { iss: TOKEN_ISSUER, sub: subject, aud: TEST_REGISTRY_SERVICE, exp: now + TOKEN_SECONDS, nbf: now - 10, iat: now, jti: randomUUID(), access };
  const signed = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  return `${signed}.${sign('sha256', Buffer.from(signed), signer.key).toString('base64url')}`;
}

function base64url(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}

/**
 * GET /token?service=&scope=: a known user with the right password gets
 * pull on what the scope names; no credentials, a token without access;
 * wrong ones, 401.
 */
function tokenService(signer: Signer, users: Record<string, string>, requests: TokenRequest[]) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://token.invalid');
    const scope = url.searchParams.get('scope') ?? undefined;
    const service = url.searchParams.get('service') ?? undefined;
    const record: TokenRequest = { ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}), ...(scope ? { scope } : {}), ...(service ? { service } : {}) };
    requests.push(record);
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'GET' || url.pathname !== '/token') return json(404, { details: 'not found' });
    let subject = '';
    const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '');
    if (basic) {
      const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      const [user, password] = [decoded.slice(0, colon), decoded.slice(colon + 1)];
      if (colon < 0 || users[user] !== password) return json(401, { details: 'incorrect username or password' });
      subject = user;
    }
    const access = subject && scope ? scope.split(' ').flatMap(scopeAccess) : [];
    const token = issueToken(signer, subject, access);
    record.token = token;
    json(200, { token, access_token: token, expires_in: TOKEN_SECONDS, issued_at: new Date().toISOString() });
  };
}

/** `repository:name:pull,push` → pull only (these users read, the tests push with their own token). */
function scopeAccess(scope: string): Access[] {
  const m = /^(repository):(.+):([a-z,*]+)$/.exec(scope);
  if (!m) return [];
  const actions = m[3]!.split(',').filter((a) => a === 'pull');
  return actions.length ? [{ type: m[1]!, name: m[2]!, actions }] : [];
}

