/**
 * security-audit (weekly; the runbook's "Review security alerts" and monthly
 * "Security audit"). Read-only. One run looks across every configured
 * target: it runs on caretaker's self-target, which carries them all
 * (`ctx.target.targets`), and composes the per-kind checks of src/security/:
 *
 * - postgres targets: superusers, login roles without a password or without
 *   password expiry, CREATE for PUBLIC on a schema, CONNECT for PUBLIC (on
 *   the target's own database; on all of the server's with `allDatabases`);
 * - redis targets: answers without credentials, protected mode off;
 * - http targets (https URLs): certificate expiry, and trust;
 * - kubernetes targets: privileged / root / host-namespace pods; opt-in,
 *   secrets due for rotation (metadata only) and cluster-admin bindings.
 *
 * A target that cannot be audited is an `audit_incomplete` warning, not the
 * end of the run; when no target at all could be audited the run is an
 * `error`. Subjects are prefixed with the target's name (`main/role alice`,
 * `prod/shop/deployment/web`); TLS subjects are `host:port`.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import type { Client } from 'pg';
import type { Logger } from 'pino';
import { defineTask, type FindingCodes, type TaskOutcome } from '../contract/task';
import type { Finding, Severity } from '../contract/result';
import type { Config, KubernetesTarget, PostgresTarget } from '../config/schema';
import type { KubernetesApis } from '../contract/clients';
import { redactSecretsIn } from '../logger';
import { endClient } from '../clients/postgres';
import { coerceError } from '../errors';
import { AUDIT_INCOMPLETE, AUDIT_INCOMPLETE_CODES, type AuditResult } from '../security/audit';
import { auditPostgres, POSTGRES_CODES } from '../security/postgres';
import { auditRedis, REDIS_CODES } from '../security/redis';
import { auditTls, tlsEndpoints } from '../security/tls';
import { auditKubernetes, KUBERNETES_CODES } from '../security/kubernetes';
import { TLS_CERTIFICATE_CODES } from '../util/tls';

/** The kinds of target the audit covers, in the order it audits them. */
export const AUDIT_KINDS = ['postgres', 'redis', 'tls', 'kubernetes'] as const;
export type AuditKind = (typeof AUDIT_KINDS)[number];

const codes = {
  ...POSTGRES_CODES,
  ...REDIS_CODES,
  ...TLS_CERTIFICATE_CODES,
  ...KUBERNETES_CODES,
  ...AUDIT_INCOMPLETE_CODES,
} satisfies FindingCodes;
type Code = keyof typeof codes;

export const params = z
  .strictObject({
    /** Which kinds to audit (e.g. `--param 'kinds=["tls"]'`). */
    kinds: z.array(z.enum(AUDIT_KINDS)).min(1).default([...AUDIT_KINDS]),

    /** Superusers that are expected: not reported. */
    allowedSuperusers: z.array(z.string().min(1)).default(['postgres']),
    /** Login roles that authenticate without a password on purpose (peer, cert): no login_without_password / password_no_expiry. */
    passwordExemptRoles: z.array(z.string().min(1)).default(['postgres']),
    /** Policy: every login role's password must expire (VALID UNTIL). Off: reported as info. */
    requirePasswordExpiry: z.boolean().default(false),

    /** Bound on connecting to Redis and on each command. */
    redisTimeoutMs: z.number().int().min(100).max(60_000).default(5_000),

    /** `tls_expiring` is a warning at this many days left or fewer (api-health's threshold)... */
    tlsWarningDays: z.number().int().min(0).max(365).default(21),
    /** ...and critical at this many (or expired). */
    tlsCriticalDays: z.number().int().min(0).max(365).default(7),
    /** Report certificates clients would reject (`tls_untrusted`). */
    tlsCheckTrust: z.boolean().default(true),
    /** A PEM file of private CAs to trust for tls_untrusted, besides Node's bundled roots. */
    tlsCaFile: z.string().min(1).optional(),
    /** Bound on each TLS connection and handshake. */
    tlsTimeoutMs: z.number().int().min(100).max(60_000).default(10_000),

    /** List secrets (metadata only) for secret_rotation_due; needs a Role that can list secrets. */
    checkSecrets: z.boolean().default(false),
    /** A secret whose data is older than this is due for rotation (the runbook's "Rotating Secrets"). */
    secretRotationDays: z.number().int().min(1).max(3650).default(90),
    /** Secret names never reported. */
    ignoreSecrets: z.array(z.string().min(1)).default([]),
    /** List RoleBindings and ClusterRoleBindings for cluster_admin_binding; needs a ClusterRole for the latter. */
    checkRbac: z.boolean().default(false),
    /** Report pods using the node's network, PID or IPC namespace. */
    checkHostNamespaces: z.boolean().default(true),
    /** Bound on each Kubernetes API call. */
    kubernetesTimeoutMs: z.number().int().min(100).max(120_000).default(10_000),
  })
  .refine((p) => p.tlsCriticalDays <= p.tlsWarningDays, { error: 'tlsCriticalDays must not be above tlsWarningDays', path: ['tlsCriticalDays'] });

export type SecurityAuditParams = z.infer<typeof params>;

/** The targets the audit looks at: the config's `targets:` section. */
export type AuditTargets = Pick<Config['targets'], 'postgres' | 'redis' | 'http' | 'kubernetes'>;

/** What the composition needs besides targets and params. */
export interface AuditDeps {
  signal: AbortSignal;
  log: Logger;
  /** A session on a postgres target with its limits (statement and lock timeouts); the caller closes it. */
  connectPostgres(target: PostgresTarget): Promise<Client>;
  /** The APIs of a kubernetes target's cluster. */
  kubernetes(target: KubernetesTarget): KubernetesApis;
  /** Reached as each target is done (0..100). */
  progress?(percent: number): Promise<void>;
}

/**
 * Audits every target of `targets`, kind by kind, one after the other.
 * Throws only when there was something to audit and none of it could be.
 */
export async function runSecurityAudit(targets: AuditTargets, p: SecurityAuditParams, deps: AuditDeps): Promise<TaskOutcome<Code>> {
  const { signal, log } = deps;
  const kinds = new Set(p.kinds);
  const httpUrls = kinds.has('tls') ? targets.http.flatMap((t) => [t.url, ...(t.detailedUrl ? [t.detailedUrl] : [])]) : [];
  type Job = { kind: AuditKind; name: string; prefix: boolean; audit: () => Promise<AuditResult<Code>> };
  const jobs: Job[] = [];
  if (kinds.has('postgres')) {
    for (const t of targets.postgres) {
      jobs.push({
        kind: 'postgres',
        name: t.name,
        prefix: true,
        audit: async () => {
          const client = await deps.connectPostgres(t);
          try {
            return await auditPostgres(client, {
              allowedSuperusers: p.allowedSuperusers,
              passwordExemptRoles: p.passwordExemptRoles,
              requirePasswordExpiry: p.requirePasswordExpiry,
              allDatabases: t.allDatabases,
            });
          } finally {
            // Closed as soon as it is audited, not when the run ends: a fleet of targets on one
            // server would otherwise hold one session each and starve it of connections.
            await endClient(client);
          }
        },
      });
    }
  }
  if (kinds.has('redis')) {
    for (const t of targets.redis) jobs.push({ kind: 'redis', name: t.name, prefix: true, audit: () => auditRedis(t.url, { timeoutMs: p.redisTimeoutMs }, signal) });
  }
  if (httpUrls.length > 0) {
    jobs.push({
      kind: 'tls',
      name: 'http endpoints',
      prefix: false,
      audit: async () =>
        auditTls(
          httpUrls,
          {
            warningDays: p.tlsWarningDays,
            criticalDays: p.tlsCriticalDays,
            checkTrust: p.tlsCheckTrust,
            timeoutMs: p.tlsTimeoutMs,
            extraCa: p.tlsCaFile ? await readCaFile(p.tlsCaFile) : undefined,
          },
          signal,
        ),
    });
  }
  if (kinds.has('kubernetes')) {
    for (const t of targets.kubernetes) {
      jobs.push({
        kind: 'kubernetes',
        name: t.name,
        prefix: true,
        audit: () =>
          auditKubernetes(
            t,
            {
              checkSecrets: p.checkSecrets,
              secretRotationDays: p.secretRotationDays,
              ignoreSecrets: p.ignoreSecrets,
              checkRbac: p.checkRbac,
              checkHostNamespaces: p.checkHostNamespaces,
              timeoutMs: p.kubernetesTimeoutMs,
            },
            signal,
            deps.kubernetes,
          ),
      });
    }
  }

  if (jobs.length === 0) {
    return { summary: `nothing to audit: no ${[...kinds].join(', ')} targets configured`, findings: [], metrics: { security_targets_audited: 0, security_targets_failed: 0 } };
  }

  const findings: Finding<Code>[] = [];
  const metrics: Record<string, number> = {};
  const audited: Record<AuditKind, number> = { postgres: 0, redis: 0, tls: 0, kubernetes: 0 };
  const failures: string[] = [];
  for (const [i, job] of jobs.entries()) {
    if (signal.aborted) throw coerceError(signal.reason);
    try {
      const result = await job.audit();
      audited[job.kind] += 1;
      for (const f of result.findings) {
        findings.push({
          ...f,
          subject: job.prefix ? `${job.name}/${f.subject}` : f.subject,
          details: { ...f.details, targetKind: job.kind, ...(job.prefix ? { target: job.name } : {}) },
        });
      }
      for (const [k, v] of Object.entries(result.metrics)) metrics[k] = (metrics[k] ?? 0) + v;
      log.info({ kind: job.kind, target: job.name, findings: result.findings.length }, 'audited');
    } catch (err) {
      if (signal.aborted) throw coerceError(signal.reason);
      const reason = redactSecretsIn(coerceError(err).message);
      failures.push(`${job.kind} ${job.name}: ${reason}`);
      log.warn({ kind: job.kind, target: job.name, reason }, 'cannot audit target');
      findings.push({
        severity: 'warning',
        code: AUDIT_INCOMPLETE,
        subject: job.prefix ? job.name : job.kind,
        message: `cannot audit ${job.kind} target ${job.name}: ${reason}`,
        suggestion: 'Check that caretaker can reach the target with the configured credentials',
        details: { targetKind: job.kind, target: job.name, reason },
      });
    }
    await deps.progress?.(((i + 1) / jobs.length) * 100);
  }
  if (failures.length === jobs.length) throw new Error(`no target could be audited: ${failures.join('; ')}`);

  metrics[`${AUDIT_INCOMPLETE}_count`] = findings.filter((f) => f.code === AUDIT_INCOMPLETE).length;
  metrics.security_targets_audited = jobs.length - failures.length;
  metrics.security_targets_failed = failures.length;
  // The summary counts what the TLS audit looked at: distinct https endpoints, not every configured URL.
  return { summary: summaryOf(audited, tlsEndpoints(httpUrls).endpoints.size, findings, failures.length), findings, metrics };
}

/** "audited 1 postgres, 1 redis, 2 TLS endpoints, 1 kubernetes: 1 critical, 3 warnings (privileged_pod 1, superuser_role 2, ...)". */
function summaryOf(audited: Record<AuditKind, number>, tlsEndpointCount: number, findings: Finding[], failed: number): string {
  const scope = [
    audited.postgres ? `${audited.postgres} postgres` : '',
    audited.redis ? `${audited.redis} redis` : '',
    audited.tls ? `${tlsEndpointCount} TLS endpoint${tlsEndpointCount === 1 ? '' : 's'}` : '',
    audited.kubernetes ? `${audited.kubernetes} kubernetes` : '',
  ].filter(Boolean);
  const bySeverity = (s: Severity) => findings.filter((f) => f.severity === s).length;
  const critical = bySeverity('critical');
  const warnings = bySeverity('warning');
  const byCode = new Map<string, number>();
  for (const f of findings) if (f.severity !== 'info') byCode.set(f.code, (byCode.get(f.code) ?? 0) + 1);
  const counts = critical + warnings === 0 ? 'no problems' : `${critical} critical, ${warnings} warning${warnings === 1 ? '' : 's'} (${[...byCode].map(([c, n]) => `${c} ${n}`).join(', ')})`;
  return `audited ${scope.join(', ') || 'nothing'}: ${counts}${failed ? `; ${failed} target${failed === 1 ? '' : 's'} not audited` : ''}`;
}

async function readCaFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`tlsCaFile ${path}: ${(err as Error).message}`, { cause: err });
  }
}

export const securityAudit = defineTask({
  name: 'security-audit',
  description: 'Security review across targets: Postgres roles and PUBLIC grants, Redis without auth, TLS certificate expiry, Kubernetes privileged/root pods (opt-in: secret age, cluster-admin bindings)',
  target: 'caretaker',
  defaultSchedule: 'weekly',
  timeoutMs: 10 * 60_000,
  changesTarget: false,
  params,
  codes,
  async run(ctx, p) {
    return runSecurityAudit(ctx.target.targets, p, {
      signal: ctx.signal,
      log: ctx.log,
      connectPostgres: (t) => ctx.clients.connect(t.url, t),
      kubernetes: ctx.clients.kubernetes,
      progress: (pct) => ctx.progress(pct),
    });
  },
});
