/**
 * Fault 3: Redis goes away under a running caretaker (`start --role all`)
 * with an every-second schedule: (a) the test's own redis-server is stopped
 * (losing every key: no persistence) and started again on the same port;
 * (b) every client connection is killed (`CLIENT KILL TYPE normal`) after
 * the job schedulers were removed by hand. Each time the same process
 * reconnects, `/health` says 503 while Redis is away (a) and 200 after, the
 * job schedulers are back as the config declares them, and scheduled runs
 * land in caretaker.runs again.
 *
 * The shared Redis is never touched: this file stops only its own server.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import { createQueue, type JobData } from '../../src/queue/queue';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { randomPrefix } from '../support/redis';
import { eventually, waitForJob } from '../support/jobs';
import { getJson, spawnCaretaker, startOwnRedis, type CaretakerProcess, type OwnRedisServer } from '../support/processes';

const prefix = randomPrefix('rrestart');
const TEST_CLIENT = 'ct-test-client';
let db: TestDatabase;
let dir: string;
let server: OwnRedisServer;
let redis: Redis;
let queue: Queue<JobData>;
let proc: CaretakerProcess;
let healthUrl: string;
/** The job scheduler ids caretaker put in place at start. */
let schedulers: string[];

const schedulerIds = async () => (await queue.getJobSchedulers(0, -1)).map((s) => s.key).sort();

/** Scheduled runs stored after `since` (ms), from the every-second schedule. */
async function runsSince(since: number): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM caretaker.runs WHERE schedule = 'everySecond' AND task = 'connections' AND status <> 'error' AND started_at > $1`,
    [new Date(since)],
  );
  return rows[0]!.n;
}

const health = () => getJson(healthUrl);
async function healthStatus(want: number, timeoutMs: number): Promise<{ status: number; body: unknown }> {
  return eventually(
    async () => {
      const res = await health();
      return res?.status === want ? res : undefined;
    },
    timeoutMs,
    `/health to answer ${want}`,
  );
}

/** Caretaker's connections to the test's Redis: the ids of every client that is not one of the test's own. */
async function caretakerClients(): Promise<number[]> {
  const own = Number(await server.admin.client('ID'));
  const list = (await server.admin.client('LIST')) as string;
  return list
    .split('\n')
    .filter((line) => line.startsWith('id=') && !line.includes(` name=${TEST_CLIENT} `))
    .map((line) => Number(/^id=(\d+)/.exec(line)![1]))
    .filter((id) => id !== own);
}

beforeAll(async () => {
  db = await createTestDatabase('rrestart');
  dir = mkdtempSync(join(tmpdir(), 'caretaker-rrestart-'));
  server = await startOwnRedis();
  redis = new Redis(server.url, { maxRetriesPerRequest: null, retryStrategy: () => 100, connectionName: TEST_CLIENT });
  redis.on('error', () => undefined);
  queue = createQueue(redis, prefix);

  const config = join(dir, 'caretaker.yaml');
  writeFileSync(
    config,
    [
      `redis: { url: "${server.url}", prefix: ${prefix} }`,
      `state: { url: "${db.url}" }`,
      'web: { host: 127.0.0.1, port: 0 }',
      `targets: { postgres: [{ name: main, url: "${db.url}" }] }`,
      'worker: { concurrency: 2, attempts: 1, backoffMs: 100, shutdownGraceMs: 2000 }',
      `schedules: { everySecond: { cron: "* * * * * *", tasks: [connections] } }`,
      '',
    ].join('\n'),
  );
  proc = spawnCaretaker(['start', '--role', 'all', '--config', config]);
  const listening = await proc.waitForLog('web listening');
  await proc.waitForLog('caretaker started');
  healthUrl = `http://127.0.0.1:${String(listening.port)}/health`;
  // What each fault must restore: read here, so that each test stands alone.
  schedulers = await schedulerIds();
}, 60_000);

afterAll(async () => {
  await proc?.stop(10_000);
  await queue?.close().catch(() => undefined);
  redis?.disconnect();
  await server?.close();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('Redis restarted under a running caretaker', () => {
  it('runs before any fault: schedulers in place, scheduled runs stored, /health 200', async () => {
    expect(schedulers).toContain('everySecond:connections:main');
    await eventually(async () => ((await runsSince(0)) > 0 ? true : undefined), 30_000, 'a first scheduled run');
    expect((await health())?.status).toBe(200);
  });

  it('(a) redis-server stopped and started again: /health 503 then 200, schedulers re-upserted, runs resume, same process', async () => {
    await server.stop();
    const down = await healthStatus(503, 20_000);
    expect(down.body).toMatchObject({ status: 'down', checks: { redis: expect.not.stringMatching(/^ok$/), state: 'ok' } });
    // Down long enough for caretaker to fail at least one reconnect.
    await proc.waitForLog('redis connection error', 20_000);
    expect(proc.alive()).toBe(true);

    await server.start();
    const backAt = Date.now();
    // Every key went with the old server: nothing is in Redis until caretaker puts it back.
    await healthStatus(200, 30_000);
    await eventually(async () => (JSON.stringify(await schedulerIds()) === JSON.stringify(schedulers) ? true : undefined), 30_000, 'the job schedulers to be re-upserted');
    await eventually(async () => ((await runsSince(backAt)) >= 2 ? true : undefined), 30_000, 'scheduled runs after the restart');

    // The same process throughout: it said so when Redis came back, and never stopped.
    expect(proc.alive()).toBe(true);
    const messages = proc.logs().map((l) => l.msg);
    expect(messages).toContain('redis connection restored');
    expect(messages).not.toContain('caretaker stopped');
  }, 90_000);

  it('(b) every connection killed (CLIENT KILL) with the schedulers gone: reconnects, schedulers re-upserted, runs resume', async () => {
    const before = await caretakerClients();
    expect(before.length).toBeGreaterThan(0);
    const lastIdBefore = Math.max(...before);

    // The schedulers disappear (a hand edit, an eviction); the next reconnect must restore them.
    for (const id of schedulers) await queue.removeJobScheduler(id);
    expect(await schedulerIds()).toEqual([]);

    const killed = Number(await server.admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes'));
    expect(killed).toBeGreaterThanOrEqual(before.length);
    const killedAt = Date.now();

    // As many caretaker connections as before, all of them new ones.
    await eventually(
      async () => {
        const now = await caretakerClients();
        return now.length >= before.length && now.every((id) => id > lastIdBefore) ? true : undefined;
      },
      30_000,
      'caretaker to reconnect every connection',
    );
    await healthStatus(200, 30_000);
    await eventually(async () => (JSON.stringify(await schedulerIds()) === JSON.stringify(schedulers) ? true : undefined), 30_000, 'the job schedulers to be re-upserted');
    await eventually(async () => ((await runsSince(killedAt)) >= 2 ? true : undefined), 30_000, 'scheduled runs after the reconnect');

    expect(proc.alive()).toBe(true);
    expect(proc.logs().map((l) => l.msg)).not.toContain('caretaker stopped');
  }, 90_000);

  // BullMQ numbers jobs added without an id from a counter in Redis; a Redis that comes back
  // without its data starts it again at 1, so a "run now" after the restart gets an earlier run's
  // id. Runs are keyed by job id and creation time (migration 3), so both are stored.
  it('(c) a run added by hand after a restart that lost every key is stored, not dropped as a duplicate job id', async () => {
    const ownPrefix = `${prefix}-manual`;
    const config = join(dir, 'manual.yaml');
    writeFileSync(
      config,
      [
        `redis: { url: "${server.url}", prefix: ${ownPrefix} }`,
        `state: { url: "${db.url}" }`,
        `targets: { postgres: [{ name: main, url: "${db.url}" }] }`,
        'worker: { concurrency: 1, attempts: 1, backoffMs: 100, shutdownGraceMs: 2000 }',
        '',
      ].join('\n'),
    );
    const worker = spawnCaretaker(['start', '--role', 'worker', '--config', config]);
    const manualQueue = createQueue(redis, ownPrefix);
    try {
      await worker.waitForLog('caretaker started');
      const manualRuns = async () =>
        (await db.pool.query<{ job_id: string }>(`SELECT job_id FROM caretaker.runs WHERE schedule IS NULL AND task = 'connections' ORDER BY id`)).rows.map((r) => r.job_id);
      const runNow = async () => {
        const job = await manualQueue.add('connections', { task: 'connections', target: 'main' }, { attempts: 1 });
        await waitForJob(manualQueue, job.id!, 30_000);
        return job.id!;
      };
      const first = await runNow();
      await eventually(async () => ((await manualRuns()).length === 1 ? true : undefined), 15_000, 'the first manual run to be stored');

      await server.stop();
      await healthStatus(503, 20_000);
      await server.start();
      await healthStatus(200, 30_000);

      const second = await runNow();
      // A dropped result never arrives: the bounded wait fails with both job ids in its message.
      await eventually(async () => ((await manualRuns()).length === 2 ? true : undefined), 15_000, `the second manual run (job ${second}; the first was job ${first}) to be stored`);
    } finally {
      await manualQueue.close().catch(() => undefined);
      await worker.stop(10_000);
    }
  }, 90_000);
});
