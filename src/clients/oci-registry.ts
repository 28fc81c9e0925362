/**
 * A read-only client of an OCI (Docker) registry's HTTP API: the tags of a
 * repository and the digest a tag points at, for comparing the images that
 * run with what their registry holds.
 *
 * It logs in the way registries ask, on their 401: a Bearer challenge sends
 * it to the token service the registry names (with the basic credentials,
 * when given), and the token it gets goes back to the registry only; a
 * Basic challenge gets the basic credentials, to the registry only. No
 * credentials are sent before a challenge asks for them. A redirect (some
 * registries send manifests from a CDN) is followed at most
 * MAX_REDIRECTS times with no Authorization header at all, so no token or
 * password reaches another host; a redirect from https to plain http is
 * refused. The next page of a tag list is fetched only from the registry
 * itself.
 */
import { createHash } from 'node:crypto';
import { coerceError } from '../errors';
import { basicAuthToken, scrubSecrets } from '../logger';
import { fetchFailureReason } from '../util/fetch-errors';
import { formatBytes, oneLine } from '../util/format';
import { ResponseTooLarge, readBoundedBytes, parseJsonOrUndefined } from '../util/bounded-body';

/** How a registry is logged in to, as a docker config.json gives it. */
export type RegistryCredentials =
  | { kind: 'basic'; username: string; password: string }
  /** `docker login`'s refresh token: exchanged at the token service (OAuth2 `grant_type=refresh_token`). */
  | { kind: 'identity-token'; identityToken: string };

export interface RegistryClientOptions {
  /**
   * The registry API's `host[:port]`, as `registryApiHost` gives it
   * (Docker Hub's is `registry-1.docker.io`, not `docker.io`).
   */
  registry: string;
  /** Plain http instead of https: only for a registry listed as insecure (a local `host:port`). */
  insecure: boolean;
  credentials?: RegistryCredentials;
  /** Bound on each request (a page of tags, a manifest, a token), its body included. */
  timeoutMs: number;
  /** The run's signal: every request ends when it aborts. */
  signal: AbortSignal;
  /** Tags asked for per page (`n`); default DEFAULT_PAGE_SIZE. */
  pageSize?: number;
  /** More tags than this in one repository is an error, not a silently cut list; default DEFAULT_MAX_TAGS. */
  maxTags?: number;
}

/** One registry, for one run. Nothing to close: fetch pools its own connections. */
export interface RegistryClient {
  /** The registry as messages name it: its host[:port]. */
  display: string;
  /** Every tag of `repository`, following the registry's pages. Rejects when the repository is unknown. */
  listTags(repository: string): Promise<string[]>;
  /** The digest `reference` (a tag or a digest) resolves to; undefined when the registry has no such manifest (404). */
  manifestDigest(repository: string, reference: string): Promise<string | undefined>;
}

/** The largest page the distribution spec lets a client ask for without surprise. */
const DEFAULT_PAGE_SIZE = 1000;
const DEFAULT_MAX_TAGS = 10_000;
/** A registry that sends tiny pages (or loops) is cut off after this many. */
const MAX_PAGES = 100;
/** A page of tags: 1000 tags of 128 characters stay well below this. */
const MAX_TAGS_PAGE_BYTES = 4 * 1024 * 1024;
/** The OCI distribution spec's limit on a manifest a registry must accept. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** A token answer: a JWT with its certificate chain is a few kB. */
const MAX_TOKEN_BYTES = 1024 * 1024;
/** Error bodies (401, 404, 5xx) are read for their message only. */
const MAX_ERROR_BYTES = 64 * 1024;
const MAX_REDIRECTS = 3;
/** How much of what a registry says goes into a message. */
const MAX_ERROR_TEXT = 300;
/** The token spec's lifetime of a token whose answer gives no `expires_in`. */
const DEFAULT_TOKEN_SECONDS = 60;
/** A cached token this close to its expiry is fetched again rather than sent. */
const TOKEN_EXPIRY_MARGIN_MS = 5_000;

/** The manifest kinds a tag may point at; with all four, a multi-arch image answers with its index's digest. */
const MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** host[:port]: a name or a bracketed IPv6 address, nothing else (no scheme, no path). */
const REGISTRY_HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?|\[[a-fA-F0-9:]+\])(?::[0-9]{1,5})?$/;
/** Keeps a repository name a path of the API and nothing more (the full grammar is the image reference's). */
const REPOSITORY = /^[a-z0-9][a-z0-9._-]*(?:\/[a-z0-9][a-z0-9._-]*)*$/;
/** A tag, or a digest `algorithm:encoded`. */
const MANIFEST_REFERENCE = /^(?:[\w][\w.-]{0,127}|[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,})$/;
const DIGEST_HEADER = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;

interface Answer {
  status: number;
  headers: Headers;
  body: Buffer;
  /** Where it came from, for a relative Link. */
  url: URL;
}

interface Request {
  method: 'GET' | 'HEAD';
  url: URL;
  accept: string;
  repository: string;
  /** What is asked for, in messages: `the tag list`, `the manifest "1.2"`. */
  what: string;
  maxBytes: number;
}


/** A client of `opts.registry`; throws when that is not a host[:port]. */
export function createRegistryClient(opts: RegistryClientOptions): RegistryClient {
  if (!REGISTRY_HOST.test(opts.registry)) throw new Error(`registry ${JSON.stringify(opts.registry.slice(0, 200))} is not a host[:port] (no scheme, no path)`);
  const base = new URL(`${opts.insecure ? 'http' : 'https'}://${opts.registry}`);
  const display = opts.registry;
  const pageSize = opts.pageSize ?? DEFAULT_PAGE_SIZE;
  const maxTags = opts.maxTags ?? DEFAULT_MAX_TAGS;
  const creds = opts.credentials;
  const basicHeader = creds?.kind === 'basic' ? `Basic ${basicAuthToken(creds.username, creds.password)}` : undefined;
  /** Everything a server might quote back: the password, its base64, the identity token, each token we were given. */
  const secrets: string[] = creds?.kind === 'basic' ? [creds.password, basicHeader!.slice('Basic '.length)] : creds ? [creds.identityToken] : [];
  const scrub = (text: string) => scrubSecrets(text, secrets);
  /** Bearer tokens by scope, for the client's life (a run), until they expire. */
  const tokens = new Map<string, { header: string; expiresAt: number }>();
  /** Set once the registry asked for Basic: later requests to it send the credentials at once. */
  let basicAsked = false;

  const where = (repository: string) => `registry ${display} (repository ${repository})`;

  /** One exchange with `url`, bounded in time and size; throws one line naming `who` when there is no answer. */
  async function exchange(who: string, url: URL, init: RequestInit, maxBytes: number): Promise<Answer> {
    const timeout = AbortSignal.timeout(opts.timeoutMs);
    try {
      const res = await fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.any([opts.signal, timeout]) });
      return { status: res.status, headers: res.headers, body: await readBoundedBytes(res, maxBytes), url };
    } catch (err) {
      if (opts.signal.aborted) throw coerceError(opts.signal.reason);
      if (timeout.aborted) throw new Error(`${who} did not answer within ${opts.timeoutMs} ms`, { cause: err });
      if (err instanceof ResponseTooLarge) throw new Error(`${who} sent more than ${formatBytes(maxBytes)}: not read`);
      throw new Error(`${who} is unreachable: ${oneLine(scrub(fetchFailureReason(err)), MAX_ERROR_TEXT)}`, { cause: err });
    }
  }

  /** The request with the registry's auth, answering one 401 challenge, then following redirects without credentials. */
  async function send(req: Request): Promise<Answer> {
    const who = where(req.repository);
    const scope = `repository:${req.repository}:pull`;
    const headers = (authorization: string | undefined): Record<string, string> => ({
      accept: req.accept,
      'user-agent': 'caretaker',
      ...(authorization ? { authorization } : {}),
    });
    const cached = tokens.get(scope);
    let authorization = cached && cached.expiresAt > Date.now() ? cached.header : basicAsked ? basicHeader : undefined;
    let answer = await exchange(who, req.url, { method: req.method, headers: headers(authorization) }, req.maxBytes);
    if (answer.status === 401) {
      authorization = await answerChallenge(req.repository, scope, answer.headers.get('www-authenticate'));
      answer = await exchange(who, req.url, { method: req.method, headers: headers(authorization) }, req.maxBytes);
    }
    if (answer.status === 401 || answer.status === 403) throw refusal(who, answer.status, answer);
    for (let hops = 0; isRedirect(answer.status); hops++) {
      const target = redirectTarget(who, answer, hops);
      answer = await exchange(`${who} (redirected to ${target.host})`, target, { method: req.method, headers: headers(undefined) }, req.maxBytes);
      if (answer.status === 401 || answer.status === 403) {
        throw new Error(`${who} redirected ${req.what} to ${target.host}, which answered HTTP ${answer.status}: credentials are never sent to another host`);
      }
    }
    return answer;
  }

  /** The Authorization header a 401's challenge asks for; throws when it cannot be answered. */
  async function answerChallenge(repository: string, scope: string, header: string | null): Promise<string> {
    const who = where(repository);
    const challenge = parseChallenge(header ?? '');
    if (challenge?.scheme === 'bearer' && challenge.params.realm) {
      tokens.delete(scope);
      const token = await fetchToken(repository, challenge.params.realm, challenge.params.service, scope);
      tokens.set(scope, token);
      return token.header;
    }
    if (challenge?.scheme === 'basic') {
      if (!basicHeader) {
        throw new Error(`${who} requires a username and password (HTTP 401, Basic): ${creds ? 'an identity token cannot answer a Basic challenge' : 'none were given'}`);
      }
      basicAsked = true;
      return basicHeader;
    }
    throw new Error(`${who} answered HTTP 401 without a Bearer or Basic challenge (WWW-Authenticate: ${oneLine(scrub(header ?? 'missing'), 100)})`);
  }

  /** A token for `scope` from the realm the registry named, with the credentials when there are any. */
  async function fetchToken(repository: string, realm: string, service: string | undefined, scope: string): Promise<{ header: string; expiresAt: number }> {
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new Error(`${where(repository)} names a token service that is not a URL: ${oneLine(scrub(realm), 100)}`);
    }
    const serviceName = `${url.protocol}//${url.host}${url.pathname}`;
    const who = `${where(repository)}: token service ${serviceName}`;
    // Credentials over plain http only where plain http was allowed for the registry itself.
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && opts.insecure)) throw new Error(`${who} is not https: no credentials are sent there`);
    url.search = '';
    url.hash = '';
    let init: RequestInit;
    if (creds?.kind === 'identity-token') {
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'caretaker', scope });
      if (service) form.set('service', service);
      init = { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }, body: form.toString() };
    } else {
      if (service) url.searchParams.set('service', service);
      url.searchParams.set('scope', scope);
      init = { method: 'GET', headers: { accept: 'application/json', ...(basicHeader ? { authorization: basicHeader } : {}) } };
    }
    const answer = await exchange(who, url, init, MAX_TOKEN_BYTES);
    if (answer.status === 401 || answer.status === 403) throw refusal(where(repository), answer.status, answer, `by its token service ${serviceName}`);
    if (answer.status !== 200) throw new Error(`${who} answered HTTP ${answer.status}${isRedirect(answer.status) ? ' (a redirect: not followed with credentials)' : ''}${said(answer, scrub)}`);
    const body = parseJsonOrUndefined(answer.body.toString('utf8')) as { token?: unknown; access_token?: unknown; expires_in?: unknown } | undefined;
    const token = typeof body?.token === 'string' && body.token ? body.token : typeof body?.access_token === 'string' && body.access_token ? body.access_token : undefined;
    if (!token) throw new Error(`${who} answered 200 without a token (neither "token" nor "access_token")`);
    secrets.push(token);
    const seconds = typeof body?.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_SECONDS;
    return { header: `Bearer ${token}`, expiresAt: Date.now() + seconds * 1000 - TOKEN_EXPIRY_MARGIN_MS };
  }

  /** The error of a 401/403 that logging in did not cure: refused credentials, or none given. */
  function refusal(who: string, status: number, answer: Answer, by = ''): Error {
    const detail = said(answer, scrub);
    if (!creds) return new Error(`${who} requires credentials and none were given (HTTP ${status}${by ? ` ${by}` : ''})${detail}`);
    return new Error(`${who} refused the credentials given (HTTP ${status}${by ? ` ${by}` : ''})${detail}`);
  }

  /** The next hop of a redirect, refusing too many and a fall from https to http. */
  function redirectTarget(who: string, answer: Answer, hops: number): URL {
    if (hops >= MAX_REDIRECTS) throw new Error(`${who} redirected more than ${MAX_REDIRECTS} times: not followed`);
    const location = answer.headers.get('location');
    let target: URL;
    try {
      target = new URL(location ?? '', answer.url);
    } catch {
      throw new Error(`${who} answered HTTP ${answer.status} with an unusable Location`);
    }
    if (!location || (target.protocol !== 'https:' && target.protocol !== 'http:')) throw new Error(`${who} answered HTTP ${answer.status} with an unusable Location`);
    if (answer.url.protocol === 'https:' && target.protocol === 'http:') throw new Error(`${who} redirected to plain http (${target.host}): not followed`);
    return target;
  }

  function checkRepository(repository: string): void {
    if (!REPOSITORY.test(repository) || repository.split('/').includes('..')) {
      throw new Error(`registry ${display}: ${JSON.stringify(repository.slice(0, 200))} is not a repository name`);
    }
  }

  async function listTags(repository: string): Promise<string[]> {
    checkRepository(repository);
    const who = where(repository);
    const all: string[] = [];
    const seen = new Set<string>();
    let url: URL | undefined = new URL(`/v2/${repository}/tags/list`, base);
    url.searchParams.set('n', String(pageSize));
    for (let page = 0; url; page++) {
      if (page >= MAX_PAGES) throw new Error(`${who} sent more than ${MAX_PAGES} pages of tags: listing stopped`);
      if (seen.has(url.href)) throw new Error(`${who} sent the same page of tags twice: listing stopped`);
      seen.add(url.href);
      const answer = await send({ method: 'GET', url, accept: 'application/json', repository, what: 'the tag list', maxBytes: MAX_TAGS_PAGE_BYTES });
      if (answer.status !== 200) throw new Error(`${who} answered HTTP ${answer.status} to the tag list${said(answer, scrub)}`);
      const body = parseJsonOrUndefined(answer.body.toString('utf8')) as { tags?: unknown } | undefined;
      // A repository whose tags were all deleted lists `"tags": null`.
      const tags = body?.tags === null ? [] : body?.tags;
      if (!Array.isArray(tags) || !tags.every((t): t is string => typeof t === 'string')) throw new Error(`${who} answered 200 to the tag list without a list of tags`);
      all.push(...tags);
      if (all.length > maxTags) throw new Error(`${who} has more than ${maxTags} tags: listing stopped`);
      url = nextPage(who, answer);
    }
    return all;
  }

  /** The `rel="next"` of a page's Link header, resolved against the page; only on the registry itself. */
  function nextPage(who: string, answer: Answer): URL | undefined {
    const link = answer.headers.get('link');
    if (!link) return undefined;
    for (const part of link.split(/,(?=\s*<)/)) {
      const m = /^\s*<([^>]*)>(.*)$/.exec(part);
      if (!m || !/;\s*rel\s*=\s*"?(?:[^";]*\s)?next(?:\s[^";]*)?"?\s*(?:;|$)/i.test(m[2]!)) continue;
      let next: URL;
      try {
        next = new URL(m[1]!, answer.url);
      } catch {
        throw new Error(`${who} sent a next page that is not a URL`);
      }
      if (next.origin !== base.origin) throw new Error(`${who} sent a next page on another host (${next.host}): not followed`);
      return next;
    }
    return undefined;
  }

  async function manifestDigest(repository: string, reference: string): Promise<string | undefined> {
    checkRepository(repository);
    const who = where(repository);
    if (!MANIFEST_REFERENCE.test(reference)) throw new Error(`${who}: ${JSON.stringify(reference.slice(0, 200))} is neither a tag nor a digest`);
    const url = new URL(`/v2/${repository}/manifests/${reference}`, base);
    const what = `the manifest ${JSON.stringify(reference)}`;
    const head = await send({ method: 'HEAD', url, accept: MANIFEST_TYPES, repository, what, maxBytes: MAX_ERROR_BYTES });
    if (head.status === 404) return undefined;
    const fromHeader = head.headers.get('docker-content-digest')?.trim();
    if (head.status === 200 && fromHeader && DIGEST_HEADER.test(fromHeader)) return fromHeader;
    // No digest in the answer to HEAD (or HEAD not allowed): the digest is the sha256 of the manifest's exact bytes.
    if (head.status !== 200 && head.status !== 405) throw new Error(`${who} answered HTTP ${head.status} to HEAD ${what}`);
    const get = await send({ method: 'GET', url, accept: MANIFEST_TYPES, repository, what, maxBytes: MAX_MANIFEST_BYTES });
    if (get.status === 404) return undefined;
    if (get.status !== 200) throw new Error(`${who} answered HTTP ${get.status} to GET ${what}${said(get, scrub)}`);
    return `sha256:${createHash('sha256').update(get.body).digest('hex')}`;
  }

  return { display, listTags, manifestDigest };
}

function isRedirect(status: number): boolean {
  return status >= 300 && status < 400 && status !== 304;
}

/** A WWW-Authenticate challenge: its scheme (lowercase) and parameters, quoted or not. */
function parseChallenge(header: string): { scheme: string; params: Record<string, string> } | undefined {
  const m = /^\s*([A-Za-z][\w-]*)\s*(.*)$/.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/g;
  for (let p = re.exec(m[2]!); p; p = re.exec(m[2]!)) params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
  return { scheme: m[1]!.toLowerCase(), params };
}

/** `: CODE message` from a registry's `{ errors: [{ code, message }] }`, or the start of its text, scrubbed. */
function said(answer: Answer, scrub: (text: string) => string): string {
  const text = answer.body.toString('utf8');
  if (!text.trim()) return '';
  const body = parseJsonOrUndefined(text) as Record<string, unknown> | undefined;
  const first = Array.isArray(body?.errors) ? (body.errors[0] as { code?: unknown; message?: unknown } | undefined) : undefined;
  // Token services answer in their own shapes: Docker Hub's `details`, OAuth2's `error_description`.
  const own = [body?.details, body?.error_description, body?.message, body?.error].find((w): w is string => typeof w === 'string' && w !== '');
  const words = first ? [first.code, first.message].filter((w) => typeof w === 'string').join(' ') : (own ?? text);
  return words ? `: ${oneLine(scrub(words), MAX_ERROR_TEXT)}` : '';
}


