import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import type { TaskResult } from '../../src/contract/result';
import { createQueue } from '../../src/queue/queue';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { deleteKeys, randomPrefix } from '../support/redis';
import { TEST_REDIS_URL } from '../support/env';
import { runCli } from '../support/cli';
import { cli } from '../../src/cli';
import { logLines } from '../support/processes';

const prefix = randomPrefix('cli');
const startPrefix = randomPrefix('cli-start');
let db: TestDatabase;
let dir: string;
let configPath: string;

beforeAll(async () => {
  db = await createTestDatabase('cli');
  dir = mkdtempSync(join(tmpdir(), 'caretaker-cli-'));
  configPath = join(dir, 'caretaker.yaml');
  writeFileSync(
    configPath,
    [
      `redis: { url: "${TEST_REDIS_URL}", prefix: ${prefix} }`,
      'targets:',
      '  postgres:',
      `    - { name: main, url: "\${MAIN_DB}" }`,
      `    - { name: second, url: "\${MAIN_DB}" }`,
      'schedules:',
      '  nightly: { cron: "30 2 * * *", timezone: Europe/Berlin, tasks: [connections] }',
    ].join('\n'),
  );
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await db.drop();
  await deleteKeys(prefix);
  await deleteKeys(startPrefix);
});

const env = () => ({ MAIN_DB: db.url });
/** Nothing listens on port 1 (binding it needs root): a Redis that refuses at once. */
const CLOSED_REDIS_URL = 'redis://127.0.0.1:1';
const LOCK_WARNING = 'caretaker: warning: redis unreachable: running without the per-target lock (err=connect ECONNREFUSED 127.0.0.1:1)';
const NO_ALERTS = 'alerts go nowhere: configure notifications (notifications.email, notifications.webhook or notifications.channels)';

/** A config file in the test's directory; `${MAIN_DB}` is the test database. */
function writeConfig(name: string, lines: string[]): string {
  const path = join(dir, name);
  writeFileSync(path, lines.join('\n'));
  return path;
}
const noStackTrace = (text: string) => expect(text).not.toMatch(/\n\s+at /);

describe('caretaker run', () => {
  it('--json prints exactly one TaskResult on stdout and exits with its status code', async () => {
    const out = await runCli(['--config', configPath, 'run', 'connections', '--target', 'main', '--json'], env());
    const lines = out.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const result = JSON.parse(lines[0]!) as TaskResult;
    expect(result).toMatchObject({ task: 'connections', target: 'main', dryRun: false });
    expect(Object.keys(result).sort()).toEqual(['actions', 'dryRun', 'durationMs', 'findings', 'finishedAt', 'metrics', 'startedAt', 'status', 'summary', 'target', 'task']);
    expect(out.code).toBe({ ok: 0, warning: 1, critical: 2, error: 3 }[result.status]);
    // Stored in the history too.
    const { rows } = await db.pool.query(`SELECT task, target, schedule FROM caretaker.runs WHERE schedule = 'cli'`);
    expect(rows).toContainEqual({ task: 'connections', target: 'main', schedule: 'cli' });
  });

  it('applies --param for one run: exit 1 on a warning, 2 on critical', async () => {
    const warn = await runCli(['-c', configPath, 'run', 'connections', '--target', 'main', '--json', '--param', 'warning=0.0001', '--param', 'critical=1'], env());
    expect(JSON.parse(warn.stdout).findings.map((f: { code: string }) => f.code)).toContain('connections_high');
    expect(warn.code).toBe(1);
    const crit = await runCli(['-c', configPath, 'run', 'connections', '--target', 'main', '--param', 'warning=0.0001', '--param', 'critical=0.0002'], env());
    expect(crit.code).toBe(2);
    expect(crit.stdout).toMatch(/^CONNECTIONS CRITICAL - main: /);
  });

  it('exits 3 with the reason when the target is unreachable', async () => {
    const out = await runCli(['-c', configPath, 'run', 'connections', '--target', 'main', '--json'], { MAIN_DB: 'postgres://postgres@127.0.0.1:1/x' });
    expect(out.code).toBe(3);
    expect(JSON.parse(out.stdout)).toMatchObject({ status: 'error', summary: expect.stringMatching(/ECONNREFUSED/) });
  });

  describe('logs, with Redis unreachable', () => {
    let closedRedis: string;
    beforeAll(() => {
      closedRedis = writeConfig('closed-redis.yaml', [`redis: { url: "${CLOSED_REDIS_URL}", prefix: ${prefix} }`, 'targets:', '  postgres:', `    - { name: main, url: "\${MAIN_DB}" }`]);
    });
    // runCli silences logs unless told otherwise; these runs log at the command's own level.
    const logging = (extra: Record<string, string> = {}) => ({ ...env(), CARETAKER_LOG_LEVEL: undefined, ...extra });

    it('without --json: readable warning lines on stderr, no JSON, then the readable result', async () => {
      const out = await runCli(['-c', closedRedis, 'run', 'connections'], logging());
      expect(out.stdout).toMatch(/^CONNECTIONS (OK|WARNING|CRITICAL) - main: /);
      expect(out.code).toBeLessThan(3);
      const lines = out.stderr.trim().split('\n');
      expect(lines).toContain(LOCK_WARNING);
      expect(out.stderr).not.toContain('{"level"');
      // Warnings and worse only, each one line of its own.
      for (const line of lines) expect(line).toMatch(/^caretaker: (warning|error|fatal): \S/);
      noStackTrace(out.stderr);
    });

    it('CARETAKER_LOG_LEVEL still wins: error hides the warning, info adds the info lines, both readable', async () => {
      const quiet = await runCli(['-c', closedRedis, 'run', 'connections'], logging({ CARETAKER_LOG_LEVEL: 'error' }));
      expect(quiet.stderr).toBe('');
      expect(quiet.stdout).toMatch(/^CONNECTIONS /);
      const chatty = await runCli(['-c', closedRedis, 'run', 'connections'], logging({ CARETAKER_LOG_LEVEL: 'info' }));
      const lines = chatty.stderr.trim().split('\n');
      expect(lines).toContain(LOCK_WARNING);
      expect(lines.some((l) => l.startsWith('caretaker: info: '))).toBe(true);
      expect(chatty.stderr).not.toContain('{"level"');
    });

    it('with --json: pino JSON on stderr and exactly one TaskResult on stdout', async () => {
      const out = await runCli(['-c', closedRedis, 'run', 'connections', '--json'], logging());
      const stdout = out.stdout.trim().split('\n');
      expect(stdout).toHaveLength(1);
      const result = JSON.parse(stdout[0]!) as TaskResult;
      expect(result).toMatchObject({ task: 'connections', target: 'main' });
      expect(out.code).toBe({ ok: 0, warning: 1, critical: 2, error: 3 }[result.status]);
      const stderr = out.stderr.trim().split('\n');
      expect(logLines(out.stderr)).toHaveLength(stderr.length);
      expect(logLines(out.stderr)).toContainEqual(
        expect.objectContaining({ level: 40, msg: 'redis unreachable: running without the per-target lock', err: 'connect ECONNREFUSED 127.0.0.1:1', task: 'connections', target: 'main', via: 'cli' }),
      );
    });
  });

  it.each([
    ['an unknown task', ['run', 'defrag'], /^caretaker: unknown task "defrag" \(known: /],
    ['an unknown target', ['run', 'connections', '--target', 'nope'], /^caretaker: unknown postgres target "nope" \(known: main, second\)/],
    ['an ambiguous target', ['run', 'connections'], /^caretaker: connections can run on main, second: pick one with --target/],
    ['a --param without "="', ['run', 'connections', '--target', 'main', '--param', 'idleSeconds'], /^caretaker: --param "idleSeconds": expected KEY=VALUE/],
    ['a --param of the wrong type', ['run', 'connections', '--target', 'main', '--param', 'idleSeconds=soon'], /^caretaker: --param idleSeconds: /],
    ['an unknown --param', ['run', 'connections', '--target', 'main', '--param', 'colour=red'], /^caretaker: --param colour: not a param of connections/],
  ])('exits 3 with one line for %s', async (_name, args, message) => {
    const out = await runCli(['-c', configPath, ...args], env());
    expect(out.code).toBe(3);
    expect(out.stdout).toBe('');
    expect(out.stderr.trim().split('\n')).toHaveLength(1);
    expect(out.stderr).toMatch(message);
  });
});

describe('caretaker usage errors', () => {
  it('exits 3 on an unknown command or option, with usage and no stack trace', async () => {
    const cmd = await runCli(['frobnicate']);
    expect(cmd.code).toBe(3);
    expect(cmd.stderr).toMatch(/unknown command 'frobnicate'/);
    expect(cmd.stderr).toMatch(/caretaker --help/);
    const opt = await runCli(['tasks', '--colour']);
    expect(opt.code).toBe(3);
    expect(opt.stderr).toMatch(/unknown option '--colour'/);
    noStackTrace(cmd.stderr + opt.stderr);
  });

  it.each([['--version'], ['-V']])('%s prints the version from package.json and exits 0', async (flag) => {
    const { version } = JSON.parse(readFileSync(join(__dirname, '../../package.json'), 'utf8')) as { version: string };
    expect(version).toMatch(/^\d+\.\d+\.\d+/);
    const out = await runCli([flag]);
    expect(out).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
  });

  it('prints help with exit 0', async () => {
    const out = await runCli(['--help']);
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/check-config/);
  });
});

describe('caretaker check-config, schedules, tasks', () => {
  it('check-config validates a file and prints the resolved schedules', async () => {
    const out = await runCli(['check-config', '--config', configPath], env());
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/^config OK/);
    expect(out.stdout).toMatch(/nightly: "30 2 \* \* \*" Europe\/Berlin/);
    expect(out.stdout).toMatch(/nightly:connections:main/);
    // No notifications in this config: said so, and still a valid config.
    expect(out.stdout.split('\n')).toContain(NO_ALERTS);
    expect(out.stdout).not.toMatch(/^alerts: /m);
  });

  it('check-config names the alert channels when some are configured', async () => {
    const notified = writeConfig('notified.yaml', [
      'targets: { postgres: [{ name: main, url: "${MAIN_DB}" }] }',
      'notifications:',
      '  email: { smtp: { host: 127.0.0.1, port: 2525 }, from: caretaker@example.com, to: [ops@example.com] }',
      '  webhook: { url: "http://127.0.0.1:1/hook" }',
    ]);
    const both = await runCli(['check-config', '--config', notified], env());
    expect(both.code).toBe(0);
    expect(both.stdout.split('\n')).toContain('alerts: email, webhook');
    expect(both.stdout.split('\n')).toContain('routes: default: critical → every channel; warning → webhooks and Alertmanager; info → the report');

    const routed = writeConfig('routed.yaml', [
      'targets: { postgres: [{ name: main, url: "${MAIN_DB}" }] }',
      'notifications:',
      '  channels: { team: { kind: webhook, url: "http://127.0.0.1:1/team" }, spare: { kind: webhook, url: "http://127.0.0.1:1/spare" } }',
      '  routes: [{ match: { severity: critical }, channels: [team] }, { match: { severity: critical, task: connections }, channels: [team] }]',
    ]);
    const notes = await runCli(['check-config', '--config', routed], env());
    expect(notes.code).toBe(0);
    expect(notes.stdout.split('\n')).toEqual(expect.arrayContaining([
      'alerts: team, spare',
      'routes: severity=critical → team; severity=critical task=connections → team',
      'note: notifications.routes[1] (severity=critical task=connections) can never match: notifications.routes[0] (severity=critical) takes every problem it would',
      'note: channel spare is in no route: it is never sent anything',
    ]));
    expect(both.stdout).not.toContain('alerts go nowhere');

    const webhookOnly = writeConfig('webhook.yaml', ['targets: { postgres: [{ name: main, url: "${MAIN_DB}" }] }', 'notifications: { webhook: { url: "http://127.0.0.1:1/hook" } }']);
    const one = await runCli(['check-config', '--config', webhookOnly], env());
    expect(one.code).toBe(0);
    expect(one.stdout.split('\n')).toContain('alerts: webhook');
  });

  it('check-config rejects an invalid file with exit 3 and the path, no stack trace', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'schedules:\n  nightly: { cron: "61 * * * *", tasks: [connections] }\n');
    const out = await runCli(['check-config', '--config', bad]);
    expect(out.code).toBe(3);
    expect(out.stderr).toMatch(/schedules\.nightly\.cron: "61 \* \* \* \*" is not a valid cron expression/);
    expect(out.stderr.trim().split('\n')).toHaveLength(1);
    noStackTrace(out.stderr);
  });

  it('schedules --json lists each scheduler with its next three fire times', async () => {
    const out = await runCli(['-c', configPath, 'schedules', '--json'], env());
    expect(out.code).toBe(0);
    const listing = JSON.parse(out.stdout) as { id: string; schedulers: { id: string; next: string[] }[] }[];
    const nightly = listing.find((s) => s.id === 'nightly')!;
    expect(nightly.schedulers.map((s) => s.id)).toEqual(['nightly:connections:main', 'nightly:connections:second']);
    const next = nightly.schedulers[0]!.next.map((iso) => new Date(iso));
    expect(next).toHaveLength(3);
    for (const d of next) {
      expect(new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Berlin', hour: '2-digit', minute: '2-digit' }).format(d)).toMatch(/^0[23]:30$/);
      expect(d.getTime()).toBeGreaterThan(Date.now());
    }
  });

  it('tasks --json describes each task with its params schema and its finding codes', async () => {
    const out = await runCli(['tasks', '--json']);
    const tasks = JSON.parse(out.stdout) as { name: string; params: { properties: Record<string, unknown> }; codes: Record<string, string> }[];
    const conn = tasks.find((t) => t.name === 'connections')!;
    expect(Object.keys(conn.params.properties)).toEqual(expect.arrayContaining(['warning', 'critical', 'idleSeconds', 'terminateRoles']));
    expect(Object.keys(conn.codes)).toEqual(['connections_high', 'idle_connections', 'idle_in_transaction', 'idle_in_aborted_transaction', 'connections_hidden']);
    expect(conn.codes.idle_in_transaction).toMatch(/idle in a transaction/);
  });
});

describe('caretaker enqueue and migrate', () => {
  it('migrate brings the state database up to date, then says so', async () => {
    await runCli(['-c', configPath, 'migrate'], env());
    const again = await runCli(['-c', configPath, 'migrate'], env());
    expect(again).toMatchObject({ code: 0, stdout: 'state database is up to date\n' });
  });

  it('enqueue of a task whose kind has no target says which config key to add it under, and queues nothing', async () => {
    const out = await runCli(['-c', configPath, 'enqueue', 'api-health'], env());
    expect([out.code, out.stdout, out.stderr]).toEqual([3, '', 'caretaker: api-health needs an http target: add one under targets.http in the config\n']);
  });

  it('enqueue adds one job per target, naming only the target', async () => {
    const out = await runCli(['-c', configPath, 'enqueue', 'connections'], env());
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/enqueued connections on main: job \S+\nenqueued connections on second: job \S+/);
    const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
    const queue = createQueue(redis, prefix);
    const jobs = await queue.getJobs(['waiting']);
    expect(jobs.map((j) => j.data).sort((a, b) => a.target.localeCompare(b.target))).toEqual([
      { task: 'connections', target: 'main', schedule: 'manual' },
      { task: 'connections', target: 'second', schedule: 'manual' },
    ]);
    // No secret in job data: Bull Board shows it.
    expect(JSON.stringify(jobs.map((j) => j.data))).not.toContain('postgres://');
    await queue.close();
    redis.disconnect();
  });
});

describe('caretaker start', () => {
  class Capture extends Writable {
    text = '';
    override _write(chunk: Buffer | string, _enc: BufferEncoding, done: () => void): void {
      this.text += chunk.toString();
      done();
    }
  }

  /** `caretaker start` in-process, told to stop as soon as it has started; its pino lines. */
  async function startAndStop(config: string, role: string) {
    const stdout = new Capture();
    const stderr = new Capture();
    const code = await cli(['node', 'caretaker', '-c', config, 'start', '--role', role], { stdout, stderr, env: { ...env(), CARETAKER_LOG_LEVEL: 'warn' }, waitForStop: async () => 'SIGTERM' });
    return { code, logs: logLines(stderr.text) };
  }
  const base = [`redis: { url: "${TEST_REDIS_URL}", prefix: ${startPrefix} }`, 'web: { port: 0 }', 'targets: { postgres: [{ name: main, url: "${MAIN_DB}" }] }'];

  it('warns once that alerts go nowhere when a role that raises them runs without a channel', async () => {
    const silent = writeConfig('start-silent.yaml', base);
    const { code, logs } = await startAndStop(silent, 'worker');
    expect(code).toBe(0);
    expect(logs.filter((l) => l.msg === NO_ALERTS)).toEqual([expect.objectContaining({ level: 40 })]);
  });

  it('says nothing of the kind with a channel configured, nor for the web role, which sends no alerts', async () => {
    const notified = writeConfig('start-notified.yaml', [...base, 'notifications: { webhook: { url: "http://127.0.0.1:1/hook" } }']);
    const withChannel = await startAndStop(notified, 'worker');
    expect(withChannel.code).toBe(0);
    expect(withChannel.logs.map((l) => l.msg)).not.toContain(NO_ALERTS);

    const web = await startAndStop(writeConfig('start-web.yaml', base), 'web');
    expect(web.code).toBe(0);
    expect(web.logs.map((l) => l.msg)).not.toContain(NO_ALERTS);
  });
});
