/**
 * The HTTP probe of src/contract/http-probe.ts on node:http / node:https:
 * GETs only, never following a redirect (so a token goes to the configured
 * URL and nowhere else), bounded in time and in what is kept of a body.
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { performance } from 'node:perf_hooks';
import { rootCertificates } from 'node:tls';
import type { CertificateRead, HttpAnswer, HttpAttempt, HttpGetOptions, HttpProbe, HttpProbeOptions, KeptAliveConnection } from '../contract/http-probe';
import { peerCertificate } from '../util/tls';

/** What is kept of a response body (the rest is read and dropped): health answers are small. */
const MAX_BODY_BYTES = 64 * 1024;
/** Sent with every GET: JSON preferred (a detailed health answer), anything taken. */
const ACCEPT = 'application/json, text/plain;q=0.9, */*;q=0.5';
/** How the service's logs name these requests: only api-health probes http targets. */
const USER_AGENT = 'caretaker api-health';

/** A probe its owner closes: closing destroys the kept-alive connections still open. */
export interface ClosableHttpProbe extends HttpProbe {
  close(): void;
}

/** The probe of one run: its GETs end when `signal` aborts. */
export function createHttpProbe(options: HttpProbeOptions & { signal: AbortSignal }): ClosableHttpProbe {
  const { signal, scrub } = options;
  const { insecure, extraCa } = options.tls;
  const tls = { insecure, ca: extraCa ? [...rootCertificates, extraCa] : undefined };
  const agents = new Set<HttpAgent>();

  /** GETs and scrubs what came back, so that no caller has to: no answer becomes `failure`, an abort throws. */
  const attempt = async (url: URL, o: HttpGetOptions & { agent?: HttpAgent }): Promise<HttpAttempt> => {
    try {
      const a = await get(url, { ...o, signal, tls });
      return { answer: { ...a, statusText: scrub(a.statusText), location: a.location === undefined ? undefined : scrub(a.location), body: scrub(a.body) } };
    } catch (err) {
      if (err instanceof NoAnswer) return { failure: scrub(err.message) };
      throw err;
    }
  };

  return {
    get: (url, o) => attempt(url, o),
    keptAlive(url): KeptAliveConnection {
      const Agent = url.protocol === 'https:' ? HttpsAgent : HttpAgent;
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      agents.add(agent);
      return {
        get: (target, o) => attempt(target, { ...o, agent }),
        close() {
          agents.delete(agent);
          agent.destroy();
        },
      };
    },
    async certificate(origin, o): Promise<CertificateRead> {
      try {
        return { certificate: await peerCertificate(origin, { timeoutMs: o.timeoutMs, signal, extraCa }) };
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        return { failure: scrub(errorMessage(err)) };
      }
    },
    close() {
      for (const agent of agents) agent.destroy();
      agents.clear();
    },
  };
}

/** A request that got no answer: connection refused, DNS, TLS, timeout. */
class NoAnswer extends Error {}

interface GetOptions extends HttpGetOptions {
  signal: AbortSignal;
  tls: { insecure: boolean; ca?: string[] };
  agent?: HttpAgent;
}

/**
 * GETs the URL and reads the answer: any status is an answer. Rejects with
 * NoAnswer when there is none, and with the run's abort reason when the run
 * is aborted.
 */
function get(url: URL, o: GetOptions): Promise<HttpAnswer> {
  const timeout = AbortSignal.timeout(o.timeoutMs);
  const signal = AbortSignal.any([o.signal, timeout]);
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<HttpAnswer>((resolve, reject) => {
    const failed = (err: Error) => {
      if (o.signal.aborted) reject(o.signal.reason);
      else if (timeout.aborted) reject(new NoAnswer(`no answer within ${o.timeoutMs} ms`));
      else reject(new NoAnswer(errorMessage(err)));
    };
    const started = performance.now();
    const req = request(
      url,
      {
        method: 'GET',
        headers: { accept: ACCEPT, 'user-agent': USER_AGENT, ...o.headers },
        signal,
        // A fresh connection per call (as curl), unless a kept-alive connection passes its agent.
        agent: o.agent ?? false,
        rejectUnauthorized: !o.tls.insecure,
        ca: o.tls.ca,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        res.on('data', (chunk: Buffer) => {
          if (kept >= MAX_BODY_BYTES) return;
          chunks.push(chunk);
          kept += chunk.length;
        });
        res.once('error', failed);
        res.once('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            statusText: res.statusMessage ?? '',
            location: typeof res.headers.location === 'string' ? res.headers.location : undefined,
            body: Buffer.concat(chunks).subarray(0, MAX_BODY_BYTES).toString('utf8'),
            ms: performance.now() - started,
          }),
        );
      },
    );
    req.once('error', failed);
    req.end();
  });
}

/** "ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:443" style; duck-typed, as Node's own errors may come from another realm. */
function errorMessage(err: unknown): string {
  if (typeof err !== 'object' || err === null || typeof (err as Error).message !== 'string') return String(err);
  const { message, code } = err as NodeJS.ErrnoException;
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}
