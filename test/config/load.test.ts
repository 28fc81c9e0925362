import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { loadConfig } from '../../src/config/load';
import { ConfigError } from '../../src/errors';
import { TASKS } from '../../src/jobs';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'caretaker-config-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const VALID = `
redis: { url: "redis://127.0.0.1:6379" }
targets:
  postgres:
    - name: app
      url: "postgres://app:\${APP_DB_PASSWORD}@db.internal:5432/app"
schedules:
  nightly: { cron: "30 2 * * *", timezone: Europe/Berlin, tasks: [connections] }
`;

function load(yaml: string, env: Record<string, string> = {}) {
  const path = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, yaml);
  return loadConfig({ path, env, registry: TASKS });
}

function problemsOf(yaml: string, env: Record<string, string> = {}): string[] {
  try {
    load(yaml, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected the config to be rejected');
}

describe('loadConfig', () => {
  it('reads a valid file, interpolating ${VAR} and applying defaults', () => {
    const config = load(VALID, { APP_DB_PASSWORD: 's3cret' });
    expect(config.targets.postgres[0]!.url).toBe('postgres://app:s3cret@db.internal:5432/app');
    expect(config.targets.postgres[0]!.allow).toEqual({ vacuum: false, terminateIdle: false });
    expect(config.state.url).toBe(config.targets.postgres[0]!.url);
    expect(config.state.retentionDays).toBe(400);
    expect(config.web).toMatchObject({ host: '127.0.0.1', port: 3000 });
    expect(config.schedules.nightly).toEqual({ cron: '30 2 * * *', timezone: 'Europe/Berlin', tasks: ['connections'] });
  });

  it('uses ${VAR:-default} when the variable is unset', () => {
    const config = load(VALID.replace('${APP_DB_PASSWORD}', '${APP_DB_PASSWORD:-fallback}'));
    expect(config.targets.postgres[0]!.url).toContain(':fallback@');
  });

  it('runs on local defaults from the environment without a file', () => {
    const config = loadConfig({ env: {}, registry: TASKS });
    expect(config.source).toBe('environment defaults');
    // As psql: the OS user when neither the URL nor PGUSER names one.
    expect(config.targets.postgres).toEqual([expect.objectContaining({ name: 'default', url: `postgres://${userInfo().username}@localhost:5432/postgres` })]);
    expect(loadConfig({ env: { PGUSER: 'ops' }, registry: TASKS }).targets.postgres[0]!.url).toBe('postgres://ops@localhost:5432/postgres');
    expect(config.redis.url).toBe('redis://127.0.0.1:6379');
    expect(config.web.auth).toEqual({});

    const custom = loadConfig({
      env: {
        DATABASE_URL: 'postgres://u@h:5433/d',
        REDIS_URL: 'redis://r:6380',
        CARETAKER_STATE_URL: 'postgres://s@h/state',
        HOST: '0.0.0.0',
        PORT: '8080',
        CARETAKER_ADMIN: 'root:pw',
        CARETAKER_VIEWER: 'ops:pw2',
      },
      registry: TASKS,
    });
    expect(custom.targets.postgres[0]!.url).toBe('postgres://u@h:5433/d');
    expect(custom.redis.url).toBe('redis://r:6380');
    expect(custom.state.url).toBe('postgres://s@h/state');
    expect(custom.web).toMatchObject({ host: '0.0.0.0', port: 8080, auth: { admin: 'root:pw', viewer: 'ops:pw2' } });
  });

  it('takes the file from CARETAKER_CONFIG', () => {
    const path = join(dir, 'from-env.yaml');
    writeFileSync(path, VALID.replace('${APP_DB_PASSWORD}', 'x'));
    expect(loadConfig({ env: { CARETAKER_CONFIG: path }, registry: TASKS }).source).toBe(path);
  });

  it('accepts examples/auditron.yaml', () => {
    const config = loadConfig({ path: join(__dirname, '../../examples/auditron.yaml'), env: {}, registry: TASKS });
    expect(config.targets.postgres.map((t) => t.name)).toEqual(['auditron']);
    expect(config.targets.kubernetes[0]).toMatchObject({ namespace: 'auditron' });
    expect(config.tasks.connections).toMatchObject({ warning: 0.8, idleSeconds: 300 });
  });

  // Each malformed file is rejected with the path of what is wrong.
  const malformed: [string, string, RegExp][] = [
    ['bad cron', VALID.replace('30 2 * * *', '61 * * * *'), /^schedules\.nightly\.cron: "61 \* \* \* \*" is not a valid cron expression/],
    ['cron with 4 fields', VALID.replace('30 2 * * *', '* * * *'), /^schedules\.nightly\.cron: .*5 fields, or 6/],
    ['unknown timezone', VALID.replace('Europe/Berlin', 'Mars/Olympus'), /^schedules\.nightly\.timezone: "Mars\/Olympus" is not a known IANA timezone/],
    ['unknown task in a schedule', VALID.replace('tasks: [connections]', 'tasks: [connections, defrag]'), /^schedules\.nightly\.tasks\[1\]: unknown task "defrag"/],
    ['duplicate schedule id', `${VALID}  nightly: { cron: "0 1 * * *", tasks: [connections] }\n`, /^schedules: duplicate key "nightly" \(line \d+\)/],
    ['missing env var', VALID, /^targets\.postgres\[0\]\.url: environment variable APP_DB_PASSWORD is not set/],
    ['port of the wrong type', `${VALID}web: { port: "eighty" }\n`, /^web\.port: /],
    ['retention out of range', `${VALID}state: { retentionDays: 0 }\n`, /^state\.retentionDays: /],
    ['target without url', VALID.replace(/      url: .*\n/, ''), /^targets\.postgres\[0\]\.url: /],
    ['not a postgres url', VALID.replace('postgres://app', 'mysql://app'), /^targets\.postgres\[0\]\.url: must be a URL starting with postgres:\/\//],
    ['duplicate target name', VALID.replace('targets:\n  postgres:\n', 'targets:\n  postgres:\n    - { name: app, url: "postgres://x/y" }\n'), /^targets\.postgres\[1\]\.name: duplicate target name "app"/],
    ['injection-shaped target name', VALID.replace('name: app', 'name: "app; DROP TABLE x"'), /^targets\.postgres\[0\]\.name: must be/],
    ['unknown top-level key', `${VALID}shedules: {}\n`, /^\(root\): unknown key "shedules"/],
    ['bad task param type', `${VALID}tasks: { connections: { warning: "high" } }\n`, /^tasks\.connections\.warning: /],
    ['unknown task param', `${VALID}tasks: { connections: { idleMinutes: 5 } }\n`, /^tasks\.connections\.idleMinutes: not a param of connections/],
    ['warning above critical', `${VALID}tasks: { connections: { warning: 0.95, critical: 0.9 } }\n`, /^tasks\.connections\.warning: warning must not be above critical/],
    ['unknown task section', `${VALID}tasks: { defrag: {} }\n`, /^tasks\.defrag: unknown task "defrag"/],
    ['bad credential', `${VALID}web: { auth: { admin: "no-colon" } }\n`, /^web\.auth\.admin: must be "user:password"/],
    ['new schedule without tasks', VALID.replace(', tasks: [connections]', ''), /^schedules\.nightly: a new schedule needs both "cron" and "tasks"/],
    ['YAML syntax error', 'targets: [postgres\n', /^line \d+: /],
    ['a list instead of a mapping', '- a\n- b\n', /^\(root\): expected a mapping/],
  ];

  it.each(malformed)('rejects %s, naming the path', (_name, yaml, expected) => {
    const env: Record<string, string> = _name === 'missing env var' ? {} : { APP_DB_PASSWORD: 'pw' };
    const problems = problemsOf(yaml, env);
    expect(problems.some((p) => expected.test(p))).toBe(true);
  });

  it('reports a missing file as a config error', () => {
    expect(() => loadConfig({ path: join(dir, 'nope.yaml'), env: {}, registry: TASKS })).toThrow(/cannot read the file \(ENOENT\)/);
  });

  it('puts every problem on its own line-sized message', () => {
    const problems = problemsOf(VALID.replace('30 2 * * *', 'x').replace('Europe/Berlin', 'Nowhere/City'), { APP_DB_PASSWORD: 'pw' });
    expect(problems.length).toBe(2);
    for (const p of problems) expect(p).not.toContain('\n');
  });
});
