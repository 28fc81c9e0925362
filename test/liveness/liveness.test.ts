/**
 * /livez: alive while the roles' loops come round and jobs leave the
 * processor in time, stuck (503, naming what) otherwise. The verdict on a
 * clock of the test's own; then a real worker's job, a real scheduler whose
 * state database stops answering mid-check (the stalling proxy), and the
 * real binary serving /livez on liveness.port for a role without a web
 * server.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { stringify } from 'yaml';
import { defineTask, type Task } from '../../src/contract/task';
import { Liveness } from '../../src/liveness/liveness';
import { startCaretaker } from '../../src/main';
import { createQueue } from '../../src/queue/queue';
import { migrate } from '../../src/results/migrate';
import { ResultStore } from '../../src/results/store';
import { STUCK_MARGIN_MS } from '../../src/worker/processor';
import { startWorker } from '../../src/worker/worker';
import { testConfig } from '../support/config';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { TEST_REDIS_URL } from '../support/env';
import { eventually, waitForJob } from '../support/jobs';
import { testLogger } from '../support/logger';
import { freePort } from '../support/ports';
import { getJson, spawnCaretaker, startStallingProxyToPostgres } from '../support/processes';
import { deleteKeys, randomPrefix } from '../support/redis';

/** A clock the test moves. */
function manualClock(): { now: () => number; advance(ms: number): void } {
  let t = Date.now();
  return { now: () => t, advance: (ms) => (t += ms) };
}

let db: TestDatabase;
const prefixes: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase('liveness');
  await migrate(db.pool);
});

afterAll(async () => {
  await db?.drop();
  for (const p of prefixes) await deleteKeys(p);
});

describe('the verdict', () => {
  it('is live while each loop beats within its bound and each job leaves in time; names what is stuck otherwise', () => {
    const clock = manualClock();
    const live = new Liveness(clock.now);
    live.beat('missed-run check', 180_000);
    live.jobStarted('42', 'vacuum-analyze on auditron', 3_660_000);
    clock.advance(170_000);
    expect(live.check()).toEqual({ live: true, stuck: [] });
    clock.advance(20_000);
    expect(live.check()).toEqual({ live: false, stuck: ['missed-run check: silent for 190 s (at most 180 s)'] });
    live.beat('missed-run check', 180_000);
    clock.advance(3_500_000);
    expect(live.check().stuck).toEqual(['missed-run check: silent for 3500 s (at most 180 s)', 'job 42 (vacuum-analyze on auditron): 3690 s in the processor (at most 3660 s)']);
    live.jobEnded('42');
    live.beat('missed-run check', 180_000);
    expect(live.check()).toEqual({ live: true, stuck: [] });
  });
});

describe('a real worker', () => {
  it('counts a job in the processor against its task\'s timeout plus the margin, and forgets it when it leaves', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let running!: () => void;
    // The task runs after the processor has noted the job: waiting for it (not for BullMQ's `active`) leaves no gap.
    const started = new Promise<void>((resolve) => (running = resolve));
    const stall: Task = defineTask({
      name: 'stall',
      description: 'waits for the test',
      target: 'postgres',
      defaultSchedule: 'daily',
      timeoutMs: 60_000,
      changesTarget: false,
      params: z.strictObject({}),
      codes: {},
      run: async () => {
        running();
        await held;
        return { summary: 'released', findings: [] };
      },
    });
    const prefix = randomPrefix('liveness_worker');
    prefixes.push(prefix);
    const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
    const queue = createQueue(redis, prefix);
    const clock = manualClock();
    const liveness = new Liveness(clock.now);
    const config = testConfig({ dbUrl: db.url, prefix, worker: { concurrency: 1, attempts: 1, backoffMs: 50, shutdownGraceMs: 2_000 } });
    const role = startWorker({ config, registry: new Map([[stall.name, stall]]), store: new ResultStore(db.pool), state: db.pool, redis, connection: redis, log: testLogger, liveness });
    try {
      const job = await queue.add('stall', { task: 'stall', target: 'main' }, { attempts: 1 });
      await started;
      // The worker's outbox flush beats on real time: only the job's line is this test's.
      const jobsStuck = () => liveness.check().stuck.filter((line) => line.startsWith('job '));
      clock.advance(60_000 + STUCK_MARGIN_MS - 1_000);
      expect(jobsStuck()).toEqual([]);
      clock.advance(2_000);
      expect(jobsStuck()).toEqual([expect.stringMatching(new RegExp(`^job ${job.id} \\(stall on main\\): \\d+ s in the processor \\(at most ${(60_000 + STUCK_MARGIN_MS) / 1000} s\\)$`))]);
      release();
      await waitForJob(queue, job.id!, 10_000);
      await eventually(async () => (jobsStuck().length === 0 ? true : undefined), 5_000, 'the job to leave the verdict');
    } finally {
      release();
      await role.close(2_000);
      await queue.close();
      redis.disconnect();
    }
  });
});

describe('a real scheduler whose state database stops answering mid-check', () => {
  it('answers 503 on /livez naming the missed-run check, and 200 again once it comes round', async () => {
    const proxy = await startStallingProxyToPostgres();
    const stateUrl = new URL(db.url);
    stateUrl.port = String(proxy.port);
    const prefix = randomPrefix('liveness_sched');
    prefixes.push(prefix);
    const clock = manualClock();
    const liveness = new Liveness(clock.now);
    // A long statement timeout: the held check waits, as on a connection whose peer is gone and no bound fires yet.
    const config = testConfig({ dbUrl: db.url, prefix, state: { url: stateUrl.toString(), statementTimeoutSeconds: 3_600 }, web: { port: 0 } });
    const caretaker = await startCaretaker({ config, roles: ['scheduler', 'web'], log: testLogger, missedRunIntervalMs: 200, liveness });
    const livez = `${caretaker.webUrl}/livez`;
    try {
      expect(await getJson(livez)).toEqual({ status: 200, body: { status: 'ok' } });
      proxy.hold();
      await eventually(async () => (proxy.held() > 0 ? true : undefined), 10_000, 'a check to be held');
      clock.advance(10 * 60_000);
      const stuck = await getJson(livez);
      expect(stuck?.status).toBe(503);
      expect(stuck?.body).toEqual({ status: 'stuck', stuck: expect.arrayContaining([expect.stringMatching(/^missed-run check: silent for 600 s \(at most 61 s\)$/)]) });
      proxy.release();
      await eventually(async () => ((await getJson(livez))?.status === 200 ? true : undefined), 15_000, '/livez to answer 200 again');
    } finally {
      proxy.release();
      await caretaker.stop();
      await proxy.close();
    }
  }, 60_000);
});

describe('the real binary, a role without a web server', () => {
  it('serves /livez on liveness.port, and nothing else there', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ct-liveness-'));
    const prefix = randomPrefix('liveness_bin');
    prefixes.push(prefix);
    const port = await freePort();
    const configPath = join(dir, 'caretaker.yaml');
    writeFileSync(configPath, stringify({ redis: { url: TEST_REDIS_URL, prefix }, state: { url: db.url }, targets: { postgres: [{ name: 'main', url: db.url }] }, liveness: { port } }));
    const worker = spawnCaretaker(['start', '--role', 'worker', '--config', configPath]);
    try {
      await worker.waitForLog('caretaker started');
      expect(await getJson(`http://127.0.0.1:${port}/livez`)).toEqual({ status: 200, body: { status: 'ok' } });
      expect((await getJson(`http://127.0.0.1:${port}/health`))?.status).toBe(404);
    } finally {
      await worker.stop(5_000);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
