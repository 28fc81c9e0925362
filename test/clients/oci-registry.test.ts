/**
 * The OCI registry client against Debian's real docker-registry (tags and
 * digests of images pushed through its API; token auth with a real token
 * service), and against node:http servers answering like registries for
 * what that registry does not do: pages of tags (distribution 2.8 ignores
 * `n` on tag lists), a Basic challenge, a manifest without a digest
 * header, redirects to another host, an error quoting the credentials,
 * silence.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { createRegistryClient, type RegistryClientOptions, type RegistryCredentials } from '../../src/clients/oci-registry';
import { basicAuthToken } from '../../src/logger';
import { closedPort } from '../support/https-server';
import { startOciRegistry, TEST_REGISTRY_SERVICE, type TestRegistry } from '../support/oci-registry';

const USER = 'reader';
const PASSWORD = 'reader-pass-7f3a9c';
const GOOD: RegistryCredentials = { kind: 'basic', username: USER, password: PASSWORD };
const WRONG_PASSWORD = 'wrong-pass-51be0d';
const WRONG: RegistryCredentials = { kind: 'basic', username: USER, password: WRONG_PASSWORD };
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

let plain: TestRegistry;
let secured: TestRegistry;
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  [plain, secured] = await Promise.all([startOciRegistry(), startOciRegistry({ tokenAuth: { users: { [USER]: PASSWORD } } })]);
}, 60_000);

afterAll(async () => {
  await plain?.stop();
  await secured?.stop();
});

afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

/** A repository of its own for each test, so none sees what another pushed. */
function repo(): string {
  return `team/app-${randomBytes(4).toString('hex')}`;
}

function client(registry: string, o: Partial<RegistryClientOptions> = {}) {
  return createRegistryClient({ registry, insecure: true, timeoutMs: 5_000, signal: new AbortController().signal, ...o });
}

/** The message a promise rejects with ('' when it resolves). */
async function failure(work: Promise<unknown>): Promise<string> {
  try {
    await work;
    return '';
  } catch (err) {
    return (err as Error).message;
  }
}

interface Seen {
  method: string;
  url: string;
  authorization?: string;
}

/** A node:http server on `host` answering with `handle`, and the requests it got. */
async function httpServer(handle: (req: IncomingMessage, res: ServerResponse, self: { host: string }) => void, host = '127.0.0.1') {
  const seen: Seen[] = [];
  const self = { host: '' };
  const server = createHttpServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) });
    handle(req, res, self);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  self.host = `${host}:${(server.address() as AddressInfo).port}`;
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { host: self.host, url: `http://${self.host}`, seen };
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

describe('against a real docker-registry', () => {
  it('lists every tag of a repository (this registry sends them in one page whatever n asks)', async () => {
    const name = repo();
    for (const tag of ['1.0', '1.1', '2.0', 'latest', 'dev']) await plain.push(name, tag);
    const tags = await client(plain.host, { pageSize: 2 }).listTags(name);
    expect(tags.sort()).toEqual(['1.0', '1.1', '2.0', 'dev', 'latest']);
  });

  it('gives the digest each tag points at, as the push returned it, and resolves a digest to itself', async () => {
    const name = repo();
    const first = await plain.push(name, 'v1');
    const second = await plain.push(name, 'v2');
    expect(first).not.toBe(second);
    const c = client(plain.host);
    expect(await c.manifestDigest(name, 'v1')).toBe(first);
    expect(await c.manifestDigest(name, 'v2')).toBe(second);
    expect(await c.manifestDigest(name, first)).toBe(first);
  });

  it("gives a moved tag's new digest", async () => {
    const name = repo();
    const before = await plain.push(name, 'stable', 'revision-1');
    const c = client(plain.host);
    expect(await c.manifestDigest(name, 'stable')).toBe(before);
    const after = await plain.push(name, 'stable', 'revision-2');
    expect(after).not.toBe(before);
    expect(await c.manifestDigest(name, 'stable')).toBe(after);
  });

  it('gives undefined for a tag the repository does not have', async () => {
    const name = repo();
    await plain.push(name, 'v1');
    expect(await client(plain.host).manifestDigest(name, 'v9')).toBeUndefined();
  });

  it('refuses the tags of an unknown repository in one line naming it; its manifests are undefined', async () => {
    const name = repo();
    const c = client(plain.host);
    expect(await failure(c.listTags(name))).toBe(
      `registry ${plain.host} (repository ${name}) answered HTTP 404 to the tag list: NAME_UNKNOWN repository name not known to registry`,
    );
    expect(await c.manifestDigest(name, 'latest')).toBeUndefined();
  });

  it('refuses a repository name or reference that would leave its API path', async () => {
    const c = client(plain.host);
    expect(await failure(c.listTags('../v2/_catalog'))).toMatch(/is not a repository name$/);
    expect(await failure(c.manifestDigest('team/app', '../../_catalog'))).toMatch(/is neither a tag nor a digest$/);
  });
});

describe('a registry that does not answer', () => {
  it('is unreachable on a closed port: one line naming the registry and the reason', async () => {
    const port = await closedPort();
    const message = await failure(client(`127.0.0.1:${port}`).listTags('team/app'));
    expect(message).toBe(`registry 127.0.0.1:${port} (repository team/app) is unreachable: ECONNREFUSED`);
  });

  it('times out when it accepts and stays silent, and ends at once when the run aborts', async () => {
    const sockets: Socket[] = [];
    const silent = createNetServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise<void>((resolve) => (sockets.forEach((s) => s.destroy()), silent.close(() => resolve()))));
    const host = `127.0.0.1:${(silent.address() as AddressInfo).port}`;

    expect(await failure(client(host, { timeoutMs: 300 }).manifestDigest('team/app', 'v1'))).toBe(`registry ${host} (repository team/app) did not answer within 300 ms`);

    const run = new AbortController();
    const pending = failure(client(host, { timeoutMs: 60_000, signal: run.signal }).listTags('team/app'));
    run.abort(new Error('the run timed out'));
    expect(await pending).toBe('the run timed out');
  });
});

describe('token auth, on a real docker-registry and its token service', () => {
  const tokensFor = (name: string) => secured.tokenRequests.filter((r) => r.scope === `repository:${name}:pull`);

  it('logs in with good credentials: a token for the pull scope, fetched with them', async () => {
    const name = repo();
    const digest = await secured.push(name, '3.1');
    await secured.push(name, '3.2');
    const c = client(secured.host, { credentials: GOOD });
    expect((await c.listTags(name)).sort()).toEqual(['3.1', '3.2']);
    expect(await c.manifestDigest(name, '3.1')).toBe(digest);
    expect(await c.manifestDigest(name, 'missing')).toBeUndefined();
    expect(tokensFor(name)).toEqual([{ authorization: `Basic ${basicAuthToken(USER, PASSWORD)}`, scope: `repository:${name}:pull`, service: TEST_REGISTRY_SERVICE, token: expect.any(String) }]);
  });

  it('caches the token per scope for the life of the client', async () => {
    const name = repo();
    const other = repo();
    await secured.push(name, 'a');
    await secured.push(other, 'b');
    const c = client(secured.host, { credentials: GOOD });
    await c.listTags(name);
    await c.manifestDigest(name, 'a');
    await c.manifestDigest(name, 'a');
    await c.listTags(name);
    expect(tokensFor(name)).toHaveLength(1);
    await c.listTags(other);
    expect(tokensFor(other)).toHaveLength(1);
    // A new client (the next run) asks again.
    await client(secured.host, { credentials: GOOD }).listTags(name);
    expect(tokensFor(name)).toHaveLength(2);
  });

  it('says the registry refused wrong credentials, quoting neither the password nor its base64', async () => {
    const name = repo();
    await secured.push(name, 'a');
    const message = await failure(client(secured.host, { credentials: WRONG }).manifestDigest(name, 'a'));
    expect(message).toMatch(new RegExp(`^registry ${secured.host} \\(repository ${name}\\) refused the credentials given \\(HTTP 401 by its token service ${secured.tokenServiceUrl}/token\\)`));
    expect(message).not.toContain(WRONG_PASSWORD);
    expect(message).not.toContain(basicAuthToken(USER, WRONG_PASSWORD));
    expect(message).not.toContain('\n');
  });

  it('says credentials are required when none were given, without the anonymous token it got', async () => {
    const name = repo();
    await secured.push(name, 'a');
    const message = await failure(client(secured.host).listTags(name));
    expect(message).toMatch(new RegExp(`^registry ${secured.host} \\(repository ${name}\\) requires credentials and none were given \\(HTTP 401\\)`));
    const anonymous = tokensFor(name);
    expect(anonymous).toHaveLength(1);
    expect(anonymous[0]!.authorization).toBeUndefined();
    expect(message).not.toContain(anonymous[0]!.token!);
  });
});

describe('registries answering what docker-registry 2.8 does not', () => {
  /** Tags by the distribution spec: sorted, `n` per page, `last` to go on, a Link to the next page (relative, then absolute). */
  async function pagingRegistry(tags: string[], nextHost?: () => string) {
    let page = 0;
    return httpServer((req, res, self) => {
      const url = new URL(req.url ?? '/', 'http://x');
      const n = Number(url.searchParams.get('n') ?? tags.length);
      const last = url.searchParams.get('last');
      const sorted = [...tags].sort();
      const start = last ? sorted.indexOf(last) + 1 : 0;
      const slice = sorted.slice(start, start + n);
      const more = start + n < sorted.length;
      const next = `${url.pathname}?n=${n}&last=${encodeURIComponent(slice.at(-1) ?? '')}`;
      page++;
      const link = !more ? undefined : nextHost ? `http://${nextHost()}${next}` : page % 2 === 1 ? next : `http://${self.host}${next}`;
      json(res, 200, { name: 'team/app', tags: slice }, link ? { link: `<${link}>; rel="next"` } : {});
    });
  }

  it('follows Link rel="next" across pages of `pageSize` tags, relative and absolute', async () => {
    const tags = ['1.0', '1.1', '1.2', '2.0', '2.1', 'latest', 'edge'];
    const registry = await pagingRegistry(tags);
    expect(await client(registry.host, { pageSize: 2 }).listTags('team/app')).toEqual([...tags].sort());
    expect(registry.seen.map((r) => r.url)).toEqual([
      '/v2/team/app/tags/list?n=2',
      '/v2/team/app/tags/list?n=2&last=1.1',
      '/v2/team/app/tags/list?n=2&last=2.0',
      '/v2/team/app/tags/list?n=2&last=edge',
    ]);
  });

  it('stops at maxTags with an error rather than a cut list', async () => {
    const registry = await pagingRegistry(['a', 'b', 'c', 'd', 'e']);
    expect(await failure(client(registry.host, { pageSize: 2, maxTags: 3 }).listTags('team/app'))).toBe(`registry ${registry.host} (repository team/app) has more than 3 tags: listing stopped`);
  });

  it('does not follow a next page on another host', async () => {
    const elsewhere = await httpServer((_req, res) => json(res, 200, { tags: ['stolen'] }), 'localhost');
    const registry = await pagingRegistry(['a', 'b', 'c'], () => elsewhere.host);
    expect(await failure(client(registry.host, { pageSize: 2 }).listTags('team/app'))).toBe(
      `registry ${registry.host} (repository team/app) sent a next page on another host (${elsewhere.host}): not followed`,
    );
    expect(elsewhere.seen).toEqual([]);
  });

  /** A registry asking for Basic credentials, serving one manifest without a digest header (so the client GETs it). */
  async function basicRegistry(manifest: Buffer, onManifest?: (res: ServerResponse) => boolean) {
    const expected = `Basic ${basicAuthToken(USER, PASSWORD)}`;
    return httpServer((req, res) => {
      if (req.headers.authorization !== expected) return json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }, { 'www-authenticate': 'Basic realm="Registry Realm"' });
      if (onManifest?.(res)) return;
      res.writeHead(200, { 'content-type': OCI_MANIFEST });
      res.end(req.method === 'HEAD' ? undefined : manifest);
    });
  }

  // Whitespace the registry keeps: the digest is of these exact bytes, not of re-serialized JSON.
  const manifest = Buffer.from(`{\n  "schemaVersion": 2,\n  "mediaType": "${OCI_MANIFEST}",\n  "layers": [ ]\n}\n`);
  const manifestDigest = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;

  it('answers a Basic challenge, and without a digest header takes the sha256 of the manifest it GETs', async () => {
    const registry = await basicRegistry(manifest);
    expect(await client(registry.host, { credentials: GOOD }).manifestDigest('team/app', 'v1')).toBe(manifestDigest);
    expect(registry.seen.map((r) => `${r.method} ${r.authorization ? 'with' : 'without'}`)).toEqual(['HEAD without', 'HEAD with', 'GET with']);
  });

  it('refuses wrong Basic credentials, and names none given, in one line without secrets', async () => {
    const registry = await basicRegistry(manifest);
    const wrong = await failure(client(registry.host, { credentials: WRONG }).manifestDigest('team/app', 'v1'));
    expect(wrong).toBe(`registry ${registry.host} (repository team/app) refused the credentials given (HTTP 401)`);
    const none = await failure(client(registry.host).listTags('team/app'));
    expect(none).toBe(`registry ${registry.host} (repository team/app) requires a username and password (HTTP 401, Basic): none were given`);
  });

  it('follows a redirect to another host without any credentials', async () => {
    const cdn = await httpServer((req, res) => {
      res.writeHead(200, { 'content-type': OCI_MANIFEST });
      res.end(req.method === 'HEAD' ? undefined : manifest);
    }, 'localhost');
    const registry = await basicRegistry(manifest, (res) => {
      res.writeHead(307, { location: `http://${cdn.host}/blobs/manifest-v1` });
      res.end();
      return true;
    });
    expect(await client(registry.host, { credentials: GOOD }).manifestDigest('team/app', 'v1')).toBe(manifestDigest);
    expect(cdn.seen.map((r) => r.method)).toEqual(['HEAD', 'GET']);
    expect(cdn.seen.filter((r) => r.authorization)).toEqual([]);
  });

  it('sends the basic credentials only to the token service and the bearer token only to the registry', async () => {
    const token = `tok-${randomBytes(12).toString('hex')}`;
    const auth = await httpServer((req, res) => {
      if (req.headers.authorization !== `Basic ${basicAuthToken(USER, PASSWORD)}`) return json(res, 401, { details: 'incorrect username or password' });
      json(res, 200, { access_token: token, expires_in: 300 });
    }, 'localhost');
    const registry = await httpServer((req, res) => {
      if (req.headers.authorization !== `Bearer ${token}`) {
        return json(res, 401, { errors: [{ code: 'UNAUTHORIZED' }] }, { 'www-authenticate': `Bearer realm="http://${auth.host}/token",service="mock",scope="repository:team/app:pull"` });
      }
      res.writeHead(200, { 'docker-content-digest': manifestDigest });
      res.end();
    });
    expect(await client(registry.host, { credentials: GOOD }).manifestDigest('team/app', 'v1')).toBe(manifestDigest);
    expect(auth.seen).toEqual([{ method: 'GET', url: '/token?service=mock&scope=repository%3Ateam%2Fapp%3Apull', authorization: `Basic ${basicAuthToken(USER, PASSWORD)}` }]);
    expect(registry.seen.map((r) => r.authorization)).toEqual([undefined, `Bearer ${token}`]);
  });

  it('exchanges an identity token at the token service (OAuth2 refresh_token)', async () => {
    const identityToken = `refresh-${randomBytes(8).toString('hex')}`;
    let form: URLSearchParams | undefined;
    const auth = await httpServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        form = new URLSearchParams(body);
        if (req.method !== 'POST' || form.get('refresh_token') !== identityToken) return json(res, 401, {});
        json(res, 200, { access_token: 'access-from-refresh' });
      });
    });
    const registry = await httpServer((req, res) => {
      if (req.headers.authorization !== 'Bearer access-from-refresh') return json(res, 401, {}, { 'www-authenticate': `Bearer realm="${auth.url}/token",service="mock"` });
      json(res, 200, { tags: ['x'] });
    });
    expect(await client(registry.host, { credentials: { kind: 'identity-token', identityToken } }).listTags('team/app')).toEqual(['x']);
    expect(Object.fromEntries(form!)).toEqual({ grant_type: 'refresh_token', refresh_token: identityToken, client_id: 'caretaker', scope: 'repository:team/app:pull', service: 'mock' });
  });

  it('scrubs the credentials and the token from what a registry echoes back', async () => {
    const token = `tok-${randomBytes(12).toString('hex')}`;
    const registry = await httpServer((req, res) => {
      if (req.url?.startsWith('/token')) return json(res, 200, { token });
      if (!req.headers.authorization) return json(res, 401, {}, { 'www-authenticate': `Bearer realm="http://${req.headers.host}/token",service="mock"` });
      json(res, 500, { errors: [{ code: 'UNKNOWN', message: `could not use ${req.headers.authorization} (${PASSWORD})\nretry later` }] });
    });
    const message = await failure(client(registry.host, { credentials: GOOD }).listTags('team/app'));
    expect(message).toBe(`registry ${registry.host} (repository team/app) answered HTTP 500 to the tag list: UNKNOWN could not use Bearer *** (***) retry later`);
  });

  it('refuses more than 3 redirects', async () => {
    const registry = await httpServer((req, res) => {
      res.writeHead(302, { location: `${req.url}x` });
      res.end();
    });
    expect(await failure(client(registry.host).manifestDigest('team/app', 'v1'))).toBe(`registry ${registry.host} (repository team/app) redirected more than 3 times: not followed`);
    expect(registry.seen).toHaveLength(4);
  });
});
