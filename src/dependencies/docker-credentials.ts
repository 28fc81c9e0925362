/**
 * Registry credentials from a docker `config.json`, or from the decoded
 * `.dockerconfigjson` of a Kubernetes image pull secret (the same format):
 * `{ "auths": { "<registry>": { "auth": "<base64 user:password>" } } }`.
 * Credential stores and helpers (`credsStore`, `credHelpers`) run programs
 * on the machine of `docker login` and are not read: a registry only they
 * know has no credentials here.
 */
import type { RegistryCredentials } from '../clients/oci-registry';

/** The spellings of Docker Hub in configs: `docker login` writes `https://index.docker.io/v1/`. */
const DOCKER_HUB_KEYS = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

interface AuthEntry {
  auth?: unknown;
  username?: unknown;
  password?: unknown;
  identitytoken?: unknown;
}

/**
 * The credentials `configJson` holds for `registry` (a reference's registry,
 * `docker.io` or `host[:port]`), undefined when it has none. Throws one line
 * when the config is not JSON of this format, or its entry for the registry
 * is unusable; the messages never quote the config, which is secret.
 */
export function credentialsFor(registry: string, configJson: string): RegistryCredentials | undefined {
  let config: unknown;
  try {
    config = JSON.parse(configJson);
  } catch {
    // JSON.parse's own message quotes the text around the error: the secret itself.
    throw new Error('the docker config is not valid JSON');
  }
  if (!isObject(config)) throw new Error('the docker config is not a JSON object');
  const auths = config.auths;
  if (auths === undefined) return undefined;
  if (!isObject(auths)) throw new Error('the docker config\'s "auths" is not an object');

  const wanted = normalizeRegistryKey(registry);
  for (const [key, entry] of Object.entries(auths)) {
    if (normalizeRegistryKey(key) !== wanted) continue;
    const where = `the docker config's entry for ${wanted}`;
    if (!isObject(entry)) throw new Error(`${where} is not an object`);
    const found = credentialsOfEntry(entry as AuthEntry, where);
    if (found) return found;
  }
  return undefined;
}

/**
 * The registry a config key or reference names, as one spelling:
 * `https://index.docker.io/v1/` → `docker.io`, `https://host:5000/v2/` →
 * `host:5000`, `Host:5000` → `host:5000`.
 */
export function normalizeRegistryKey(key: string): string {
  const withoutScheme = key.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  const host = withoutScheme.split('/')[0]!.toLowerCase();
  return DOCKER_HUB_KEYS.has(host) ? 'docker.io' : host;
}

/** An entry's identity token first (it replaces the password), then `auth`, then `username`/`password`. */
function credentialsOfEntry(entry: AuthEntry, where: string): RegistryCredentials | undefined {
  if (typeof entry.identitytoken === 'string' && entry.identitytoken !== '') return { kind: 'identity-token', identityToken: entry.identitytoken };
  if (typeof entry.auth === 'string' && entry.auth !== '') {
    const decoded = decodeBase64(entry.auth);
    const colon = decoded?.indexOf(':') ?? -1;
    if (decoded === undefined || colon <= 0) throw new Error(`${where} has an "auth" that is not the base64 of user:password`);
    return { kind: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (typeof entry.username === 'string' && entry.username !== '') {
    if (typeof entry.password !== 'string') throw new Error(`${where} has a username but no password`);
    return { kind: 'basic', username: entry.username, password: entry.password };
  }
  return undefined;
}

/** Standard base64 (padding optional), or undefined: Buffer.from would skip the bad characters silently. */
function decodeBase64(text: string): string | undefined {
  const trimmed = text.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed)) return undefined;
  return Buffer.from(trimmed, 'base64').toString('utf8');
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
