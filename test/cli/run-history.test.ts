/**
 * `caretaker run` when the state database does not take the result: the
 * result waits in the outbox in Redis (the workers write it later) and the
 * exit code stays the check's; when Redis cannot keep it either, the result
 * is still printed, stderr says it is not in the history, and the exit code
 * is 3: a run nothing remembers is not a success to take for one.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { stringify } from 'yaml';
import { migrate } from '../../src/results/migrate';
import { ResultOutbox } from '../../src/results/outbox';
import { ResultStore } from '../../src/results/store';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { TEST_REDIS_URL } from '../support/env';
import { runCli } from '../support/cli';
import { deleteKeys, randomPrefix } from '../support/redis';

const DEAD_STATE = 'postgres://postgres:s3cret-pw@127.0.0.1:1/nowhere';
let db: TestDatabase;
let dir: string;
let prefix: string;
let redis: Redis;

function configFile(name: string, redisUrl: string): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, stringify({ redis: { url: redisUrl, prefix }, state: { url: DEAD_STATE }, targets: { postgres: [{ name: 'main', url: db.url }] } }));
  return path;
}

beforeAll(async () => {
  db = await createTestDatabase('run_history');
  await migrate(db.pool);
  dir = mkdtempSync(join(tmpdir(), 'ct-run-history-'));
  prefix = randomPrefix('run_history');
  redis = new Redis(TEST_REDIS_URL);
});

afterAll(async () => {
  redis?.disconnect();
  await db?.drop();
  await deleteKeys(prefix);
  rmSync(dir, { recursive: true, force: true });
});

describe('caretaker run with the state database down', () => {
  it('keeps the result in the outbox, exits with the check\'s status, and the result is stored once when flushed', async () => {
    const run = await runCli(['--config', configFile('outbox', TEST_REDIS_URL), 'run', 'connections', '--json']);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ task: 'connections', target: 'main', status: 'ok' });
    const outbox = new ResultOutbox(redis, prefix);
    expect(await outbox.size()).toBe(1);
    const store = new ResultStore(db.pool);
    expect(await outbox.flush(store)).toBe(1);
    const { rows } = await db.pool.query(`SELECT schedule, job_key FROM caretaker.runs WHERE task = 'connections'`);
    expect(rows).toEqual([{ schedule: 'cli', job_key: expect.stringMatching(/^cli:[0-9a-f-]{36}$/) }]);
  });

  it('exits 3 and says so when neither the state database nor Redis keeps the result, still printing it', async () => {
    const run = await runCli(['--config', configFile('lost', 'redis://127.0.0.1:1'), 'run', 'connections']);
    expect(run.code).toBe(3);
    expect(run.stdout).toMatch(/^CONNECTIONS OK - main: /);
    expect(run.stderr).toMatch(/^caretaker: the result is not in the history: the state database did not take it \(.+\) and neither did the outbox in Redis \(.+\)\n$/m);
    expect(run.stderr).not.toContain('s3cret-pw');
  });
});
