/**
 * A state database that stops answering on open sessions (a half-open TCP
 * connection: a failover, a NAT that forgot the flow, a partition). The
 * stalling proxy holds every byte caretaker sends once a session is ready,
 * so the server never sees a query and its statement_timeout never fires:
 * only a client-side bound can end the wait. A real `caretaker start` must
 * go on running jobs (their results wait in the outbox), come back by
 * itself once bytes flow again (results written, /health 200), and stop on
 * SIGTERM within its grace while the database is still silent.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import { stringify } from 'yaml';
import { createQueue, type JobData } from '../../src/queue/queue';
import { migrate } from '../../src/results/migrate';
import { ResultOutbox } from '../../src/results/outbox';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { TEST_REDIS_URL } from '../support/env';
import { eventually, waitForJob } from '../support/jobs';
import { freePort } from '../support/ports';
import { getJson, spawnCaretaker, startStallingProxyToPostgres, type CaretakerProcess, type StallingProxy } from '../support/processes';
import { deleteKeys, randomPrefix } from '../support/redis';

const prefix = randomPrefix('statestall');
let db: TestDatabase;
let redis: Redis;
let queue: Queue<JobData>;
let proxy: StallingProxy;
let caretaker: CaretakerProcess;
let dir: string;
let health: string;

const stored = async (): Promise<number> => (await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM caretaker.runs WHERE task = 'connections'`)).rows[0]!.n;

beforeAll(async () => {
  db = await createTestDatabase('statestall');
  await migrate(db.pool);
  redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  queue = createQueue(redis, prefix);
  proxy = await startStallingProxyToPostgres();
  dir = mkdtempSync(join(tmpdir(), 'ct-statestall-'));
  const stateUrl = new URL(db.url);
  stateUrl.port = String(proxy.port);
  const port = await freePort();
  health = `http://127.0.0.1:${port}/health`;
  const configPath = join(dir, 'caretaker.yaml');
  writeFileSync(
    configPath,
    stringify({
      redis: { url: TEST_REDIS_URL, prefix },
      // A short statement timeout, so the client's bound (5 s more) comes within the test's patience.
      state: { url: stateUrl.toString(), statementTimeoutSeconds: 1 },
      // The target is reached directly: only caretaker's own database is silent.
      targets: { postgres: [{ name: 'main', url: db.url }] },
      // Flushed every second: the recovery is waited for as the flush's log line, not the default 15 s.
      worker: { concurrency: 1, attempts: 1, backoffMs: 100, shutdownGraceMs: 3_000, outboxFlushSeconds: 1 },
      web: { port },
    }),
  );
  caretaker = spawnCaretaker(['start', '--config', configPath]);
  await caretaker.waitForLog('caretaker started');
}, 60_000);

afterAll(async () => {
  proxy?.release();
  await caretaker?.stop(5_000);
  await queue?.close();
  redis?.disconnect();
  await proxy?.close();
  await db?.drop();
  await deleteKeys(prefix);
  rmSync(dir, { recursive: true, force: true });
});

/*
 * One scenario, in its order: a stall, the recovery, a stall at shutdown.
 * The phases build on each other (the results written in the second are
 * those the first left in the outbox), so they are one test.
 */
it('keeps running jobs while the state database is silent, comes back by itself, and stops on SIGTERM while it is silent again', async () => {
  // Runs keep completing while it is silent: each result waits in the outbox.
  proxy.hold();
  for (const jobId of ['during-stall-1', 'during-stall-2']) {
    await queue.add('connections', { task: 'connections', target: 'main' }, { attempts: 1, jobId });
    const done = await waitForJob(queue, jobId, 30_000);
    expect(await done.getState()).toBe('completed');
  }
  const outbox = new ResultOutbox(redis, prefix);
  await eventually(async () => ((await outbox.size()) >= 2 ? true : undefined), 20_000, 'both results in the outbox');
  expect(proxy.held()).toBeGreaterThan(0);
  expect(await stored()).toBe(0);

  // Once bytes flow again: the results are written and /health answers 200, without a restart.
  proxy.release();
  await eventually(async () => ((await stored()) === 2 ? true : undefined), 40_000, 'the outbox to be written');
  expect(await outbox.size()).toBe(0);
  await eventually(async () => ((await getJson(health))?.status === 200 ? true : undefined), 20_000, '/health to answer 200');
  // A run after the stall is stored directly.
  await queue.add('connections', { task: 'connections', target: 'main' }, { attempts: 1, jobId: 'after-stall' });
  await waitForJob(queue, 'after-stall', 30_000);
  await eventually(async () => ((await stored()) === 3 ? true : undefined), 15_000, 'the run after the stall to be stored');
  expect(caretaker.alive()).toBe(true);

  // SIGTERM while the database is silent again: it stops within its grace, exiting 0.
  proxy.hold();
  await queue.add('connections', { task: 'connections', target: 'main' }, { attempts: 1, jobId: 'at-shutdown' });
  await waitForJob(queue, 'at-shutdown', 30_000);
  caretaker.child.kill('SIGTERM');
  // Well past the 3 s grace and the 6 s client bound, short of anything a stuck process would reach by itself.
  const exit = await Promise.race([caretaker.exited, new Promise<'stuck'>((resolve) => setTimeout(() => resolve('stuck'), 30_000).unref())]);
  expect(exit).toEqual({ code: 0, signal: null });
}, 180_000);
