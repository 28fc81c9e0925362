/**
 * Bad input (issue 7): hostile configs, jobs added by hand and CLI mistakes
 * are each rejected with a clear, one-line reason; nothing crashes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import { stringify } from 'yaml';
import { loadConfig, validateConfig } from '../../src/config/load';
import { ConfigError } from '../../src/errors';
import { TASKS } from '../../src/jobs';
import { createQueue, jobOptions, type JobData } from '../../src/queue/queue';
import { ResultStore } from '../../src/results/store';
import { migrate } from '../../src/results/migrate';
import { startWorker, type WorkerRole } from '../../src/worker/worker';
import type { Config } from '../../src/config/schema';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { deleteKeys, randomPrefix } from '../support/redis';
import { testConfig } from '../support/config';
import { testLogger } from '../support/logger';
import { TEST_REDIS_URL } from '../support/env';
import { waitForJob } from '../support/jobs';
import { runCli } from '../support/cli';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'caretaker-bad-input-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------- config fuzz

const SEED = 20_260_407;
const RUNS = 200;

/** A valid config: one postgres target, one schedule, a task section. */
const BASE = {
  timezone: 'Europe/Berlin',
  redis: { url: 'redis://127.0.0.1:6379', prefix: 'fuzz' },
  targets: { postgres: [{ name: 'main', url: 'postgres://caretaker@127.0.0.1:5432/app', statementTimeoutMs: 30_000 }] },
  tasks: { connections: { warning: 0.7 } },
  schedules: { nightly: { cron: '30 2 * * *', timezone: 'UTC', tasks: ['connections'] } },
  web: { port: 3000 },
  worker: { concurrency: 2 },
};

const TOP_LEVEL = ['timezone', 'logLevel', 'redis', 'state', 'web', 'worker', 'targets', 'tasks', 'schedules', 'notifications', 'report'];
/**
 * A problem is one line that starts with a path: `(root):`, `line 3:`, or a dotted path under a
 * top-level key; a refused prototype key at the root is its own path (`__proto__: a key named...`).
 */
const PROBLEM = new RegExp(`^(?:\\(root\\)|line \\d+|(?:${[...TOP_LEVEL, '__proto__', 'constructor', 'prototype'].join('|')})(?:[.[][^\\n]*?)?): \\S`);

const HOSTILE_STRINGS = [
  'a; DROP TABLE x',
  "x'); DROP TABLE caretaker.runs; --",
  '../../etc/passwd',
  '$(rm -rf /)',
  '`id`',
  '<script>alert(1)</script>',
  '\u0000',
  'nul\u0000byte',
  'ünïcödé 🚀',
  '\u202Eevil',
  'line\nbreak',
  '${UNSET_VAR}',
  '${UNSET_VAR:-}',
  '${HOME',
  '${1BAD}',
  'postgres://u:${MISSING_PASSWORD}@h/db',
  '* * * * * * *',
  '61 * * * *',
  '*/0 * * * *',
  '@reboot',
  '0 0 31 2 *',
  'L W # ? * *',
  'Mars/Olympus_Mons',
  'UTC+99',
  'Etc/GMT+99',
  '__proto__',
  'constructor',
  'toString',
  '',
  ' ',
  'x'.repeat(10_000),
];

const HUGE_NUMBERS = [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 2, 1e308, -1e308, Number.MIN_VALUE, -0, 2 ** 31, -(2 ** 63)];

const hostileString = fc.oneof(
  fc.constantFrom(...HOSTILE_STRINGS),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ minLength: 300, maxLength: 3000 }),
  // Cron-shaped garbage.
  fc.array(fc.constantFrom('*', '0', '59', '60', '-1', '*/5', '1-3', 'MON', 'JAN', '?', 'L', '#', ',', 'x', '99999999999999999999'), { minLength: 1, maxLength: 8 }).map((f) => f.join(' ')),
);

/**
 * Known bugs, pinned under "known bugs" below: a key with a line break gives
 * a problem of two lines; a param named like an Object.prototype member is
 * blamed on `--param`.
 */
const hostileKey = hostileString;

const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  hostileString,
  fc.constantFrom(...HUGE_NUMBERS),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
  fc.array(hostileString, { maxLength: 3 }),
  fc.dictionary(hostileKey, fc.oneof(hostileString, fc.integer()), { maxKeys: 3 }),
  fc.jsonValue({ maxDepth: 2 }),
);

/** Where to put a hostile value: real schema paths, plus hostile keys where maps take any key. */
const PATHS: (string | number)[][] = [
  ['timezone'],
  ['logLevel'],
  ['redis'],
  ['redis', 'url'],
  ['redis', 'prefix'],
  ['state', 'url'],
  ['state', 'retentionDays'],
  ['web', 'host'],
  ['web', 'port'],
  ['web', 'auth', 'admin'],
  ['web', 'publicUrl'],
  ['worker', 'concurrency'],
  ['worker', 'attempts'],
  ['worker', 'backoffMs'],
  ['targets'],
  ['targets', 'postgres'],
  ['targets', 'postgres', 0],
  ['targets', 'postgres', 0, 'name'],
  ['targets', 'postgres', 0, 'url'],
  ['targets', 'postgres', 0, 'statementTimeoutMs'],
  ['targets', 'postgres', 0, 'lockTimeoutMs'],
  ['targets', 'postgres', 0, 'allow'],
  ['targets', 'postgres', 0, 'allow', 'vacuum'],
  ['targets', 'postgres', 0, 'tasks'],
  ['targets', 'postgres', 0, 'tasks', 'connections'],
  ['targets', 'postgres', 0, 'tasks', 'connections', 'critical'],
  ['targets', 'postgres', 1, 'name'],
  ['targets', 'redis', 0, 'url'],
  ['targets', 'queues', 0, 'redis'],
  ['targets', 'backups', 0, 'database'],
  ['tasks'],
  ['tasks', 'connections'],
  ['tasks', 'connections', 'warning'],
  ['tasks', 'connections', 'terminateRoles'],
  ['schedules'],
  ['schedules', 'nightly'],
  ['schedules', 'nightly', 'cron'],
  ['schedules', 'nightly', 'timezone'],
  ['schedules', 'nightly', 'tasks'],
  ['schedules', 'nightly', 'tasks', 0],
  ['schedules', 'nightly', 'enabled'],
  ['schedules', 'nightly', 'graceSeconds'],
  ['schedules', 'daily', 'cron'],
  ['notifications', 'email'],
  ['notifications', 'email', 'smtp', 'port'],
  ['notifications', 'webhook', 'url'],
  ['notifications', 'repeatAlertSeconds'],
  ['report', 'title'],
];
/** Maps whose keys are the user's: a hostile key goes there. */
const KEYED = [['tasks'], ['schedules'], ['targets', 'postgres', 0, 'tasks'], ['targets', 'postgres', 0, 'tasks', 'connections'], [], ['targets']];

const hostilePath = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...PATHS) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...KEYED), hostileKey).map(([base, key]) => [...base, key]) },
);

function setPath(root: Record<string, unknown>, path: (string | number)[], value: unknown): void {
  let node: Record<string, unknown> = root;
  path.forEach((key, i) => {
    if (i === path.length - 1) {
      node[key] = value;
      return;
    }
    const next = node[key];
    if (next === null || typeof next !== 'object') node[key] = typeof path[i + 1] === 'number' ? [] : {};
    node = node[key] as Record<string, unknown>;
  });
}

const mutatedConfig = fc
  .array(fc.tuple(hostilePath, hostileValue), { minLength: 1, maxLength: 2 })
  .map((edits) => {
    const config = structuredClone(BASE) as Record<string, unknown>;
    for (const [path, value] of edits) setPath(config, path, value);
    return config;
  });

/** Env for `${VAR}` references: sometimes set, sometimes empty, mostly missing. */
const fuzzEnv = fc.dictionary(fc.constantFrom('UNSET_VAR', 'MISSING_PASSWORD', 'HOME', 'DB_URL'), fc.oneof(fc.constant(''), hostileString), { maxKeys: 2 });

/** Runs `load`, returns 'loaded' or the ConfigError; anything else thrown fails the property. */
function outcome(load: () => Config): 'loaded' | ConfigError {
  let error: unknown;
  try {
    load();
    return 'loaded';
  } catch (thrown) {
    error = thrown;
  }
  if (!(error instanceof ConfigError)) {
    throw new Error(`not a ConfigError: ${error instanceof Error ? error.stack : String(error)}`);
  }
  expect(error.problems.length).toBeGreaterThan(0);
  for (const problem of error.problems) {
    expect(problem).not.toMatch(/[\n\r]/);
    expect(problem).toMatch(PROBLEM);
  }
  return error;
}

let fileCount = 0;
function loadYaml(text: string, env: Record<string, string> = {}): Config {
  const path = join(dir, `fuzz-${fileCount++}.yaml`);
  writeFileSync(path, text);
  try {
    return loadConfig({ path, env, registry: TASKS });
  } finally {
    rmSync(path, { force: true });
  }
}

describe('config fuzz', () => {
  it('the base config loads, from code and from YAML (so a rejection below is the mutation\'s)', () => {
    expect(outcome(() => validateConfig(structuredClone(BASE), 'fuzz', TASKS))).toBe('loaded');
    expect(outcome(() => loadYaml(stringify(BASE)))).toBe('loaded');
  });

  it('mutated configs (validateConfig): load, or a ConfigError whose every problem is one line starting with a path', () => {
    let rejected = 0;
    fc.assert(
      fc.property(mutatedConfig, (config) => {
        if (outcome(() => validateConfig(config, 'fuzz', TASKS)) !== 'loaded') rejected++;
      }),
      { numRuns: RUNS, seed: SEED },
    );
    // The generator does reach the validator's error paths.
    expect(rejected).toBeGreaterThan(RUNS / 2);
  });

  it('mutated configs written as YAML (loadConfig, with ${VAR} references and a partial env): the same', () => {
    fc.assert(
      fc.property(mutatedConfig, fuzzEnv, (config, env) => {
        outcome(() => loadYaml(stringify(config), env));
      }),
      { numRuns: RUNS, seed: SEED + 1 },
    );
  });

  it('arbitrary JSON values: the same', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => {
        outcome(() => validateConfig(value, 'fuzz', TASKS));
        outcome(() => loadYaml(stringify(value)));
      }),
      { numRuns: RUNS, seed: SEED + 2 },
    );
  });

  const yamlToken = fc.constantFrom(
    'a:', 'targets:', '  postgres:', '    - name: main', 'schedules:', ' ', '  ', '\n', '\t', '- ', ':', '? ', '{', '}', '[', ']', ',', '"', "'",
    '&x ', '!!binary ', '!!int ', '!!float ', '!custom ', '|', '>', '#', '%YAML 1.2\n', '---\n', '...\n', '${X}', '.inf', '.nan', '~', 'null', '0x1F', '1e999',
  );
  it('arbitrary text as a YAML file: loads, or a ConfigError with a line or a path', () => {
    // No "*": an alias to a missing anchor is a known bug, pinned under "known bugs" below.
    const yamlText = fc.oneof(fc.string({ maxLength: 200 }), fc.array(yamlToken, { maxLength: 30 }).map((t) => t.join('')));
    fc.assert(
      fc.property(yamlText, (text) => {
        outcome(() => loadYaml(text));
      }),
      { numRuns: RUNS, seed: SEED + 3 },
    );
  });

  it.each([
    ['an alias that resolves (to an unknown key)', 'timezone: &tz UTC\nzone: *tz'],
    ['a merge key', 'base: &b { url: "redis://h" }\nredis: { <<: *b, prefix: 5 }'],
    ['a duplicate key', 'timezone: UTC\ntimezone: Europe/Berlin'],
    ['a tab-indented file', 'targets:\n\tpostgres: []'],
    ['a top-level list', '- a\n- b'],
    ['a top-level scalar', '42'],
    ['a binary scalar', 'report: { title: !!binary aGVsbG8= }'],
    ['an infinite port', 'web: { port: .inf }'],
    ['a NaN retention', 'state: { retentionDays: .nan }'],
    ['a missing env var', 'targets: { postgres: [ { name: main, url: "postgres://u:${NOPE}@h/db" } ] }'],
    ['a CRLF file with a bad cron', 'schedules:\r\n  nightly: { cron: "* * *", tasks: [connections] }\r\n'],
  ])('rejects %s with a ConfigError naming a line or a path', (_name, text) => {
    expect(outcome(() => loadYaml(text))).toBeInstanceOf(ConfigError);
  });
});

/**
 * Bugs this fuzz found in src/, now fixed: each test pins the fix.
 */
describe('bugs the fuzz found', () => {
  // src/config/read-yaml.ts: doc.toJS throws yaml's ReferenceError, not a ConfigError.
  it('an alias to a missing anchor is a ConfigError', () => {
    expect(() => loadYaml('*x')).toThrow(ConfigError);
  });
  it('an alias bomb is a ConfigError', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...'bcdefghij'.split('').map((k, i) => `${k}: &${k} [${`*${'abcdefghij'[i]}, `.repeat(10).slice(0, -2)}]`)].join('\n');
    expect(() => loadYaml(bomb)).toThrow(ConfigError);
  });
  // src/config/format-issues.ts formatPath (and load.ts's `tasks.${name}`) paste keys raw.
  it('a key with a line break still gives one-line problems', () => {
    let problems: string[] = [];
    try {
      validateConfig({ ...structuredClone(BASE), tasks: { 'line\nbreak': 'x' } }, 'fuzz', TASKS);
    } catch (err) {
      problems = (err as ConfigError).problems;
    }
    // The odd key is quoted: one line, and the operator sees exactly which key.
    expect(problems).toEqual(['tasks["line\\nbreak"]: Invalid input: expected record, received string']);
  });
  // src/config/params.ts resolveParams: `key in overrides` also finds Object.prototype members.
  it('a config param named "constructor" is blamed on the config, not on --param', () => {
    expect(() => validateConfig({ ...structuredClone(BASE), tasks: { connections: { constructor: 1 } } }, 'fuzz', TASKS)).toThrow(
      'invalid config (fuzz): tasks.connections.constructor: not a param of connections',
    );
  });
});

// ---------------------------------------------------------- jobs added by hand

describe('jobs added by hand', () => {
  const prefix = randomPrefix('bad-input');
  let db: TestDatabase;
  let redis: Redis;
  let queue: Queue<JobData>;
  let config: Config;
  let role: WorkerRole;

  beforeAll(async () => {
    db = await createTestDatabase('bad_input');
    await migrate(db.pool);
    redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
    queue = createQueue(redis, prefix);
    // attempts 3: a rejected job must not use them.
    config = testConfig({ dbUrl: db.url, prefix, worker: { concurrency: 2, attempts: 3, backoffMs: 50, shutdownGraceMs: 5_000 } });
    role = startWorker({ config, registry: TASKS, store: new ResultStore(db.pool), state: db.pool, redis, connection: redis, log: testLogger });
  });

  afterAll(async () => {
    await role?.close(5_000);
    await queue?.close();
    redis?.disconnect();
    await db?.drop();
    await deleteKeys(prefix);
  });

  const huge = 'x'.repeat(1_000_000);

  it.each<[string, string, unknown, RegExp]>([
    ['an unknown task', 'defrag', { task: 'defrag', target: 'main' }, /^unknown task "defrag"$/],
    ['an injection-shaped task name', 'x', { task: 'a; DROP TABLE x', target: 'main' }, /^unknown task "a; DROP TABLE x"$/],
    ['a task name that is not a string', 'connections', { task: 42, target: 'main' }, /^invalid job data: task: .*expected string/],
    ['a missing target', 'connections', { task: 'connections' }, /^invalid job data: target: /],
    ['an unknown target', 'connections', { task: 'connections', target: '../../etc' }, /^unknown postgres target "\.\.\/\.\.\/etc" \(known: main\)$/],
    ['data that is a string', 'connections', 'connections on main', /^invalid job data: \(root\): .*expected object/],
    ['data that is null', 'connections', null, /^invalid job data: \(root\): .*expected object/],
    ['data that is an array', 'connections', ['connections', 'main'], /^invalid job data: \(root\): .*expected object/],
    ['params that are not an object', 'connections', { task: 'connections', target: 'main', params: 'warning=0.5' }, /^invalid job data: params: /],
    ['a dryRun that is not a boolean', 'connections', { task: 'connections', target: 'main', dryRun: 'yes' }, /^invalid job data: dryRun: /],
    ['a param of the wrong type', 'connections', { task: 'connections', target: 'main', params: { warning: 'high' } }, /^invalid params: job data params warning: .*expected number/],
    ['an unknown param', 'connections', { task: 'connections', target: 'main', params: { bogus: 1 } }, /^invalid params: job data params bogus: not a param of connections$/],
    ['an out-of-range param', 'connections', { task: 'connections', target: 'main', params: { maxListed: 1e308 } }, /^invalid params: job data params maxListed: /],
    ['a huge unknown param name', 'connections', { task: 'connections', target: 'main', params: { ['k'.repeat(100_000)]: 1 } }, /^invalid params: job data params k+…$/],
    ['a huge param value', 'connections', { task: 'connections', target: 'main', params: { warning: huge } }, /^invalid params: job data params warning: .*expected number/],
  ])('%s: a failed job with the reason, one error row, no retry, and the worker serves on', async (_name, jobName, data, reason) => {
    const job = await queue.add(jobName, data as JobData, jobOptions(config.worker));
    const done = await waitForJob(queue, job.id!);
    expect(await done.getState()).toBe('failed');
    expect(done.attemptsMade).toBe(1);
    expect(done.failedReason).toMatch(reason);
    // The reason never echoes a huge value back.
    expect(done.failedReason.length).toBeLessThanOrEqual(1_001);
    const stored = await db.pool.query('SELECT status, summary FROM caretaker.runs WHERE job_id = $1', [job.id]);
    expect(stored.rows).toEqual([{ status: 'error', summary: expect.stringMatching(reason) }]);

    const next = await waitForJob(queue, (await queue.add('connections', { task: 'connections', target: 'main' }, jobOptions(config.worker))).id!);
    expect(await next.getState()).toBe('completed');
  });

  // Known bug (reported, not fixed here): Postgres text cannot hold NUL, so
  // ResultStore.save fails, the processor only logs it, and the run leaves
  // no history. Drop `.failing` once the store strips or escapes NUL.
  it('a NUL byte in the task name still leaves an error row', async () => {
    const job = await queue.add('x', { task: 'de\u0000frag', target: 'main' }, jobOptions(config.worker));
    const done = await waitForJob(queue, job.id!);
    expect(done.failedReason).toBe('unknown task "de\\u0000frag"');
    const stored = await db.pool.query('SELECT status FROM caretaker.runs WHERE job_id = $1', [job.id]);
    expect(stored.rows).toEqual([{ status: 'error' }]);
  });
});

// ------------------------------------------------------------------------ CLI

describe('CLI mistakes', () => {
  let good: string;
  let invalid: string;
  let notYaml: string;
  beforeAll(() => {
    good = join(dir, 'good.yaml');
    // Never reached: every case below fails before connecting anywhere.
    writeFileSync(good, 'redis: { url: "redis://127.0.0.1:1" }\ntargets:\n  postgres:\n    - { name: main, url: "postgres://nobody@127.0.0.1:1/none" }\n');
    invalid = join(dir, 'invalid.yaml');
    writeFileSync(invalid, 'targets:\n  postgres:\n    - { name: "a; DROP TABLE x", url: "mysql://x" }\nworker: { concurrency: 1e9 }\n');
    notYaml = join(dir, 'not-yaml.yaml');
    writeFileSync(notYaml, 'targets: [\n  postgres: {\n');
  });

  const USAGE_HINT = '(run "caretaker --help" for usage)';
  const noStackTrace = (text: string) => expect(text).not.toMatch(/\n\s+at /);

  it.each<[string, string[], RegExp]>([
    ['an unknown command', ['frobnicate'], /^error: unknown command 'frobnicate'$/],
    ['an unknown global option', ['--frobnicate', 'tasks'], /^error: unknown option '--frobnicate'$/],
    ['an unknown option of a command', ['tasks', '--frobnicate'], /^error: unknown option '--frobnicate'$/],
    ['a missing argument', ['run'], /^error: missing required argument 'task'$/],
    ['a bad choice', ['start', '--role', 'king'], /^error: option '--role <role>' argument 'king' is invalid\. Allowed choices are all, scheduler, worker, web\.$/],
  ])('%s: exit 3, the error and the usage hint, no stack trace', async (_name, args, message) => {
    const out = await runCli(args);
    expect(out.code).toBe(3);
    expect(out.stdout).toBe('');
    expect(out.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(message), USAGE_HINT]);
    noStackTrace(out.stderr);
  });

  it.each<[string, () => string[], RegExp]>([
    ['a --param without "="', () => ['-c', good, 'run', 'connections', '--param', 'warning'], /^caretaker: --param "warning": expected KEY=VALUE$/],
    ['a --param without a key', () => ['-c', good, 'run', 'connections', '--param', '=0.5'], /^caretaker: --param "=0\.5": expected KEY=VALUE$/],
    ['a --param with an injection-shaped key', () => ['-c', good, 'run', 'connections', '--param', '$(rm -rf)=1'], /^caretaker: --param "\$\(rm -rf\)=1": "\$\(rm -rf\)" is not a param name$/],
    ['a --param of the wrong type', () => ['-c', good, 'run', 'connections', '--param', 'warning=high'], /^caretaker: --param warning: .*expected number/],
    ['a --param out of range', () => ['-c', good, 'run', 'connections', '--param', 'maxListed=1e308'], /^caretaker: --param maxListed: /],
    ['an unknown --param', () => ['-c', good, 'run', 'connections', '--param', 'bogus=1'], /^caretaker: --param bogus: not a param of connections$/],
    ['an unknown task', () => ['-c', good, 'run', 'defrag'], /^caretaker: unknown task "defrag" \(known: .*connections/],
    ['an unknown --target', () => ['-c', good, 'run', 'connections', '--target', 'nope'], /^caretaker: unknown postgres target "nope" \(known: main\)$/],
    ['an unknown --target to enqueue', () => ['-c', good, 'enqueue', 'connections', '--target', '../../etc'], /^caretaker: unknown postgres target "\.\.\/\.\.\/etc" \(known: main\)$/],
    ['a missing --config file', () => ['--config', join(dir, 'missing.yaml'), 'run', 'connections'], /^caretaker: invalid config \(.*missing\.yaml\): cannot read the file \(ENOENT\)$/],
    ['an invalid config file', () => ['--config', invalid, 'run', 'connections'], /^caretaker: invalid config \(.*invalid\.yaml\): (?=.*\btargets\.postgres\[0\]\.name: )(?=.*\btargets\.postgres\[0\]\.url: )(?=.*\bworker\.concurrency: )/],
    ['a config file that is not YAML', () => ['check-config', '--config', notYaml], /^caretaker: invalid config \(.*not-yaml\.yaml\): line \d+: /],
  ])('%s: exit 3, one line on stderr, no stack trace', async (_name, args, message) => {
    const out = await runCli(args());
    expect(out.code).toBe(3);
    expect(out.stdout).toBe('');
    expect(out.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(message)]);
    noStackTrace(out.stderr);
  });
});
