/**
 * pino JSON on stderr (stdout is for `--json` results). Secrets are redacted
 * by key wherever they appear in a log object; URLs we log on purpose go
 * through `redactUrl` first. `caretaker run` without `--json` reformats
 * these same entries into readable lines (src/commands/human-log.ts), after
 * pino has redacted them.
 */
import pino, { type Logger } from 'pino';

export type { Logger };

/** Keys whose values never reach a log line, at any depth we log at. */
const SECRET_KEYS = ['password', 'pass', 'token', 'secret', 'authorization', 'auth', 'admin', 'viewer', 'url', 'connectionString', 'routingKey'];

/** A pino logger at `level` writing JSON to `destination` (default: stderr), with the secret keys redacted. */
export function createLogger(level = 'info', destination: pino.DestinationStream = pino.destination(2)): Logger {
  return pino(
    {
      level,
      base: { service: 'caretaker' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [...SECRET_KEYS, ...SECRET_KEYS.map((k) => `*.${k}`), ...SECRET_KEYS.map((k) => `*.*.${k}`)],
        censor: '[redacted]',
      },
    },
    destination,
  );
}

/** Query parameters whose value is a secret (`?api_key=`, `?token=`, `?sslpassword=`). */
const SECRET_PARAM = /pass|token|secret|key/i;

/** `postgres://app:s3cret@db/x` → `postgres://app:***@db/x`; anything unparsable is hidden whole. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    for (const key of [...parsed.searchParams.keys()]) {
      if (SECRET_PARAM.test(key)) parsed.searchParams.set(key, '***');
    }
    return parsed.toString();
  } catch {
    return '[unparsable url]';
  }
}

/**
 * The secrets a configured URL carries, as a server may echo them back: its
 * password and the values of its secret-looking query parameters, decoded
 * and as written in the URL.
 */
export function secretsOfUrl(url: string | undefined): string[] {
  if (!url) return [];
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return [];
  }
  const found: string[] = [];
  if (parsed.password) found.push(parsed.password, safeDecode(parsed.password));
  for (const pair of parsed.search.slice(1).split('&')) {
    const eq = pair.indexOf('=');
    if (eq < 0) continue;
    const written = pair.slice(eq + 1);
    const value = safeDecode(written.replace(/\+/g, ' '));
    if (SECRET_PARAM.test(safeDecode(pair.slice(0, eq).replace(/\+/g, ' '))) && value) found.push(written, value, encodeURIComponent(value));
  }
  return [...new Set(found)];
}

/** `text` URL-decoded, or as it is when it is not valid percent-encoding. */
export function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** Shorter values are left alone: replacing every "ab" would garble the text, and they are no secret worth the name. */
const MIN_SCRUBBED = 4;

/**
 * `text` with every known secret (a token, a URL's password, an
 * Authorization header's credentials) replaced by `***`: for what a target
 * sends back, which may quote the request it got. Longest first, so a
 * secret that contains another goes whole.
 */
export function scrubSecrets(text: string, secrets: readonly (string | undefined)[]): string {
  const known = [...new Set(secrets.filter((s): s is string => !!s && s.length >= MIN_SCRUBBED))].sort((a, b) => b.length - a.length);
  let out = text;
  for (const secret of known) out = out.split(secret).join('***');
  return out;
}

/** Replaces any URL-with-password inside free text (error messages from drivers). */
export function redactSecretsIn(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/[^:\s/@]*:)[^@\s/]+@/gi, '$1***@');
}

/** A URL inside free text: a scheme, `://`, and everything up to a space or a quote. */
const URL_IN_TEXT = /\b([a-z][a-z0-9+.-]*):\/\/[^\s"'<>`]+/gi;
/** Punctuation that ends a sentence, not the URL it follows ("... at http://host:9: refused"). */
const URL_TRAIL = /[).,;:!?\]}]+$/;

/**
 * `text` with every URL in it cut down to its scheme, host and port
 * (`http://user:pw@hooks.example.com/T0/B1?key=x` → `http://hooks.example.com`):
 * for the errors of endpoints whose path or query is the secret (a webhook),
 * where no list of known secrets can be trusted to be complete. The
 * credentials go too; a URL that cannot be parsed is hidden whole.
 */
export function originsOnlyIn(text: string): string {
  return text.replace(URL_IN_TEXT, (match: string, scheme: string) => {
    const trail = URL_TRAIL.exec(match)?.[0] ?? '';
    // The trail may belong to the URL after all (`http://[::1]`): then it is kept whole.
    const short = parseUrl(match.slice(0, match.length - trail.length));
    const parsed = short ?? parseUrl(match);
    if (!parsed) return `${scheme}://[unparsable url]${trail}`;
    const origin = parsed.host ? `${parsed.protocol}//${parsed.host}` : `${scheme}://[redacted]`;
    return short ? `${origin}${trail}` : origin;
  });
}

function parseUrl(text: string): URL | undefined {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}

/**
 * The base64 of `user:password`, as it travels in an `Authorization: Basic`
 * header: what a server that echoes the header back would quote.
 */
export function basicAuthToken(user: string, password: string): string {
  return Buffer.from(`${user}:${password}`, 'utf8').toString('base64');
}
