/**
 * Reads the certificate an HTTPS (or any TLS) endpoint presents, without
 * trusting it: an expired, self-signed or wrongly named certificate can still
 * be inspected, and whether a real client would accept it is reported beside
 * it. Shared by api-health and security-audit.
 */
import { X509Certificate } from 'node:crypto';
import type { Finding } from '../contract/result';
import { isIP } from 'node:net';
import { connect, rootCertificates, type PeerCertificate as NodePeerCertificate } from 'node:tls';

const DAY_MS = 86_400_000;

/** What the endpoint presented, and what Node's verification thinks of it. */
export interface PeerCertificate {
  /** `host:port`, the thing a finding names. */
  endpoint: string;
  /** e.g. "CN=api.example.com"; "" when the certificate has no subject. */
  subject: string;
  issuer: string;
  /** e.g. "DNS:api.example.com, IP Address:10.0.0.1", when present. */
  subjectAltName?: string;
  /** ISO 8601. */
  validFrom: string;
  validTo: string;
  /** Whole days until validTo, rounded down: 9 when 9.9 days remain; negative once expired. */
  daysLeft: number;
  expired: boolean;
  /** Issued and signed by its own key (no CA vouches for it). */
  selfSigned: boolean;
  /** True when a client verifying against the trusted CAs (and the host name) would accept it. */
  authorized: boolean;
  /** Why not, as Node/OpenSSL says it: DEPTH_ZERO_SELF_SIGNED_CERT, CERT_HAS_EXPIRED, ERR_TLS_CERT_ALTNAME_INVALID... */
  authorizationError?: string;
  serialNumber: string;
  fingerprint256: string;
}

export interface PeerCertificateOptions {
  /** Bound on connecting and the handshake. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** Extra trusted CAs (PEM), added to Node's bundled roots, for endpoints behind a private CA. */
  extraCa?: string | Buffer;
  /** "Now" for daysLeft; tests pass a fixed one. */
  now?: Date;
}

/**
 * Connects to the URL's host and port (443 by default), with the host name
 * as SNI (not for an IP address: RFC 6066 forbids it), and returns the
 * certificate the server presented. Verification failures do not throw: they
 * are in `authorized` / `authorizationError`. Throws when the endpoint cannot
 * be reached, the handshake fails, or the time is up.
 */
export function peerCertificate(url: string | URL, opts: PeerCertificateOptions): Promise<PeerCertificate> {
  const u = typeof url === 'string' ? new URL(url) : url;
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(u.port || 443);
  const endpoint = `${u.hostname}:${port}`;
  const now = opts.now ?? new Date();

  return new Promise<PeerCertificate>((resolve, reject) => {
    if (opts.signal?.aborted) return reject(opts.signal.reason);
    const socket = connect({
      host,
      port,
      servername: isIP(host) ? undefined : host,
      rejectUnauthorized: false,
      ca: opts.extraCa ? [...rootCertificates, opts.extraCa.toString()] : undefined,
    });
    const fail = (err: Error) => {
      cleanup();
      socket.destroy();
      reject(err);
    };
    const onAbort = () => fail(opts.signal!.reason instanceof Error ? opts.signal!.reason : new Error('aborted'));
    const timer = setTimeout(() => fail(new Error(`TLS handshake with ${endpoint} timed out after ${opts.timeoutMs} ms`)), opts.timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('error', (err) => fail(err));
    socket.once('secureConnect', () => {
      cleanup();
      try {
        const cert = socket.getPeerCertificate(false);
        if (!cert || !cert.raw) throw new Error(`${endpoint} presented no certificate`);
        const error = socket.authorizationError as unknown;
        resolve(describe(endpoint, cert, socket.authorized, error, now));
      } catch (err) {
        reject(err);
      } finally {
        socket.destroy();
      }
    });
  });
}

function describe(endpoint: string, cert: NodePeerCertificate, authorized: boolean, error: unknown, now: Date): PeerCertificate {
  const x509 = new X509Certificate(cert.raw);
  const validFrom = parseCertDate(x509.validFrom);
  const validTo = parseCertDate(x509.validTo);
  const msLeft = validTo.getTime() - now.getTime();
  return {
    endpoint,
    subject: formatName(cert.subject),
    issuer: formatName(cert.issuer),
    subjectAltName: cert.subjectaltname || undefined,
    validFrom: validFrom.toISOString(),
    validTo: validTo.toISOString(),
    daysLeft: Math.floor(msLeft / DAY_MS),
    expired: msLeft < 0,
    // Not x509.checkIssued(x509): OpenSSL also wants keyCertSign there, which a server certificate rarely has.
    selfSigned: x509.subject === x509.issuer && x509.verify(x509.publicKey),
    authorized,
    authorizationError: authorized ? undefined : errorText(error),
    serialNumber: x509.serialNumber,
    fingerprint256: x509.fingerprint256,
  };
}

/** OpenSSL prints "Mar  1 12:00:00 2025 GMT"; V8 parses it. */
function parseCertDate(text: string): Date {
  const d = new Date(text);
  if (Number.isNaN(d.getTime())) throw new Error(`cannot read the certificate date ${JSON.stringify(text)}`);
  return d;
}

/** `{ CN: 'a', O: 'b' }` → "CN=a, O=b" (a field may repeat: arrays). */
function formatName(name: NodePeerCertificate['subject'] | undefined): string {
  if (!name) return '';
  return Object.entries(name)
    .flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((x) => `${k}=${String(x)}`))
    .join(', ');
}

/** Node sets a code string (`DEPTH_ZERO_SELF_SIGNED_CERT`); an Error is read by its code, else its message. */
function errorText(error: unknown): string {
  if (typeof error === 'string') return error;
  if (typeof error === 'object' && error !== null) {
    const { code, message } = error as { code?: unknown; message?: unknown };
    if (typeof code === 'string') return code;
    if (typeof message === 'string') return message;
  }
  return 'unknown';
}

/** How a certificate is judged; api-health and security-audit share it so their findings agree. */
export interface CertificateChecks {
  /** Fewer days left than this is a warning (`tls_expiring`)... */
  warningDays: number;
  /** ...fewer than this, or expired, is critical. */
  criticalDays: number;
  /** Severity of `tls_untrusted`; undefined: not reported. */
  untrusted?: 'warning' | 'info';
  /** Appended to the `tls_untrusted` message (why it is only info, say). */
  untrustedNote?: string;
}

/**
 * The codes of certificateFindings; api-health and security-audit both
 * declare them. A FindingCodes written out: contract/task.ts reaches this
 * file through the clients' contract, and importing it back would be a circle.
 */
export const TLS_CERTIFICATE_CODES = {
  tls_expiring: 'a certificate with fewer than `tlsWarningDays` days left (critical under `tlsCriticalDays`, or expired)',
  tls_untrusted: 'a certificate a normal client would reject (self-signed, wrong name, incomplete chain), expiry aside',
} satisfies Readonly<Record<string, string>>;
export type TlsCertificateCode = keyof typeof TLS_CERTIFICATE_CODES;

/** `tls_expiring` and `tls_untrusted` for one certificate. */
export function certificateFindings(cert: PeerCertificate, checks: CertificateChecks): Finding<TlsCertificateCode>[] {
  const findings: Finding<TlsCertificateCode>[] = [];
  const details = {
    endpoint: cert.endpoint,
    subject: cert.subject,
    issuer: cert.issuer,
    subjectAltName: cert.subjectAltName,
    validFrom: cert.validFrom,
    validTo: cert.validTo,
    daysLeft: cert.daysLeft,
    selfSigned: cert.selfSigned,
    authorized: cert.authorized,
    authorizationError: cert.authorizationError,
    fingerprint256: cert.fingerprint256,
  };
  if (cert.expired || cert.daysLeft < checks.warningDays) {
    const critical = cert.expired || cert.daysLeft < checks.criticalDays;
    findings.push({
      severity: critical ? 'critical' : 'warning',
      code: 'tls_expiring',
      subject: cert.endpoint,
      message: cert.expired
        ? `the certificate of ${cert.endpoint} expired on ${cert.validTo.slice(0, 10)}`
        : `the certificate of ${cert.endpoint} expires in ${cert.daysLeft} days (${cert.validTo.slice(0, 10)}; ${critical ? 'critical' : 'warning'} below ${critical ? checks.criticalDays : checks.warningDays} days)`,
      suggestion: 'Renew it and reload the server or ingress that serves it; check why automatic renewal (cert-manager, ACME) did not',
      details,
    });
  }
  // An expired certificate is untrusted for that reason alone: tls_expiring already says it.
  if (checks.untrusted && !cert.authorized && !cert.expired && cert.authorizationError !== 'CERT_HAS_EXPIRED') {
    findings.push({
      severity: checks.untrusted,
      code: 'tls_untrusted',
      subject: cert.endpoint,
      message: `a client would reject the certificate of ${cert.endpoint}: ${cert.authorizationError ?? 'not trusted'}${cert.selfSigned ? ' (self-signed)' : ''}${checks.untrustedNote ?? ''}`,
      suggestion:
        cert.authorizationError === 'ERR_TLS_CERT_ALTNAME_INVALID'
          ? 'The certificate does not name this host: serve one whose subjectAltName covers it'
          : 'Serve a certificate from a CA clients trust, with its full chain; for a private CA, give caretaker its certificate (caFile / tlsCaFile)',
      details,
    });
  }
  return findings;
}
