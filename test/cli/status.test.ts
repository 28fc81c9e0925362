/**
 * `caretaker status` through the real CLI (in-process), on a planted
 * history: the grid in the terminal, `--json`, the filters, and the exit
 * code a Nagios check reads. The perfdata is parsed by Debian's
 * Monitoring::Plugin::Performance, as monitoring systems read it, when the
 * module is installed.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { migrate } from '../../src/results/migrate';
import { ResultStore } from '../../src/results/store';
import { testConfig } from '../support/config';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { TEST_REDIS_URL } from '../support/env';
import { runCli } from '../support/cli';
import { deleteKeys, randomPrefix } from '../support/redis';
import { plantFleet } from '../support/status-fleet';

let planted: TestDatabase;
let quiet: TestDatabase;
let dir: string;
let prefix: string;

/** A config file on `dbUrl` with testConfig's target `main` (and its catalog schedules). */
function configFile(name: string, dbUrl: string): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify({ redis: { url: TEST_REDIS_URL, prefix }, state: { url: dbUrl }, targets: { postgres: [{ name: 'main', url: dbUrl }] } }));
  return path;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ct-status-'));
  prefix = randomPrefix('status_cli');
  planted = await createTestDatabase('status_cli');
  quiet = await createTestDatabase('status_cli_quiet');
  for (const db of [planted, quiet]) await migrate(db.pool);
  await plantFleet(planted.pool, testConfig({ dbUrl: planted.url, prefix }));
});

afterAll(async () => {
  await planted?.drop();
  await quiet?.drop();
  await deleteKeys(prefix);
  rmSync(dir, { recursive: true, force: true });
});

describe('caretaker status', () => {
  it('prints a plugin status line, then the grid grouped by target, and exits 2 for a critical fleet', async () => {
    const { code, stdout, stderr } = await runCli(['--config', configFile('planted', planted.url), 'status']);
    expect(stderr).toBe('');
    expect(code).toBe(2);
    const [first, ...rest] = stdout.split('\n');
    expect(first).toMatch(/^CARETAKER CRITICAL - 1 critical, 1 missed, 1 late, 1 error, 7 never ran, 1 ok; 3 open findings \| checks=\d+ critical=1 missed=1 late=1 error=1 /);
    expect(rest).toContain('main (postgres)');
    expect(rest.find((l) => l.includes('index-audit'))).toMatch(/^ {2}CRITICAL +index-audit +weekly +last .*open 1 critical +1 invalid index$/);
    expect(rest.find((l) => l.includes('pg-health'))).toMatch(/^ {2}LATE +pg-health .*due .*, no run since$/);
    expect(stdout).toContain('[CRITICAL] main index-audit invalid_index public.orders_idx: index is invalid');
    expect(stdout).toContain('      suggestion: DROP INDEX CONCURRENTLY public.orders_idx');
  });

  it('prints the whole status as JSON with its exit code, and nothing else on stdout', async () => {
    const { code, stdout } = await runCli(['--config', configFile('planted', planted.url), 'status', '--json']);
    expect(code).toBe(2);
    const report = JSON.parse(stdout);
    expect(report.exitCode).toBe(2);
    expect(report.checks.find((c: { id: string }) => c.id === 'daily:vacuum-analyze:main').state).toBe('missed');
    expect(report.findings).toHaveLength(3);
  });

  it.each([
    [['--task', 'connections'], 0],
    [['--task', 'disk-check'], 1],
    [['--task', 'pg-health'], 2],
    [['--target', 'caretaker'], 0],
  ])('with %j exits %d', async (filter, expected) => {
    const { code, stdout } = await runCli(['--config', configFile('planted', planted.url), 'status', ...filter]);
    expect(code).toBe(expected);
    expect(stdout.split('\n')[0]).toMatch(new RegExp(`^CARETAKER ${['OK', 'WARNING', 'CRITICAL'][expected]} - `));
  });

  it('exits 0 on a fleet where nothing ran yet', async () => {
    const { code, stdout } = await runCli(['--config', configFile('quiet', quiet.url), 'status']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^CARETAKER OK - \d+ never ran; 0 open findings/);
  });

  it('exits 3 with one line for an unknown task or target, or a state database that does not answer', async () => {
    const file = configFile('planted', planted.url);
    const task = await runCli(['--config', file, 'status', '--task', 'nope']);
    expect([task.code, task.stderr]).toEqual([3, expect.stringMatching(/^caretaker: unknown task "nope" \(known: .*\)\n$/)]);
    const target = await runCli(['--config', file, 'status', '--target', 'nope']);
    expect([target.code, target.stderr]).toEqual([3, expect.stringMatching(/^caretaker: unknown target "nope" \(known: main, caretaker\)\n$/)]);
    const down = await runCli(['--config', configFile('down', 'postgres://postgres:hunter22@127.0.0.1:1/x'), 'status']);
    expect(down.code).toBe(3);
    expect(down.stderr).toMatch(/^caretaker: cannot read the state database: .*ECONNREFUSED.*\n$/);
    expect(down.stderr).not.toContain('hunter22');
  });

  it('prints perfdata that Monitoring::Plugin::Performance parses (.ci/run installs libmonitoring-plugin-perl)', async () => {
    const { stdout } = await runCli(['--config', configFile('planted', planted.url), 'status']);
    const perf = stdout.split('\n')[0]!.split(' | ')[1]!;
    const script = 'print join(",", map { $_->label . "=" . $_->value } Monitoring::Plugin::Performance->parse_perfstring($ARGV[0]))';
    const parsed = execFileSync('perl', ['-MMonitoring::Plugin::Performance', '-e', script, perf], { encoding: 'utf8' });
    expect(parsed).toBe('checks=12,critical=1,missed=1,late=1,error=1,warning=0,never_ran=7,ok=1,findings_critical=1,findings_warning=2');
  });
});
