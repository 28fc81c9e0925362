/**
 * Fault 1: replicas. Three caretaker processes (`start --role all`) start
 * at once with the same config and every-second schedules, run for 20 s,
 * then a config change (one schedule removed, one changed to every two
 * seconds) is rolled out to each in turn, as a Deployment does: stop one,
 * start its replacement, wait for it, go on. Every replica re-syncs every
 * second (`scheduler.resyncSeconds: 1`), so the old replicas get every
 * chance to put the old config back during the rollout.
 *
 * The stored runs are the evidence. A scheduled run's job id is
 * `repeat:<scheduler id>:<fire time ms>`, so for each schedule the test
 * knows the exact ticks it ran: exactly one run per tick (no job id stored
 * twice), no tick missing from the
 * first to the last (a lost scheduler stops its chain of ticks), the removed
 * schedule fires no more once the first new replica has synced, the changed
 * one fires on even seconds only from then on.
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
import { spawnCaretaker, type CaretakerProcess } from '../support/processes';

const prefix = randomPrefix('replicas');
const RUN_BEFORE_ROLLOUT_MS = 20_000;
/** How long each new replica runs before the next old one is replaced, and the tail after the rollout. */
const SETTLE_MS = 3_000;
const EVERY_SECOND = '* * * * * *';
const EVERY_TWO_SECONDS = '*/2 * * * * *';

let db: TestDatabase;
let dir: string;
let redis: Redis;
let queue: Queue<JobData>;
const procs: CaretakerProcess[] = [];

/** Each schedule runs its own task on the one target: runs of different schedules never meet on a (task, target) lock. */
function writeConfig(file: string, schedules: Record<string, { cron: string; task: string }>): string {
  const path = join(dir, file);
  const lines = Object.entries(schedules).map(([id, s]) => `  ${id}: { cron: "${s.cron}", tasks: [${s.task}] }`);
  writeFileSync(
    path,
    [
      `redis: { url: "${TEST_REDIS_URL}", prefix: ${prefix} }`,
      `state: { url: "${db.url}" }`,
      'web: { host: 127.0.0.1, port: 0 }',
      `targets: { postgres: [{ name: main, url: "${db.url}" }] }`,
      'worker: { concurrency: 3, attempts: 1, backoffMs: 100, shutdownGraceMs: 5000 }',
      'scheduler: { resyncSeconds: 1 }',
      'schedules:',
      '  daily: { enabled: false }',
      '  weekly: { enabled: false }',
      '  monthly: { enabled: false }',
      '  report: { enabled: false }',
      ...lines,
      '',
    ].join('\n'),
  );
  return path;
}

async function startReplica(config: string): Promise<CaretakerProcess> {
  const proc = spawnCaretaker(['start', '--role', 'all', '--config', config]);
  procs.push(proc);
  await proc.waitForLog('caretaker started', 60_000);
  return proc;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Tick {
  scheduler: string;
  millis: number;
  jobId: string;
  skipped: boolean;
  status: string;
}

async function storedTicks(): Promise<Tick[]> {
  const { rows } = await db.pool.query<{ job_id: string; skipped: boolean; status: string }>(
    `SELECT job_id, skipped, status FROM caretaker.runs WHERE job_id LIKE 'repeat:%' ORDER BY id`,
  );
  return rows.map((r) => {
    const m = /^repeat:(.+):(\d+)$/.exec(r.job_id)!;
    return { scheduler: m[1]!, millis: Number(m[2]), jobId: r.job_id, skipped: r.skipped, status: r.status };
  });
}

/** The fire times of one scheduler, sorted. */
const ticksOf = (ticks: Tick[], scheduler: string) => ticks.filter((t) => t.scheduler === scheduler).map((t) => t.millis).sort((a, b) => a - b);

/** Gaps between consecutive fire times that are not `stepMs`: a missing tick shows as a larger one, a duplicate as 0. */
const irregularGaps = (millis: number[], stepMs: number) =>
  millis.slice(1).map((m, i) => ({ from: new Date(millis[i]!).toISOString(), gapMs: m - millis[i]! })).filter((g) => g.gapMs !== stepMs);

beforeAll(async () => {
  db = await createTestDatabase('replicas');
  dir = mkdtempSync(join(tmpdir(), 'ct-replicas-'));
  redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  queue = createQueue(redis, prefix);
});

afterAll(async () => {
  for (const p of procs) await p.stop(10_000).catch(() => undefined);
  await queue?.close();
  redis?.disconnect();
  await db?.drop();
  await deleteKeys(prefix);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it('three replicas, then a config change rolled out one by one: one run per tick, the removed schedule stops, the changed one follows, none lost', async () => {
  const before = writeConfig('v1.yaml', {
    keep: { cron: EVERY_SECOND, task: 'connections' },
    gone: { cron: EVERY_SECOND, task: 'pg-health' },
    changed: { cron: EVERY_SECOND, task: 'index-audit' },
  });
  const after = writeConfig('v2.yaml', {
    keep: { cron: EVERY_SECOND, task: 'connections' },
    changed: { cron: EVERY_TWO_SECONDS, task: 'index-audit' },
  });

  const olds = await Promise.all([startReplica(before), startReplica(before), startReplica(before)]);
  await sleep(RUN_BEFORE_ROLLOUT_MS);

  // The rollout: replace each old replica in turn. The first new one's sync is the switch.
  let switchedAt: number | undefined;
  for (const old of olds) {
    await old.stop(15_000);
    expect(await old.exited).toEqual({ code: 0, signal: null });
    const replacement = await startReplica(after);
    const inPlace = await replacement.waitForLog('job schedulers in place');
    switchedAt ??= Date.parse(String(inPlace.time));
    expect(inPlace).toMatchObject({ superseded: false });
    await sleep(SETTLE_MS);
  }
  const rolledOutAt = Date.now();

  const schedulers = await queue.getJobSchedulers(0, -1);
  expect(schedulers.map((s) => [s.key, s.pattern]).sort()).toEqual([
    ['changed:index-audit:main', EVERY_TWO_SECONDS],
    ['keep:connections:main', EVERY_SECOND],
  ]);

  for (const p of procs.slice(3)) await p.stop(15_000);
  const ticks = await storedTicks();

  // Exactly one run per tick: no job id stored twice. (A run may be `skipped` when the tick before
  // it is still running on a busy machine: that is the (task, target) lock doing its job, and
  // it is still the one run of its tick.)
  const ids = ticks.map((t) => t.jobId);
  expect(ids.length - new Set(ids).size).toBe(0);
  expect(ticks.filter((t) => t.status === 'error')).toEqual([]);

  // keep: every second from its first tick to past the rollout, none missing.
  const keep = ticksOf(ticks, 'keep:connections:main');
  expect(keep.length).toBeGreaterThanOrEqual(20);
  expect(keep[keep.length - 1]!).toBeGreaterThan(rolledOutAt - SETTLE_MS);
  expect(irregularGaps(keep, 1000)).toEqual([]);

  // gone: ran every second until the switch (a tick already due may still run), never after.
  const switchAt = switchedAt!;
  const gone = ticksOf(ticks, 'gone:pg-health:main');
  expect(irregularGaps(gone, 1000)).toEqual([]);
  expect(gone.filter((m) => m > switchAt + 1000).map((m) => new Date(m).toISOString())).toEqual([]);
  expect(gone.length).toBeGreaterThanOrEqual(15);

  // changed: every second before the switch, on even seconds only after it, none missing either side.
  const changed = ticksOf(ticks, 'changed:index-audit:main');
  const beforeSwitch = changed.filter((m) => m <= switchAt);
  const afterSwitch = changed.filter((m) => m > switchAt + 1000);
  expect(irregularGaps(beforeSwitch, 1000)).toEqual([]);
  expect(afterSwitch.length).toBeGreaterThanOrEqual(4);
  expect(afterSwitch.filter((m) => m % 2000 !== 0).map((m) => new Date(m).toISOString())).toEqual([]);
  expect(irregularGaps(afterSwitch, 2000)).toEqual([]);
  expect(afterSwitch[afterSwitch.length - 1]!).toBeGreaterThan(rolledOutAt - SETTLE_MS);

  // The old replicas still running when the first new one synced saw the newer config take over and stood down.
  for (const old of olds.slice(1)) {
    expect(old.logs().some((l) => /a replica started later with a different config/.test(String(l.msg)))).toBe(true);
  }
}, 150_000);
