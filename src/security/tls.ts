/**
 * security-audit on TLS endpoints: days left on the certificate each https
 * URL presents (`tls_expiring`, same thresholds as api-health: warning at
 * 21 days, critical at 7 or once expired), and optionally whether a client
 * would trust it (`tls_untrusted`). URLs on the same host and port are
 * checked once; plain http URLs are skipped (counted).
 */
import type { Finding } from '../contract/result';
import { redactSecretsIn } from '../logger';
import { certificateFindings, peerCertificate, TLS_CERTIFICATE_CODES, type TlsCertificateCode } from '../util/tls';
import { AUDIT_INCOMPLETE, AUDIT_INCOMPLETE_CODES, countsByCode, type AuditIncomplete, type AuditResult } from './audit';

/** Its findings' codes: the certificate ones api-health shares (src/util/tls.ts), and audit_incomplete. */
type TlsAuditCode = TlsCertificateCode | AuditIncomplete;

/** What the TLS check needs from security-audit's params. */
export interface TlsAuditOptions {
  /** Fewer days left than this is a `tls_expiring` warning... */
  warningDays: number;
  /** ...fewer than this, critical. */
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

/** The distinct TLS endpoints (`host:port`) of `urls`, and how many of the URLs are plain http. */
export function tlsEndpoints(urls: readonly string[]): { endpoints: Map<string, URL>; plain: number } {
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
  return { endpoints, plain };
}

/** Audits the certificates of `urls` (http ones are skipped). Never throws but on abort: an unreachable endpoint is an `audit_incomplete` finding. */
export async function auditTls(urls: readonly string[], opts: TlsAuditOptions, signal: AbortSignal): Promise<AuditResult<TlsAuditCode>> {
  const findings: Finding<TlsAuditCode>[] = [];
  const { endpoints, plain } = tlsEndpoints(urls);

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
    findings.push(...certificateFindings(cert, { warningDays: opts.warningDays, criticalDays: opts.criticalDays, untrusted: opts.checkTrust ? 'warning' : undefined }));
  }

  return { findings, metrics: { ...countsByCode({ ...TLS_CERTIFICATE_CODES, ...AUDIT_INCOMPLETE_CODES }, findings), tls_endpoints_checked: checked, tls_endpoints_plain_http: plain } };
}
