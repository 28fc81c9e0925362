/**
 * A local OSV database written as OSV JSON records (shaped as GHSA and
 * osv.dev export them) in a temp directory: plain files, files under npm/,
 * and the npm.nedb of @renovatebot/osv-offline-db. Severity from GHSA's
 * rating and from CVSS v3 vectors, whose base scores are checked against
 * the published scores of known vulnerabilities.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadAdvisories, type AdvisoryIndex } from '../../src/dependencies/osv';
import { cvss3BaseScore, severityOfScore } from '../../src/dependencies/cvss';

const dirs: string[] = [];

afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** A temp database directory with `files` (relative path → content; objects are written as JSON). */
async function database(files: Record<string, unknown>): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'caretaker-osv-'));
  dirs.push(dir);
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  }
  return dir;
}

const npm = (name: string) => ({ ecosystem: 'npm', name, purl: `pkg:npm/${name.replace('@', '%40')}` });
const ecosystemRange = (...events: Record<string, string>[]) => ({ type: 'ECOSYSTEM', events });

/** GHSA's record for lodash's command injection (CVE-2021-23337), as osv.dev serves it. */
const lodashInjection = {
  schema_version: '1.4.0',
  id: 'GHSA-35jh-r3h4-6jhm',
  modified: '2024-03-01T00:00:00Z',
  published: '2021-05-06T16:05:51Z',
  aliases: ['CVE-2021-23337'],
  summary: 'Command Injection in lodash',
  details: '`lodash` versions prior to 4.17.21 are vulnerable to Command Injection via the template function.',
  severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H' }],
  affected: [{ package: npm('lodash'), ranges: [ecosystemRange({ introduced: '0' }, { fixed: '4.17.21' })] }],
  references: [
    { type: 'ADVISORY', url: 'https://nvd.nist.gov/vuln/detail/CVE-2021-23337' },
    { type: 'PACKAGE', url: 'https://github.com/lodash/lodash' },
  ],
  database_specific: { cwe_ids: ['CWE-77', 'CWE-94'], severity: 'HIGH', github_reviewed: true },
};

/** An older copy of the same advisory, at the top of the directory, with a range since corrected. */
const lodashInjectionOld = { ...lodashInjection, modified: '2021-05-06T16:05:51Z', affected: [{ package: npm('lodash'), ranges: [ecosystemRange({ introduced: '0' }, { fixed: '4.17.20' })] }] };

/** semver's ReDoS (CVE-2022-25883): one affected entry per release line, as GHSA writes it. */
const semverRedos = {
  id: 'GHSA-c2qf-rxjj-qqgw',
  modified: '2023-07-10T00:00:00Z',
  aliases: ['CVE-2022-25883'],
  summary: 'semver vulnerable to Regular Expression Denial of Service',
  affected: [
    { package: npm('semver'), ranges: [ecosystemRange({ introduced: '7.0.0' }, { fixed: '7.5.2' })] },
    { package: npm('semver'), ranges: [ecosystemRange({ introduced: '6.0.0' }, { fixed: '6.3.1' })] },
    { package: npm('semver'), ranges: [ecosystemRange({ introduced: '0' }, { fixed: '5.7.2' })] },
  ],
  database_specific: { severity: 'MODERATE' },
};

/** No fix yet: the last version known affected, and a score only as a CVSS vector (9.8). */
const xmlUnfixed = {
  id: 'GHSA-2222-3333-4444',
  modified: '2024-01-01T00:00:00Z',
  summary: 'Remote code execution in xml-demo',
  affected: [{ package: npm('xml-demo'), ranges: [{ type: 'SEMVER', events: [{ introduced: '1.0.0' }, { last_affected: '1.4.2' }] }] }],
  severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' }],
};

/** A malicious release, listed by version, its only score a CVSS v4 vector (not scored here). */
const malicious = {
  id: 'MAL-2024-1234',
  modified: '2024-05-05T00:00:00Z',
  summary: 'Malicious code in evil-pkg (npm)',
  affected: [{ package: npm('evil-pkg'), versions: ['1.0.1', '1.0.2'] }],
  severity: [{ type: 'CVSS_V4', score: 'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H' }],
  references: [{ type: 'WEB', url: 'https://example.org/evil-pkg' }],
};

const withdrawn = {
  id: 'GHSA-9999-8888-7777',
  modified: '2023-02-02T00:00:00Z',
  withdrawn: '2023-02-02T00:00:00Z',
  summary: 'Withdrawn: not a vulnerability in lodash after all',
  affected: [{ package: npm('lodash'), ranges: [ecosystemRange({ introduced: '0' })] }],
  database_specific: { severity: 'CRITICAL' },
};

/** A PyPI package that happens to share an npm package's name. */
const pypi = {
  id: 'PYSEC-2023-0001',
  modified: '2023-03-03T00:00:00Z',
  summary: 'A Python lodash port',
  affected: [{ package: { ecosystem: 'PyPI', name: 'lodash' }, ranges: [ecosystemRange({ introduced: '0' })] }],
};

/** A scope-changed XSS vector (6.1) on a scoped package, with a limit and an introduced-only second range. */
const scopedXss = {
  id: 'OSV-2024-77',
  modified: '2024-02-02T00:00:00Z',
  summary: 'XSS in @acme/markdown',
  affected: [
    {
      package: npm('@acme/markdown'),
      ranges: [ecosystemRange({ introduced: '2.0.0' }, { limit: '2.5.0' }), { type: 'GIT', repo: 'https://github.com/acme/markdown', events: [{ introduced: '0' }] }],
      severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N' }],
    },
  ],
  references: [{ type: 'REPORT', url: 'https://github.com/acme/markdown/issues/1' }, { type: 'ADVISORY', url: 'https://acme.example/advisories/77' }],
};

/** Overlapping ranges: the lowest `fixed` above 1.0.0 (2.5.0) is still inside the first one. */
const overlapping = {
  id: 'OSV-2024-88',
  modified: '2024-02-02T00:00:00Z',
  summary: 'Overlap in tangled',
  affected: [{ package: npm('tangled'), ranges: [ecosystemRange({ introduced: '0' }, { fixed: '3.0.0' }), ecosystemRange({ introduced: '2.0.0' }, { fixed: '2.5.0' })] }],
};

let index: AdvisoryIndex;

beforeAll(async () => {
  const dir = await database({
    'GHSA-35jh-r3h4-6jhm.json': lodashInjectionOld,
    'GHSA-2222-3333-4444.json': xmlUnfixed,
    'MAL-2024-1234.json': malicious,
    'PYSEC-2023-0001.json': pypi,
    'npm/GHSA-35jh-r3h4-6jhm.json': lodashInjection,
    'npm/GHSA-c2qf-rxjj-qqgw.json': semverRedos,
    'npm/GHSA-9999-8888-7777.json': withdrawn,
    'npm/OSV-2024-77.json': scopedXss,
    'npm/OSV-2024-88.json': overlapping,
    'npm/zz-broken.json': '{ "id": "GHSA-broken", "affected": [ ',
    'npm/not-osv.json': { hello: 'world' },
    'README.md': 'not read: only *.json files are records',
  });
  index = await loadAdvisories(dir);
});

const ids = (name: string, version: string) => index.matching(name, version).map((m) => m.id);

describe('matching an installed version', () => {
  it('finds a range with introduced "0" and fixed, with its severity from GHSA, fix and URL', () => {
    expect(index.matching('lodash', '4.17.20')).toEqual([
      {
        id: 'GHSA-35jh-r3h4-6jhm',
        aliases: ['CVE-2021-23337'],
        summary: 'Command Injection in lodash',
        severity: 'high',
        fixed: '4.17.21',
        url: 'https://github.com/advisories/GHSA-35jh-r3h4-6jhm',
      },
    ]);
    expect(ids('lodash', '4.17.21')).toEqual([]);
    expect(ids('lodash', '0.1.0')).toEqual(['GHSA-35jh-r3h4-6jhm']);
    // A prerelease of the fixed version comes before it.
    expect(ids('lodash', '4.17.21-rc.1')).toEqual(['GHSA-35jh-r3h4-6jhm']);
  });

  it('takes the newer of two copies of one advisory', () => {
    // The older copy says 4.17.20 fixed it; the newer one says 4.17.21.
    expect(index.matching('lodash', '4.17.20')[0]?.fixed).toBe('4.17.21');
  });

  it('picks the lowest fixed version above the installed one, per release line', () => {
    expect(index.matching('semver', '5.7.1')).toMatchObject([{ id: 'GHSA-c2qf-rxjj-qqgw', severity: 'moderate', fixed: '5.7.2' }]);
    expect(index.matching('semver', '6.3.0')[0]?.fixed).toBe('6.3.1');
    expect(index.matching('semver', '7.3.8')[0]?.fixed).toBe('7.5.2');
    expect(ids('semver', '6.3.1')).toEqual([]);
    expect(ids('semver', '7.5.2')).toEqual([]);
  });

  it('skips a fixed version that another range still covers', () => {
    expect(index.matching('tangled', '1.0.0')[0]?.fixed).toBe('3.0.0');
    expect(index.matching('tangled', '2.2.0')[0]?.fixed).toBe('3.0.0');
    expect(ids('tangled', '3.0.0')).toEqual([]);
  });

  it('stops at last_affected, with no fix to offer, and scores the CVSS vector (9.8: critical)', () => {
    expect(index.matching('xml-demo', '1.4.2')).toEqual([{ id: 'GHSA-2222-3333-4444', aliases: [], summary: 'Remote code execution in xml-demo', severity: 'critical', url: 'https://github.com/advisories/GHSA-2222-3333-4444' }]);
    expect(ids('xml-demo', '1.0.0')).toEqual(['GHSA-2222-3333-4444']);
    expect(ids('xml-demo', '1.4.3')).toEqual([]);
    expect(ids('xml-demo', '0.9.9')).toEqual([]);
  });

  it('matches the listed versions exactly; a CVSS v4 score alone is unknown', () => {
    expect(index.matching('evil-pkg', '1.0.2')).toEqual([{ id: 'MAL-2024-1234', aliases: [], summary: 'Malicious code in evil-pkg (npm)', severity: 'unknown', url: 'https://example.org/evil-pkg' }]);
    expect(ids('evil-pkg', '1.0.1')).toEqual(['MAL-2024-1234']);
    expect(ids('evil-pkg', '1.0.3')).toEqual([]);
  });

  it("stops below a limit, ignores GIT ranges, and scores the package's own vector (6.1: moderate)", () => {
    expect(index.matching('@acme/markdown', '2.4.9')).toEqual([{ id: 'OSV-2024-77', aliases: [], summary: 'XSS in @acme/markdown', severity: 'moderate', url: 'https://acme.example/advisories/77' }]);
    expect(ids('@acme/markdown', '2.5.0')).toEqual([]);
    // The GIT range's introduced "0" would cover this one if it were read as versions.
    expect(ids('@acme/markdown', '1.0.0')).toEqual([]);
  });

  it('leaves out withdrawn advisories and other ecosystems', () => {
    expect(ids('lodash', '4.17.21')).toEqual([]);
    expect(index.withdrawn).toBe(1);
    expect(ids('no-such-package', '1.0.0')).toEqual([]);
    // Names as npm spells them: no case folding.
    expect(ids('Lodash', '4.17.20')).toEqual([]);
  });

  it('counts the unreadable files, keeping the first reason, and reads the rest', () => {
    expect(index.unreadable.count).toBe(2);
    expect(index.unreadable.first).toBe('npm/not-osv.json: not an OSV record: no "id"');
    // 11 JSON files: 2 unreadable, 9 records; the PyPI one, the withdrawn one and the old copy do not count as npm advisories.
    expect(index.records).toBe(9);
    expect(index.advisories).toBe(6);
  });
});

describe('other layouts and ecosystems', () => {
  it("indexes the ecosystem it is asked for", async () => {
    const dir = await database({ 'a.json': pypi, 'b.json': lodashInjection });
    const python = await loadAdvisories(dir, 'PyPI');
    expect(python.matching('lodash', '4.17.21').map((m) => m.id)).toEqual(['PYSEC-2023-0001']);
    expect(python.advisories).toBe(1);
  });

  it("reads @renovatebot/osv-offline-db's npm.nedb: later lines replace earlier ones, $$deleted removes", async () => {
    const line = (doc: object) => JSON.stringify(doc);
    const nedb = [
      line({ ...semverRedos, _id: 'aaa1', affected: [{ package: npm('semver'), ranges: [ecosystemRange({ introduced: '0' }, { fixed: '7.5.0' })] }] }),
      line({ ...xmlUnfixed, _id: 'aaa2' }),
      line({ $$indexCreated: { fieldName: 'id', unique: true } }),
      // NeDB appends the updated document under the same _id.
      line({ ...semverRedos, _id: 'aaa1' }),
      line({ $$deleted: true, _id: 'aaa2' }),
      '{ "_id": "aaa3", "id": "cut off',
      '',
    ].join('\n');
    const dir = await database({ 'npm.nedb': nedb });
    const db = await loadAdvisories(dir);
    expect(db.matching('semver', '7.5.1')).toMatchObject([{ id: 'GHSA-c2qf-rxjj-qqgw', fixed: '7.5.2' }]);
    expect(db.matching('xml-demo', '1.4.0')).toEqual([]);
    expect(db.unreadable.count).toBe(1);
    expect(db.unreadable.first).toMatch(/^npm\.nedb line 6: not valid JSON: /);
  });

  it('fails in one line when the directory is not there', async () => {
    const missing = path.join(tmpdir(), 'caretaker-osv-does-not-exist');
    await expect(loadAdvisories(missing)).rejects.toThrow(new Error(`OSV database ${missing} cannot be read: ENOENT`));
  });

  it('counts a record past the size bound as unreadable rather than reading it', async () => {
    const big = { ...lodashInjection, details: 'x'.repeat(4 * 1024 * 1024 + 1) };
    const dir = await database({ 'big.json': big, 'ok.json': semverRedos });
    const db = await loadAdvisories(dir);
    expect(db.unreadable).toEqual({ count: 1, first: 'big.json: larger than 4194304 bytes' });
    expect(db.matching('semver', '7.0.0').map((m) => m.id)).toEqual(['GHSA-c2qf-rxjj-qqgw']);
  });
});

describe('CVSS v3 base scores', () => {
  // Published base scores: NVD's, the CVSS v3.1 examples document's, and FIRST's calculator's for the 3.0 vectors.
  it.each([
    ['CVE-2014-6271 Shellshock', 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', 9.8],
    ['CVE-2014-0160 Heartbleed', 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N', 7.5],
    ['CVE-2021-44228 Log4Shell', 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H', 10],
    ['CVE-2014-3566 POODLE', 'CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N', 3.1],
    ['CVE-2013-1937 phpMyAdmin XSS', 'CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N', 6.1],
    ['CVE-2013-0375 MySQL', 'CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N', 6.4],
    ['CVE-2012-1516 VMware', 'CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H', 9.9],
    ['CVE-2009-0783 Tomcat', 'CVSS:3.1/AV:L/AC:L/PR:H/UI:N/S:U/C:L/I:L/A:L', 4.2],
    ['CVE-2014-2005 Sophos', 'CVSS:3.1/AV:P/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', 6.8],
    ['CVE-2013-6014 Juniper', 'CVSS:3.1/AV:A/AC:L/PR:N/UI:N/S:C/C:H/I:N/A:H', 9.3],
    ['CVE-2020-28498 elliptic (the OSV schema example)', 'CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:C/C:H/I:N/A:N', 6.8],
    ['CVE-2021-23337 lodash', 'CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H', 7.2],
    ['a 3.0 vector, PR:H weighed 0.5 as the scope changes', 'CVSS:3.0/AV:L/AC:L/PR:H/UI:N/S:C/C:H/I:H/A:H', 8.2],
    ['adjacent, high complexity, scope changed', 'CVSS:3.0/AV:A/AC:H/PR:L/UI:R/S:C/C:H/I:H/A:H', 7.6],
    ['local, high privileges, low impacts, scope changed', 'CVSS:3.0/AV:L/AC:H/PR:H/UI:N/S:C/C:L/I:N/A:N', 2.5],
    ['an exact 5.0 that stays 5.0', 'CVSS:3.0/AV:A/AC:H/PR:N/UI:N/S:U/C:L/I:L/A:L', 5.0],
    ['no impact at all', 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N', 0],
    ['temporal metrics after the base ones, ignored', 'CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N/E:P/RL:W/RC:C', 6.1],
  ])('%s: %s is %d', (_what, vector, score) => {
    expect(cvss3BaseScore(vector)).toBe(score);
  });

  it('refuses what is not a complete v3 vector', () => {
    expect(cvss3BaseScore('AV:N/AC:L/Au:N/C:P/I:P/A:P')).toBeUndefined();
    expect(cvss3BaseScore('CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N')).toBeUndefined();
    expect(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H')).toBeUndefined();
    expect(cvss3BaseScore('CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H')).toBeUndefined();
    expect(cvss3BaseScore('CVSS:3.1/AV:N/AV:L/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H')).toBeUndefined();
  });

  it('maps scores to the qualitative ratings', () => {
    expect([0, 0.1, 3.9, 4, 6.9, 7, 8.9, 9, 10].map(severityOfScore)).toEqual(['low', 'low', 'low', 'moderate', 'moderate', 'high', 'high', 'critical', 'critical']);
  });
});
