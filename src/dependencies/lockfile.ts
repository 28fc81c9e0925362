/**
 * An application's npm `package-lock.json`, read into what the dependency
 * check compares: the root's direct dependencies (range and installed
 * version) and every installed package with the chain of dependencies that
 * brought it in.
 *
 * lockfileVersion 2 and 3 are read from their `packages` map (locations such
 * as `node_modules/a/node_modules/b`); lockfileVersion 1 from its nested
 * `dependencies`, which records no root ranges: pass the package.json to get
 * them. Which package a dependency resolves to is found the way Node looks a
 * module up: the nearest `node_modules` folder up from the dependent.
 *
 * Aliases (`"x": "npm:lodash@^4"`) appear under the real package's name
 * (what the registry and advisories know), with the alias beside it.
 * Workspaces and other linked folders are the project's own code: they are
 * in neither list, but their dependencies are walked like the root's (their
 * paths start with the workspace's name). Direct dependencies from git, a
 * URL, a tarball or a folder are left out of `direct`: the registry has
 * nothing to compare them with.
 */
import { coerceError } from '../errors';

export type DependencyKind = 'prod' | 'dev' | 'optional' | 'peer';

/** One dependency the root package declares. */
export interface DirectDependency {
  /** The registry package's name (an alias's target). */
  name: string;
  /** The declared range (`^4.17.0`, `latest`); absent for a lockfile v1 read without its package.json. */
  range?: string;
  /** The installed version; absent when the lockfile has none (an optional or peer dependency left out). */
  version?: string;
  kind: DependencyKind;
  /** The name the root depends on it by, when that is an alias (`"my-lodash": "npm:lodash@^4"`). */
  alias?: string;
}

/** One installed package version. */
export interface LockedPackage {
  name: string;
  version: string;
  /**
   * The chain of package names from a direct dependency (or a workspace)
   * down to this package, itself last: `['express', 'body-parser', 'qs']`.
   * The shortest such chain when several lead to it.
   */
  path: string[];
  /** Only the dev dependency tree needs it: true when every copy of this version is dev-only. */
  dev: boolean;
}

export interface Lockfile {
  /** The root package's name, when the lockfile records one. */
  name?: string;
  lockfileVersion: number;
  direct: DirectDependency[];
  /** One entry per name and version (several copies in the tree are one entry), sorted by name and version. */
  locked: LockedPackage[];
}

export interface ReadLockfileOptions {
  /** The root package.json: a lockfile v1 does not record the root's ranges (v2 and v3 do; this is not read for them). */
  manifest?: { text: string; source: string };
}

/** One installed folder, in the shape of a v2/v3 `packages` entry, whatever the lockfile's version. */
interface Entry {
  /** The package's own name (an alias's target); the folder's name otherwise. */
  name: string;
  version?: string;
  dev: boolean;
  /** A symlink to a folder of the project (a workspace, a `file:` dependency). */
  link: boolean;
  /** Where a link points to, as a location. */
  resolved?: string;
  /** What it depends on at run time (dependencies, optional and peer), by the name it requires them under. */
  requires: string[];
}

type Entries = Map<string, Entry>;

/** The dependency fields of a manifest, in the order a dependency listed twice takes its kind from. */
const KIND_FIELDS: [DependencyKind, string][] = [
  // npm: an entry of optionalDependencies overrides the same name in dependencies.
  ['optional', 'optionalDependencies'],
  ['prod', 'dependencies'],
  ['dev', 'devDependencies'],
  ['peer', 'peerDependencies'],
];
/** The order `direct` lists them in. */
const KIND_ORDER: DependencyKind[] = ['prod', 'dev', 'optional', 'peer'];

/**
 * Reads a package-lock.json (lockfileVersion 1, 2 or 3). Throws one line
 * naming `source` when it is not JSON, not a lockfile, or of another version.
 */
export function readLockfile(text: string, source: string, options: ReadLockfileOptions = {}): Lockfile {
  const doc = parseObject(text, source, 'a package-lock.json');
  const version = doc.lockfileVersion;
  if (version !== 1 && version !== 2 && version !== 3) {
    throw new Error(`${source}: lockfileVersion ${JSON.stringify(version ?? null)} is not one this reads (1, 2 or 3)`);
  }
  const name = typeof doc.name === 'string' ? doc.name : undefined;
  if (version !== 1 || isObject(doc.packages)) {
    if (!isObject(doc.packages)) throw new Error(`${source}: lockfileVersion ${version} without a "packages" map`);
    return fromPackages(doc.packages, version, name);
  }
  const manifest = options.manifest ? parseObject(options.manifest.text, options.manifest.source, 'a package.json') : undefined;
  return fromV1(doc, name, manifest);
}

/** lockfileVersion 2 and 3: the root entry `""` declares the ranges. */
function fromPackages(packages: Record<string, unknown>, lockfileVersion: number, docName: string | undefined): Lockfile {
  const entries: Entries = new Map();
  for (const [location, raw] of Object.entries(packages)) {
    if (location === '' || !isObject(raw)) continue;
    entries.set(location, {
      name: typeof raw.name === 'string' ? raw.name : folderName(location),
      version: typeof raw.version === 'string' ? raw.version : undefined,
      dev: raw.dev === true,
      link: raw.link === true,
      resolved: raw.link === true && typeof raw.resolved === 'string' ? raw.resolved : undefined,
      // A workspace's dev dependencies are installed too; a registry package's are not.
      requires: dependencyNames(raw, isWorkspaceFolder(location)),
    });
  }
  const root = isObject(packages['']) ? packages[''] : {};
  const declared = declaredOf(root);
  const direct = directOf(declared, entries);
  // Workspaces are linked at the top level whether or not the root declares them: their dependencies ship too.
  const workspaces = [...entries].filter(([location, e]) => e.link && location.startsWith('node_modules/') && !location.includes('/node_modules/'));
  const roots: Root[] = [...declared.map((d) => ({ requireName: d.requireName })), ...workspaces.map(([location]) => ({ requireName: folderName(location) }))];
  return {
    ...nameOf(typeof root.name === 'string' ? root.name : docName),
    lockfileVersion,
    direct,
    locked: lockedOf(entries, roots),
  };
}

/** lockfileVersion 1: nested `dependencies`, each entry's `requires` naming what it needs. */
function fromV1(doc: Record<string, unknown>, docName: string | undefined, manifest: Record<string, unknown> | undefined): Lockfile {
  const entries: Entries = new Map();
  const walk = (deps: unknown, parent: string) => {
    if (!isObject(deps)) return;
    for (const [folder, raw] of Object.entries(deps)) {
      if (!isObject(raw)) continue;
      const location = parent === '' ? `node_modules/${folder}` : `${parent}/node_modules/${folder}`;
      const written = typeof raw.version === 'string' ? raw.version : undefined;
      const alias = written?.startsWith('npm:') ? aliasTarget(written) : undefined;
      const link = written?.startsWith('file:') === true;
      entries.set(location, {
        name: alias?.name ?? folder,
        version: alias ? alias.range : written,
        dev: raw.dev === true,
        link,
        // A v1 folder link names its target relative to the project, as v2 does.
        resolved: link ? written!.slice('file:'.length).replace(/^\.\//, '') : undefined,
        requires: isObject(raw.requires) ? Object.keys(raw.requires) : [],
      });
      walk(raw.dependencies, location);
    }
  };
  walk(doc.dependencies, '');

  if (manifest) {
    const declared = declaredOf(manifest);
    return {
      ...nameOf(typeof manifest.name === 'string' ? manifest.name : docName),
      lockfileVersion: 1,
      direct: directOf(declared, entries),
      locked: lockedOf(entries, declared.map((d) => ({ requireName: d.requireName }))),
    };
  }
  // Without the package.json, the direct dependencies are the top-level packages nothing else requires.
  const required = new Set<string>();
  for (const [location, entry] of entries) for (const dep of entry.requires) required.add(resolveFrom(entries, location, dep) ?? '');
  const direct: DirectDependency[] = [];
  for (const [location, entry] of entries) {
    if (location.indexOf('/node_modules/') >= 0 || required.has(location) || entry.link || !entry.version) continue;
    direct.push({ name: entry.name, version: entry.version, kind: entry.dev ? 'dev' : 'prod', ...aliasOf(folderName(location), entry.name) });
  }
  return {
    ...nameOf(docName),
    lockfileVersion: 1,
    direct: sortDirect(direct),
    locked: lockedOf(entries, direct.map((d) => ({ requireName: d.alias ?? d.name }))),
  };
}

interface Declared {
  /** The name the root requires it under (the alias, for an alias). */
  requireName: string;
  range: string;
  kind: DependencyKind;
}

/** The root's declared dependencies, one per name, its kind from the field that wins. */
function declaredOf(manifest: Record<string, unknown>): Declared[] {
  const seen = new Map<string, Declared>();
  for (const [kind, field] of KIND_FIELDS) {
    const deps = manifest[field];
    if (!isObject(deps)) continue;
    for (const [requireName, range] of Object.entries(deps)) {
      if (typeof range === 'string' && !seen.has(requireName)) seen.set(requireName, { requireName, range, kind });
    }
  }
  return [...seen.values()];
}

function directOf(declared: Declared[], entries: Entries): DirectDependency[] {
  const direct: DirectDependency[] = [];
  for (const d of declared) {
    const alias = d.range.startsWith('npm:') ? aliasTarget(d.range) : undefined;
    // git, github shorthand, URLs, tarballs, folders, workspace: protocols: not a registry's to compare.
    if (!alias && /[:/]/.test(d.range)) continue;
    const location = resolveFrom(entries, '', d.requireName);
    const entry = location ? entries.get(location) : undefined;
    if (entry?.link) continue;
    const name = alias?.name ?? d.requireName;
    direct.push({ name, range: alias?.range ?? d.range, ...(entry?.version ? { version: entry.version } : {}), kind: d.kind, ...aliasOf(d.requireName, name) });
  }
  return sortDirect(direct);
}

interface Root {
  requireName: string;
}

/**
 * Every installed registry package, with the shortest chain of names that
 * leads to it from the root's dependencies (breadth first). A folder nothing
 * leads to (extraneous) gets the chain of folders it sits in.
 */
function lockedOf(entries: Entries, roots: Root[]): LockedPackage[] {
  const paths = new Map<string, string[]>();
  const queue: { location: string; path: string[] }[] = [];
  const visit = (from: string, requireName: string, parentPath: string[]) => {
    let location = resolveFrom(entries, from, requireName);
    let entry = location ? entries.get(location) : undefined;
    // A link stands for the folder it points to: a workspace's own entry carries its dependencies.
    if (entry?.link && entry.resolved !== undefined && entries.has(entry.resolved)) {
      location = entry.resolved;
      entry = entries.get(location);
    }
    if (!location || !entry || paths.has(location)) return;
    const path = [...parentPath, entry.name];
    paths.set(location, path);
    queue.push({ location, path });
  };
  for (const r of roots) visit('', r.requireName, []);
  for (let i = 0; i < queue.length; i++) {
    const { location, path } = queue[i]!;
    for (const dep of entries.get(location)!.requires) visit(location, dep, path);
  }

  const byVersion = new Map<string, LockedPackage>();
  for (const [location, entry] of entries) {
    if (entry.link || !entry.version || !location.includes('node_modules/')) continue;
    const path = paths.get(location) ?? physicalPath(location, entries);
    const key = `${entry.name}@${entry.version}`;
    const known = byVersion.get(key);
    if (!known) byVersion.set(key, { name: entry.name, version: entry.version, path, dev: entry.dev });
    else {
      known.dev &&= entry.dev;
      if (path.length < known.path.length) known.path = path;
    }
  }
  return [...byVersion.values()].sort((a, b) => cmp(a.name, b.name) || cmp(a.version, b.version));
}

/**
 * Where `requireName` required from `from` is installed: the nearest
 * `node_modules` up from it, as Node resolves it; undefined when none has it.
 */
function resolveFrom(entries: Entries, from: string, requireName: string): string | undefined {
  for (let at: string | undefined = from; at !== undefined; at = parentOf(at)) {
    const location = at === '' ? `node_modules/${requireName}` : `${at}/node_modules/${requireName}`;
    if (entries.has(location)) return location;
  }
  return undefined;
}

/** The folder whose node_modules holds `location`: `a/node_modules/b` → `a`; top level → the root `""`. */
function parentOf(location: string): string | undefined {
  if (location === '') return undefined;
  const i = location.lastIndexOf('/node_modules/');
  return i >= 0 ? location.slice(0, i) : '';
}

/** `node_modules/a/node_modules/@s/b` → `@s/b`. */
function folderName(location: string): string {
  const i = location.lastIndexOf('node_modules/');
  return i >= 0 ? location.slice(i + 'node_modules/'.length) : location.slice(location.lastIndexOf('/') + 1);
}

/** The names of the packages a folder sits in, itself last. */
function physicalPath(location: string, entries: Entries): string[] {
  const names: string[] = [];
  for (let at: string | undefined = location; at !== undefined && at !== ''; at = parentOf(at)) {
    names.unshift(entries.get(at)?.name ?? folderName(at));
  }
  return names;
}

/** A workspace's folder: a location of the project that is not under any node_modules. */
function isWorkspaceFolder(location: string): boolean {
  return !location.startsWith('node_modules/') && !location.includes('/node_modules/');
}

function dependencyNames(raw: Record<string, unknown>, withDev: boolean): string[] {
  const fields = ['dependencies', 'optionalDependencies', 'peerDependencies', ...(withDev ? ['devDependencies'] : [])];
  return [...new Set(fields.flatMap((f) => (isObject(raw[f]) ? Object.keys(raw[f]) : [])))];
}

/** `npm:@s/pkg@^1.2` → `{ name: '@s/pkg', range: '^1.2' }`; no range means any version. */
function aliasTarget(spec: string): { name: string; range: string } {
  const rest = spec.slice('npm:'.length);
  const at = rest.indexOf('@', 1);
  return at < 0 ? { name: rest, range: '*' } : { name: rest.slice(0, at), range: rest.slice(at + 1) || '*' };
}

function aliasOf(requireName: string, name: string): { alias?: string } {
  return requireName !== name ? { alias: requireName } : {};
}

function nameOf(name: string | undefined): { name?: string } {
  return name ? { name } : {};
}

function sortDirect(direct: DirectDependency[]): DirectDependency[] {
  return direct.sort((a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind) || cmp(a.name, b.name));
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function parseObject(text: string, source: string, what: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new Error(`${source} is not valid JSON: ${coerceError(err).message.replace(/\s+/g, ' ')}`);
  }
  if (!isObject(doc)) throw new Error(`${source} is not ${what}: its JSON is not an object`);
  return doc;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
