/**
 * The loops' states of caretaker's processes, on the real Redis: each
 * process's entry is replaced by its next publish, expires by itself (the
 * key's TTL; a key gone drops out of the index at the next read), and is
 * withdrawn on a clean stop; what another process wrote is trusted only as
 * far as its shape; error texts leave the process scrubbed of the config's
 * secrets. Merging says a loop fails if it fails in any process.
 */
import { Redis } from 'ioredis';
import { BackgroundLoops, LOOP_OK, type LoopState } from '../../src/liveness/background';
import { LoopBoard, PUBLISH_EXPIRE_MS, mergeLoops, publishLoops } from '../../src/liveness/shared-loops';
import { TEST_REDIS_URL } from '../support/env';
import { eventually } from '../support/jobs';
import { testLogger } from '../support/logger';
import { freePort } from '../support/ports';
import { deleteKeys, randomPrefix } from '../support/redis';

const prefix = randomPrefix('shared-loops');
const index = `${prefix}:caretaker:loops`;
let redis: Redis;
let board: LoopBoard;

beforeAll(async () => {
  redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  await redis.ping();
  board = new LoopBoard(redis, prefix);
});

afterEach(async () => {
  await deleteKeys(prefix);
});

afterAll(() => redis?.disconnect());

const ok: LoopState = { status: 'ok', lastSuccessAt: '2026-12-04T10:00:00.000Z', consecutiveFailures: 0 };

describe('the board', () => {
  it('keeps one entry per process, replaced by its next publish, with an expiry; a withdrawn one is gone', async () => {
    await board.publish('worker-a:1', { at: '2026-12-04T10:00:00.000Z', loops: { 'outbox flush': ok } });
    await board.publish('scheduler-b:1', { at: '2026-12-04T10:00:01.000Z', loops: { 'missed-run check': ok } });
    const failing: LoopState = { status: 'failing', lastFailureAt: '2026-12-04T10:00:15.000Z', lastError: 'connection refused', consecutiveFailures: 1 };
    await board.publish('worker-a:1', { at: '2026-12-04T10:00:15.000Z', loops: { 'outbox flush': failing } });

    const entries = await board.read();
    expect([...entries.keys()].sort()).toEqual(['scheduler-b:1', 'worker-a:1']);
    expect(entries.get('worker-a:1')).toEqual({ at: '2026-12-04T10:00:15.000Z', loops: { 'outbox flush': failing } });
    const ttl = await redis.pttl(`${index}:worker-a:1`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(PUBLISH_EXPIRE_MS);

    await board.withdraw('worker-a:1');
    expect([...(await board.read()).keys()]).toEqual(['scheduler-b:1']);
    expect(await redis.smembers(index)).toEqual(['scheduler-b:1']);
  });

  it('drops a process whose entry expired, and tidies the index of it', async () => {
    await board.publish('killed:7', { at: '2026-12-04T10:00:00.000Z', loops: { 'outbox flush': ok } });
    // What its expiry does, without waiting for it.
    await redis.del(`${index}:killed:7`);
    expect((await board.read()).size).toBe(0);
    await eventually(async () => ((await redis.smembers(index)).length === 0 ? true : undefined), 5_000, 'the index to forget the expired process');
  });

  it('skips an entry that is not what a process publishes', async () => {
    await board.publish('fine:1', { at: '2026-12-04T10:00:00.000Z', loops: { 'outbox flush': ok } });
    await redis.multi().sadd(index, 'garbled:1', 'wrong-shape:1').set(`${index}:garbled:1`, '{not json').set(`${index}:wrong-shape:1`, '{"at":5}').exec();
    expect([...(await board.read()).keys()]).toEqual(['fine:1']);
  });

  it('refuses at once, naming why, while its connection is not ready: a write queued offline would land late', async () => {
    const port = await freePort();
    const away = new Redis(`redis://127.0.0.1:${port}`, { maxRetriesPerRequest: null, lazyConnect: true });
    away.on('error', () => undefined);
    try {
      await expect(new LoopBoard(away, prefix).publish('p:1', { at: '2026-12-04T10:00:00.000Z', loops: {} })).rejects.toThrow(
        'publishing the loops: Redis not connected (connection status "wait")',
      );
    } finally {
      away.disconnect();
    }
  });
});

describe('a process publishing its loops', () => {
  it('publishes at start, after each round (the error scrubbed of the config\'s secrets), and withdraws on close', async () => {
    const loops = new BackgroundLoops();
    loops.watch('outbox flush');
    const publisher = publishLoops({ board, loops, process: 'worker-x:42', secrets: ['hunter2'], log: testLogger });
    const published = async (match: (s: LoopState | undefined) => boolean) =>
      eventually(async () => {
        const state = (await board.read()).get('worker-x:42')?.loops['outbox flush'];
        return match(state) ? state ?? null : undefined;
      }, 5_000, 'the published state');

    expect(await published((s) => s?.status === 'ok')).toEqual({ status: 'ok', consecutiveFailures: 0 });

    loops.report('outbox flush', { ok: false, error: new Error('password authentication failed: hunter2') });
    const failing = await published((s) => s?.status === 'failing');
    expect(failing).toMatchObject({ status: 'failing', consecutiveFailures: 1, lastError: 'password authentication failed: ***' });
    expect(JSON.stringify(await redis.get(`${index}:worker-x:42`))).not.toContain('hunter2');

    loops.report('outbox flush', LOOP_OK);
    expect(await published((s) => s?.status === 'ok' && s.lastSuccessAt !== undefined)).toMatchObject({ consecutiveFailures: 0 });

    await publisher.close();
    expect((await board.read()).has('worker-x:42')).toBe(false);
    // Closed is closed: a round after it publishes nothing.
    loops.report('outbox flush', LOOP_OK);
    expect(await redis.exists(`${index}:worker-x:42`)).toBe(0);
  });
});

describe('merging the processes\' loops', () => {
  it('one line per loop: failing if it fails anywhere, the newest times, the most failures in a row, the newest failure\'s reason', () => {
    const merged = mergeLoops(
      new Map<string, Record<string, LoopState>>([
        ['worker-a:1', { 'outbox flush': { status: 'ok', lastSuccessAt: '2026-12-04T10:00:30.000Z', lastFailureAt: '2026-12-04T09:00:00.000Z', lastError: 'old', consecutiveFailures: 0 } }],
        ['worker-b:1', { 'outbox flush': { status: 'failing', lastSuccessAt: '2026-12-04T10:00:00.000Z', lastFailureAt: '2026-12-04T10:00:15.000Z', lastError: 'refused', consecutiveFailures: 3 } }],
        ['scheduler:1', { 'missed-run check': ok }],
      ]),
    );
    expect(Object.keys(merged).sort()).toEqual(['missed-run check', 'outbox flush']);
    expect(merged['outbox flush']!.state).toEqual({
      status: 'failing',
      lastSuccessAt: '2026-12-04T10:00:30.000Z',
      lastFailureAt: '2026-12-04T10:00:15.000Z',
      lastError: 'refused',
      consecutiveFailures: 3,
    });
    expect(Object.keys(merged['outbox flush']!.byProcess).sort()).toEqual(['worker-a:1', 'worker-b:1']);
    expect(merged['missed-run check']).toEqual({ state: ok, byProcess: { 'scheduler:1': ok } });
  });
});
