/**
 * The real binary as an operator runs it (`bin/caretaker.js`, compiled by
 * `npm test`'s build step): starts, serves, and on SIGTERM stops in order
 * and exits 0; a bad config exits 3 with one line.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { deleteKeys, randomPrefix } from '../support/redis';
import { TEST_REDIS_URL } from '../support/env';
import { eventually } from '../support/jobs';

const BIN = join(__dirname, '../../bin/caretaker.js');
const prefix = randomPrefix('proc');
let db: TestDatabase;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase('proc');
  dir = mkdtempSync(join(tmpdir(), 'caretaker-proc-'));
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await db.drop();
  await deleteKeys(prefix);
});

function spawnCaretaker(args: string[], env: Record<string, string>): { child: ChildProcess; stderr: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout!.resume();
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stderr: () => err, exit };
}

/** pino lines from stderr, parsed. */
const logLines = (text: string) =>
  text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('caretaker start (real process)', () => {
  it('serves /health, and on SIGTERM stops and exits 0', async () => {
    const config = join(dir, 'caretaker.yaml');
    writeFileSync(config, `redis: { url: "${TEST_REDIS_URL}", prefix: ${prefix} }\nstate: { url: "${db.url}" }\nweb: { port: 0 }\ntargets: { postgres: [{ name: main, url: "${db.url}" }] }\n`);
    const proc = spawnCaretaker(['start'], { CARETAKER_CONFIG: config });
    try {
      const listening = await eventually(async () => logLines(proc.stderr()).find((l) => l.msg === 'web listening'), 20_000, 'the web role');
      await eventually(async () => logLines(proc.stderr()).find((l) => l.msg === 'caretaker started'), 20_000, 'start');
      const res = await fetch(`http://127.0.0.1:${listening.port}/health`);
      expect(res.status).toBe(200);

      proc.child.kill('SIGTERM');
      expect(await proc.exit).toBe(0);
      const messages = logLines(proc.stderr()).map((l) => l.msg);
      expect(messages).toEqual(expect.arrayContaining(['job schedulers in place', 'worker started', 'stopping: no new jobs, waiting for running ones', 'caretaker stopped']));
      // This config has no notification channel: one warning at start says alerts reach nobody.
      expect(logLines(proc.stderr()).filter((l) => l.msg === 'alerts go nowhere: configure notifications (notifications.email, notifications.webhook or notifications.channels)')).toEqual([
        expect.objectContaining({ level: 40 }),
      ]);
      // Nothing in the logs carries the database URL.
      expect(proc.stderr()).not.toContain(db.url);
    } finally {
      proc.child.kill('SIGKILL');
    }
  });

  it.each([['--version'], ['-V']])('%s prints the version from package.json (read from dist/) and exits 0', async (flag) => {
    const { version } = JSON.parse(readFileSync(join(__dirname, '../../package.json'), 'utf8')) as { version: string };
    // execFile rejects on any exit code but 0.
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, flag], { env: { PATH: process.env.PATH ?? '' }, timeout: 15_000 });
    expect({ stdout, stderr }).toEqual({ stdout: `${version}\n`, stderr: '' });
  });

  it('exits 3 with one line, and no stack trace, on an invalid config', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'targets: { postgres: [{ name: main, url: "mysql://x" }] }\n');
    const proc = spawnCaretaker(['start', '--config', bad], {});
    expect(await proc.exit).toBe(3);
    expect(proc.stderr().trim()).toBe(`caretaker: invalid config (${bad}): targets.postgres[0].url: must be a URL starting with postgres:// or postgresql://`);
  });
});
