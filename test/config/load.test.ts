import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { loadConfig } from '../../src/config/load';
import { interpolate } from '../../src/config/interpolate';
import { ConfigError } from '../../src/errors';
import { TASKS } from '../../src/jobs';
import { runCli } from '../support/cli';
import { spawnCaretaker } from '../support/processes';

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
    expect(config.worker.outboxFlushSeconds).toBe(15);
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
    // The runbook's manual lines: Update documentation on the monthly schedule's cron, the dashboards off.
    expect(config.checklist).toEqual([
      { id: 'update-docs', title: 'Update documentation', cron: '0 5 1 * *', timezone: 'UTC', graceHours: 168, enabled: true, link: 'https://wiki.example.com/auditron/runbook' },
      { id: 'review-dashboards', title: 'Review Grafana dashboards', cron: '0 9 * * *', timezone: 'Europe/Berlin', graceHours: 8, enabled: false },
    ]);
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
    ['checklist item with neither cron nor schedule', `${VALID}checklist: [{ id: docs, title: Docs }]\n`, /^checklist\[0\]: give either "cron" or "schedule" \(a schedule's id\), not neither/],
    ['checklist item with both', `${VALID}checklist: [{ id: docs, title: Docs, cron: "0 5 1 * *", schedule: monthly }]\n`, /^checklist\[0\]: give either "cron" or "schedule" \(a schedule's id\), not both/],
    ['checklist item on an unknown schedule', `${VALID}checklist: [{ id: docs, title: Docs, schedule: fortnightly }]\n`, /^checklist\[0\]\.schedule: unknown schedule "fortnightly" \(known: /],
    ['checklist item with a bad cron', `${VALID}checklist: [{ id: docs, title: Docs, cron: "0 5 32 * *" }]\n`, /^checklist\[0\]\.cron: /],
    ['duplicate checklist item', `${VALID}checklist: [{ id: docs, title: A, cron: "0 5 1 * *" }, { id: docs, title: B, cron: "0 5 1 * *" }]\n`, /^checklist\[1\]\.id: duplicate checklist item "docs"/],
    ['checklist link not http', `${VALID}checklist: [{ id: docs, title: Docs, cron: "0 5 1 * *", link: "javascript:alert(1)" }]\n`, /^checklist\[0\]\.link: must be a URL starting with http/],
    ['a kubernetes target\'s own tag filter that is not a regular expression', VALID.replace('targets:\n', 'targets:\n  kubernetes: [{ name: prod, namespace: shop, tasks: { dependency-check: { tagPattern: "(" } } }]\n'), /^targets\.kubernetes\[0\]\.tasks\.dependency-check\.tagPattern: must be a regular expression/],
    ['a kubernetes target\'s own dependency-check key it may not set', VALID.replace('targets:\n', 'targets:\n  kubernetes: [{ name: prod, namespace: shop, tasks: { dependency-check: { osvDirectory: /x } } }]\n'), /^targets\.kubernetes\[0\]\.tasks\.dependency-check: unknown key "osvDirectory"/],
    ['outbox flush under a second', `${VALID}worker: { outboxFlushSeconds: 0 }\n`, /^worker\.outboxFlushSeconds: /],
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

/**
 * Keys that name a prototype slot (issue 12): yaml keeps `__proto__` as an
 * own key, but any `obj[key] = value` copy of the tree would then set the
 * prototype, and zod reads inherited properties (a target's `__proto__:
 * { allow: { vacuum: true } }` turned vacuum on). They are refused anywhere.
 */
describe('keys that would reach a prototype', () => {
  const PG = '    - name: app\n      url: "postgres://app@db.internal:5432/app"\n';
  const note = (key: string) => `a key named "${key}" is not allowed (it would reach the object's prototype)`;

  const spellings: [string, string, string][] = [
    ['a block mapping under a target', `targets:\n  postgres:\n${PG}      __proto__:\n        allow: { vacuum: true }\n`, `targets.postgres[0].__proto__: ${note('__proto__')}`],
    ['a flow mapping under a target', `targets:\n  postgres:\n${PG}      allow: { __proto__: { vacuum: true } }\n`, `targets.postgres[0].allow.__proto__: ${note('__proto__')}`],
    ['a flow mapping with a double-quoted key', `targets:\n  postgres:\n    - { name: app, url: "postgres://h/app", "__proto__": { allow: { vacuum: true } } }\n`, `targets.postgres[0].__proto__: ${note('__proto__')}`],
    ['a single-quoted key under web', `web:\n  '__proto__': { port: 1 }\n`, `web.__proto__: ${note('__proto__')}`],
    ['an escaped double-quoted key', `web: { "\\x5f_proto__": { port: 1 } }\n`, `web.__proto__: ${note('__proto__')}`],
    ['an explicit key in the tasks map', `tasks:\n  ? __proto__\n  : { connections: { warning: 0.1, critical: 0.2 } }\n`, `tasks.__proto__: ${note('__proto__')}`],
    ['a binary key in the schedules map', `schedules:\n  ? !!binary X19wcm90b19f\n  : { nightly: { cron: "* * * * *", tasks: [connections] } }\n`, `schedules.__proto__: ${note('__proto__')}`],
    ['an alias key', `report: { title: &k __proto__ }\nweb: { *k : { port: 1 } }\n`, `web.__proto__: ${note('__proto__')}`],
    ['a YAML 1.1 merge', `%YAML 1.1\n---\nreport: { <<: { __proto__: { title: x } } }\n`, `report.__proto__: ${note('__proto__')}`],
    ['a JSON document', `{"targets": {"postgres": [{"name": "app", "url": "postgres://h/app", "tasks": {"connections": {"__proto__": {"warning": 0.1}}}}]}}\n`, `targets.postgres[0].tasks.connections.__proto__: ${note('__proto__')}`],
    ['the root', `__proto__: { timezone: Mars/Olympus }\n`, `__proto__: ${note('__proto__')}`],
    ['a param value deep in a list', `tasks:\n  connections: { terminateRoles: [{ __proto__: x }] }\n`, `tasks.connections.terminateRoles[0].__proto__: ${note('__proto__')}`],
    ['"constructor" in the tasks map', `tasks: { constructor: { warning: 0.1 } }\n`, `tasks.constructor: ${note('constructor')}`],
    ['"prototype" under a target', `targets:\n  postgres:\n${PG}      prototype: { allow: { vacuum: true } }\n`, `targets.postgres[0].prototype: ${note('prototype')}`],
    ['"constructor" in a schedule', `schedules: { daily: { constructor: x } }\n`, `schedules.daily.constructor: ${note('constructor')}`],
  ];

  it.each(spellings)('rejects %s, naming the path', (_name, yaml, problem) => {
    expect(problemsOf(yaml)).toEqual([problem]);
  });

  it('names every such key, not only the first', () => {
    expect(problemsOf(`web: { __proto__: {} }\ntasks: { constructor: {}, prototype: {} }\n`)).toEqual([
      `web.__proto__: ${note('__proto__')}`,
      `tasks.constructor: ${note('constructor')}`,
      `tasks.prototype: ${note('prototype')}`,
    ]);
  });

  it.each(spellings)('caretaker check-config: %s is exit 3 with one line', async (_name, yaml, problem) => {
    const path = join(dir, `proto-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(path, yaml);
    const out = await runCli(['check-config', '--config', path]);
    expect(out.code).toBe(3);
    expect(out.stdout).toBe('');
    expect(out.stderr).toBe(`caretaker: invalid config (${path}): ${problem}\n`);
  });

  it('loads a config that only has the words in values', () => {
    const yaml = `${VALID}web: { auth: { admin: "__proto__:constructor" } }\ntasks: { connections: { terminateRoles: [__proto__, constructor, prototype] } }\nreport: { title: prototype }\n`;
    const config = load(yaml.replace('${APP_DB_PASSWORD}', '${PW}'), { PW: '__proto__' });
    expect(config.targets.postgres[0]!.url).toBe('postgres://app:__proto__@db.internal:5432/app');
    expect(config.web.auth.admin).toBe('__proto__:constructor');
    expect(config.tasks.connections!.terminateRoles).toEqual(['__proto__', 'constructor', 'prototype']);
    expect(config.report.title).toBe('prototype');
  });

  // The real binary (dist/: `npm run build` first): yaml's own warnings would reach stderr
  // through process.emitWarning, which the in-process runCli does not see.
  it('the real binary: a !!binary key is one line on stderr, exit 3', async () => {
    const [, yaml, problem] = spellings.find(([name]) => name === 'a binary key in the schedules map')!;
    const path = join(dir, 'proto-binary.yaml');
    writeFileSync(path, yaml);
    const run = spawnCaretaker(['check-config', '--config', path]);
    expect(await run.exited).toEqual({ code: 3, signal: null });
    expect(run.stderr()).toBe(`caretaker: invalid config (${path}): ${problem}\n`);
  });

  it('caretaker check-config: a config with the words only in values is OK', async () => {
    const path = join(dir, 'proto-values.yaml');
    writeFileSync(path, `${VALID.replace('${APP_DB_PASSWORD}', '__proto__')}report: { title: constructor }\n`);
    const out = await runCli(['check-config', '--config', path]);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.stdout).toContain(`config OK (${path})`);
  });

  it('rejects an alias that contains itself (a cycle) with its path, not a stack overflow', () => {
    expect(problemsOf('tasks: { connections: { terminateRoles: &r [a, *r] } }\n')).toEqual([
      'tasks.connections.terminateRoles[1]: an alias to a mapping or list that contains it is not allowed (it never ends)',
    ]);
  });

  // Configs built in code never go through read-yaml's check: interpolate copies keys as own data.
  it('interpolate copies a "__proto__" key as an own key, never as the prototype', () => {
    const tree = JSON.parse('{"target": {"__proto__": {"allow": {"vacuum": true}}, "url": "${U}"}}') as unknown;
    const { value } = interpolate(tree, { U: 'postgres://h/db' });
    const target = (value as { target: Record<string, unknown> }).target;
    expect(Object.getPrototypeOf(target)).toBe(Object.prototype);
    expect(target.allow).toBeUndefined();
    expect(Object.keys(target)).toEqual(['__proto__', 'url']);
    expect(target.url).toBe('postgres://h/db');
  });
});
