/**
 * A small client for Prometheus Alertmanager's v2 API (api/v2/openapi.yaml
 * upstream; v1 is gone since 0.27 and deprecated before): post alerts,
 * create and expire silences, and list both. Every request is bounded by
 * `timeoutMs` (and the caller's signal, when given). Credentials in the
 * configured URL (`https://user:pass@am.example.com`) travel as an
 * `Authorization: Basic` header, never in the URL fetch sees. Errors name
 * the server by scheme, host and port only and are scrubbed of the URL's
 * secrets and of `secrets`: a proxy in front of Alertmanager may quote the
 * request it refused.
 */
import { requestWithoutCredentials } from '../util/url-credentials';
import { basicAuthToken, originsOnlyIn, redactSecretsIn, safeDecode, scrubSecrets, secretsOfUrl } from '../logger';
import { urlOrigin, fetchFailureReason } from '../util/fetch-errors';

/** One request's bound when the caller gives none: Alertmanager answers in milliseconds when it is up. */
export const ALERTMANAGER_REQUEST_TIMEOUT_MS = 5_000;

/** How much of an error reply goes into the message: Alertmanager's own are one line ("start time must be before end time"). */
const REPLY_EXCERPT_CHARS = 200;

/** One alert as POST /api/v2/alerts takes it (`postableAlert`). Times are RFC 3339. */
export interface PostableAlert {
  labels: Record<string, string>;
  annotations?: Record<string, string>;
  /** Default: when Alertmanager first receives it. */
  startsAt?: string;
  /** Absent: Alertmanager resolves it `resolve_timeout` after the last post. */
  endsAt?: string;
  generatorURL?: string;
}

/** One alert as GET /api/v2/alerts lists it (`gettableAlert`): only unresolved ones are listed. */
export interface GettableAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  updatedAt: string;
  fingerprint: string;
  generatorURL?: string;
  receivers: { name: string }[];
  status: { state: 'unprocessed' | 'active' | 'suppressed'; silencedBy: string[]; inhibitedBy: string[] };
}

/** A silence's label matcher; `isEqual: false` is `!=` (or `!~` with isRegex). */
export interface SilenceMatcher {
  name: string;
  value: string;
  isRegex: boolean;
  isEqual?: boolean;
}

export interface SilenceRequest {
  /** At least one. */
  matchers: SilenceMatcher[];
  startsAt: Date;
  endsAt: Date;
  createdBy: string;
  comment: string;
}

/** One silence as GET /api/v2/silences lists it; expired ones stay listed for a while (`--data.retention`). */
export interface GettableSilence {
  id: string;
  status: { state: 'expired' | 'active' | 'pending' };
  updatedAt: string;
  matchers: SilenceMatcher[];
  startsAt: string;
  endsAt: string;
  createdBy: string;
  comment: string;
}

/** Filters of GET /api/v2/alerts; Alertmanager's defaults are all true. */
export interface ListAlertsQuery {
  active?: boolean;
  silenced?: boolean;
  inhibited?: boolean;
  unprocessed?: boolean;
  /** Matchers such as `alertname="backup_stale"`. */
  filter?: string[];
}

/**
 * A failed call: `status` is the HTTP status when Alertmanager (or a proxy)
 * answered, absent when it could not be reached or timed out.
 */
export class AlertmanagerError extends Error {
  override name = 'AlertmanagerError';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }

  /** A refusal that will not pass by trying again (a 4xx other than 408 and 429). */
  get permanent(): boolean {
    return this.status !== undefined && this.status >= 400 && this.status < 500 && this.status !== 408 && this.status !== 429;
  }
}

export interface AlertmanagerClient {
  /** `scheme://host:port`: how messages name the server. */
  readonly endpoint: string;
  /** POST /api/v2/alerts. Alertmanager keeps the valid ones of a batch and answers 400 naming the others. */
  postAlerts(alerts: readonly PostableAlert[]): Promise<void>;
  /** GET /api/v2/alerts. */
  listAlerts(query?: ListAlertsQuery): Promise<GettableAlert[]>;
  /** POST /api/v2/silences; resolves with the new silence's id. */
  createSilence(silence: SilenceRequest): Promise<string>;
  /** DELETE /api/v2/silence/{id}: the silence ends now (it stays listed as expired). Expiring an expired one is no error. */
  expireSilence(id: string): Promise<void>;
  /** GET /api/v2/silences, optionally filtered by matchers such as `namespace="shop"`. */
  listSilences(filter?: string[]): Promise<GettableSilence[]>;
}

export interface AlertmanagerClientOptions {
  /** The Alertmanager's base URL, with its route prefix if any (`http://am:9093`, `https://host/alertmanager`). */
  url: string;
  /** Each request's bound, answer included (default ALERTMANAGER_REQUEST_TIMEOUT_MS). */
  timeoutMs?: number;
  /** Cuts every request short, e.g. a task run's abort signal. */
  signal?: AbortSignal;
  /** More values to scrub from error messages. */
  secrets?: readonly string[];
}

export function createAlertmanagerClient(opts: AlertmanagerClientOptions): AlertmanagerClient {
  const timeoutMs = opts.timeoutMs ?? ALERTMANAGER_REQUEST_TIMEOUT_MS;
  const endpoint = urlOrigin(opts.url);
  const request = requestWithoutCredentials(opts.url);
  const secrets = [...(opts.secrets ?? []), ...alertmanagerUrlSecrets(opts.url)];
  const clean = (text: string) => redactSecretsIn(originsOnlyIn(scrubSecrets(text, secrets)));

  /** One call: `operation` names it in errors (the path may sit under a secret prefix, so it is not shown). */
  async function call(operation: string, method: string, path: string, opts2: { body?: unknown; query?: [string, string][] } = {}): Promise<unknown> {
    let url: URL;
    try {
      url = new URL(request.url);
    } catch {
      throw new AlertmanagerError(`alertmanager ${endpoint}: ${operation}: the URL cannot be parsed`);
    }
    url.pathname = `${url.pathname.replace(/\/+$/, '')}${path}`;
    for (const [k, v] of opts2.query ?? []) url.searchParams.append(k, v);
    const signal = opts.signal ? AbortSignal.any([opts.signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs);
    const where = `alertmanager ${endpoint}: ${operation}`;
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, {
        method,
        headers: { accept: 'application/json', ...(opts2.body !== undefined ? { 'content-type': 'application/json' } : {}), ...request.headers },
        body: opts2.body !== undefined ? JSON.stringify(opts2.body) : undefined,
        signal,
        // A redirect could carry the Authorization header elsewhere: Alertmanager never redirects its API.
        redirect: 'error',
      });
      // Read whole, within the same bound: it also releases the connection.
      text = await res.text();
    } catch (err) {
      throw new AlertmanagerError(clean(`${where}: ${fetchFailureReason(err, opts.signal)}`));
    }
    if (!res.ok) {
      const excerpt = text.trim().replace(/\s+/g, ' ').slice(0, REPLY_EXCERPT_CHARS);
      throw new AlertmanagerError(clean(`${where}: HTTP ${res.status}${excerpt ? ` (${excerpt})` : ''}`), res.status);
    }
    if (!text) return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new AlertmanagerError(`${where}: the answer is not JSON`, res.status);
    }
  }

  return {
    endpoint,
    async postAlerts(alerts) {
      if (alerts.length === 0) return;
      await call('post alerts', 'POST', '/api/v2/alerts', { body: alerts });
    },
    async listAlerts(query = {}) {
      const params: [string, string][] = [];
      for (const key of ['active', 'silenced', 'inhibited', 'unprocessed'] as const) {
        if (query[key] !== undefined) params.push([key, String(query[key])]);
      }
      for (const f of query.filter ?? []) params.push(['filter', f]);
      const body = await call('list alerts', 'GET', '/api/v2/alerts', { query: params });
      if (!Array.isArray(body)) throw new AlertmanagerError(`alertmanager ${endpoint}: list alerts: the answer is not a list`);
      return body as GettableAlert[];
    },
    async createSilence(silence) {
      const body = (await call('create silence', 'POST', '/api/v2/silences', {
        body: {
          matchers: silence.matchers.map((m) => ({ isEqual: true, ...m })),
          startsAt: silence.startsAt.toISOString(),
          endsAt: silence.endsAt.toISOString(),
          createdBy: silence.createdBy,
          comment: silence.comment,
        },
      })) as { silenceID?: unknown } | undefined;
      if (typeof body?.silenceID !== 'string' || !body.silenceID) throw new AlertmanagerError(`alertmanager ${endpoint}: create silence: the answer has no silenceID`);
      return body.silenceID;
    },
    async expireSilence(id) {
      await call(`expire silence ${id}`, 'DELETE', `/api/v2/silence/${encodeURIComponent(id)}`);
    },
    async listSilences(filter = []) {
      const body = await call('list silences', 'GET', '/api/v2/silences', { query: filter.map((f) => ['filter', f]) });
      if (!Array.isArray(body)) throw new AlertmanagerError(`alertmanager ${endpoint}: list silences: the answer is not a list`);
      return body as GettableSilence[];
    },
  };
}

/**
 * The secrets of an Alertmanager URL as a server might quote them: its
 * password, decoded or not, the base64 of the Basic header made of it, and
 * secret-looking query values. Unlike a chat webhook, its path is a route
 * prefix, not a credential.
 */
export function alertmanagerUrlSecrets(url: string): string[] {
  const out = secretsOfUrl(url);
  try {
    const parsed = new URL(url);
    if (parsed.password) out.push(basicAuthToken(safeDecode(parsed.username), safeDecode(parsed.password)));
  } catch {
    // An unparsable URL carries nothing we could name: messages hide it whole.
  }
  return out;
}

