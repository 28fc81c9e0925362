/**
 * `caretaker run --json` when the run cannot start (no target of the task's
 * kind, an unknown task or target, a bad --param, an invalid config): stdout
 * is still exactly one TaskResult, an `error` whose summary says what to
 * fix, and the exit code is 3, because monitors parse stdout. Only a broken
 * command line (an unknown option) stays commander's usage line on stderr.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { TaskResult } from '../../src/contract/result';
import { migrate } from '../../src/results/migrate';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { TEST_REDIS_URL } from '../support/env';
import { runCli, type CliRun } from '../support/cli';
import { deleteKeys, randomPrefix } from '../support/redis';

let db: TestDatabase;
let dir: string;
let prefix: string;
let postgresOnly: string;

beforeAll(async () => {
  db = await createTestDatabase('run_json');
  await migrate(db.pool);
  dir = mkdtempSync(join(tmpdir(), 'ct-run-json-'));
  prefix = randomPrefix('run_json');
  postgresOnly = join(dir, 'postgres-only.yaml');
  writeFileSync(postgresOnly, stringify({ redis: { url: TEST_REDIS_URL, prefix }, state: { url: db.url }, targets: { postgres: [{ name: 'main', url: db.url }] } }));
});

afterAll(async () => {
  await db?.drop();
  await deleteKeys(prefix);
  rmSync(dir, { recursive: true, force: true });
});

/** The one TaskResult stdout must hold: one line that parses. */
function onlyResult(run: CliRun): TaskResult {
  const lines = run.stdout.split('\n').filter((l) => l !== '');
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]!) as TaskResult;
}

function expectErrorResult(run: CliRun, expected: { task: string; target: string; summary: string | RegExp }): void {
  expect(run.code).toBe(3);
  const result = onlyResult(run);
  expect(result).toEqual({
    task: expected.task,
    target: expected.target,
    status: 'error',
    startedAt: expect.any(String),
    finishedAt: expect.any(String),
    durationMs: 0,
    dryRun: false,
    summary: typeof expected.summary === 'string' ? expected.summary : expect.stringMatching(expected.summary),
    findings: [],
    actions: [],
    metrics: {},
  });
  expect(run.stderr).not.toMatch(/\n\s+at /);
}

describe('caretaker run --json when the run cannot start', () => {
  it('prints an error TaskResult saying which config key to add when the config has no target of the task\'s kind', async () => {
    const run = await runCli(['-c', postgresOnly, 'run', 'api-health', '--json']);
    expectErrorResult(run, { task: 'api-health', target: '', summary: 'api-health needs an http target: add one under targets.http in the config' });
    // No run happened: nothing in the history.
    const { rows } = await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM caretaker.runs`);
    expect(rows[0]!.n).toBe(0);
  });

  it('prints an error TaskResult for an unknown task, naming the known ones', async () => {
    const run = await runCli(['-c', postgresOnly, 'run', 'defrag', '--json']);
    expectErrorResult(run, { task: 'defrag', target: '', summary: /^unknown task "defrag" \(known: .*connections/ });
  });

  it('prints an error TaskResult for an unknown target, naming it and the known ones', async () => {
    const run = await runCli(['-c', postgresOnly, 'run', 'connections', '--target', 'nope', '--json']);
    expectErrorResult(run, { task: 'connections', target: 'nope', summary: 'unknown postgres target "nope" (known: main)' });
  });

  it.each([
    ['without "="', 'idleSeconds', '--param "idleSeconds": expected KEY=VALUE'],
    ['of the wrong type', 'idleSeconds=soon', /^--param idleSeconds: /],
    ['that is not a param of the task', 'colour=red', '--param colour: not a param of connections'],
  ])('prints an error TaskResult on the picked target for a --param %s', async (_name, param, summary) => {
    const run = await runCli(['-c', postgresOnly, 'run', 'connections', '--json', '--param', param]);
    expectErrorResult(run, { task: 'connections', target: 'main', summary });
  });

  it('prints an error TaskResult for an invalid config, with the asked task and --target (else "")', async () => {
    const invalid = join(dir, 'invalid.yaml');
    writeFileSync(invalid, stringify({ redis: { url: TEST_REDIS_URL, prefix }, targets: { postgres: [{ name: 'main', url: 'mysql://nope' }] } }));
    const named = await runCli(['-c', invalid, 'run', 'connections', '--target', 'main', '--json']);
    expectErrorResult(named, { task: 'connections', target: 'main', summary: /^invalid config \(.*invalid\.yaml\): targets\.postgres\[0\]\.url: must be a URL starting with postgres:\/\// });
    const unnamed = await runCli(['-c', invalid, 'run', 'connections', '--json']);
    expectErrorResult(unnamed, { task: 'connections', target: '', summary: /^invalid config / });
  });

  it('without --json, or with a broken command line (an unknown option), stays one line on stderr and nothing on stdout', async () => {
    const text = await runCli(['-c', postgresOnly, 'run', 'api-health']);
    expect(text).toEqual({ code: 3, stdout: '', stderr: 'caretaker: api-health needs an http target: add one under targets.http in the config\n' });
    const broken = await runCli(['-c', postgresOnly, 'run', 'connections', '--json', '--colour']);
    expect(broken.code).toBe(3);
    expect(broken.stdout).toBe('');
    expect(broken.stderr).toMatch(/unknown option '--colour'/);
  });
});
