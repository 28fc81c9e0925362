/**
 * The Prometheus client of src/contract/prometheus.ts: instant queries
 * through fetch, with the target's token (or the credentials of its URL, as
 * basic auth), never following a redirect (the token goes to the configured
 * server and nowhere else), and a bound on the size of an answer.
 */
import type { PrometheusTarget } from '../config/schema';
import type { InstantAnswer, InstantQueryOptions, PrometheusClient } from '../contract/prometheus';
import { coerceError } from '../errors';
import { scrubSecrets, secretsOfUrl } from '../logger';
import { fetchFailureReason } from '../util/fetch-errors';
import { requestWithoutCredentials } from '../util/url-credentials';
import { formatBytes, oneLine } from '../util/format';
import { ResponseTooLarge, readBoundedText, parseJsonOrUndefined } from '../util/bounded-body';

/** An answer larger than this is refused as that query's failure: aggregate it (sum by, topk). */
const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;
/** How much of an error text Prometheus (or a proxy) sends back goes into a message. */
const MAX_ERROR_TEXT = 300;
/** Prometheus is asked to give up this much before we do, so a heavy query fails alone. */
const SERVER_TIMEOUT_MARGIN_MS = 1_000;

/** The client of one run: its requests end when `signal` aborts. Nothing to close: fetch pools its own connections. */
export function createPrometheusClient(target: PrometheusTarget, signal: AbortSignal): PrometheusClient {
  const endpoint = endpointOf(target);
  return {
    display: endpoint.display,
    instantQuery: (query, options) => instantQuery(endpoint, query, options, signal),
  };
}

interface Endpoint {
  queryUrl: URL;
  headers: Record<string, string>;
  /** The server as messages name it: no credentials, no query string. */
  display: string;
  /**
   * What the server says back may quote the request (a proxy's 401 with the
   * Authorization header, a key in the URL): its text goes through this.
   */
  scrub: (text: string) => string;
}

/** The query URL under the target's base URL (a path prefix is kept) and the auth header. */
function endpointOf(target: PrometheusTarget): Endpoint {
  // fetch refuses URLs with credentials: the URL's become a basic auth header, unless a token is set.
  const bare = requestWithoutCredentials(target.url);
  const headers: Record<string, string> = { accept: 'application/json', ...(target.token ? { authorization: `Bearer ${target.token}` } : bare.headers) };
  const basic = !target.token && bare.headers.authorization ? [bare.headers.authorization.slice('Basic '.length)] : [];
  const secrets = [target.token, ...secretsOfUrl(target.url), ...basic];
  const base = new URL(bare.url);
  base.search = '';
  base.hash = '';
  const display = `${base.origin}${base.pathname.replace(/\/+$/, '')}`;
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  return { queryUrl: new URL('api/v1/query', base), headers, display, scrub: (text) => scrubSecrets(text, secrets) };
}

/**
 * One instant query. Prometheus rejecting the query (400 bad_data, 422
 * execution, 503 timeout) is that query's failure; anything else that is
 * not an answer (refused, timed out, 5xx, 401, not the API) throws: no
 * query can be done.
 */
async function instantQuery(ep: Endpoint, query: string, o: InstantQueryOptions, signal: AbortSignal): Promise<InstantAnswer> {
  const url = new URL(ep.queryUrl);
  url.searchParams.set('query', query);
  if (o.timeoutMs > 2 * SERVER_TIMEOUT_MARGIN_MS) url.searchParams.set('timeout', `${o.timeoutMs - SERVER_TIMEOUT_MARGIN_MS}ms`);
  const timeout = AbortSignal.timeout(o.timeoutMs);
  const where = `Prometheus ${ep.display} (query ${o.name})`;
  let status: number;
  let text: string;
  try {
    const res = await fetch(url, { headers: ep.headers, redirect: 'manual', signal: AbortSignal.any([signal, timeout]) });
    status = res.status;
    text = await readBoundedText(res, MAX_RESPONSE_BYTES);
  } catch (err) {
    if (signal.aborted) throw coerceError(signal.reason);
    if (timeout.aborted) throw new Error(`${where} did not answer within ${o.timeoutMs} ms`, { cause: err });
    if (err instanceof ResponseTooLarge) {
      return { kind: 'failed', httpStatus: 0, errorType: 'too_large', error: `the answer is larger than ${formatBytes(MAX_RESPONSE_BYTES)}: aggregate the query (sum by, topk)` };
    }
    throw new Error(`${where} is unreachable: ${fetchFailureReason(err)}`, { cause: err });
  }

  const body = parseJsonOrUndefined(text) as { status?: unknown; errorType?: unknown; error?: unknown; data?: { resultType?: unknown; result?: unknown } } | undefined;
  if (status === 200 && body?.status === 'success' && body.data) return answerOf(body.data.resultType, body.data.result);
  const isQueryError = status === 400 || status === 422 || (status === 503 && (body?.errorType === 'timeout' || body?.errorType === 'canceled'));
  if (isQueryError && body?.status === 'error') {
    return { kind: 'failed', httpStatus: status, errorType: String(body.errorType ?? 'unknown'), error: oneLine(ep.scrub(String(body.error ?? 'no error text')), MAX_ERROR_TEXT) };
  }
  if (status === 200) throw new Error(`${where} answered 200 but not with the Prometheus API's JSON: is the target url the server's base URL?`);
  const said = typeof body?.error === 'string' ? `: ${oneLine(ep.scrub(body.error), MAX_ERROR_TEXT)}` : '';
  const hint = status === 401 || status === 403 ? ' (check the target token)' : status >= 300 && status < 400 ? ' (a redirect, e.g. to a login page: not followed)' : '';
  throw new Error(`${where} answered HTTP ${status}${said}${hint}`);
}

/** The samples of a vector or scalar; anything else is the query's failure. */
function answerOf(resultType: unknown, result: unknown): InstantAnswer {
  if (resultType === 'vector' && Array.isArray(result)) {
    return {
      kind: 'samples',
      samples: (result as { metric?: Record<string, string>; value?: [number, string] }[]).map((r) => {
        const { __name__: _name, ...labels } = r.metric ?? {};
        return { labels, value: parseValue(r.value?.[1]) };
      }),
    };
  }
  if (resultType === 'scalar' && Array.isArray(result)) return { kind: 'samples', samples: [{ labels: {}, value: parseValue(result[1]) }] };
  const error =
    resultType === 'matrix'
      ? 'the query returns a range vector: wrap it in a function such as max_over_time(...)'
      : `the query returns a ${String(resultType)}, not a number per series`;
  return { kind: 'failed', httpStatus: 200, errorType: 'unsupported_result', error };
}

/** Prometheus sends sample values as strings, with "+Inf", "-Inf" and "NaN". */
function parseValue(raw: unknown): number {
  if (raw === '+Inf' || raw === 'Inf') return Infinity;
  if (raw === '-Inf') return -Infinity;
  return typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
}



