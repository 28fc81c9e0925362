/**
 * Fault 7: the clock moves on while caretaker is down. A running caretaker
 * (`start --role all`, a schedule every 5 s with a 1 s grace and catchUp)
 * is stopped, stays down across a fire time, and its scheduler comes back
 * first (`--role scheduler`): its first check, at start, records the missed
 * run and alerts. The run BullMQ left due in the queue is the catch-up, so
 * no second one is added; when a worker comes back it runs once.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import { createQueue, type JobData } from '../../src/queue/queue';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { deleteKeys, randomPrefix } from '../support/redis';
import { TEST_REDIS_URL } from '../support/env';
import { eventually } from '../support/jobs';
import { spawnCaretaker, type CaretakerProcess } from '../support/processes';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook';

const prefix = randomPrefix('schedown');
const PERIOD_MS = 5_000;
const GRACE_MS = 1_000;
const ENTRY = 'fast:connections:main';

let db: TestDatabase;
let dir: string;
let redis: Redis;
let queue: Queue<JobData>;
let receiver: WebhookReceiver<{ kind: string; alerts?: { code: string }[]; text: string }>;
const procs: CaretakerProcess[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function start(role: string, config: string): CaretakerProcess {
  const proc = spawnCaretaker(['start', '--role', role, '--config', config]);
  procs.push(proc);
  return proc;
}

async function scheduledRuns(): Promise<{ job_id: string; started_at: Date }[]> {
  const { rows } = await db.pool.query<{ job_id: string; started_at: Date }>(
    `SELECT job_id, started_at FROM caretaker.runs WHERE task = 'connections' AND target = 'main' ORDER BY started_at`,
  );
  return rows;
}

beforeAll(async () => {
  db = await createTestDatabase('schedown');
  dir = mkdtempSync(join(tmpdir(), 'ct-schedown-'));
  redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  queue = createQueue(redis, prefix);
  receiver = await startWebhookReceiver();
});

afterAll(async () => {
  for (const p of procs) await p.stop(10_000).catch(() => undefined);
  await queue?.close();
  redis?.disconnect();
  await receiver?.close();
  await db?.drop();
  await deleteKeys(prefix);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it('a scheduler that was down across a fire time reports the missed run at start; the run left due in the queue is the one catch-up', async () => {
  const config = join(dir, 'caretaker.yaml');
  writeFileSync(
    config,
    [
      `redis: { url: "${TEST_REDIS_URL}", prefix: ${prefix} }`,
      `state: { url: "${db.url}" }`,
      'web: { host: 127.0.0.1, port: 0 }',
      `targets: { postgres: [{ name: main, url: "${db.url}" }] }`,
      'worker: { concurrency: 1, attempts: 1, backoffMs: 100, shutdownGraceMs: 5000 }',
      `notifications: { webhook: { url: "${receiver.url}" } }`,
      'schedules:',
      '  daily: { enabled: false }',
      '  weekly: { enabled: false }',
      '  monthly: { enabled: false }',
      '  report: { enabled: false }',
      `  fast: { cron: "*/5 * * * * *", tasks: [connections], graceSeconds: ${GRACE_MS / 1000}, catchUp: true }`,
      '',
    ].join('\n'),
  );

  // Caretaker runs and the schedule has a history.
  const first = start('all', config);
  await first.waitForLog('caretaker started');
  await eventually(async () => ((await scheduledRuns()).length > 0 ? true : undefined), 30_000, 'a first scheduled run');
  await first.stop(15_000);
  const stoppedAt = Date.now();
  const runsBefore = (await scheduledRuns()).length;

  // Down across the next fire time, and past its grace.
  const missedFire = Math.ceil((stoppedAt + 1) / PERIOD_MS) * PERIOD_MS;
  await sleep(missedFire + GRACE_MS + 500 - Date.now());
  expect(await scheduledRuns()).toHaveLength(runsBefore);

  // The scheduler comes back first. The periodic check is a minute away: what it finds now, it found at start.
  const startedAt = Date.now();
  const scheduler = start('scheduler', config);
  const missedLog = await scheduler.waitForLog('scheduled runs missed', 20_000);
  expect(missedLog.missed).toEqual([{ entry: ENTRY, dueAt: expect.any(String) }]);
  // The run the job scheduler left due is the catch-up: no second one is queued.
  await scheduler.waitForLog('a due run of this schedule is already queued: it is the catch-up', 10_000);
  const queued = [...(await queue.getWaiting()), ...(await queue.getDelayed())].map((j) => j.id!);
  expect(queued.filter((id) => id.startsWith('catchup-'))).toEqual([]);

  const { rows: missed } = await db.pool.query<{ schedule: string; task: string; target: string; due_at: Date; detected_at: Date; caught_up: boolean }>(
    `SELECT schedule, task, target, due_at, detected_at, caught_up FROM caretaker.missed_runs`,
  );
  expect(missed).toHaveLength(1);
  const miss = missed[0]!;
  expect(miss).toMatchObject({ schedule: 'fast', task: 'connections', target: 'main', caught_up: true });
  // The fire time it names fell while caretaker was down, a whole grace before the check found it.
  expect(miss.due_at.getTime()).toBeGreaterThan(stoppedAt);
  expect(miss.due_at.getTime() % PERIOD_MS).toBe(0);
  expect(miss.detected_at.getTime()).toBeGreaterThanOrEqual(startedAt);
  expect(miss.due_at.getTime()).toBeLessThanOrEqual(miss.detected_at.getTime() - GRACE_MS);

  await eventually(async () => (receiver.received.some((h) => h.alerts?.some((a) => a.code === 'missed_run')) ? true : undefined), 20_000, 'the missed-run alert');
  const alert = receiver.received.find((h) => h.alerts?.some((a) => a.code === 'missed_run'))!;
  expect(alert.text).toContain(`connections on main was due at ${miss.due_at.toISOString()}`);

  // A worker comes back: the due run runs, once, and the schedule goes on.
  const worker = start('worker', config);
  await worker.waitForLog('caretaker started');
  await eventually(async () => ((await scheduledRuns()).length >= runsBefore + 2 ? true : undefined), 30_000, 'the late run and the next scheduled one');
  const after = (await scheduledRuns()).slice(runsBefore);
  expect(after.filter((r) => r.job_id.startsWith('catchup-'))).toEqual([]);
  // The late run is the schedule's first tick after the stop: its job id carries that fire time.
  expect(after[0]!.job_id).toBe(`repeat:${ENTRY}:${missedFire}`);
  expect(new Set(after.map((r) => r.job_id)).size).toBe(after.length);
}, 120_000);
