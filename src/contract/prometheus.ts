/**
 * What a task of a `prometheus` target gets: instant queries against the
 * Prometheus HTTP API (`GET /api/v1/query`). src/clients/prometheus.ts
 * implements it.
 */

/** One sample of an answer: its labels (without __name__) and value (+Inf, -Inf and NaN included). */
export interface PrometheusSample {
  labels: Record<string, string>;
  value: number;
}

/**
 * An instant query's outcome: its samples (a vector's, or a scalar as one
 * sample without labels), or the query's own failure: Prometheus rejected
 * it (400 bad_data, 422 execution, 503 timeout or canceled), the answer was
 * too large, or it is not a number per series (a range vector, a string).
 */
export type InstantAnswer =
  | { kind: 'samples'; samples: PrometheusSample[] }
  | {
      kind: 'failed';
      /** 0 when no status applies (an answer refused for its size); 200 for an unsupported result type. */
      httpStatus: number;
      /** Prometheus's errorType, or `too_large` / `unsupported_result`. */
      errorType: string;
      /** One line, scrubbed of the target's secrets, at most 300 characters of the server's text. */
      error: string;
    };

export interface InstantQueryOptions {
  /** Bound on the request; Prometheus is asked to give up a second before. */
  timeoutMs: number;
  /** Names the query in the error thrown when the server cannot answer: `Prometheus URL (query NAME) ...`. */
  name: string;
}

/** One Prometheus server, as a target names it. */
export interface PrometheusClient {
  /** The server as messages name it: its base URL without credentials, query string or trailing slash. */
  display: string;
  /**
   * Evaluates `query` now. Resolves with the query's samples or its failure;
   * rejects when the server cannot do any query (unreachable, no answer in
   * time, 401/403, 5xx, a redirect, not the API's JSON), and with the run's
   * abort reason once the run is aborted.
   */
  instantQuery(query: string, options: InstantQueryOptions): Promise<InstantAnswer>;
}
