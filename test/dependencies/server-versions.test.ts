/**
 * The PostgreSQL and Redis server versions against a versions file: the
 * shipped data/versions.json, what servers report (parsed), the findings
 * from a small file written here, a broken file, and the real test servers.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import {
  SERVER_VERSION_CODES,
  checkServerVersion,
  compareServerVersion,
  loadVersions,
  parseServerVersion,
  shippedVersionsPath,
  type ServerKind,
  type VersionsData,
} from '../../src/dependencies/server-versions';
import { TEST_PG_ADMIN_URL, TEST_REDIS_URL } from '../support/env';

const ROOT = resolve(__dirname, '../..');
const SOON = { eolSoonDays: 180 };

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ct-server-versions-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** `content` written as a versions file in the temp dir; its path. */
function writeFile(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return path;
}

const SMALL = {
  generatedAt: '2026-08-13',
  sources: 'written by the test',
  postgresql: {
    '14': { firstRelease: '2021-09-30', latest: '14.24', eol: '2026-11-12' },
    '16': { firstRelease: '2023-09-14', latest: '16.15', eol: '2028-11-09' },
    '18': { firstRelease: '2025-09-25', latest: '18.6', eol: '2030-11-14', neverReleased: ['18.5'] },
  },
  redis: {
    '7.2': { latest: '7.2.12', eol: '2029-12-01' },
    '8.0': { latest: '8.0.4', eol: '2026-12-01' },
    '8.10': { latest: '8.10.2', eol: null },
  },
};

/** The small file, through loadVersions as a real one would be. */
const small = (): VersionsData => loadVersions(writeFile('small.json', SMALL));
const SEPTEMBER = new Date('2026-09-01T12:00:00Z');

describe('the shipped versions file', () => {
  it('is found from src/ (ts-jest) and from dist/src/ (the build), at the package root', () => {
    expect(shippedVersionsPath()).toBe(join(ROOT, 'data', 'versions.json'));
    expect(shippedVersionsPath(join(ROOT, 'dist', 'src', 'dependencies'))).toBe(join(ROOT, 'data', 'versions.json'));
  });

  it("does not take another package's root for caretaker's", () => {
    const other = join(dir, 'monorepo');
    mkdirSync(join(other, 'a', 'b'), { recursive: true });
    writeFileSync(join(other, 'package.json'), JSON.stringify({ name: 'someone-else' }));
    expect(() => shippedVersionsPath(join(other, 'a', 'b'))).toThrow(/package root .* is not above .*monorepo/);
  });

  it('loads and validates, with PostgreSQL 12 to 18 on their five-year policy', () => {
    const data = loadVersions();
    expect(data.generatedAt).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(data.sources).toContain('https://www.postgresql.org/support/versioning/');
    expect(Object.keys(data.postgresql).sort((a, b) => Number(a) - Number(b))).toEqual(['12', '13', '14', '15', '16', '17', '18']);
    for (const [major, line] of Object.entries(data.postgresql)) {
      // Five years after the first release, the final minor in November of that year.
      expect({ major, eolYear: Number(line.eol!.slice(0, 4)) - Number(line.firstRelease!.slice(0, 4)), eolMonth: line.eol!.slice(5, 7) }).toEqual({ major, eolYear: 5, eolMonth: '11' });
    }
    expect(Object.keys(data.redis)).toEqual(expect.arrayContaining(['6.2', '7.2', '7.4', '8.0', '8.2']));
    // No fact in the file is newer than the date it claims.
    for (const line of [...Object.values(data.postgresql), ...Object.values(data.redis)]) {
      if (line.firstRelease) expect(line.firstRelease <= data.generatedAt).toBe(true);
    }
  });
});

describe('parseServerVersion', () => {
  it.each<[ServerKind, string, { major: string; version: string; prerelease: boolean }]>([
    ['postgresql', '16.4', { major: '16', version: '16.4', prerelease: false }],
    ['postgresql', '16.4 (Debian 16.4-1.pgdg120+2)', { major: '16', version: '16.4', prerelease: false }],
    ['postgresql', '15.20 (Debian 15.20-0+deb12u1)', { major: '15', version: '15.20', prerelease: false }],
    ['postgresql', ' 17.2 (Ubuntu 17.2-1.pgdg24.04+1) ', { major: '17', version: '17.2', prerelease: false }],
    ['postgresql', '10.0', { major: '10', version: '10.0', prerelease: false }],
    ['postgresql', '14.13 (Homebrew)', { major: '14', version: '14.13', prerelease: false }],
    ['postgresql', '9.6.24', { major: '9.6', version: '9.6.24', prerelease: false }],
    ['postgresql', '17beta2', { major: '17', version: '17beta2', prerelease: true }],
    ['postgresql', '18rc1', { major: '18', version: '18rc1', prerelease: true }],
    ['postgresql', '19devel', { major: '19', version: '19devel', prerelease: true }],
    ['postgresql', '9.6beta1', { major: '9.6', version: '9.6beta1', prerelease: true }],
    ['postgresql', '160004', { major: '16', version: '16.4', prerelease: false }],
    ['postgresql', '180006', { major: '18', version: '18.6', prerelease: false }],
    ['postgresql', '90624', { major: '9.6', version: '9.6.24', prerelease: false }],
    ['redis', '7.2.5', { major: '7.2', version: '7.2.5', prerelease: false }],
    ['redis', '8.0.0', { major: '8.0', version: '8.0.0', prerelease: false }],
    ['redis', '8.10.2', { major: '8.10', version: '8.10.2', prerelease: false }],
    ['redis', '7.9.240', { major: '7.9', version: '7.9.240', prerelease: true }],
    ['redis', '255.255.255', { major: '255.255', version: '255.255.255', prerelease: true }],
  ])('reads %s %j', (kind, reported, expected) => {
    expect(parseServerVersion(kind, reported)).toEqual(expected);
  });

  it.each<[ServerKind, string]>([
    ['postgresql', ''],
    ['postgresql', 'PostgreSQL 16.4 on x86_64-pc-linux-gnu'],
    ['postgresql', '16'],
    ['postgresql', '9.6'],
    ['postgresql', '16.4.1'],
    ['postgresql', '17.1beta1'],
    ['postgresql', '12345'],
    ['postgresql', '16.4\nDROP TABLE x'],
    ['postgresql', '16.4 (Debian)\n(x)'],
    ['postgresql', '16.4 custom'],
    ['redis', '7.2'],
    ['redis', 'v7.2.5'],
    ['redis', '7.2.5-rc1'],
    ['redis', 'redis_version:7.2.5'],
  ])('refuses %s %j with one line naming it', (kind, reported) => {
    let message = '';
    try {
      parseServerVersion(kind, reported);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(new RegExp(`^unrecognised ${kind === 'redis' ? 'Redis' : 'PostgreSQL'} version ".*": expected `));
    expect(message).toContain(JSON.stringify(reported.trim() === '' ? '' : reported.replace(/\s+/g, ' ').trim()));
    expect(message).not.toContain('\n');
  });
});

describe('checkServerVersion', () => {
  it('reports a server behind the newest minor of its major, with how far and where the notes are', () => {
    const findings = checkServerVersion('postgresql', '16.4 (Debian 16.4-1.pgdg120+2)', small(), SEPTEMBER, SOON);
    expect(findings).toHaveLength(1);
    const [f] = findings;
    expect(f).toMatchObject({ code: 'server_minor_behind', severity: 'warning', subject: 'PostgreSQL 16.4' });
    expect(f!.message).toBe('PostgreSQL 16.4 is 11 minor releases behind 16.15, the newest of 16 in the versions file of 2026-08-13');
    expect(f!.suggestion).toContain('https://www.postgresql.org/docs/release/16.15/');
    expect(f!.details).toMatchObject({ standing: 'behind', releasesBehind: 11, latest: '16.15', eol: '2028-11-09', versionsFileDate: '2026-08-13' });
  });

  it('does not count a minor that was never released', () => {
    const [f] = checkServerVersion('postgresql', '18.4', small(), SEPTEMBER, SOON);
    expect(f).toMatchObject({ code: 'server_minor_behind', details: { releasesBehind: 1 } });
    expect(f!.message).toContain('1 minor release behind 18.6');
  });

  it('reports a Redis line behind its newest patch, linking its release', () => {
    const findings = checkServerVersion('redis', '7.2.5', small(), SEPTEMBER, SOON);
    expect(findings.map((f) => f.code)).toEqual(['server_minor_behind']);
    expect(findings[0]!.message).toBe('Redis 7.2.5 is 7 patch releases behind 7.2.12, the newest of 7.2 in the versions file of 2026-08-13');
    expect(findings[0]!.suggestion).toContain('https://github.com/redis/redis/releases/tag/7.2.12');
  });

  it('has nothing to say of a server on the newest release of a supported major', () => {
    expect(checkServerVersion('postgresql', '16.15', small(), SEPTEMBER, SOON)).toEqual([]);
    expect(checkServerVersion('postgresql', '160015', small(), SEPTEMBER, SOON)).toEqual([]);
    expect(checkServerVersion('redis', '8.10.2', small(), SEPTEMBER, SOON)).toEqual([]);
    expect(compareServerVersion('postgresql', '16.15', small()).standing).toBe('current');
  });

  it('takes a release newer than the file knows as the file being older, not the server behind', () => {
    expect(checkServerVersion('postgresql', '16.16', small(), SEPTEMBER, SOON)).toEqual([]);
    expect(compareServerVersion('postgresql', '16.16', small())).toMatchObject({ standing: 'newer_than_file', releasesBehind: 0, line: { latest: '16.15' } });
    expect(compareServerVersion('redis', '8.10.3', small()).standing).toBe('newer_than_file');
    // Its major's end of life still counts, and the finding's details say the file is older.
    const [f] = checkServerVersion('postgresql', '14.25', small(), SEPTEMBER, SOON);
    expect(f).toMatchObject({ code: 'server_eol_soon', details: { standing: 'newer_than_file', latest: '14.24' } });
  });

  it('warns of an end of life within eolSoonDays, naming the date and the days left', () => {
    const findings = checkServerVersion('postgresql', '14.24', small(), SEPTEMBER, SOON);
    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatchObject({ code: 'server_eol_soon', severity: 'warning', details: { daysToEol: 72 } });
    expect(findings[0]!.message).toBe('PostgreSQL 14 reaches its end of life on 2026-11-12, in 72 days (running 14.24)');
    expect(findings[0]!.suggestion).toContain('PostgreSQL 18 (supported until 2030-11-14)');
    expect(checkServerVersion('postgresql', '14.24', small(), SEPTEMBER, { eolSoonDays: 71 })).toEqual([]);
    expect(checkServerVersion('postgresql', '14.24', small(), SEPTEMBER, { eolSoonDays: 72 })).toHaveLength(1);
  });

  it('reports a major past its end of life as critical, the day after its last day', () => {
    expect(checkServerVersion('postgresql', '14.24', small(), new Date('2026-11-12T23:59:00Z'), SOON)[0]!.message).toContain('on 2026-11-12, today');
    const findings = checkServerVersion('postgresql', '14.20', small(), new Date('2026-11-13T00:01:00Z'), SOON);
    expect(findings.map((f) => [f.code, f.severity])).toEqual([
      ['server_eol', 'critical'],
      ['server_minor_behind', 'warning'],
    ]);
    expect(findings[0]!.message).toBe('PostgreSQL 14 reached its end of life on 2026-11-12 (running 14.20): it gets no more fixes, security ones included');
    expect(findings[0]!.details).toMatchObject({ daysPastEol: 1 });
    const redis = checkServerVersion('redis', '8.0.4', small(), new Date('2026-12-04T08:00:00Z'), SOON);
    expect(redis.map((f) => f.code)).toEqual(['server_eol']);
    expect(redis[0]!.suggestion).toContain('Redis 8.10 (no end of life published)');
  });

  it('never judges an end of life the file has no date for', () => {
    expect(checkServerVersion('redis', '8.10.2', small(), new Date('2040-01-01T00:00:00Z'), { eolSoonDays: 100_000 })).toEqual([]);
  });

  it('does not guess about a major the file does not list', () => {
    const newer = checkServerVersion('postgresql', '19.1', small(), SEPTEMBER, SOON);
    expect(newer).toHaveLength(1);
    expect(newer[0]).toMatchObject({ code: 'server_version_unknown', severity: 'info', details: { standing: 'major_newer_than_file' } });
    expect(newer[0]!.message).toBe('PostgreSQL 19.1 is newer than every PostgreSQL major in the versions file of 2026-08-13 (newest listed: 18): the file is older than the server, nothing was compared');
    expect(newer[0]!.suggestion).toMatch(/newer copy of the versions file/);

    const older = checkServerVersion('postgresql', '9.6.24', small(), SEPTEMBER, SOON);
    expect(older[0]).toMatchObject({ code: 'server_version_unknown', severity: 'info', details: { standing: 'major_older_than_file' } });
    expect(older[0]!.message).toBe('PostgreSQL 9.6.24 is older than every PostgreSQL major in the versions file of 2026-08-13 (oldest listed: 14, end of life 2026-11-12): it is long past end of life');

    const between = checkServerVersion('redis', '7.4.9', small(), SEPTEMBER, SOON);
    expect(between[0]).toMatchObject({ code: 'server_version_unknown', severity: 'info', details: { standing: 'major_not_listed' } });
    expect(between[0]!.message).toBe('Redis 7.4 (running 7.4.9) is not listed in the versions file of 2026-08-13 (it lists 7.2, 8.0, 8.10): nothing was compared');
    // 8.10 sorts after 8.2 as a version, not as text.
    expect(compareServerVersion('redis', '8.12.0', small()).standing).toBe('major_newer_than_file');
  });

  it('says a prerelease is one rather than comparing it', () => {
    for (const [kind, reported] of [
      ['postgresql', '17beta2'],
      ['postgresql', '14rc1'],
      ['redis', '8.1.240'],
      ['redis', '255.255.255'],
    ] as const) {
      const findings = checkServerVersion(kind, reported, small(), new Date('2027-06-01T00:00:00Z'), SOON);
      expect(findings).toHaveLength(1);
      expect(findings[0]).toMatchObject({ code: 'server_version_unknown', severity: 'info', details: { standing: 'prerelease' } });
      expect(findings[0]!.message).toContain(`${reported} is a prerelease`);
    }
  });

  it('writes every message on one line, with only its declared codes', () => {
    const cases: [ServerKind, string, Date][] = [
      ['postgresql', '14.20', new Date('2026-11-20T00:00:00Z')],
      ['postgresql', '14.20', SEPTEMBER],
      ['postgresql', '19.0', SEPTEMBER],
      ['postgresql', '9.6.24', SEPTEMBER],
      ['redis', '7.0.15', SEPTEMBER],
      ['redis', '7.2.1', SEPTEMBER],
    ];
    const all = cases.flatMap(([kind, reported, now]) => checkServerVersion(kind, reported, small(), now, SOON));
    expect(all.length).toBeGreaterThanOrEqual(6);
    for (const f of all) {
      expect(Object.keys(SERVER_VERSION_CODES)).toContain(f.code);
      expect(`${f.message}${f.suggestion}`).not.toMatch(/[\r\n]/);
    }
  });

  it('refuses a bad eolSoonDays or date, and an unreadable version', () => {
    expect(() => checkServerVersion('postgresql', '16.4', small(), SEPTEMBER, { eolSoonDays: -1 })).toThrow(/eolSoonDays must be a number of days/);
    expect(() => checkServerVersion('postgresql', '16.4', small(), SEPTEMBER, { eolSoonDays: Number.NaN })).toThrow(/eolSoonDays/);
    expect(() => checkServerVersion('postgresql', '16.4', small(), new Date('nope'), SOON)).toThrow(/now is not a valid date/);
    expect(() => checkServerVersion('redis', 'banana', small(), SEPTEMBER, SOON)).toThrow(/unrecognised Redis version "banana"/);
  });
});

describe('a broken versions file', () => {
  const broken = (mutate: (data: typeof SMALL & Record<string, unknown>) => void) => {
    const data = structuredClone(SMALL) as typeof SMALL & Record<string, unknown>;
    mutate(data);
    return data;
  };

  it.each<[string, unknown, RegExp]>([
    ['not-json.json', '{ "generatedAt": ', /is not JSON: /],
    ['wrong-major.json', broken((d) => (d.postgresql['16'].latest = '17.1')), /is invalid: postgresql\.16\.latest: 17\.1 is not a release of 16$/],
    ['bad-date.json', broken((d) => (d.postgresql['14'].eol = '2026-02-30')), /is invalid: postgresql\.14\.eol: is not a calendar date$/],
    ['bad-month.json', broken((d) => (d.generatedAt = '2026-13-01')), /is invalid: generatedAt: is not a calendar date$/],
    ['bad-version.json', broken((d) => (d.redis['7.2'].latest = '7.2.x')), /is invalid: redis\["7\.2"\]\.latest: expected a version/],
    ['bad-major.json', broken((d) => ((d.redis as Record<string, unknown>)['8'] = { latest: '8.0.1', eol: null })), /is invalid: redis\.8: is not a major such as "7\.2"$/],
    ['unknown-key.json', broken((d) => (d.mysql = {})), /is invalid: \(root\): unknown key "mysql"$/],
    ['no-eol.json', broken((d) => delete (d.redis['8.10'] as Partial<(typeof SMALL)['redis']['8.10']>).eol), /is invalid: redis\["8\.10"\]\.eol: /],
  ])('%s is refused in one line naming the file and its first problem', (name, content, problem) => {
    const path = writeFile(name, content);
    let message = '';
    try {
      loadVersions(path);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message.startsWith(`versions file ${path} `)).toBe(true);
    expect(message).toMatch(problem);
    expect(message).not.toContain('\n');
  });

  it('that is missing is refused the same way', () => {
    const path = join(dir, 'missing.json');
    expect(() => loadVersions(path)).toThrow(new RegExp(`^versions file ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} cannot be read: ENOENT`));
  });
});

describe('against the real test servers', () => {
  /** A versions file listing only `major` of `kind`, its newest release `latest`, supported for a long time yet. */
  function fileWith(kind: ServerKind, major: string, latest: string): VersionsData {
    const line = kind === 'postgresql' ? { firstRelease: '2020-01-01', latest, eol: '2099-11-12' } : { latest, eol: '2099-12-01' };
    return loadVersions(writeFile(`real-${kind}-${latest}.json`, { ...SMALL, postgresql: {}, redis: {}, [kind]: { [major]: line } }));
  }
  const nextRelease = (version: string) => version.replace(/\d+$/, (n) => String(Number(n) + 1));

  async function postgresVersions(): Promise<{ version: string; num: string }> {
    const db = new Client({ connectionString: TEST_PG_ADMIN_URL, connectionTimeoutMillis: 5_000, query_timeout: 10_000 });
    await db.connect();
    try {
      const version = (await db.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version;
      const num = (await db.query<{ server_version_num: string }>('SHOW server_version_num')).rows[0]!.server_version_num;
      return { version, num };
    } finally {
      await db.end();
    }
  }

  async function redisVersion(): Promise<string> {
    const redis = new Redis(TEST_REDIS_URL, { lazyConnect: true, connectTimeout: 5_000, commandTimeout: 10_000, maxRetriesPerRequest: 1, retryStrategy: () => null });
    try {
      await redis.connect();
      const info = await redis.info('server');
      const version = /^redis_version:(.+)$/m.exec(info)?.[1]?.trim();
      if (!version) throw new Error(`INFO server has no redis_version line: ${info.slice(0, 200)}`);
      return version;
    } finally {
      redis.disconnect();
    }
  }

  it("reads PostgreSQL's server_version in both forms, and is behind a file claiming a newer minor, current with one claiming its own", async () => {
    const reported = await postgresVersions();
    const server = parseServerVersion('postgresql', reported.version);
    expect(server.prerelease).toBe(false);
    expect(parseServerVersion('postgresql', reported.num)).toEqual(server);

    const ahead = checkServerVersion('postgresql', reported.version, fileWith('postgresql', server.major, nextRelease(server.version)), new Date(), SOON);
    expect(ahead.map((f) => f.code)).toEqual(['server_minor_behind']);
    expect(ahead[0]!.details).toMatchObject({ releasesBehind: 1, version: server.version });
    expect(ahead[0]!.message).toContain(`PostgreSQL ${server.version} is 1 minor release behind ${nextRelease(server.version)}`);

    expect(checkServerVersion('postgresql', reported.version, fileWith('postgresql', server.major, server.version), new Date(), SOON)).toEqual([]);
  });

  it("reads Redis's redis_version, and is behind a file claiming a newer patch, current with one claiming its own", async () => {
    const reported = await redisVersion();
    const server = parseServerVersion('redis', reported);
    expect(server.prerelease).toBe(false);

    const ahead = checkServerVersion('redis', reported, fileWith('redis', server.major, nextRelease(server.version)), new Date(), SOON);
    expect(ahead.map((f) => f.code)).toEqual(['server_minor_behind']);
    expect(ahead[0]!.message).toContain(`Redis ${server.version} is 1 patch release behind ${nextRelease(server.version)}`);

    expect(checkServerVersion('redis', reported, fileWith('redis', server.major, server.version), new Date(), SOON)).toEqual([]);
  });
});
