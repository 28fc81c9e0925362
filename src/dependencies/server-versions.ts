/**
 * The PostgreSQL and Redis servers caretaker watches, compared with a
 * versions file (data/versions.json ships with caretaker): is the server on
 * the newest minor of its major, and how far is that major from its end of
 * life? The file is data, not a guess: a major it does not list, or a
 * prerelease, is reported as not compared rather than judged.
 *
 * A "major" is what a vendor supports as one line: PostgreSQL's `16` (or
 * `9.6` before 10), Redis's `7.2`. Its releases differ in the last number
 * only (16.4 → 16.5, 7.2.5 → 7.2.6).
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { formatIssues } from '../config/format-issues';
import type { Finding } from '../contract/result';
import { coerceError } from '../errors';
import { oneLine } from '../util/format';

export type ServerKind = 'postgresql' | 'redis';

const NAME: Record<ServerKind, string> = { postgresql: 'PostgreSQL', redis: 'Redis' };

/** Moving to another supported line: a major upgrade for PostgreSQL (dump or pg_upgrade), a newer minor line for Redis. */
const UPGRADE: Record<ServerKind, string> = { postgresql: 'a major upgrade', redis: 'an upgrade' };

/** Where a release's notes are, so a finding can link the one to upgrade to. */
const RELEASE_NOTES: Record<ServerKind, (version: string) => string> = {
  postgresql: (v) => `https://www.postgresql.org/docs/release/${v}/`,
  redis: (v) => `https://github.com/redis/redis/releases/tag/${v}`,
};

/** A versions file is a few kB: one past this is not one, and is not read into memory. */
const MAX_FILE_BYTES = 1024 * 1024;
/** How much of a bad input an error quotes. */
const MAX_QUOTED = 100;
const DAY_MS = 86_400_000;

// --- the versions file ------------------------------------------------------

const isoDate = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, 'expected a date as YYYY-MM-DD')
  .refine((s) => {
    // Date rolls 02-30 over to 03-02 and gives up on month 13: either way not the date written.
    const time = Date.parse(`${s}T00:00:00Z`);
    return Number.isFinite(time) && new Date(time).toISOString().startsWith(s);
  }, 'is not a calendar date');

const release = z.string().regex(/^\d+(?:\.\d+)+$/, 'expected a version such as "16.4" or "7.2.5"');

const line = z.strictObject({
  /** The major's first release (x.0); PostgreSQL's support window is counted from it. */
  firstRelease: isoDate.optional(),
  /** The newest release of the major that the file's sources list. */
  latest: release,
  /** The last day the vendor supports the major; null when it has published no date. */
  eol: isoDate.nullable(),
  /** Versions that were numbered but never shipped (PostgreSQL 18.5): not counted as releases missed. */
  neverReleased: z.array(release).optional(),
});

/** Lines by major (`majorPattern`, described as `like`), each release an entry names being one of its major. */
function linesByMajor(majorPattern: RegExp, like: string) {
  return z.record(z.string(), line).superRefine((lines, ctx) => {
    for (const [major, entry] of Object.entries(lines)) {
      if (!majorPattern.test(major)) {
        ctx.addIssue({ code: 'custom', path: [major], message: `is not a major such as ${like}` });
        continue;
      }
      const wrong = (path: PropertyKey[], version: string) =>
        ctx.addIssue({ code: 'custom', path: [major, ...path], message: `${version} is not a release of ${major}` });
      if (!isReleaseOf(entry.latest, major)) wrong(['latest'], entry.latest);
      (entry.neverReleased ?? []).forEach((v, i) => isReleaseOf(v, major) || wrong(['neverReleased', i], v));
    }
  });
}

export const versionsSchema = z.strictObject({
  /** The date of the newest fact in the file: what "the file is older than the server" is measured by. */
  generatedAt: isoDate,
  /** Where the facts come from, for a reader checking or refreshing them. */
  sources: z.string().min(1),
  /** By major: `"16"`, or `"9.6"` for the majors before 10. */
  postgresql: linesByMajor(/^(?:[1-9]\d+|[6-9]\.\d)$/, '"16" (or "9.6" before 10)'),
  /** By minor line: `"7.2"`, `"8.10"`. */
  redis: linesByMajor(/^\d+\.\d+$/, '"7.2"'),
});

export type VersionsData = z.infer<typeof versionsSchema>;
export type VersionLine = z.infer<typeof line>;

/**
 * The shipped data/versions.json, from caretaker's package root: two
 * directories up from src/dependencies (the sources, as ts-jest runs them)
 * or three from dist/src/dependencies (the compiled code). The root is the
 * directory whose package.json is caretaker's, so a package.json further up
 * (a monorepo's) is never taken for it.
 */
export function shippedVersionsPath(moduleDir: string = __dirname): string {
  const candidates = [join(moduleDir, '..', '..'), join(moduleDir, '..', '..', '..')];
  for (const root of candidates) {
    try {
      const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name?: unknown };
      if (pkg.name === 'caretaker') return join(root, 'data', 'versions.json');
    } catch {
      // Not there (the other layout) or unreadable: try the next.
    }
  }
  throw new Error(`caretaker's package root (its package.json) is not above ${moduleDir}: pass the versions file's path`);
}

/** The versions file at `path` (default: the shipped one), checked. Throws one line naming the file and its first problem. */
export function loadVersions(path: string = shippedVersionsPath()): VersionsData {
  const problem = (why: string) => new Error(`versions file ${path} ${oneLine(why, 300)}`);
  const unreadable = (err: unknown) => problem(`cannot be read: ${coerceError(err).message}`);
  let size: number;
  try {
    size = statSync(path).size;
  } catch (err) {
    throw unreadable(err);
  }
  if (size > MAX_FILE_BYTES) throw problem(`is larger than ${MAX_FILE_BYTES} bytes (${size}): is it a versions file?`);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw unreadable(err);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw problem(`is not JSON: ${coerceError(err).message}`);
  }
  const parsed = versionsSchema.safeParse(raw);
  if (!parsed.success) throw problem(`is invalid: ${formatIssues(parsed.error)[0]}`);
  return parsed.data;
}

// --- what a server reports ----------------------------------------------------

export interface ServerVersion {
  /** The supported line: `"16"` or `"9.6"` for PostgreSQL, `"7.2"` for Redis. */
  major: string;
  /** The release, without a distribution's suffix: `"16.4"`, `"17beta2"`, `"7.2.5"`. */
  version: string;
  /** A beta, release candidate or development build: not a release to compare. */
  prerelease: boolean;
}

function unrecognised(kind: ServerKind, reported: string, expected: string): never {
  throw new Error(`unrecognised ${NAME[kind]} version ${JSON.stringify(oneLine(reported, MAX_QUOTED))}: expected ${expected}`);
}

/**
 * A server's version as it reports it. PostgreSQL: `server_version`
 * ("16.4", "16.4 (Debian 16.4-1.pgdg120+2)", "17beta2", "9.6.24") or
 * `server_version_num` (160004, 90624). Redis: `redis_version` ("7.2.5");
 * an odd minor (7.9.240, the unstable branch's 255.255.255) is Redis's mark
 * of a prerelease. Throws one line naming what it got.
 */
export function parseServerVersion(kind: ServerKind, reported: string): ServerVersion {
  const text = String(reported).trim();
  if (kind === 'redis') {
    const m = /^(\d{1,5})\.(\d{1,5})\.(\d{1,5})$/.exec(text);
    if (!m) return unrecognised(kind, reported, 'a redis_version such as "7.2.5"');
    const [a, b, c] = [Number(m[1]), Number(m[2]), Number(m[3])];
    return { major: `${a}.${b}`, version: `${a}.${b}.${c}`, prerelease: b % 2 === 1 };
  }
  const expected = 'a server_version such as "16.4" or "17beta2", or a server_version_num such as 160004';
  // A packager's note may follow the number in parentheses ("(Debian 16.4-1.pgdg120+2)"); anything else is not a version.
  const noted = /^(\S+)(?:[ \t]+\([^\r\n]*\))?$/.exec(text);
  if (!noted) return unrecognised(kind, reported, expected);
  const token = noted[1]!;
  if (/^\d{5,6}$/.test(token)) {
    const n = Number(token);
    // server_version_num: major * 10000 + minor from 10 on, major * 10000 + minor * 100 + patch before.
    if (n >= 100_000) return { major: String(Math.floor(n / 10_000)), version: `${Math.floor(n / 10_000)}.${n % 10_000}`, prerelease: false };
    if (n >= 80_000) {
      const [a, b, c] = [Math.floor(n / 10_000), Math.floor(n / 100) % 100, n % 100];
      return { major: `${a}.${b}`, version: `${a}.${b}.${c}`, prerelease: false };
    }
    return unrecognised(kind, reported, expected);
  }
  let m = /^(\d{1,3})\.(\d{1,4})$/.exec(token);
  if (m && Number(m[1]) >= 10) return { major: String(Number(m[1])), version: `${Number(m[1])}.${Number(m[2])}`, prerelease: false };
  m = /^(\d)\.(\d{1,2})\.(\d{1,3})$/.exec(token);
  if (m) return { major: `${m[1]}.${Number(m[2])}`, version: `${m[1]}.${Number(m[2])}.${Number(m[3])}`, prerelease: false };
  m = /^(\d{1,3})(?:\.(\d{1,2}))?(devel|alpha\d*|beta\d*|rc\d*)$/i.exec(token);
  if (m && (Number(m[1]) >= 10) === (m[2] === undefined)) {
    return { major: m[2] === undefined ? String(Number(m[1])) : `${m[1]}.${Number(m[2])}`, version: token, prerelease: true };
  }
  return unrecognised(kind, reported, expected);
}

// --- the comparison -----------------------------------------------------------

/**
 * Where the server stands against the file. `newer_than_file`: a release
 * the file does not know yet (the file is older than the server), not a
 * problem of the server's.
 */
export type Standing = 'current' | 'behind' | 'newer_than_file' | 'prerelease' | 'major_newer_than_file' | 'major_older_than_file' | 'major_not_listed';

export interface ServerVersionComparison extends ServerVersion {
  kind: ServerKind;
  reported: string;
  standing: Standing;
  /** The file's entry for the major, when it lists it. */
  line?: VersionLine;
  /** Releases of the major between the server's and the newest (0 unless `behind`). */
  releasesBehind: number;
  /** The versions file's date. */
  versionsFileDate: string;
}

/** `"16.15"` → [16, 15]; `"17beta2"` → [17]. */
const numbers = (version: string) => (/^[\d.]+/.exec(version)?.[0] ?? '').split('.').filter(Boolean).map(Number);

function compareNumbers(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The file's majors of `kind`, oldest first. */
const majorsOf = (kind: ServerKind, data: VersionsData) => Object.keys(data[kind]).sort((a, b) => compareNumbers(numbers(a), numbers(b)));

function isReleaseOf(version: string, major: string): boolean {
  return version.startsWith(`${major}.`) && /^\d+$/.test(version.slice(major.length + 1));
}

/** The server against the file's entry for its major, without judging it (see checkServerVersion). */
export function compareServerVersion(kind: ServerKind, reported: string, data: VersionsData): ServerVersionComparison {
  const parsed = parseServerVersion(kind, reported);
  const base = { kind, reported: oneLine(String(reported), MAX_QUOTED), ...parsed, releasesBehind: 0, versionsFileDate: data.generatedAt };
  if (parsed.prerelease) return { ...base, standing: 'prerelease' };
  const lines = data[kind];
  const line = lines[parsed.major];
  if (!line) {
    const majors = Object.keys(lines).map(numbers);
    const above = majors.length > 0 && majors.every((m) => compareNumbers(numbers(parsed.major), m) > 0);
    const below = majors.length > 0 && majors.every((m) => compareNumbers(numbers(parsed.major), m) < 0);
    return { ...base, standing: above ? 'major_newer_than_file' : below ? 'major_older_than_file' : 'major_not_listed' };
  }
  const order = compareNumbers(numbers(parsed.version), numbers(line.latest));
  if (order >= 0) return { ...base, line, standing: order === 0 ? 'current' : 'newer_than_file' };
  const last = (v: string) => numbers(v).at(-1)!;
  const skipped = (line.neverReleased ?? []).filter((v) => last(v) > last(parsed.version) && last(v) <= last(line.latest)).length;
  return { ...base, line, standing: 'behind', releasesBehind: Math.max(1, last(line.latest) - last(parsed.version) - skipped) };
}

// --- the findings -------------------------------------------------------------

export const SERVER_VERSION_CODES = {
  server_minor_behind: 'the server runs an older release of its major than the newest the versions file lists',
  server_eol_soon: "the server's major reaches its end of life within `eolSoonDays`",
  server_eol: "the server's major is past its end of life: no more fixes, security ones included",
  server_version_unknown: 'the server was not compared: a prerelease, or a major the versions file does not list',
} as const;

export type ServerVersionCode = keyof typeof SERVER_VERSION_CODES;

export type ServerVersionFinding = Finding<ServerVersionCode> & { suggestion: string; details: Record<string, unknown> };

export interface ServerVersionCheckOptions {
  /** A major whose end of life is this many days away or fewer is reported (e.g. 180). */
  eolSoonDays: number;
}

/** Days from `now`'s UTC date to `date` (YYYY-MM-DD): 0 on the day itself, negative after it. */
function daysUntil(date: string, now: Date): number {
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  return Math.round((Date.parse(`${date}T00:00:00Z`) - today) / DAY_MS);
}

/** The newest major the file lists that is still supported at `now`, for an upgrade suggestion. */
function supportedMajor(kind: ServerKind, data: VersionsData, now: Date): string {
  const major = majorsOf(kind, data)
    .filter((m) => data[kind][m]!.eol === null || daysUntil(data[kind][m]!.eol!, now) >= 0)
    .at(-1);
  if (major === undefined) return 'a supported major';
  const l = data[kind][major]!;
  return `${NAME[kind]} ${major} (${l.eol ? `supported until ${l.eol}` : 'no end of life published'})`;
}

/**
 * Findings for the server reporting `reported`: `server_minor_behind`
 * (warning), `server_eol` (critical), `server_eol_soon` (warning),
 * `server_version_unknown` (info: a prerelease, or a major the file does
 * not list). A server on a newer release than the file knows gets none:
 * the file is older than the server (compareServerVersion tells that
 * apart, and every finding's details carry the standing). Throws when
 * `reported` is not a version (parseServerVersion).
 */
export function checkServerVersion(kind: ServerKind, reported: string, data: VersionsData, now: Date, opts: ServerVersionCheckOptions): ServerVersionFinding[] {
  if (!Number.isFinite(opts.eolSoonDays) || opts.eolSoonDays < 0) throw new Error(`eolSoonDays must be a number of days (0 or more), got ${String(opts.eolSoonDays)}`);
  if (Number.isNaN(now.getTime())) throw new Error('now is not a valid date');
  const c = compareServerVersion(kind, reported, data);
  const name = `${NAME[kind]} ${c.version}`;
  const details: Record<string, unknown> = {
    kind,
    reported: c.reported,
    version: c.version,
    major: c.major,
    standing: c.standing,
    latest: c.line?.latest,
    eol: c.line?.eol,
    versionsFileDate: c.versionsFileDate,
  };
  const finding = (code: ServerVersionCode, severity: Finding['severity'], message: string, suggestion: string, extra: Record<string, unknown> = {}): ServerVersionFinding => ({
    code,
    severity,
    subject: name,
    message,
    suggestion,
    details: { ...details, ...extra },
  });
  const fileOf = `the versions file of ${c.versionsFileDate}`;
  const majors = majorsOf(kind, data);

  switch (c.standing) {
    case 'prerelease':
      return [finding('server_version_unknown', 'info', `${name} is a prerelease: it is not compared with ${fileOf}`, 'Prereleases are for testing: run a released version where the data matters.')];
    case 'major_newer_than_file':
      return [
        finding(
          'server_version_unknown',
          'info',
          `${name} is newer than every ${NAME[kind]} major in ${fileOf} (newest listed: ${majors.at(-1)}): the file is older than the server, nothing was compared`,
          'Use a newer caretaker, or point the check at a newer copy of the versions file (same format as data/versions.json).',
        ),
      ];
    case 'major_older_than_file': {
      const oldest = majors[0]!;
      const eol = data[kind][oldest]!.eol;
      return [
        finding(
          'server_version_unknown',
          'info',
          `${name} is older than every ${NAME[kind]} major in ${fileOf} (oldest listed: ${oldest}${eol ? `, end of life ${eol}` : ''}): it is long past end of life`,
          `Plan ${UPGRADE[kind]} to ${supportedMajor(kind, data, now)}.`,
        ),
      ];
    }
    case 'major_not_listed':
      return [
        finding(
          'server_version_unknown',
          'info',
          `${NAME[kind]} ${c.major} (running ${c.version}) is not listed in ${fileOf} (it lists ${majors.join(', ') || 'none'}): nothing was compared`,
          `Check the vendor's support policy for ${c.major}, or plan an upgrade to ${supportedMajor(kind, data, now)}.`,
        ),
      ];
  }

  const line = c.line!;
  const findings: ServerVersionFinding[] = [];
  if (line.eol !== null) {
    const days = daysUntil(line.eol, now);
    if (days < 0) {
      findings.push(
        finding(
          'server_eol',
          'critical',
          `${NAME[kind]} ${c.major} reached its end of life on ${line.eol} (running ${c.version}): it gets no more fixes, security ones included`,
          `Plan ${UPGRADE[kind]} to ${supportedMajor(kind, data, now)}.`,
          { daysPastEol: -days },
        ),
      );
    } else if (days <= opts.eolSoonDays) {
      findings.push(
        finding(
          'server_eol_soon',
          'warning',
          `${NAME[kind]} ${c.major} reaches its end of life on ${line.eol}, ${days === 0 ? 'today' : `in ${days} day${days === 1 ? '' : 's'}`} (running ${c.version})`,
          `Plan ${UPGRADE[kind]} before ${line.eol}, to ${supportedMajor(kind, data, now)}.`,
          { daysToEol: days },
        ),
      );
    }
  }
  if (c.standing === 'behind') {
    const releases = `${c.releasesBehind} ${kind === 'postgresql' ? 'minor' : 'patch'} release${c.releasesBehind === 1 ? '' : 's'}`;
    findings.push(
      finding(
        'server_minor_behind',
        'warning',
        `${name} is ${releases} behind ${line.latest}, the newest of ${c.major} in ${fileOf}`,
        `Upgrade to ${line.latest} (same major: the binaries change, the data stays); release notes: ${RELEASE_NOTES[kind](line.latest)}`,
        { releasesBehind: c.releasesBehind, releaseNotes: RELEASE_NOTES[kind](line.latest) },
      ),
    );
  }
  return findings;
}
