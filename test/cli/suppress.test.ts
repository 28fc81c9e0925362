/**
 * `caretaker silence add|list|expire`, `waive`, `waivers`, `unwaive`
 * through the real CLI (in-process) on a planted history, and what
 * `caretaker status` then says: a silenced finding stays open with who and
 * why, a waived one leaves the open list, the counts and the exit code.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { migrate } from '../../src/results/migrate';
import { testConfig } from '../support/config';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { TEST_REDIS_URL } from '../support/env';
import { runCli } from '../support/cli';
import { deleteKeys, randomPrefix } from '../support/redis';
import { plantFleet } from '../support/status-fleet';

let db: TestDatabase;
let bare: TestDatabase;
let dir: string;
let prefix: string;
let file: string;

function configFile(name: string, dbUrl: string, extra: Record<string, unknown> = {}): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify({ redis: { url: TEST_REDIS_URL, prefix }, state: { url: dbUrl }, targets: { postgres: [{ name: 'main', url: dbUrl }] }, ...extra }));
  return path;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ct-suppress-'));
  prefix = randomPrefix('suppress_cli');
  db = await createTestDatabase('suppress_cli');
  bare = await createTestDatabase('suppress_cli_bare');
  await migrate(db.pool);
  await plantFleet(db.pool, testConfig({ dbUrl: db.url, prefix }));
  file = configFile('planted', db.url);
});

afterAll(async () => {
  await db?.drop();
  await bare?.drop();
  await deleteKeys(prefix);
  rmSync(dir, { recursive: true, force: true });
});

/** Each test starts from no silence and no waiver. */
beforeEach(async () => {
  await db.pool.query('TRUNCATE caretaker.silences, caretaker.waivers');
});

const cli = (...args: string[]) => runCli(['--config', file, ...args]);

describe('caretaker silence', () => {
  it('adds a silence that status shows on the open finding, lists it, and expires it', async () => {
    const added = await cli('silence', 'add', '--task', 'disk-*', '--target', 'main', '--for', '2h', '--reason', 'resizing the volume', '--by', 'alice', '--json');
    expect([added.code, added.stderr]).toEqual([0, '']);
    const silence = JSON.parse(added.stdout);
    expect(silence).toMatchObject({ state: 'active', matchers: { task: 'disk-*', target: 'main' }, reason: 'resizing the volume', createdBy: 'alice' });
    expect(Date.parse(silence.endsAt) - Date.parse(silence.startsAt)).toBe(2 * 3600_000);

    const status = await cli('status');
    expect(status.stdout).toMatch(/\[WARNING\] main disk-check disk_usage_high .*\n {6}suggestion: Grow the volume\n {6}silenced by alice until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: resizing the volume\n/);
    expect(status.stdout).toMatch(/disk-check .*open 1 warning, 1 silenced/);
    // A silence quiets notifications, not the check: the finding still counts.
    expect(status.stdout.split('\n')[0]).toMatch(/; 3 open findings \|/);

    const list = await cli('silence', 'list');
    expect(list.stdout).toMatch(new RegExp(`^${silence.id} +active +task=disk-\\* target=main  until .* by alice: resizing the volume$`, 'm'));

    const expired = await cli('silence', 'expire', silence.id, '--by', 'bob');
    expect([expired.code, expired.stdout]).toEqual([0, `silence ${silence.id} expired: task=disk-* target=main; problems it held alert within 30 s if still open\n`]);
    const after = JSON.parse((await cli('silence', 'list', '--json')).stdout);
    expect(after).toEqual([expect.objectContaining({ id: silence.id, state: 'expired', expiredBy: 'bob' })]);
    expect((await cli('status')).stdout).not.toContain('silenced by');

    const again = await cli('silence', 'expire', silence.id);
    expect([again.code, again.stderr]).toEqual([3, `caretaker: no silence "${silence.id}" in force or to come (see "caretaker silence list")\n`]);
  });

  it('takes --until and prints one line for what it added', async () => {
    const until = new Date(Date.now() + 3 * 3600_000).toISOString();
    const { code, stdout } = await cli('silence', 'add', '--code', 'long_transaction', '--until', until, '--reason', 'batch import', '--by', 'carol');
    expect(code).toBe(0);
    expect(stdout).toMatch(/^silence \d+ added: code=long_transaction until .* \((2h 59m|3h)\): batch import\n$/);
  });

  it.each([
    [['--for', '2h', '--reason', 'x'], /needs at least one of --task, --target, --code, --subject/],
    [['--task', 'vacum-analyze', '--for', '2h', '--reason', 'x'], /--task "vacum-analyze" matches no task \(known: .*vacuum-analyze.*\)/],
    [['--target', 'mian', '--for', '2h', '--reason', 'x'], /--target "mian" matches no target \(known: main, caretaker\)/],
    [['--target', 'main', '--for', '2h'], /needs --reason/],
    [['--target', 'main', '--reason', 'x'], /exactly one of --for .* and --until/],
    [['--target', 'main', '--for', '2h', '--until', '2030-01-01', '--reason', 'x'], /exactly one of --for/],
    [['--target', 'main', '--for', 'two hours', '--reason', 'x'], /--for "two hours" is not a duration/],
    [['--target', 'main', '--until', '2020-01-01T00:00:00Z', '--reason', 'x'], /--until 2020-01-01T00:00:00Z is in the past/],
    [['--target', 'main', '--until', 'tomorrow', '--reason', 'x'], /--until "tomorrow" is not an ISO 8601 date/],
    [['--target', 'main', '--for', '400d', '--reason', 'x'], /lasts at most a year/],
  ])('refuses %j with one line and exit 3, storing nothing', async (args, message) => {
    const { code, stdout, stderr } = await cli('silence', 'add', ...args);
    expect(code).toBe(3);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/^caretaker: .*\n$/);
    expect(stderr).toMatch(message);
    expect((await db.pool.query('SELECT count(*)::int AS n FROM caretaker.silences')).rows[0].n).toBe(0);
  });

  it('tells a state database without the tables to migrate', async () => {
    const { code, stderr } = await runCli(['--config', configFile('bare', bare.url), 'silence', 'list']);
    expect([code, stderr]).toEqual([3, 'caretaker: the state database has no silences or waivers yet: run "caretaker migrate" (or start caretaker) first\n']);
  });
});

describe('caretaker waive', () => {
  const invalidIndex = ['--task', 'index-audit', '--target', 'main', '--code', 'invalid_index', '--subject', 'public.orders_idx'];

  it("accepts an open finding at its severity: status sets it apart and the exit code drops; unwaive brings it back", async () => {
    const only = ['status', '--task', 'index-audit'];
    expect((await cli(...only)).code).toBe(2);

    const added = await cli('waive', ...invalidIndex, '--reason', 'rebuilt on Sunday', '--until', '2099-03-01', '--by', 'alice');
    expect(added.code).toBe(0);
    const [line, covers] = added.stdout.trimEnd().split('\n');
    expect(line).toMatch(/^waiver \d+ added: index-audit main invalid_index public\.orders_idx {2}up to critical, until 2099-03-01 00:00:00 UTC, by alice: rebuilt on Sunday$/);
    expect(covers).toBe('it accepts 1 open finding now');
    const id = /^waiver (\d+)/.exec(line!)![1]!;

    const status = await cli(...only);
    expect(status.code).toBe(0);
    expect(status.stdout.split('\n')[0]).toMatch(/^CARETAKER OK - 1 ok; 0 open findings, 1 waived \|/);
    expect(status.stdout).toContain(`waived (1):\n  [CRITICAL] main index-audit invalid_index public.orders_idx: waiver ${id} by alice, until 2099-03-01 00:00:00 UTC: rebuilt on Sunday`);
    const json = JSON.parse((await cli(...only, '--json')).stdout);
    expect(json.waived).toEqual([expect.objectContaining({ code: 'invalid_index', waiver: expect.objectContaining({ id, by: 'alice', severity: 'critical', expiresAt: '2099-03-01T00:00:00.000Z' }) })]);

    const listed = JSON.parse((await cli('waivers', '--json')).stdout);
    expect(listed).toEqual([expect.objectContaining({ id, source: 'state', severity: 'critical', createdBy: 'alice' })]);

    const removed = await cli('unwaive', id, '--by', 'bob');
    expect(removed.code).toBe(0);
    expect(removed.stdout).toMatch(/^waiver \d+ removed: index-audit main invalid_index public\.orders_idx is open again/);
    expect((await cli(...only)).code).toBe(2);
    expect((await db.pool.query('SELECT removed_by FROM caretaker.waivers WHERE id = $1', [id])).rows).toEqual([{ removed_by: 'bob' }]);
    const twice = await cli('unwaive', id);
    expect([twice.code, twice.stderr]).toEqual([3, `caretaker: no waiver "${id}" in force (see "caretaker waivers")\n`]);
  });

  it('accepts warning when nothing open matches yet, or the severity given', async () => {
    const none = await cli('waive', '--task', 'index-audit', '--target', 'main', '--code', 'unused_index', '--subject', 'public.*', '--reason', 'yearly export', '--json');
    expect(JSON.parse(none.stdout)).toMatchObject({ severity: 'warning', covers: 0, subject: 'public.*' });
    const info = await cli('waive', ...invalidIndex, '--reason', 'only the info', '--severity', 'info', '--json');
    // Accepting less than it is: the critical finding stays open.
    expect(JSON.parse(info.stdout)).toMatchObject({ severity: 'info', covers: 0 });
    expect((await cli('status', '--task', 'index-audit')).code).toBe(2);
  });

  it('lists the config\'s waivers beside the stored ones, lapsing first first, and will not remove a config waiver', async () => {
    const withConfig = configFile('waivers', db.url, { waivers: [{ task: 'pg-health', target: 'main', code: 'long_transaction', subject: '*', reason: 'the nightly export', until: '2099-01-01' }] });
    await cli('waive', ...invalidIndex, '--reason', 'later', '--until', '2099-06-01', '--by', 'alice');
    const { stdout } = await runCli(['--config', withConfig, 'waivers']);
    const lines = stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^config-1 +pg-health main long_transaction \* {2}up to warning, until 2099-01-01 00:00:00 UTC, by config: the nightly export$/);
    expect(lines[1]).toMatch(/^\d+ +index-audit main invalid_index public\.orders_idx {2}up to critical, until 2099-06-01/);
    const refused = await runCli(['--config', withConfig, 'unwaive', 'config-1']);
    expect([refused.code, refused.stderr]).toEqual([3, "caretaker: waiver config-1 comes from the config's waivers: remove it there\n"]);
  });

  it.each([
    [['--task', 'index-audit', '--target', 'main', '--code', 'x', '--reason', 'r'], /a waiver needs --subject/],
    [[...invalidIndex], /a waiver needs --reason/],
    [[...invalidIndex, '--reason', 'r', '--severity', 'fatal'], /--severity "fatal" is not one of info, warning, critical/],
    [[...invalidIndex, '--reason', 'r', '--until', '2001-01-01'], /--until 2001-01-01 is in the past/],
    [['--task', 'index-audit', '--target', 'nowhere', '--code', 'x', '--subject', 'y', '--reason', 'r'], /--target "nowhere" matches no target/],
  ])('refuses %j with one line and exit 3, storing nothing', async (args, message) => {
    const { code, stdout, stderr } = await cli('waive', ...args);
    expect([code, stdout]).toEqual([3, '']);
    expect(stderr).toMatch(/^caretaker: .*\n$/);
    expect(stderr).toMatch(message);
    expect((await db.pool.query('SELECT count(*)::int AS n FROM caretaker.waivers')).rows[0].n).toBe(0);
  });
});
