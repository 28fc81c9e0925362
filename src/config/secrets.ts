/**
 * Every secret value a validated config holds, collected once at start-up,
 * so that a text some server sends back (an SMTP 535 reply quoting the
 * password, a proxy echoing the request it got) can be scrubbed of all of
 * them with `scrubSecrets` before it is stored, logged or shown. Redacting
 * by shape (`redactSecretsIn`) only catches a password inside a URL; a
 * server's own words need the values themselves.
 */
import { basicAuthToken, safeDecode, scrubSecrets, secretsOfUrl } from '../logger';
import type { Config } from './schema';

/**
 * Keys whose string values, at any depth below them, are secrets: a key
 * that ends in a secret's name (`password`, `token`, `secretAccessKey`,
 * `web.auth`, a future `apiKey`). Only the end counts, because a key that
 * merely mentions one holds names: `passwordExemptRoles` lists roles,
 * `ignoreSecrets` Kubernetes Secret names, `accessKeyId` an identifier.
 */
const SECRET_KEY = /(pass|passwd|password|token|secret|secret_?access_?key|secret_?key|api_?key|credentials?|auth|authorization|private_?key|routing_?key)$/i;

/** A segment of a webhook's path that is its token: long, or with a digit (Slack's T0…/B0…/XXXX, Teams' GUIDs). */
const TOKEN_SEGMENT = (segment: string) => segment.length >= 16 || (segment.length >= 6 && /\d/.test(segment));

/** `value` as written, and as it reads inside a URL. */
const withEncoded = (value: string) => [value, encodeURIComponent(value)];

/** A URL's user and password, decoded, or undefined when it has none. */
function credentialsOf(url: URL): { user: string; password: string } | undefined {
  if (!url.username && !url.password) return undefined;
  return { user: safeDecode(url.username), password: safeDecode(url.password) };
}

/**
 * The secrets one URL carries as any server might quote them: its password
 * (raw, decoded, and inside the base64 of a Basic header) and its
 * secret-looking query values.
 */
function secretsOfAnyUrl(text: string): string[] {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return [];
  }
  const out = secretsOfUrl(text);
  const creds = credentialsOf(url);
  if (creds?.password) out.push(basicAuthToken(creds.user, creds.password));
  return out;
}

/**
 * The secrets of an alert webhook's URL. For a webhook the path and the
 * query are the credential (Slack, Teams, Discord), so besides what any
 * URL carries: the whole path and query, each token-like path segment and
 * every query value, as written and decoded.
 */
export function webhookSecrets(webhookUrl: string): string[] {
  let url: URL;
  try {
    url = new URL(webhookUrl);
  } catch {
    return [];
  }
  const out = secretsOfAnyUrl(webhookUrl);
  if (url.pathname !== '/') out.push(url.pathname, safeDecode(url.pathname), `${url.pathname}${url.search}`);
  if (url.search) out.push(url.search, url.search.slice(1));
  for (const segment of url.pathname.split('/')) {
    const decoded = safeDecode(segment);
    if (TOKEN_SEGMENT(decoded)) out.push(segment, decoded);
  }
  for (const value of url.searchParams.values()) {
    if (value) out.push(...withEncoded(value));
  }
  return [...new Set(out.filter((s) => s.length > 0))];
}

/** A credential written `user:password` (web.auth): the whole, the password, and the Basic header's base64. */
function credentialForms(value: string): string[] {
  const colon = value.indexOf(':');
  if (colon <= 0 || colon === value.length - 1) return withEncoded(value);
  const user = value.slice(0, colon);
  const password = value.slice(colon + 1);
  return [...withEncoded(value), ...withEncoded(password), basicAuthToken(user, password)];
}

/** Walks the config: strings under a secret key, and the secrets of every URL anywhere. */
function collect(value: unknown, underSecretKey: boolean, out: Set<string>, seen: WeakSet<object>): void {
  if (typeof value === 'string') {
    if (underSecretKey) for (const s of credentialForms(value)) out.add(s);
    if (value.includes('://')) for (const s of secretsOfAnyUrl(value)) out.add(s);
    return;
  }
  if (value === null || typeof value !== 'object') return;
  // A resolved config shares objects (a backups target's `source` is a postgres target): visit each once.
  if (seen.has(value)) return;
  seen.add(value);
  if (Array.isArray(value)) {
    for (const item of value) collect(item, underSecretKey, out, seen);
    return;
  }
  for (const [key, child] of Object.entries(value)) collect(child, underSecretKey || SECRET_KEY.test(key), out, seen);
}

/**
 * Every secret value of `config`, longest first: the passwords of every URL
 * (state, redis, targets, scratch servers, health and Prometheus URLs) and
 * their Basic-header base64, secret-looking query values, the SMTP
 * password, the webhook URL's credentials, path tokens and query values,
 * http and Prometheus tokens, S3 secret keys, the web logins, and any
 * string a task's params keep under a secret-looking key. Kubernetes
 * tokens live in kubeconfig files, not in the config, and are not here.
 */
export function configSecrets(config: Pick<Config, 'notifications'> & Partial<Config>): string[] {
  const out = new Set<string>();
  collect(config, false, out, new WeakSet());
  const webhook = config.notifications.webhook?.url;
  if (webhook) for (const s of webhookSecrets(webhook)) out.add(s);
  return [...out].filter((s) => s.length > 0).sort((a, b) => b.length - a.length);
}

/**
 * `value` with every string in it (at any depth, keys included) scrubbed
 * of `secrets`: for what a task copies from a server's answer into its
 * result (a Prometheus label, an S3 error quoting the access key), before
 * the result is stored, shown on the board, printed or alerted on.
 */
export function scrubDeep<T>(value: T, secrets: readonly string[]): T {
  if (secrets.length === 0) return value;
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return scrubSecrets(v, secrets);
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [scrubSecrets(k, secrets), walk(x)]));
    return v;
  };
  return walk(value) as T;
}
