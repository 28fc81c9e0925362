/**
 * package-lock.json in the three versions npm has written: v3 (npm 9+,
 * `packages` only), v2 (npm 7-8, `packages` and the legacy tree) and v1
 * (npm 5-6, nested `dependencies`), small but shaped as npm writes them:
 * hoisted packages, a nested `node_modules/a/node_modules/b`, dev-only
 * trees, an alias, a workspace, a folder link and a git dependency.
 */
import { readLockfile, type LockedPackage } from '../../src/dependencies/lockfile';

const sha = (n: number) => `sha512-${String(n).repeat(8)}==`;
const tgz = (name: string, version: string) => `https://registry.npmjs.org/${name}/-/${name.split('/').pop()}-${version}.tgz`;

/** v3: an API with a workspace, an alias, a link to a sibling folder and a GitHub dependency. */
const V3 = {
  name: 'shop-api',
  version: '1.0.0',
  lockfileVersion: 3,
  requires: true,
  packages: {
    '': {
      name: 'shop-api',
      version: '1.0.0',
      workspaces: ['packages/*'],
      dependencies: { express: '^4.18.2', 'my-lodash': 'npm:lodash@^4.17.20', 'internal-lib': 'file:../internal-lib', forked: 'github:acme/forked#v1' },
      devDependencies: { jest: '^29.0.0', typescript: '~5.3.0' },
      optionalDependencies: { fsevents: '^2.3.2' },
      peerDependencies: { react: '>=18' },
    },
    '../internal-lib': { name: 'internal-lib', version: '0.1.0', dependencies: { 'left-pad': '^1.3.0' } },
    'node_modules/@shop/admin': { resolved: 'packages/admin', link: true },
    'node_modules/body-parser': { version: '1.20.1', resolved: tgz('body-parser', '1.20.1'), integrity: sha(1), dependencies: { debug: '2.6.9', qs: '6.11.0' } },
    'node_modules/chalk': { version: '5.3.0', resolved: tgz('chalk', '5.3.0'), integrity: sha(2) },
    'node_modules/debug': { version: '2.6.9', resolved: tgz('debug', '2.6.9'), integrity: sha(3), dependencies: { ms: '2.0.0' } },
    'node_modules/express': {
      version: '4.18.2',
      resolved: tgz('express', '4.18.2'),
      integrity: sha(4),
      dependencies: { 'body-parser': '1.20.1', debug: '2.6.9', qs: '6.11.0', send: '0.18.0' },
      engines: { node: '>= 0.10.0' },
    },
    'node_modules/forked': { version: '1.0.0', resolved: 'git+ssh://git@github.com/acme/forked.git#4b2f0e1c9d8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c' },
    'node_modules/fsevents': { version: '2.3.3', resolved: tgz('fsevents', '2.3.3'), integrity: sha(5), hasInstallScript: true, optional: true, os: ['darwin'] },
    'node_modules/internal-lib': { resolved: '../internal-lib', link: true },
    'node_modules/jest': { version: '29.7.0', resolved: tgz('jest', '29.7.0'), integrity: sha(6), dev: true, dependencies: { 'jest-cli': '^29.7.0' } },
    'node_modules/jest-cli': { version: '29.7.0', resolved: tgz('jest-cli', '29.7.0'), integrity: sha(7), dev: true, dependencies: { debug: '^4.3.4' } },
    'node_modules/jest-cli/node_modules/debug': { version: '4.3.4', resolved: tgz('debug', '4.3.4'), integrity: sha(8), dev: true, dependencies: { ms: '2.1.2' } },
    'node_modules/jest-cli/node_modules/ms': { version: '2.1.2', resolved: tgz('ms', '2.1.2'), integrity: sha(9), dev: true },
    'node_modules/left-pad': { version: '1.3.0', resolved: tgz('left-pad', '1.3.0'), integrity: sha(1) },
    'node_modules/loose-envify': { version: '1.4.0', resolved: tgz('loose-envify', '1.4.0'), integrity: sha(2), peer: true },
    'node_modules/ms': { version: '2.0.0', resolved: tgz('ms', '2.0.0'), integrity: sha(3) },
    'node_modules/my-lodash': { name: 'lodash', version: '4.17.21', resolved: tgz('lodash', '4.17.21'), integrity: sha(4) },
    'node_modules/orphan': { version: '0.0.1', resolved: tgz('orphan', '0.0.1'), integrity: sha(5), extraneous: true },
    'node_modules/qs': { version: '6.11.0', resolved: tgz('qs', '6.11.0'), integrity: sha(6), dependencies: { 'side-channel': '^1.0.4' } },
    'node_modules/react': { version: '18.2.0', resolved: tgz('react', '18.2.0'), integrity: sha(7), peer: true, dependencies: { 'loose-envify': '^1.1.0' } },
    'node_modules/send': { version: '0.18.0', resolved: tgz('send', '0.18.0'), integrity: sha(8), dependencies: { debug: '2.6.9', ms: '2.1.3' } },
    'node_modules/send/node_modules/ms': { version: '2.1.3', resolved: tgz('ms', '2.1.3'), integrity: sha(9) },
    'node_modules/side-channel': { version: '1.0.4', resolved: tgz('side-channel', '1.0.4'), integrity: sha(1) },
    'node_modules/typescript': { version: '5.3.3', resolved: tgz('typescript', '5.3.3'), integrity: sha(2), dev: true, bin: { tsc: 'bin/tsc' } },
    'packages/admin': { name: '@shop/admin', version: '0.0.1', dependencies: { chalk: '^5.3.0', express: '^4.18.2', ms: '^2.1.3' }, devDependencies: { prettier: '^3.0.0' } },
    'packages/admin/node_modules/ms': { version: '2.1.3', resolved: tgz('ms', '2.1.3'), integrity: sha(9) },
    'packages/admin/node_modules/prettier': { version: '3.1.0', resolved: tgz('prettier', '3.1.0'), integrity: sha(3), dev: true },
  },
};

/** v2: a CLI whose dev tool shares a package with production and nests an older copy of another. */
const V2_PACKAGES = {
  '': { name: 'colour-cli', version: '0.4.0', dependencies: { chalk: '^4.1.2' }, devDependencies: { eslint: '^8.0.0' } },
  'node_modules/ansi-regex': { version: '5.0.1', resolved: tgz('ansi-regex', '5.0.1'), integrity: sha(1), dev: true },
  'node_modules/ansi-styles': { version: '4.3.0', resolved: tgz('ansi-styles', '4.3.0'), integrity: sha(2), dependencies: { 'color-convert': '^2.0.1' } },
  'node_modules/chalk': { version: '4.1.2', resolved: tgz('chalk', '4.1.2'), integrity: sha(3), dependencies: { 'ansi-styles': '^4.1.0', 'supports-color': '^7.1.0' } },
  'node_modules/color-convert': { version: '2.0.1', resolved: tgz('color-convert', '2.0.1'), integrity: sha(4), dependencies: { 'color-name': '~1.1.4' } },
  'node_modules/color-name': { version: '1.1.4', resolved: tgz('color-name', '1.1.4'), integrity: sha(5) },
  'node_modules/eslint': { version: '8.56.0', resolved: tgz('eslint', '8.56.0'), integrity: sha(6), dev: true, dependencies: { chalk: '^4.0.0', 'has-flag': '^3.0.0', 'strip-ansi': '^6.0.1' } },
  'node_modules/eslint/node_modules/has-flag': { version: '3.0.0', resolved: tgz('has-flag', '3.0.0'), integrity: sha(7), dev: true },
  'node_modules/has-flag': { version: '4.0.0', resolved: tgz('has-flag', '4.0.0'), integrity: sha(8) },
  'node_modules/strip-ansi': { version: '6.0.1', resolved: tgz('strip-ansi', '6.0.1'), integrity: sha(9), dev: true, dependencies: { 'ansi-regex': '^5.0.1' } },
  'node_modules/supports-color': { version: '7.2.0', resolved: tgz('supports-color', '7.2.0'), integrity: sha(1), dependencies: { 'has-flag': '^4.0.0' } },
};
/** npm 7 wrote the v1 tree beside `packages` for older npms; this reads `packages`. */
const V2 = {
  name: 'colour-cli',
  version: '0.4.0',
  lockfileVersion: 2,
  requires: true,
  packages: V2_PACKAGES,
  dependencies: {
    chalk: { version: '4.1.2', resolved: tgz('chalk', '4.1.2'), integrity: sha(3), requires: { 'ansi-styles': '^4.1.0', 'supports-color': '^7.1.0' } },
    eslint: { version: '8.56.0', dev: true, requires: { chalk: '^4.0.0', 'has-flag': '^3.0.0', 'strip-ansi': '^6.0.1' }, dependencies: { 'has-flag': { version: '3.0.0', dev: true } } },
  },
};

/** v1 (npm 6): an Express app with mocha, an alias, and nested copies. */
const V1 = {
  name: 'legacy-app',
  version: '2.0.0',
  lockfileVersion: 1,
  requires: true,
  dependencies: {
    debug: { version: '2.6.9', resolved: tgz('debug', '2.6.9'), integrity: sha(1), requires: { ms: '2.0.0' } },
    express: { version: '4.16.4', resolved: tgz('express', '4.16.4'), integrity: sha(2), requires: { debug: '2.6.9', send: '0.16.2' } },
    mocha: {
      version: '5.2.0',
      resolved: tgz('mocha', '5.2.0'),
      integrity: sha(3),
      dev: true,
      requires: { debug: '3.1.0' },
      dependencies: { debug: { version: '3.1.0', resolved: tgz('debug', '3.1.0'), integrity: sha(4), dev: true, requires: { ms: '2.0.0' } } },
    },
    ms: { version: '2.0.0', resolved: tgz('ms', '2.0.0'), integrity: sha(5) },
    'old-lodash': { version: 'npm:lodash@4.17.11', resolved: tgz('lodash', '4.17.11'), integrity: sha(6) },
    send: {
      version: '0.16.2',
      resolved: tgz('send', '0.16.2'),
      integrity: sha(7),
      requires: { debug: '2.6.9', ms: '2.1.1' },
      dependencies: { ms: { version: '2.1.1', resolved: tgz('ms', '2.1.1'), integrity: sha(8) } },
    },
  },
};
const V1_MANIFEST = {
  name: 'legacy-app',
  version: '2.0.0',
  dependencies: { express: '^4.16.0', debug: '^2.6.9', 'old-lodash': 'npm:lodash@^4.17.0' },
  devDependencies: { mocha: '^5.2.0' },
};

const text = (doc: unknown) => JSON.stringify(doc, null, 2);
const pathOf = (locked: LockedPackage[], name: string, version: string) => locked.find((p) => p.name === name && p.version === version);

describe('lockfileVersion 3', () => {
  const lock = readLockfile(text(V3), 'shop-api/package-lock.json');

  it("lists the root's declared dependencies with their range, installed version and kind, aliases under the real name", () => {
    expect(lock.name).toBe('shop-api');
    expect(lock.lockfileVersion).toBe(3);
    // internal-lib (a folder link) and forked (GitHub) are not the registry's: left out.
    expect(lock.direct).toEqual([
      { name: 'express', range: '^4.18.2', version: '4.18.2', kind: 'prod' },
      { name: 'lodash', range: '^4.17.20', version: '4.17.21', kind: 'prod', alias: 'my-lodash' },
      { name: 'jest', range: '^29.0.0', version: '29.7.0', kind: 'dev' },
      { name: 'typescript', range: '~5.3.0', version: '5.3.3', kind: 'dev' },
      { name: 'fsevents', range: '^2.3.2', version: '2.3.3', kind: 'optional' },
      { name: 'react', range: '>=18', version: '18.2.0', kind: 'peer' },
    ]);
  });

  it('gives each installed package the shortest chain of dependencies that brings it in', () => {
    const chains = Object.fromEntries(lock.locked.map((p) => [`${p.name}@${p.version}`, p.path.join(' > ')]));
    expect(chains).toEqual({
      'body-parser@1.20.1': 'express > body-parser',
      'chalk@5.3.0': '@shop/admin > chalk',
      'debug@2.6.9': 'express > debug',
      'debug@4.3.4': 'jest > jest-cli > debug',
      'express@4.18.2': 'express',
      'forked@1.0.0': 'forked',
      'fsevents@2.3.3': 'fsevents',
      'jest-cli@29.7.0': 'jest > jest-cli',
      'jest@29.7.0': 'jest',
      'left-pad@1.3.0': 'internal-lib > left-pad',
      'lodash@4.17.21': 'lodash',
      'loose-envify@1.4.0': 'react > loose-envify',
      // Resolved from jest-cli/node_modules/debug up to jest-cli/node_modules, not the hoisted ms.
      'ms@2.1.2': 'jest > jest-cli > debug > ms',
      'ms@2.0.0': 'express > debug > ms',
      // Two copies (send's nested one, the workspace's): one entry, the shorter chain.
      'ms@2.1.3': '@shop/admin > ms',
      // Nothing requires it: the folders it sits in.
      'orphan@0.0.1': 'orphan',
      'prettier@3.1.0': '@shop/admin > prettier',
      'qs@6.11.0': 'express > qs',
      'react@18.2.0': 'react',
      'send@0.18.0': 'express > send',
      'side-channel@1.0.4': 'express > qs > side-channel',
      'typescript@5.3.3': 'typescript',
    });
  });

  it('keeps workspaces and linked folders out of the packages, and marks dev-only ones', () => {
    expect(lock.locked.map((p) => p.name)).not.toContain('@shop/admin');
    expect(lock.locked.map((p) => p.name)).not.toContain('internal-lib');
    expect(lock.locked.filter((p) => p.dev).map((p) => `${p.name}@${p.version}`)).toEqual(['debug@4.3.4', 'jest@29.7.0', 'jest-cli@29.7.0', 'ms@2.1.2', 'prettier@3.1.0', 'typescript@5.3.3']);
  });
});

describe('lockfileVersion 2', () => {
  it('reads the packages map, nested copies and dev-only trees', () => {
    const lock = readLockfile(text(V2), 'colour-cli/package-lock.json');
    expect(lock).toEqual({
      name: 'colour-cli',
      lockfileVersion: 2,
      direct: [
        { name: 'chalk', range: '^4.1.2', version: '4.1.2', kind: 'prod' },
        { name: 'eslint', range: '^8.0.0', version: '8.56.0', kind: 'dev' },
      ],
      locked: [
        { name: 'ansi-regex', version: '5.0.1', path: ['eslint', 'strip-ansi', 'ansi-regex'], dev: true },
        { name: 'ansi-styles', version: '4.3.0', path: ['chalk', 'ansi-styles'], dev: false },
        { name: 'chalk', version: '4.1.2', path: ['chalk'], dev: false },
        { name: 'color-convert', version: '2.0.1', path: ['chalk', 'ansi-styles', 'color-convert'], dev: false },
        { name: 'color-name', version: '1.1.4', path: ['chalk', 'ansi-styles', 'color-convert', 'color-name'], dev: false },
        { name: 'eslint', version: '8.56.0', path: ['eslint'], dev: true },
        { name: 'has-flag', version: '3.0.0', path: ['eslint', 'has-flag'], dev: true },
        { name: 'has-flag', version: '4.0.0', path: ['chalk', 'supports-color', 'has-flag'], dev: false },
        { name: 'strip-ansi', version: '6.0.1', path: ['eslint', 'strip-ansi'], dev: true },
        { name: 'supports-color', version: '7.2.0', path: ['chalk', 'supports-color'], dev: false },
      ],
    });
  });
});

describe('lockfileVersion 1', () => {
  it('takes the ranges from the package.json, and resolves nested copies before hoisted ones', () => {
    const lock = readLockfile(text(V1), 'legacy/package-lock.json', { manifest: { text: text(V1_MANIFEST), source: 'legacy/package.json' } });
    expect(lock.name).toBe('legacy-app');
    expect(lock.direct).toEqual([
      { name: 'debug', range: '^2.6.9', version: '2.6.9', kind: 'prod' },
      { name: 'express', range: '^4.16.0', version: '4.16.4', kind: 'prod' },
      { name: 'lodash', range: '^4.17.0', version: '4.17.11', kind: 'prod', alias: 'old-lodash' },
      { name: 'mocha', range: '^5.2.0', version: '5.2.0', kind: 'dev' },
    ]);
    expect(lock.locked).toEqual([
      { name: 'debug', version: '2.6.9', path: ['debug'], dev: false },
      { name: 'debug', version: '3.1.0', path: ['mocha', 'debug'], dev: true },
      { name: 'express', version: '4.16.4', path: ['express'], dev: false },
      { name: 'lodash', version: '4.17.11', path: ['lodash'], dev: false },
      { name: 'mocha', version: '5.2.0', path: ['mocha'], dev: true },
      { name: 'ms', version: '2.0.0', path: ['debug', 'ms'], dev: false },
      { name: 'ms', version: '2.1.1', path: ['express', 'send', 'ms'], dev: false },
      { name: 'send', version: '0.16.2', path: ['express', 'send'], dev: false },
    ]);
  });

  it('without the package.json, takes the top-level packages nothing requires as direct, ranges unknown', () => {
    const lock = readLockfile(text(V1), 'legacy/package-lock.json');
    // debug is a direct dependency too, but express requires it: only the package.json says so.
    expect(lock.direct).toEqual([
      { name: 'express', version: '4.16.4', kind: 'prod' },
      { name: 'lodash', version: '4.17.11', kind: 'prod', alias: 'old-lodash' },
      { name: 'mocha', version: '5.2.0', kind: 'dev' },
    ]);
    expect(pathOf(lock.locked, 'ms', '2.0.0')?.path).toEqual(['express', 'debug', 'ms']);
    expect(pathOf(lock.locked, 'ms', '2.1.1')?.path).toEqual(['express', 'send', 'ms']);
  });
});

describe('what is not a lockfile it reads', () => {
  it('names the source of malformed JSON, in one line', () => {
    expect(() => readLockfile('{\n  "lockfileVersion": 3,\n  "packages": {\n', 'app/package-lock.json')).toThrow(/^app\/package-lock\.json is not valid JSON: [^\n]+$/);
  });

  it('refuses a lockfileVersion it does not know, or none', () => {
    expect(() => readLockfile(text({ lockfileVersion: 4, packages: {} }), 'app/package-lock.json')).toThrow(
      new Error('app/package-lock.json: lockfileVersion 4 is not one this reads (1, 2 or 3)'),
    );
    expect(() => readLockfile(text({ name: 'x', dependencies: {} }), 'app/package-lock.json')).toThrow(
      new Error('app/package-lock.json: lockfileVersion null is not one this reads (1, 2 or 3)'),
    );
  });

  it('refuses JSON that is not an object, and a v3 without packages', () => {
    expect(() => readLockfile('[1, 2]', 'a.json')).toThrow(new Error('a.json is not a package-lock.json: its JSON is not an object'));
    expect(() => readLockfile(text({ lockfileVersion: 3 }), 'b.json')).toThrow(new Error('b.json: lockfileVersion 3 without a "packages" map'));
  });

  it('names the package.json when it is the malformed one', () => {
    expect(() => readLockfile(text(V1), 'legacy/package-lock.json', { manifest: { text: '{ "name": ', source: 'legacy/package.json' } })).toThrow(/^legacy\/package\.json is not valid JSON: /);
  });
});
