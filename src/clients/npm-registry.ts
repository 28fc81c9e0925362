/**
 * The npm registry client of the dependency check: one package's packument
 * (its versions, dist-tags and deprecations) in the abbreviated form `npm
 * install` reads, through fetch, with the registry's token, never following
 * a redirect (the token goes to the configured registry and nowhere else),
 * and a bound on the size of an answer.
 */
import semver from 'semver';
import { coerceError } from '../errors';
import { scrubSecrets, secretsOfUrl } from '../logger';
import { fetchFailureReason } from '../util/fetch-errors';
import { formatBytes, oneLine } from '../util/format';
import { requestWithoutCredentials } from '../util/url-credentials';
import { ResponseTooLarge, readBoundedText, parseJsonOrUndefined } from '../util/bounded-body';

/** What the registry knows of one package, as the dependency check needs it. */
export interface Packument {
  name: string;
  /** Every published version, ascending in semver order. */
  versions: string[];
  /** `latest`, `next`, ...: the version each tag points at. */
  distTags: Record<string, string>;
  /** The deprecated versions and their message; absent when none is. */
  deprecated?: Record<string, string>;
}

export interface NpmRegistryOptions {
  /** The registry's base URL (`https://registry.npmjs.org/`); a path prefix is kept (Artifactory, Nexus). */
  url: string;
  /** Sent as `Authorization: Bearer`; without it, the URL's own credentials (if any) go as basic auth. */
  token?: string;
  /** Bound on each request, the body included. */
  timeoutMs: number;
  /** The run's signal: requests end when it aborts. */
  signal: AbortSignal;
}

export interface NpmRegistryClient {
  /** The registry as messages name it: its base URL without credentials, query string or trailing slash. */
  display: string;
  /**
   * The package's packument, or undefined when the registry does not know
   * it (404). Rejects with one line naming the registry and the package when
   * the registry cannot answer (unreachable, no answer in time, 401/403,
   * 5xx, a redirect, too large, not a packument), and with the run's abort
   * reason once the run is aborted.
   */
  packument(name: string): Promise<Packument | undefined>;
}

/**
 * A popular package's abbreviated packument runs to several MB (thousands of
 * versions); beyond this it is refused rather than held in memory.
 */
const MAX_PACKUMENT_BYTES = 32 * 1024 * 1024;
/** The abbreviated metadata first: the full document carries every readme and is many times larger. */
const ACCEPT = 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8';
/** How much of an error text the registry (or a proxy) sends back goes into a message. */
const MAX_ERROR_TEXT = 300;
/** An npm package name: `name` or `@scope/name`, no spaces, no further slashes. */
const PACKAGE_NAME = /^(?:@[^\s/@]+\/)?[^\s/@][^\s/]*$/;

/** The client of one run. Nothing to close: fetch pools its own connections. */
export function createNpmRegistryClient(opts: NpmRegistryOptions): NpmRegistryClient {
  const registry = registryOf(opts);
  return { display: registry.display, packument: (name) => packument(registry, opts, name) };
}

interface Registry {
  base: URL;
  headers: Record<string, string>;
  display: string;
  /** What the registry says back may quote the request (a proxy's 401 with the header): its text goes through this. */
  scrub: (text: string) => string;
}

function registryOf(opts: NpmRegistryOptions): Registry {
  // fetch refuses URLs with credentials: the URL's become a basic auth header, unless a token is set.
  const bare = requestWithoutCredentials(opts.url);
  const auth = opts.token ? { authorization: `Bearer ${opts.token}` } : bare.headers;
  const basic = !opts.token && bare.headers.authorization ? [bare.headers.authorization.slice('Basic '.length)] : [];
  const secrets = [opts.token, ...secretsOfUrl(opts.url), ...basic];
  let base: URL;
  try {
    base = new URL(bare.url);
  } catch {
    throw new Error('npm registry url is not a URL');
  }
  base.search = '';
  base.hash = '';
  const display = `${base.origin}${base.pathname.replace(/\/+$/, '')}`;
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  return { base, headers: { accept: ACCEPT, ...auth }, display, scrub: (text) => scrubSecrets(text, secrets) };
}

/** `@scope/name` → `@scope%2fname`, the form registries route on (npm's own client sends it so). */
export function packagePath(name: string): string {
  if (!name.startsWith('@')) return encodeURIComponent(name);
  const slash = name.indexOf('/');
  return `@${encodeURIComponent(name.slice(1, slash))}%2f${encodeURIComponent(name.slice(slash + 1))}`;
}

async function packument(reg: Registry, opts: NpmRegistryOptions, name: string): Promise<Packument | undefined> {
  // npm caps a name at 214 characters; whatever we were handed stays on one line.
  const where = `npm registry ${reg.display} (package ${oneLine(name, 214)})`;
  if (!PACKAGE_NAME.test(name)) throw new Error(`${where}: not an npm package name`);
  const url = new URL(packagePath(name), reg.base);
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  let status: number;
  let text: string;
  try {
    const res = await fetch(url, { headers: reg.headers, redirect: 'manual', signal: AbortSignal.any([opts.signal, timeout]) });
    status = res.status;
    text = await readBoundedText(res, MAX_PACKUMENT_BYTES);
  } catch (err) {
    if (opts.signal.aborted) throw coerceError(opts.signal.reason);
    if (timeout.aborted) throw new Error(`${where} did not answer within ${opts.timeoutMs} ms`, { cause: err });
    if (err instanceof ResponseTooLarge) throw new Error(`${where}: the packument is larger than ${formatBytes(MAX_PACKUMENT_BYTES)}, the bound on one package's metadata`);
    throw new Error(`${where} is unreachable: ${reg.scrub(fetchFailureReason(err))}`, { cause: err });
  }

  if (status === 404) return undefined;
  const body = parseJsonOrUndefined(text);
  if (status === 200) {
    const parsed = packumentOf(name, body);
    if (!parsed) throw new Error(`${where} answered 200 but not with a packument's JSON: is the url the registry's base URL?`);
    return parsed;
  }
  const errorText = typeof (body as { error?: unknown } | undefined)?.error === 'string' ? (body as { error: string }).error : text;
  const said = errorText.trim() ? `: ${oneLine(reg.scrub(errorText), MAX_ERROR_TEXT)}` : '';
  if (status === 401 || status === 403) {
    const verdict = opts.token ? 'refused the token' : 'needs a token';
    throw new Error(`${where} ${verdict} (HTTP ${status})${said}`);
  }
  if (status >= 300 && status < 400) throw new Error(`${where} answered HTTP ${status}, a redirect (not followed: the token goes to the configured registry only)`);
  throw new Error(`${where} answered HTTP ${status}${said}`);
}

/** The fields we use of an abbreviated (or full) packument; undefined when it is not one. */
function packumentOf(requested: string, body: unknown): Packument | undefined {
  if (!isObject(body) || !isObject(body.versions)) return undefined;
  const versions = Object.keys(body.versions);
  const valid = semver.sort(versions.filter((v) => semver.valid(v) !== null));
  // A registry only takes valid versions; anything else is kept, after the rest, rather than lost.
  const odd = versions.filter((v) => semver.valid(v) === null);
  const distTags: Record<string, string> = {};
  if (isObject(body['dist-tags'])) {
    for (const [tag, version] of Object.entries(body['dist-tags'])) if (typeof version === 'string') distTags[tag] = version;
  }
  const deprecated: Record<string, string> = {};
  for (const [version, manifest] of Object.entries(body.versions)) {
    // npm un-deprecates a version by setting the message to "".
    if (isObject(manifest) && typeof manifest.deprecated === 'string' && manifest.deprecated !== '') deprecated[version] = manifest.deprecated;
  }
  return {
    name: typeof body.name === 'string' ? body.name : requested,
    versions: [...valid, ...odd],
    distTags,
    ...(Object.keys(deprecated).length ? { deprecated } : {}),
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}



