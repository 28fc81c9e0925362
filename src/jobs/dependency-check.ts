/**
 * dependency-check (weekly): the runbook's "Update dependencies" and, for
 * the application, "Review security alerts". Renovate and Dependabot read
 * the repository; this looks at what runs. One run covers every configured
 * target (it runs on caretaker's self-target, which carries them all):
 *
 * - kubernetes targets: the watched deployments' images against their
 *   registry (src/dependencies/images.ts);
 * - postgres and redis targets: the server's version against the newest
 *   minor of its major and its end of life, from the versions file
 *   (src/dependencies/server-versions.ts);
 * - lockfiles targets: direct dependencies against the npm registry, locked
 *   packages against a local OSV database (src/dependencies/packages.ts).
 *
 * A target that cannot be reached is a `dependency_check_incomplete` (info)
 * and the rest still runs; when nothing at all could be checked the run is
 * an `error`. Read-only everywhere.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import type { Finding } from '../contract/result';
import { defineTask, type FindingCodes } from '../contract/task';
import { coerceError } from '../errors';
import { redactSecretsIn } from '../logger';
import { endClient } from '../clients/postgres';
import { oneShotRedis } from '../clients/redis';
import { IMAGE_CODES, checkImages } from '../dependencies/images';
import { PACKAGE_CODES, checkLockfiles } from '../dependencies/packages';
import { loadAdvisories, type AdvisoryIndex } from '../dependencies/osv';
import { SERVER_VERSION_CODES, checkServerVersion, loadVersions, type VersionsData } from '../dependencies/server-versions';

export const DEPENDENCY_KINDS = ['images', 'servers', 'packages'] as const;

const codes = {
  ...IMAGE_CODES,
  ...SERVER_VERSION_CODES,
  ...PACKAGE_CODES,
  dependency_check_incomplete: 'A target, file or database could not be checked; the rest of the run still was',
} as const satisfies FindingCodes;
type Code = keyof typeof codes;

const severity = z.enum(['info', 'warning', 'critical']);
const isRegExp = (source: string) => {
  try {
    new RegExp(source);
    return true;
  } catch {
    return false;
  }
};

/** Only tags matching this regular expression count as releases. */
const tagPattern = z.string().refine(isRegExp, 'must be a regular expression');

export const params = z.strictObject({
  /** What to check (e.g. `--param 'kinds=["images"]'`). */
  kinds: z.array(z.enum(DEPENDENCY_KINDS)).min(1).default([...DEPENDENCY_KINDS]),
  /** Bound on each request to a registry or a server. */
  timeoutMs: z.number().int().min(100).max(120_000).default(10_000),
  /** Registries reached over plain http (host:port), e.g. a local registry; every other is https. */
  insecureRegistries: z.array(z.string().regex(/^[A-Za-z0-9.-]+(:\d+)?$/, 'must be host or host:port')).default([]),
  /** A docker config.json with registry credentials (else the pods' imagePullSecrets, where caretaker may read them). */
  dockerConfig: z.string().min(1).optional(),
  /** Only tags matching this regular expression count as releases (a kubernetes target may set its own). */
  tagPattern: tagPattern.optional(),
  /** Pre-release tags (1.3.0-rc.1) count as newer releases. */
  includePrereleases: z.boolean().default(false),
  /** The severity of image_outdated per level of the newer release. */
  imageSeverity: z.strictObject({ patch: severity.default('warning'), minor: severity.default('info'), major: severity.default('info') }).default({ patch: 'warning', minor: 'info', major: 'info' }),
  /** A newer versions file than the one shipped (e.g. one an operator mounts). */
  versionsFile: z.string().min(1).optional(),
  /** server_eol_soon this many days before a server's end of life. */
  eolSoonDays: z.number().int().min(0).max(3650).default(180),
  /** A local OSV database (a directory of OSV JSON records, per ecosystem): without it, no vulnerable_dependency. */
  osvDirectory: z.string().min(1).optional(),
  /** The finding's severity for each advisory severity. */
  advisorySeverity: z
    .strictObject({ critical: severity.default('critical'), high: severity.default('warning'), moderate: severity.default('warning'), low: severity.default('info'), unknown: severity.default('info') })
    .default({ critical: 'critical', high: 'warning', moderate: 'warning', low: 'info', unknown: 'info' }),
  /** Dev dependencies are checked too. */
  includeDev: z.boolean().default(true),
  /** At most this many findings per code (the metrics count them all). */
  maxFindings: z.number().int().min(1).max(10_000).default(100),
});

/**
 * What a kubernetes target may set for its own images, under its
 * `tasks.dependency-check`; what it leaves out comes from the task's params.
 */
export const imageFilters = z.strictObject({
  tagPattern: tagPattern.optional(),
  includePrereleases: z.boolean().optional(),
  imageSeverity: z.strictObject({ patch: severity.optional(), minor: severity.optional(), major: severity.optional() }).optional(),
});

const SQL = {
  serverVersion: 'SHOW server_version',
} as const;

export const dependencyCheck = defineTask({
  name: 'dependency-check',
  description: 'Running images against their registry, PostgreSQL and Redis versions against their newest minor and end of life, lockfiles against the npm registry and OSV advisories',
  target: 'caretaker',
  defaultSchedule: 'weekly',
  timeoutMs: 15 * 60_000,
  changesTarget: false,
  params,
  codes,
  perTarget: { kinds: ['kubernetes'], params: imageFilters },
  async run(ctx, p) {
    const { targets } = ctx.target;
    const findings: Finding<Code>[] = [];
    const metrics: Record<string, number> = {};
    let checked = 0;
    const incomplete = (subject: string, reason: string, suggestion = 'Check that caretaker reaches it with the configured credentials; the rest of the run was checked') => {
      findings.push({ severity: 'info', code: 'dependency_check_incomplete', subject, message: `${subject} was not checked: ${reason}`, suggestion, details: { reason } });
    };
    const fileProblem = 'Fix or replace the file (the task\'s params name it); the rest of the run was checked';
    const reason = (err: unknown) => {
      if (ctx.signal.aborted) throw coerceError(ctx.signal.reason);
      return redactSecretsIn(coerceError(err).message);
    };

    if (p.kinds.includes('images')) {
      let dockerConfig: string | undefined;
      if (p.dockerConfig) {
        try {
          dockerConfig = await readFile(p.dockerConfig, 'utf8');
        } catch (err) {
          incomplete(`dockerConfig ${p.dockerConfig}`, (err as NodeJS.ErrnoException).code ?? reason(err), fileProblem);
        }
      }
      let images = 0;
      for (const t of targets.kubernetes) {
        try {
          // The target's own tag filters (checked at load) over the task's.
          const mine = imageFilters.parse(t.tasks['dependency-check'] ?? {});
          const own = { tagPattern: mine.tagPattern ?? p.tagPattern, includePrereleases: mine.includePrereleases ?? p.includePrereleases, imageSeverity: { ...p.imageSeverity, ...mine.imageSeverity } };
          const result = await checkImages(ctx.clients.kubernetes(t), t, {
            insecureRegistries: p.insecureRegistries,
            ...(dockerConfig ? { dockerConfig } : {}),
            ...(own.tagPattern ? { tagPattern: new RegExp(own.tagPattern) } : {}),
            includePrereleases: own.includePrereleases,
            severity: own.imageSeverity,
            timeoutMs: p.timeoutMs,
            signal: ctx.signal,
          });
          findings.push(...result.findings);
          images += result.checked;
          checked += 1;
        } catch (err) {
          incomplete(`kubernetes ${t.name}`, reason(err));
        }
      }
      metrics.images_checked = images;
    }

    if (p.kinds.includes('servers') && targets.postgres.length + targets.redis.length > 0) {
      let versions: VersionsData | undefined;
      try {
        versions = loadVersions(p.versionsFile);
      } catch (err) {
        incomplete('the servers\' versions', reason(err), fileProblem);
      }
      if (versions) {
        const data = versions;
        const now = new Date();
        for (const t of targets.postgres) {
          try {
            const client = await ctx.clients.connect(t.url, t);
            try {
              const { rows } = await client.query<{ server_version: string }>(SQL.serverVersion);
              findings.push(...checkServerVersion('postgresql', rows[0]!.server_version, data, now, { eolSoonDays: p.eolSoonDays }).map((f) => prefixed(f, t.name)));
            } finally {
              // Closed as soon as it is read: many targets may share one server.
              await endClient(client);
            }
            checked += 1;
          } catch (err) {
            incomplete(`postgres ${t.name}`, reason(err));
          }
        }
        for (const t of targets.redis) {
          const redis = oneShotRedis(t.url, p.timeoutMs);
          try {
            await redis.connect();
            const info = await redis.info('server');
            const version = /^redis_version:(\S+)/m.exec(info)?.[1];
            if (!version) throw new Error('INFO server has no redis_version');
            findings.push(...checkServerVersion('redis', version, data, now, { eolSoonDays: p.eolSoonDays }).map((f) => prefixed(f, t.name)));
            checked += 1;
          } catch (err) {
            incomplete(`redis ${t.name}`, reason(err));
          } finally {
            redis.disconnect();
          }
        }
      }
    }

    if (p.kinds.includes('packages') && targets.lockfiles.length > 0) {
      let advisories: AdvisoryIndex | undefined;
      if (p.osvDirectory) {
        try {
          advisories = await loadAdvisories(p.osvDirectory);
          metrics.advisories_loaded = advisories.advisories;
          if (advisories.unreadable.count > 0) incomplete(`OSV database ${p.osvDirectory}`, `${advisories.unreadable.count} records unreadable, the first: ${advisories.unreadable.first ?? 'unknown'}`, fileProblem);
        } catch (err) {
          incomplete(`OSV database ${p.osvDirectory}`, reason(err), fileProblem);
        }
      }
      const totals = { packages_direct: 0, packages_outdated: 0, packages_locked: 0, packages_vulnerable: 0 };
      for (const t of targets.lockfiles) {
        const result = await checkLockfiles(t, { ...(advisories ? { advisories } : {}), advisorySeverity: p.advisorySeverity, includeDev: p.includeDev, timeoutMs: p.timeoutMs, signal: ctx.signal });
        findings.push(...result.findings);
        for (const i of result.incomplete) incomplete(i.subject, i.reason);
        for (const [k, v] of Object.entries(result.metrics)) totals[k as keyof typeof totals] += v;
        if (result.filesRead > 0) checked += 1;
      }
      Object.assign(metrics, totals);
    }

    // Something was there to check and none of it could be: the run failed, it did not find all well.
    const notChecked = findings.filter((f) => f.code === 'dependency_check_incomplete');
    if (checked === 0 && notChecked.length > 0) throw new Error(`nothing could be checked: ${notChecked.map((f) => f.message).join('; ')}`);
    const capped = capPerCode(findings, p.maxFindings);
    for (const code of Object.keys(codes) as Code[]) {
      const n = findings.filter((f) => f.code === code).length;
      if (n > 0) metrics[`${code}_count`] = n;
    }
    return { summary: summaryOf(findings, checked, capped.dropped, p.maxFindings), findings: capped.kept, metrics };
  },
});

/** A server finding's subject is the target and the server's kind (`main/postgresql`): stable across upgrades, so one alert follows it. */
function prefixed<F extends Finding<Code>>(f: F, target: string): F {
  return { ...f, subject: `${target}/${String(f.details?.kind ?? 'server')}`, details: { ...f.details, target } };
}

function capPerCode(findings: Finding<Code>[], max: number): { kept: Finding<Code>[]; dropped: number } {
  const seen = new Map<string, number>();
  const kept = findings.filter((f) => {
    const n = (seen.get(f.code) ?? 0) + 1;
    seen.set(f.code, n);
    return n <= max;
  });
  return { kept, dropped: findings.length - kept.length };
}

/** "checked 3 targets: 1 critical, 2 warnings (image_outdated 1, server_minor_behind 1, ...), 4 info". */
function summaryOf(findings: Finding<Code>[], targets: number, dropped: number, max: number): string {
  const count = (s: string) => findings.filter((f) => f.severity === s).length;
  const byCode = new Map<string, number>();
  for (const f of findings) if (f.severity !== 'info') byCode.set(f.code, (byCode.get(f.code) ?? 0) + 1);
  const [critical, warning, info] = [count('critical'), count('warning'), count('info')];
  const problems = critical + warning === 0 ? 'nothing behind' : `${critical} critical, ${warning} warning${warning === 1 ? '' : 's'} (${[...byCode].map(([c, n]) => `${c} ${n}`).join(', ')})`;
  const cap = dropped > 0 ? `, findings capped at ${max} per code` : '';
  return `checked ${targets} target${targets === 1 ? '' : 's'}: ${problems}${info ? `, ${info} info` : ''}${cap}`;
}
