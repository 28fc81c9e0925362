/**
 * Redis behind a network that silently drops every byte (a partition, a
 * NAT that forgot the flow): the connections open at that moment never get
 * an answer again and no error ever arrives. A real worker must notice,
 * reconnect, and run jobs again once the network is back, without a
 * restart. Redis's own TCP keepalive would take minutes; the client's
 * socket timeout (30 s of silence with commands pending) cuts the dead
 * connection.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import { stringify } from 'yaml';
import { createQueue, type JobData } from '../../src/queue/queue';
import { migrate } from '../../src/results/migrate';
import { startBlackholeProxy, type BlackholeProxy } from '../support/blackhole-proxy';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { TEST_REDIS_URL } from '../support/env';
import { eventually, waitForJob } from '../support/jobs';
import { spawnCaretaker, type CaretakerProcess } from '../support/processes';
import { deleteKeys, randomPrefix } from '../support/redis';

const prefix = randomPrefix('blackhole');
let db: TestDatabase;
let redis: Redis;
let queue: Queue<JobData>;
let proxy: BlackholeProxy;
let worker: CaretakerProcess;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase('blackhole');
  await migrate(db.pool);
  redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  queue = createQueue(redis, prefix);
  proxy = await startBlackholeProxy(Number(new URL(TEST_REDIS_URL).port || 6379), new URL(TEST_REDIS_URL).hostname);
  dir = mkdtempSync(join(tmpdir(), 'ct-blackhole-'));
  const viaProxy = new URL(TEST_REDIS_URL);
  viaProxy.port = String(proxy.port);
  const configPath = join(dir, 'caretaker.yaml');
  writeFileSync(
    configPath,
    stringify({
      redis: { url: viaProxy.toString(), prefix },
      state: { url: db.url },
      targets: { postgres: [{ name: 'main', url: db.url }] },
      worker: { concurrency: 1, attempts: 1, backoffMs: 100, shutdownGraceMs: 2_000 },
    }),
  );
  worker = spawnCaretaker(['start', '--role', 'worker', '--config', configPath]);
  await worker.waitForLog('caretaker started');
}, 60_000);

afterAll(async () => {
  await worker?.stop(5_000);
  await queue?.close();
  redis?.disconnect();
  await proxy?.close();
  await db?.drop();
  await deleteKeys(prefix);
  rmSync(dir, { recursive: true, force: true });
});

it('runs jobs again after its connections went silent, once the network is back, without a restart', async () => {
  await queue.add('connections', { task: 'connections', target: 'main' }, { attempts: 1, jobId: 'before' });
  expect(await (await waitForJob(queue, 'before', 30_000)).getState()).toBe('completed');

  proxy.blackhole();
  // The worker has sent a command into the void (its next fetch, a lock or stalled check): that connection is dead for good.
  const swallowed = proxy.swallowed();
  await eventually(async () => (proxy.swallowed() > swallowed ? true : undefined), 30_000, 'the worker to send a command into the black hole');
  proxy.restore();
  expect(proxy.live()).toBe(0);

  await queue.add('connections', { task: 'connections', target: 'main' }, { attempts: 1, jobId: 'after' });
  // The socket timeout (30 s) plus a reconnect and the run.
  const after = await waitForJob(queue, 'after', 75_000);
  expect(await after.getState()).toBe('completed');
  expect(proxy.live()).toBeGreaterThan(0);
  expect(worker.alive()).toBe(true);
}, 120_000);
