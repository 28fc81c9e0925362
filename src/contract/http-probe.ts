/**
 * What a task of an `http` target gets to look at its service: GETs that
 * report any status as an answer (and the lack of one as a reason), never
 * follow a redirect, keep only the start of a body, and scrub what comes
 * back; GETs over one kept-alive connection for timing; and the TLS
 * certificate an origin presents, read even when untrusted.
 * src/clients/http-probe.ts implements it.
 */
import type { PeerCertificate } from '../util/tls';

/** How the probe's connections treat TLS. */
export interface HttpTlsOptions {
  /** Accept a certificate a client would reject (self-signed, private CA, wrong name). */
  insecure: boolean;
  /** PEM of extra CAs to trust (a private CA), on top of Node's bundled roots. */
  extraCa?: string;
}

/** What a probe is made with; the runner adds the run's abort signal. */
export interface HttpProbeOptions {
  tls: HttpTlsOptions;
  /**
   * Applied to all an answer carries (status text, Location, body) and to the
   * reason there was none: a server may echo the request (a token, a key in
   * the URL's query), and nothing of it may reach a result unscrubbed.
   */
  scrub: (text: string) => string;
}

/** One GET's bounds and extra headers. */
export interface HttpGetOptions {
  /** Bound on the request: connect, TLS handshake, the whole answer. */
  timeoutMs: number;
  /** Sent on top of the probe's accept and user-agent (an authorization header, say). */
  headers?: Record<string, string>;
}

/** What a server answered, scrubbed. */
export interface HttpAnswer {
  status: number;
  /** The status line's reason phrase; "" when there is none. */
  statusText: string;
  /** The Location header of a redirect (not followed). */
  location?: string;
  /** The first 64 KiB of the body, as text (the rest is read and dropped). */
  body: string;
  /** From sending the request to the end of the body. */
  ms: number;
}

/**
 * A GET's outcome: an answer, whatever its status, or why there was none
 * (connection refused, DNS, TLS, `no answer within N ms`), scrubbed.
 */
export type HttpAttempt = { answer: HttpAnswer; failure?: undefined } | { answer?: undefined; failure: string };

/** A certificate read: what the origin presented, or why it could not be read (scrubbed). */
export type CertificateRead = { certificate: PeerCertificate; failure?: undefined } | { certificate?: undefined; failure: string };

/** GETs over one kept-alive connection (one socket at most), so their times leave out the connection set-up. */
export interface KeptAliveConnection {
  /** As HttpProbe.get, reusing the connection; the URL has the scheme the connection was opened for. */
  get(url: URL, options: HttpGetOptions): Promise<HttpAttempt>;
  /** Destroys the connection; the probe's owner closing it does too. */
  close(): void;
}

/** The requests of one run to one HTTP service. Every method rejects with the run's abort reason once the run is aborted. */
export interface HttpProbe {
  /** A GET on a fresh connection (as curl makes one). */
  get(url: URL, options: HttpGetOptions): Promise<HttpAttempt>;
  /** A kept-alive connection for requests to the URL's scheme (http or https). */
  keptAlive(url: URL): KeptAliveConnection;
  /**
   * The certificate the origin presents, whether or not a client would trust
   * it (the probe's extra CA counts for that judgement; `insecure` does not).
   */
  certificate(origin: string, options: { timeoutMs: number }): Promise<CertificateRead>;
}
