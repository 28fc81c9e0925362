/**
 * Scripts by SHA on a redis-server of the test's own (so its command
 * statistics count only this file's calls): the first call on a server that
 * does not know the script falls back to EVAL once, every later one is an
 * EVALSHA; after SCRIPT FLUSH (as after a restart) it falls back once more.
 * The target lock's take-over and release go through it.
 */
import { Redis } from 'ioredis';
import { redisScript, runScript } from '../../src/clients/redis-scripts';
import { acquireTargetLock } from '../../src/worker/target-lock';
import { startOwnRedis, type OwnRedisServer } from '../support/processes';

let server: OwnRedisServer;
let redis: Redis;

beforeAll(async () => {
  server = await startOwnRedis();
  redis = new Redis(server.url, { maxRetriesPerRequest: null });
});

afterAll(async () => {
  redis?.disconnect();
  await server?.close();
});

/** How often each scripting command ran since the last CONFIG RESETSTAT. */
async function calls(): Promise<{ eval: number; evalsha: number }> {
  const stats = (await redis.info('commandstats')) as string;
  const count = (cmd: string) => Number(new RegExp(`^cmdstat_${cmd}:calls=(\\d+)`, 'm').exec(stats)?.[1] ?? 0);
  return { eval: count('eval'), evalsha: count('evalsha') };
}

it('sends the script once, then only its SHA; after SCRIPT FLUSH once more', async () => {
  const add = redisScript(`return redis.call('incrby', KEYS[1], ARGV[1])`);
  await redis.script('FLUSH');
  await redis.config('RESETSTAT');
  expect(await runScript(redis, add, ['n'], [2])).toBe(2);
  expect(await runScript(redis, add, ['n'], [3])).toBe(5);
  expect(await runScript(redis, add, ['n'], [4])).toBe(9);
  // The first EVALSHA answered NOSCRIPT and counts too; the EVAL after it loaded the script.
  expect(await calls()).toEqual({ eval: 1, evalsha: 3 });

  await redis.script('FLUSH');
  expect(await runScript(redis, add, ['n'], [1])).toBe(10);
  expect((await calls()).eval).toBe(2);
});

it('a script error is the caller\'s, not a fallback', async () => {
  const broken = redisScript(`return redis.call('no-such-command')`);
  await expect(runScript(redis, broken, [], [])).rejects.toThrow(/Unknown Redis command|unknown command/i);
});

it('the target lock releases by SHA, and only with its own token', async () => {
  await redis.config('RESETSTAT');
  const taken = await acquireTargetLock(redis, 'lock:t', 'job-1', 60_000);
  if (!('lock' in taken)) throw new Error('expected the lock');
  expect(await acquireTargetLock(redis, 'lock:t', 'job-2', 60_000)).toEqual({ heldBy: 'job-1' });
  await taken.lock.release();
  expect(await redis.exists('lock:t')).toBe(0);
  const again = await acquireTargetLock(redis, 'lock:t', 'job-3', 60_000);
  if (!('lock' in again)) throw new Error('expected the lock');
  await again.lock.release();
  const { eval: evals, evalsha } = await calls();
  expect(evalsha).toBe(2);
  expect(evals).toBeLessThanOrEqual(1);
});
