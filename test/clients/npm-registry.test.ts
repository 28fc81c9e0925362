/**
 * The npm registry client against a real verdaccio (what a packument reads
 * as, a token a protected scope wants), and against a node:http server for
 * what a healthy registry does not do: silence, an answer past the size
 * bound, a redirect, a proxy quoting the token back.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createNpmRegistryClient } from '../../src/clients/npm-registry';
import { closedPort } from '../support/https-server';
import { startNpmRegistry, type TestNpmRegistry } from '../support/npm-registry';
import { startServer, type TestServer } from '../support/prometheus';

let registry: TestNpmRegistry;
/** A reader's token, not the publisher's: the registry is asked with what an operator configures. */
let readerToken: string;
const servers: TestServer[] = [];

beforeAll(async () => {
  registry = await startNpmRegistry({ privateScope: '@private' });
  readerToken = await registry.createUser('caretaker-reader');
  await registry.publish('caretaker-demo', '1.0.0');
  await registry.publish('caretaker-demo', '1.2.0');
  await registry.publish('caretaker-demo', '1.10.0');
  await registry.deprecate('caretaker-demo', '1.0.0', '1.0 leaks memory: use 1.2 or later');
  await registry.publish('@acme/widget', '2.0.0');
  await registry.publish('@acme/widget', '3.0.0-beta.1', { tag: 'next' });
  await registry.publish('@private/secret-sauce', '0.3.0');
}, 180_000);

afterAll(async () => {
  await registry?.stop();
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function client(url: string, opts: { token?: string; timeoutMs?: number; signal?: AbortSignal } = {}) {
  return createNpmRegistryClient({ url, timeoutMs: opts.timeoutMs ?? 10_000, signal: opts.signal ?? new AbortController().signal, ...(opts.token ? { token: opts.token } : {}) });
}

/** A server answering every request with `handle`, and what it was asked. */
async function fakeRegistry(handle: (req: IncomingMessage, res: ServerResponse) => void) {
  const requests: { url: string; accept?: string; authorization?: string }[] = [];
  const server = await startServer((req, res) => {
    requests.push({ url: req.url ?? '', accept: req.headers.accept, authorization: req.headers.authorization });
    handle(req, res);
  });
  servers.push(server);
  return { ...server, requests };
}

async function failure(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  if (!err) throw new Error('expected a rejection');
  return err.message;
}

describe('against a real verdaccio', () => {
  it("reads an unscoped package's versions in semver order, its dist-tags and its deprecations", async () => {
    const p = await client(registry.url).packument('caretaker-demo');
    expect(p).toEqual({
      name: 'caretaker-demo',
      versions: ['1.0.0', '1.2.0', '1.10.0'],
      distTags: { latest: '1.10.0' },
      deprecated: { '1.0.0': '1.0 leaks memory: use 1.2 or later' },
    });
  });

  it('reads a scoped package, its prerelease under its own tag, and no deprecations', async () => {
    const p = await client(registry.url).packument('@acme/widget');
    expect(p).toEqual({ name: '@acme/widget', versions: ['2.0.0', '3.0.0-beta.1'], distTags: { latest: '2.0.0', next: '3.0.0-beta.1' } });
  });

  it('gives undefined for a package the registry does not know', async () => {
    await expect(client(registry.url).packument('no-such-package-here')).resolves.toBeUndefined();
    await expect(client(registry.url).packument('@acme/no-such-thing')).resolves.toBeUndefined();
  });

  it('sends the token, which a protected scope requires', async () => {
    await expect(client(registry.url, { token: readerToken }).packument('@private/secret-sauce')).resolves.toMatchObject({ versions: ['0.3.0'], distTags: { latest: '0.3.0' } });
  });

  it('says the registry needs a token when none is configured', async () => {
    const message = await failure(client(registry.url).packument('@private/secret-sauce'));
    expect(message).toBe(
      `npm registry http://127.0.0.1:${registry.port} (package @private/secret-sauce) needs a token (HTTP 401): authorization required to access package @private/secret-sauce`,
    );
  });

  it('says the registry refused the token, without the token in the message', async () => {
    const wrong = `${readerToken.slice(0, -6)}AAAAAA`;
    const message = await failure(client(registry.url, { token: wrong }).packument('@private/secret-sauce'));
    expect(message).toMatch(/^npm registry http:\/\/127\.0\.0\.1:\d+ \(package @private\/secret-sauce\) refused the token \(HTTP 401\)/);
    expect(message).not.toContain(wrong);
    expect(message).not.toContain('\n');
  });
});

describe('when the registry misbehaves', () => {
  it('asks for the abbreviated packument under the base URL path, the scope slash encoded', async () => {
    const fake = await fakeRegistry((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/vnd.npm.install-v1+json' });
      res.end(JSON.stringify({ name: '@acme/widget', 'dist-tags': { latest: '1.0.0' }, versions: { '1.0.0': { name: '@acme/widget', version: '1.0.0' } } }));
    });
    const c = client(`${fake.url}/api/npm/npm-remote`, { token: 'tok-in-header-1234' });
    expect(c.display).toBe(`${fake.url}/api/npm/npm-remote`);
    await expect(c.packument('@acme/widget')).resolves.toEqual({ name: '@acme/widget', versions: ['1.0.0'], distTags: { latest: '1.0.0' } });
    expect(fake.requests).toEqual([
      { url: '/api/npm/npm-remote/@acme%2fwidget', accept: 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8', authorization: 'Bearer tok-in-header-1234' },
    ]);
  });

  it('fails in one line naming the registry when nothing listens', async () => {
    const port = await closedPort();
    const message = await failure(client(`http://127.0.0.1:${port}/`).packument('left-pad'));
    expect(message).toBe(`npm registry http://127.0.0.1:${port} (package left-pad) is unreachable: ECONNREFUSED`);
  });

  it('gives up on a silent registry within its timeout', async () => {
    const fake = await fakeRegistry(() => undefined);
    const message = await failure(client(fake.url, { timeoutMs: 300 }).packument('left-pad'));
    expect(message).toBe(`npm registry ${fake.url} (package left-pad) did not answer within 300 ms`);
  });

  it("ends with the run's abort reason once the run is aborted", async () => {
    const fake = await fakeRegistry(() => undefined);
    const run = new AbortController();
    const pending = client(fake.url, { signal: run.signal, timeoutMs: 60_000 }).packument('left-pad');
    run.abort(new Error('run cancelled'));
    expect(await failure(pending)).toBe('run cancelled');
  });

  it('refuses a packument past 32 MB and says so', async () => {
    const fake = await fakeRegistry((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(1024 * 1024, 0x20);
      let sent = 0;
      // 40 MB, written as fast as the client reads; it hangs up at 32.
      const pump = () => {
        while (sent < 40) {
          sent++;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      res.on('error', () => undefined);
      pump();
    });
    const message = await failure(client(fake.url).packument('huge'));
    expect(message).toBe(`npm registry ${fake.url} (package huge): the packument is larger than 32 MB, the bound on one package's metadata`);
  });

  it('does not follow a redirect, so the token stays with the registry', async () => {
    const elsewhere = await fakeRegistry((_req, res) => res.end('{}'));
    const fake = await fakeRegistry((_req, res) => {
      res.writeHead(302, { location: `${elsewhere.url}/left-pad` });
      res.end();
    });
    const message = await failure(client(fake.url, { token: 'redirected-token-5678' }).packument('left-pad'));
    expect(message).toMatch(/answered HTTP 302, a redirect \(not followed/);
    expect(elsewhere.requests).toEqual([]);
  });

  it('scrubs the token from what a proxy quotes back, and names a 403 as a refused token', async () => {
    const token = 'npm_quoted_secret_9f8e7d';
    const fake = await fakeRegistry((req, res) => {
      const status = req.url === '/denied' ? 403 : 502;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: `upstream said no to\n${req.headers.authorization}` }));
    });
    const c = client(fake.url, { token });
    const bad = await failure(c.packument('left-pad'));
    expect(bad).toBe(`npm registry ${fake.url} (package left-pad) answered HTTP 502: upstream said no to Bearer ***`);
    const denied = await failure(c.packument('denied'));
    expect(denied).toBe(`npm registry ${fake.url} (package denied) refused the token (HTTP 403): upstream said no to Bearer ***`);
  });

  it('keeps URL credentials out of the name it gives the registry', async () => {
    const fake = await fakeRegistry((_req, res) => res.end('not json'));
    const withCredentials = fake.url.replace('http://', 'http://ci:hunter2-password@');
    const c = client(withCredentials);
    expect(c.display).toBe(fake.url);
    const message = await failure(c.packument('left-pad'));
    expect(message).toBe(`npm registry ${fake.url} (package left-pad) answered 200 but not with a packument's JSON: is the url the registry's base URL?`);
    expect(fake.requests[0]!.authorization).toBe(`Basic ${Buffer.from('ci:hunter2-password').toString('base64')}`);
  });

  it('refuses what is not a package name before asking', async () => {
    const fake = await fakeRegistry((_req, res) => res.end('{}'));
    expect(await failure(client(fake.url).packument('../../etc/passwd'))).toBe(`npm registry ${fake.url} (package ../../etc/passwd): not an npm package name`);
    expect(fake.requests).toEqual([]);
  });
});
