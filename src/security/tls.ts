/**
 * security-audit on TLS endpoints: days left on the certificate each https
 * URL presents (`tls_expiring`, same thresholds as api-health: warning at
 * 21 days, critical at 7 or once expired), and optionally whether a client
 * would trust it (`tls_untrusted`). URLs on the same host and port are
 * checked once; plain http URLs are skipped (counted).
 */
import type { Finding } from '../contract/result';
import { redactSecretsIn } from '../logger';
import { peerCertificate } from '../util/tls';
import { AUDIT_INCOMPLETE, countsByCode, type AuditResult } from './audit';

export const TLS_CODES = ['tls_expiring', 'tls_untrusted', AUDIT_INCOMPLETE] as const;

/** What the TLS check needs from security-audit's params. */
export interface TlsAuditOptions {
  /** Days left at or below which `tls_expiring` is a warning... */
  warningDays: number;
  /** ...and critical. */
  criticalDays: number;
  /** Also report certificates a client would reject (self-signed, wrong name, incomplete chain). */
  checkTrust: boolean;
  /** Bound on each connection and handshake. */
  timeoutMs: number;
  /** PEM of private CAs to trust besides Node's bundled roots. */
  extraCa?: string | Buffer;
  /** "Now" for days left; tests pass a fixed one. */
  now?: Date;
}

/** Audits the certificates of `urls` (http ones are skipped). Never throws but on abort: an unreachable endpoint is an `audit_incomplete` finding. */
export async function auditTls(urls: readonly string[], opts: TlsAuditOptions, signal: AbortSignal): Promise<AuditResult> {
  const findings: Finding[] = [];
  const endpoints = new Map<string, URL>();
  let plain = 0;
  for (const raw of urls) {
    const u = new URL(raw);
    if (u.protocol !== 'https:') {
      plain += 1;
      continue;
    }
    const key = `${u.hostname}:${u.port || 443}`;
    if (!endpoints.has(key)) endpoints.set(key, u);
  }

  let checked = 0;
  for (const [endpoint, u] of endpoints) {
    if (signal.aborted) throw signal.reason;
    let cert;
    try {
      cert = await peerCertificate(u, { timeoutMs: opts.timeoutMs, signal, extraCa: opts.extraCa, now: opts.now });
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      findings.push({
        severity: 'warning',
        code: AUDIT_INCOMPLETE,
        subject: endpoint,
        message: `cannot read the TLS certificate of ${endpoint}: ${redactSecretsIn((err as Error).message)}`,
        details: { endpoint, check: 'tls_expiring' },
      });
      continue;
    }
    checked += 1;
    const details = {
      endpoint,
      subject: cert.subject,
      issuer: cert.issuer,
      subjectAltName: cert.subjectAltName,
      validTo: cert.validTo,
      daysLeft: cert.daysLeft,
      selfSigned: cert.selfSigned,
      authorized: cert.authorized,
      authorizationError: cert.authorizationError,
      fingerprint256: cert.fingerprint256,
    };
    if (cert.expired || cert.daysLeft <= opts.warningDays) {
      const critical = cert.expired || cert.daysLeft <= opts.criticalDays;
      findings.push({
        severity: critical ? 'critical' : 'warning',
        code: 'tls_expiring',
        subject: endpoint,
        message: cert.expired
          ? `the TLS certificate of ${endpoint} expired on ${cert.validTo.slice(0, 10)}`
          : `the TLS certificate of ${endpoint} expires in ${cert.daysLeft} days (${cert.validTo.slice(0, 10)}; ${critical ? 'critical' : 'warning'} at ${critical ? opts.criticalDays : opts.warningDays} days)`,
        suggestion: 'Renew the certificate and reload the server or ingress that serves it; check why automatic renewal (cert-manager, ACME) did not',
        details,
      });
    }
    if (opts.checkTrust && !cert.authorized && !cert.expired) {
      findings.push({
        severity: 'warning',
        code: 'tls_untrusted',
        subject: endpoint,
        message: `clients would reject the TLS certificate of ${endpoint}: ${cert.authorizationError ?? 'not trusted'}${cert.selfSigned ? ' (self-signed)' : ''}`,
        suggestion: 'Serve a certificate from a trusted CA for this host name, with its full chain; for a private CA, give its PEM in tlsCaFile',
        details,
      });
    }
  }

  return { findings, metrics: { ...countsByCode(TLS_CODES, findings), tls_endpoints_checked: checked, tls_endpoints_plain_http: plain } };
}
