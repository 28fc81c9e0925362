/**
 * Known advisories from a local OSV database (https://ossf.github.io/osv-schema/),
 * indexed by package, and which of them affect an installed version.
 *
 * The directory holds OSV JSON records, one advisory per `*.json` file,
 * directly in it or under `<dir>/<ecosystem>/` (an unzipped osv.dev export,
 * `npm/all.zip`, is the latter), or the file `<ecosystem>.nedb` that
 * @renovatebot/osv-offline-db keeps (`npm.nedb`: one record per line, NeDB's
 * append-only log). A file that cannot be read or is not an OSV record is
 * counted, and the first reason kept, rather than failing the whole database.
 *
 * A version is affected as the schema's evaluation pseudocode says: listed
 * in `affected[].versions`, or inside a SEMVER or ECOSYSTEM range (npm's
 * ecosystem order is semver's), its events sorted. GIT ranges need the
 * repository and are not evaluated.
 */
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';
import semver from 'semver';
import { coerceError } from '../errors';
import { oneLine } from '../util/format';
import { cvss3BaseScore, severityOfScore, type AdvisorySeverity } from './cvss';

export type { AdvisorySeverity };

/** One advisory affecting an installed version. */
export interface AdvisoryMatch {
  id: string;
  /** Other ids of the same vulnerability (CVE-..., GHSA-...). */
  aliases: string[];
  summary: string;
  severity: AdvisorySeverity;
  /** The lowest version above the installed one that a range says fixes it (and that is not itself affected). */
  fixed?: string;
  /** Where a reader learns more: GitHub's page for a GHSA, else the record's advisory reference. */
  url?: string;
}

export interface AdvisoryIndex {
  /** Records read (files, or nedb lines that are records). */
  records: number;
  /** Advisories with at least one affected package of the ecosystem. */
  advisories: number;
  /** Withdrawn advisories, left out. */
  withdrawn: number;
  /** Files (or nedb lines) that could not be read or are not OSV records, and why the first failed. */
  unreadable: { count: number; first?: string };
  /** The advisories affecting `name` (exact, as npm spells it) at `version`, most severe first. */
  matching(name: string, version: string): AdvisoryMatch[];
}

/** More files than this is not an advisory database (or is one no check should read in one go). */
const MAX_FILES = 500_000;
/** An OSV record is a few kB; one past this is refused (counted unreadable), not held in memory. */
const MAX_RECORD_BYTES = 4 * 1024 * 1024;
/** An npm.nedb past this many lines is not osv-offline-db's (npm's has some hundred thousand records). */
const MAX_NEDB_LINES = 2_000_000;
/** Files read at once. */
const READ_CONCURRENCY = 16;
/** How much of a failure's text the first reason keeps. */
const MAX_REASON = 300;

/**
 * Reads the OSV database in `dir` and indexes the affected packages of
 * `ecosystem` (OSV's spelling: `npm`). Throws (one line) only when `dir`
 * itself cannot be read or holds more than MAX_FILES files.
 */
export async function loadAdvisories(dir: string, ecosystem = 'npm'): Promise<AdvisoryIndex> {
  const info = await stat(dir).catch((err: unknown) => {
    throw new Error(`OSV database ${dir} cannot be read: ${reasonOf(err)}`);
  });
  if (!info.isDirectory()) throw new Error(`OSV database ${dir} is not a directory`);

  const files = [...(await jsonFilesIn(dir)), ...(await jsonFilesIn(path.join(dir, ecosystem)))];
  if (files.length > MAX_FILES) throw new Error(`OSV database ${dir} holds more than ${MAX_FILES} JSON files: is it an advisory database?`);

  const state: LoadState = { records: new Map(), read: 0, withdrawn: new Set() };
  const failures: string[] = [];
  const fail = (where: string, reason: string) => failures.push(oneLine(`${path.relative(dir, where) || where}: ${reason}`, MAX_REASON));

  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const file = files[next++]!;
      try {
        const size = (await stat(file)).size;
        if (size > MAX_RECORD_BYTES) throw new Error(`larger than ${MAX_RECORD_BYTES} bytes`);
        addRecord(state, compile(parseRecord(await readFile(file, 'utf8')), ecosystem));
      } catch (err) {
        fail(file, coerceError(err).message);
      }
    }
  };
  await Promise.all(Array.from({ length: READ_CONCURRENCY }, worker));
  await readNedb(path.join(dir, `${ecosystem.toLowerCase()}.nedb`), state, ecosystem, fail);

  // Files are read concurrently: the first in name order, not in time, so the same database reports the same reason.
  failures.sort();
  return indexOf(state, { count: failures.length, ...(failures.length ? { first: failures[0] } : {}) });
}

/** `*.json` files directly in `dir`, sorted; none when it does not exist. */
async function jsonFilesIn(dir: string): Promise<string[]> {
  const names = await readdir(dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return [];
    throw new Error(`OSV database ${dir} cannot be read: ${reasonOf(err)}`);
  });
  return names
    .filter((d) => d.isFile() && d.name.endsWith('.json'))
    .map((d) => path.join(dir, d.name))
    .sort();
}

/**
 * The NeDB file of @renovatebot/osv-offline-db: one JSON document per line,
 * a later line with the same `_id` replacing an earlier one, `$$deleted`
 * removing it, `$$indexCreated` lines only describing indexes.
 */
async function readNedb(file: string, state: LoadState, ecosystem: string, fail: (where: string, reason: string) => void): Promise<void> {
  const exists = await stat(file).then((s) => s.isFile(), () => false);
  if (!exists) return;
  // Compiled as read: npm's file holds some hundred thousand records, most of them never matched.
  const docs = new Map<string, Compiled | { kind: 'unreadable'; where: string; reason: string }>();
  const lines = readline.createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (n > MAX_NEDB_LINES) throw new Error(`OSV database ${file} holds more than ${MAX_NEDB_LINES} lines: is it an advisory database?`);
    if (!line.trim()) continue;
    if (line.length > MAX_RECORD_BYTES) {
      fail(`${file} line ${n}`, `larger than ${MAX_RECORD_BYTES} bytes`);
      continue;
    }
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(line) as Record<string, unknown>;
    } catch (err) {
      fail(`${file} line ${n}`, `not valid JSON: ${coerceError(err).message}`);
      continue;
    }
    if (doc === null || typeof doc !== 'object' || doc.$$indexCreated) continue;
    const key = typeof doc._id === 'string' ? doc._id : typeof doc.id === 'string' ? doc.id : `line ${n}`;
    if (doc.$$deleted === true) {
      docs.delete(key);
      continue;
    }
    try {
      docs.set(key, compile(checkRecord(doc), ecosystem));
    } catch (err) {
      docs.set(key, { kind: 'unreadable', where: `${file} line ${n}`, reason: coerceError(err).message });
    }
  }
  for (const compiled of docs.values()) {
    if (compiled.kind === 'unreadable') fail(compiled.where, compiled.reason);
    else addRecord(state, compiled);
  }
}

// ---- records

interface OsvEvent {
  introduced?: string;
  fixed?: string;
  last_affected?: string;
  limit?: string;
}
interface OsvSeverity {
  type?: string;
  score?: string;
}
interface OsvAffected {
  package?: { ecosystem?: string; name?: string };
  ranges?: { type?: string; events?: OsvEvent[] }[];
  versions?: string[];
  severity?: OsvSeverity[];
  database_specific?: Record<string, unknown>;
}
interface OsvRecord {
  id: string;
  modified?: string;
  withdrawn?: string;
  aliases?: string[];
  summary?: string;
  details?: string;
  severity?: OsvSeverity[];
  affected?: OsvAffected[];
  references?: { type?: string; url?: string }[];
  database_specific?: Record<string, unknown>;
}

function parseRecord(text: string): OsvRecord {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new Error(`not valid JSON: ${coerceError(err).message}`);
  }
  return checkRecord(doc);
}

function checkRecord(doc: unknown): OsvRecord {
  const r = doc as Partial<OsvRecord> | null;
  if (typeof r !== 'object' || r === null || Array.isArray(r) || typeof r.id !== 'string' || !r.id) throw new Error('not an OSV record: no "id"');
  if (r.affected !== undefined && !Array.isArray(r.affected)) throw new Error('not an OSV record: "affected" is not a list');
  return r as OsvRecord;
}

/** One range's events, sorted, their versions parsed; limits apart. */
interface Range {
  events: { kind: 'introduced' | 'fixed' | 'last_affected'; version: string }[];
  /** Upper limits (`*` is none); empty means the implicit `*`. */
  limits: string[];
  /** GHSA's older records bound an open range only here (`<= 1.2.3`). */
  lastKnownAffected?: string;
}

interface Affected {
  severity: AdvisorySeverity;
  ranges: Range[];
  versions: Set<string>;
}

interface Advisory {
  id: string;
  modified: string;
  aliases: string[];
  summary: string;
  url?: string;
  /** Affected entries by package name. */
  packages: Map<string, Affected[]>;
}

interface LoadState {
  records: Map<string, Advisory>;
  read: number;
  withdrawn: Set<string>;
}

/** One record as the index keeps it: only what matching needs, for one ecosystem. */
type Compiled = { kind: 'advisory'; advisory: Advisory } | { kind: 'withdrawn'; id: string } | { kind: 'elsewhere' };

function compile(r: OsvRecord, ecosystem: string): Compiled {
  if (typeof r.withdrawn === 'string' && r.withdrawn) return { kind: 'withdrawn', id: r.id };
  const packages = new Map<string, Affected[]>();
  for (const a of r.affected ?? []) {
    const name = a?.package?.name;
    if (a?.package?.ecosystem !== ecosystem || typeof name !== 'string') continue;
    const entry: Affected = {
      severity: severityOf(r, a),
      ranges: (a.ranges ?? []).filter((g) => g?.type === 'SEMVER' || g?.type === 'ECOSYSTEM').map((g) => rangeOf(g.events ?? [], a.database_specific)),
      versions: new Set((a.versions ?? []).filter((v): v is string => typeof v === 'string')),
    };
    packages.set(name, [...(packages.get(name) ?? []), entry]);
  }
  if (!packages.size) return { kind: 'elsewhere' };
  return {
    kind: 'advisory',
    advisory: {
      id: r.id,
      modified: typeof r.modified === 'string' ? r.modified : '',
      aliases: (r.aliases ?? []).filter((x): x is string => typeof x === 'string'),
      summary: summaryOf(r),
      ...urlOf(r),
      packages,
    },
  };
}

function addRecord(state: LoadState, compiled: Compiled): void {
  state.read++;
  if (compiled.kind === 'withdrawn') state.withdrawn.add(compiled.id);
  if (compiled.kind !== 'advisory') return;
  const { advisory } = compiled;
  // The same advisory in the directory and under npm/: the newer record wins.
  const known = state.records.get(advisory.id);
  if (!known || advisory.modified > known.modified) state.records.set(advisory.id, advisory);
}

function rangeOf(events: OsvEvent[], databaseSpecific: Record<string, unknown> | undefined): Range {
  const parsed: Range['events'] = [];
  const limits: string[] = [];
  for (const e of events) {
    if (typeof e !== 'object' || e === null) continue;
    if (typeof e.limit === 'string') {
      const v = e.limit.includes('*') ? '*' : versionOf(e.limit);
      if (v) limits.push(v);
      continue;
    }
    const kind = typeof e.introduced === 'string' ? 'introduced' : typeof e.fixed === 'string' ? 'fixed' : typeof e.last_affected === 'string' ? 'last_affected' : undefined;
    if (!kind) continue;
    const raw = e[kind]!;
    // An unparsable bound is dropped: a lost `fixed` reports too much, never too little.
    const version = kind === 'introduced' && raw === '0' ? '0' : versionOf(raw);
    if (version) parsed.push({ kind, version });
  }
  parsed.sort((a, b) => compareBound(a.version, b.version));
  const lastKnown = databaseSpecific?.last_known_affected_version_range;
  const closed = parsed.some((e) => e.kind !== 'introduced');
  return {
    events: parsed,
    limits,
    ...(!closed && typeof lastKnown === 'string' && semver.validRange(lastKnown) ? { lastKnownAffected: lastKnown } : {}),
  };
}

/** A bound as semver, coercing what a database wrote loosely (`1.2`); undefined when it is not a version. */
function versionOf(raw: string): string | undefined {
  return semver.valid(raw) ?? semver.coerce(raw)?.version ?? undefined;
}

/** `"0"` sorts before every version. */
function compareBound(a: string, b: string): number {
  if (a === '0' || b === '0') return a === b ? 0 : a === '0' ? -1 : 1;
  return semver.compare(a, b);
}

/** The schema's IncludedInRanges for one range. */
function inRange(v: string, range: Range): boolean {
  if (range.limits.length && !range.limits.some((l) => l === '*' || semver.lt(v, l))) return false;
  let vulnerable = false;
  for (const e of range.events) {
    if (e.kind === 'introduced' && (e.version === '0' || semver.gte(v, e.version))) vulnerable = true;
    else if (e.kind === 'fixed' && semver.gte(v, e.version)) vulnerable = false;
    else if (e.kind === 'last_affected' && semver.gt(v, e.version)) vulnerable = false;
  }
  if (vulnerable && range.lastKnownAffected) return semver.satisfies(v, range.lastKnownAffected, { includePrerelease: true });
  return vulnerable;
}

function affects(entries: Affected[], version: string, parsed: string | null): boolean {
  return entries.some((a) => a.versions.has(version) || (parsed !== null && a.ranges.some((r) => inRange(parsed, r))));
}

/** The lowest `fixed` above `v` that the advisory does not itself list as affected. */
function fixedAbove(entries: Affected[], v: string): string | undefined {
  const candidates = [...new Set(entries.flatMap((a) => a.ranges.flatMap((r) => r.events.filter((e) => e.kind === 'fixed').map((e) => e.version))))];
  return semver.sort(candidates.filter((c) => semver.gt(c, v))).find((c) => !affects(entries, c, c));
}

function indexOf(state: LoadState, unreadable: AdvisoryIndex['unreadable']): AdvisoryIndex {
  const byName = new Map<string, Advisory[]>();
  for (const advisory of state.records.values()) {
    for (const name of advisory.packages.keys()) byName.set(name, [...(byName.get(name) ?? []), advisory]);
  }
  return {
    records: state.read,
    advisories: state.records.size,
    withdrawn: state.withdrawn.size,
    unreadable,
    matching(name, version) {
      const parsed = semver.valid(version);
      const matches: AdvisoryMatch[] = [];
      for (const advisory of byName.get(name) ?? []) {
        const entries = advisory.packages.get(name)!;
        const hit = entries.filter((a) => affects([a], version, parsed));
        if (!hit.length) continue;
        const fixed = parsed ? fixedAbove(entries, parsed) : undefined;
        matches.push({
          id: advisory.id,
          aliases: advisory.aliases,
          summary: advisory.summary,
          severity: mostSevere(hit.map((a) => a.severity)),
          ...(fixed ? { fixed } : {}),
          ...(advisory.url ? { url: advisory.url } : {}),
        });
      }
      return matches.sort((a, b) => SEVERITY_RANK[b.severity] - SEVERITY_RANK[a.severity] || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    },
  };
}

function summaryOf(r: OsvRecord): string {
  if (typeof r.summary === 'string' && r.summary.trim()) return oneLine(r.summary, 200);
  if (typeof r.details === 'string' && r.details.trim()) return oneLine(r.details.trim().split('\n')[0]!, 200);
  return r.id;
}

/** GitHub's own page for a GHSA (the schema's source URL for that prefix), else the record's advisory link. */
function urlOf(r: OsvRecord): { url?: string } {
  if (/^GHSA(-[23456789cfghjmpqrvwx]{4}){3}$/.test(r.id)) return { url: `https://github.com/advisories/${r.id}` };
  const links = (r.references ?? []).filter((x) => typeof x?.url === 'string' && /^https?:\/\//.test(x.url));
  const url = (links.find((x) => x.type === 'ADVISORY') ?? links[0])?.url;
  return url ? { url } : {};
}

// ---- severity

const SEVERITY_RANK: Record<AdvisorySeverity, number> = { unknown: 0, low: 1, moderate: 2, high: 3, critical: 4 };
const DATABASE_SEVERITY: Record<string, AdvisorySeverity> = { LOW: 'low', MODERATE: 'moderate', MEDIUM: 'moderate', HIGH: 'high', CRITICAL: 'critical' };

function mostSevere(all: AdvisorySeverity[]): AdvisorySeverity {
  return all.reduce((a, b) => (SEVERITY_RANK[b] > SEVERITY_RANK[a] ? b : a), 'unknown');
}

/**
 * The database's own rating (GHSA's LOW/MODERATE/HIGH/CRITICAL) when it
 * gives one, else the highest CVSS v3 base score of the package's (or the
 * record's) vectors. CVSS v4 and v2 vectors are not scored: `unknown`.
 */
function severityOf(r: OsvRecord, a: OsvAffected): AdvisorySeverity {
  for (const specific of [r.database_specific, a.database_specific]) {
    const rating = specific?.severity;
    if (typeof rating === 'string' && DATABASE_SEVERITY[rating.toUpperCase()]) return DATABASE_SEVERITY[rating.toUpperCase()]!;
  }
  // The schema sets either the package's severity or the record's, not both.
  const vectors = a.severity?.length ? a.severity : (r.severity ?? []);
  const scores = vectors.map((s) => (typeof s?.score === 'string' ? cvss3BaseScore(s.score) : undefined)).filter((s): s is number => s !== undefined);
  return scores.length ? severityOfScore(Math.max(...scores)) : 'unknown';
}

function reasonOf(err: unknown): string {
  const e = coerceError(err) as NodeJS.ErrnoException;
  return e.code ?? e.message;
}
