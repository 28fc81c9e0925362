/**
 * dependency-check's application packages: each lockfile of a `lockfiles`
 * target, read from disk or over http(s):
 *
 * - each direct dependency against its registry's packument →
 *   `package_outdated` (info): how far behind `latest` (major, minor,
 *   patch), and the newest version its declared range allows;
 * - each locked package against the advisories of a local OSV database →
 *   `vulnerable_dependency`, its severity from the advisory's (database
 *   rating, else CVSS), with the fixed version and the path that pulls it in.
 *
 * This is the runbook's "Review security alerts" for the application. A
 * lockfile that cannot be read, or a registry that cannot answer, is a
 * `dependency_check_incomplete` (info); the rest is still checked.
 */
import { readFile } from 'node:fs/promises';
import semver from 'semver';
import type { Finding, Severity } from '../contract/result';
import type { FindingCodes } from '../contract/task';
import type { LockfilesTarget } from '../config/schema';
import { coerceError } from '../errors';
import { redactSecretsIn, scrubSecrets } from '../logger';
import { createNpmRegistryClient, type Packument } from '../clients/npm-registry';
import { fetchFailureReason } from '../util/fetch-errors';
import { ResponseTooLarge, readBoundedText } from '../util/bounded-body';
import { formatBytes } from '../util/format';
import { readLockfile, type DirectDependency, type Lockfile } from './lockfile';
import type { AdvisoryIndex, AdvisorySeverity } from './osv';

export const PACKAGE_CODES = {
  package_outdated: "A direct dependency is behind the npm registry's latest (major, minor or patch)",
  vulnerable_dependency: 'A locked package version is affected by a known advisory (OSV database)',
} as const satisfies FindingCodes;
export type PackageCode = keyof typeof PACKAGE_CODES;

/** A lockfile is a few MB even for a large application. */
const MAX_LOCKFILE_BYTES = 64 * 1024 * 1024;
/** Packuments asked for at once: a registry's rate limits, and the run's memory. */
const REGISTRY_CONCURRENCY = 8;

export interface PackageCheckOptions {
  /** The advisories; undefined when no OSV database is configured (then no vulnerable_dependency). */
  advisories?: AdvisoryIndex;
  /** How an advisory's severity becomes a finding's. */
  advisorySeverity: Record<AdvisorySeverity, Severity>;
  /** Dev dependencies are checked too unless false. */
  includeDev: boolean;
  timeoutMs: number;
  signal: AbortSignal;
}

export interface PackageCheckResult {
  findings: Finding<PackageCode>[];
  /** Why a file, or a package's metadata, could not be checked: one line each. */
  incomplete: { subject: string; reason: string }[];
  /** Lockfiles read and checked (the target counts as checked when one was). */
  filesRead: number;
  metrics: { packages_direct: number; packages_outdated: number; packages_locked: number; packages_vulnerable: number };
}

export async function checkLockfiles(target: LockfilesTarget, opts: PackageCheckOptions): Promise<PackageCheckResult> {
  const findings: Finding<PackageCode>[] = [];
  const incomplete: PackageCheckResult['incomplete'] = [];
  const metrics = { packages_direct: 0, packages_outdated: 0, packages_locked: 0, packages_vulnerable: 0 };
  const registry = createNpmRegistryClient({ url: target.registry, ...(target.registryToken ? { token: target.registryToken } : {}), timeoutMs: opts.timeoutMs, signal: opts.signal });
  const packuments = new Map<string, Promise<Packument | undefined>>();
  let filesRead = 0;

  for (const file of target.files) {
    const source = `${target.name}/${displayOf(file)}`;
    let lock: Lockfile;
    try {
      lock = readLockfile(await readSource(file, target, opts), displayOf(file));
      filesRead += 1;
    } catch (err) {
      if (opts.signal.aborted) throw coerceError(opts.signal.reason);
      incomplete.push({ subject: source, reason: scrubSecrets(redactSecretsIn(coerceError(err).message), target.token ? [target.token] : []) });
      continue;
    }
    const direct = lock.direct.filter((d) => d.version && (opts.includeDev || d.kind !== 'dev'));
    metrics.packages_direct += direct.length;
    await eachLimited(direct, REGISTRY_CONCURRENCY, async (dep) => {
      if (!packuments.has(dep.name)) packuments.set(dep.name, registry.packument(dep.name));
      try {
        const packument = await packuments.get(dep.name)!;
        const finding = packument ? outdatedFinding(source, dep, packument) : undefined;
        if (finding) {
          findings.push(finding);
          metrics.packages_outdated += 1;
        }
      } catch (err) {
        if (opts.signal.aborted) throw coerceError(opts.signal.reason);
        incomplete.push({ subject: `${source} ${dep.name}`, reason: coerceError(err).message });
      }
    });

    const locked = lock.locked.filter((p) => opts.includeDev || !p.dev);
    metrics.packages_locked += locked.length;
    if (!opts.advisories) continue;
    for (const p of locked) {
      const matches = opts.advisories.matching(p.name, p.version);
      if (matches.length > 0) metrics.packages_vulnerable += 1;
      for (const a of matches) {
        findings.push({
          severity: opts.advisorySeverity[a.severity],
          code: 'vulnerable_dependency',
          subject: `${source} ${p.name}@${p.version}`,
          message: `${p.name}@${p.version} (${p.path.join(' > ')}) is affected by ${a.id}${a.aliases.length ? ` (${a.aliases.slice(0, 3).join(', ')})` : ''}, ${a.severity}: ${a.summary}`,
          suggestion: a.fixed
            ? `Update to ${p.name}@${a.fixed} or later${p.path.length > 1 ? ` (through ${p.path[0]}, or an npm override)` : ''}`
            : `No fixed version is known: read ${a.url ?? a.id} for a workaround, or replace ${p.name}`,
          details: { lockfile: source, package: p.name, version: p.version, path: p.path, advisory: a.id, aliases: a.aliases, severity: a.severity, ...(a.fixed ? { fixed: a.fixed } : {}), ...(a.url ? { url: a.url } : {}), dev: p.dev },
        });
      }
    }
  }
  return { findings, incomplete, filesRead, metrics };
}

/**
 * `caretaker check-config --connect`'s look at a lockfiles target: every
 * file read and parsed, and the registry asked for the first direct
 * dependency (its token is tried; a package it does not know still counts
 * as an answer). Throws the first problem, as the task would report it.
 */
export async function lockfilesAnswer(target: LockfilesTarget, opts: { timeoutMs: number; signal: AbortSignal }): Promise<string> {
  let direct: DirectDependency[] = [];
  for (const file of target.files) direct = direct.concat(readLockfile(await readSource(file, target, opts), displayOf(file)).direct);
  const registry = createNpmRegistryClient({ url: target.registry, ...(target.registryToken ? { token: target.registryToken } : {}), timeoutMs: opts.timeoutMs, signal: opts.signal });
  const first = direct.find((d) => d.version);
  if (first) await registry.packument(first.name);
  return `${target.files.length} lockfile${target.files.length === 1 ? '' : 's'} read (${direct.length} direct dependencies); ${first ? `${registry.display} answered for ${first.name}` : 'no dependency to ask the registry about'}`;
}

/** How far `dep` is behind `latest`, and what its range would take; undefined when current. */
function outdatedFinding(source: string, dep: DirectDependency, packument: Packument): Finding<PackageCode> | undefined {
  const latest = packument.distTags.latest;
  const installed = semver.parse(dep.version);
  if (!latest || !installed || !semver.valid(latest) || semver.lte(latest, installed)) return undefined;
  const level = semver.major(latest) !== installed.major ? 'major' : semver.minor(latest) !== installed.minor ? 'minor' : 'patch';
  const wanted = dep.range ? semver.maxSatisfying(packument.versions, dep.range) : null;
  const within = wanted && semver.gt(wanted, installed) ? `; its range ${dep.range} allows ${wanted} (npm update)` : dep.range ? `; its range ${dep.range} stops at ${dep.version}` : '';
  return {
    severity: 'info',
    code: 'package_outdated',
    subject: `${source} ${dep.name}`,
    message: `${dep.name} ${dep.version} is a ${level} release behind ${latest}${within}`,
    suggestion: wanted && semver.gt(wanted, installed) ? `Run npm update ${dep.name}, then plan the move to ${latest}` : `Read the release notes of ${dep.name} ${latest} and plan the upgrade`,
    details: { lockfile: source, package: dep.name, version: dep.version, latest, level, kind: dep.kind, ...(dep.range ? { range: dep.range } : {}), ...(wanted ? { wanted } : {}) },
  };
}

/** A file as messages name it: a URL without its query (a token may ride there), else the path. */
function displayOf(file: string): string {
  if (!/^https?:\/\//.test(file)) return file;
  const url = new URL(file);
  return `${url.origin}${url.pathname}`;
}

/** A lockfile's text: from disk, or fetched (bounded, the target's token, no redirect). */
async function readSource(file: string, target: LockfilesTarget, opts: { timeoutMs: number; signal: AbortSignal }): Promise<string> {
  if (!/^https?:\/\//.test(file)) {
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      const e = coerceError(err) as NodeJS.ErrnoException;
      throw new Error(`cannot read ${file}: ${e.code ?? e.message}`, { cause: err });
    }
  }
  const where = displayOf(file);
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  let res: Response;
  try {
    res = await fetch(file, { headers: target.token ? { authorization: `Bearer ${target.token}` } : {}, redirect: 'manual', signal: AbortSignal.any([opts.signal, timeout]) });
  } catch (err) {
    if (opts.signal.aborted) throw coerceError(opts.signal.reason);
    throw new Error(timeout.aborted ? `${where} did not answer within ${opts.timeoutMs} ms` : `${where} is unreachable: ${fetchFailureReason(err)}`, { cause: err });
  }
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => undefined);
    throw new Error(`${where} answered HTTP ${res.status}${res.status >= 300 && res.status < 400 ? ' (a redirect: give the final URL)' : res.status === 401 || res.status === 403 ? (target.token ? ' (the token was refused)' : ' (it needs a token)') : ''}`);
  }
  try {
    return await readBoundedText(res, MAX_LOCKFILE_BYTES);
  } catch (err) {
    if (err instanceof ResponseTooLarge) throw new Error(`${where} is larger than ${formatBytes(MAX_LOCKFILE_BYTES)}: not a lockfile`);
    throw err;
  }
}

/** Runs `work` on each item, at most `limit` at a time; the first rejection rejects (after the others settle). */
async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!);
  });
  const settled = await Promise.allSettled(workers);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
}
