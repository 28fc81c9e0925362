/**
 * The state pool is sized from the roles a process runs: a worker gets one
 * connection per job it runs at once beside the base the other roles use,
 * so results being stored do not queue for a connection.
 */
import { startCaretaker, statePoolSize } from '../src/main';
import { testConfig } from './support/config';
import { createTestDatabase, type TestDatabase } from './support/db';
import { testLogger } from './support/logger';
import { deleteKeys, randomPrefix } from './support/redis';

let db: TestDatabase;
const prefix = randomPrefix('state_pool');

beforeAll(async () => {
  db = await createTestDatabase('state_pool');
});

afterAll(async () => {
  await db?.drop();
  await deleteKeys(prefix);
});

it('is the base of 5, plus worker.concurrency when the process runs the worker: always at least concurrency + 1', () => {
  expect(statePoolSize({ concurrency: 8 }, ['worker'])).toBe(13);
  expect(statePoolSize({ concurrency: 8 }, ['scheduler', 'web'])).toBe(5);
  for (const concurrency of [1, 2, 16, 64]) expect(statePoolSize({ concurrency }, ['worker', 'web'])).toBeGreaterThanOrEqual(concurrency + 1);
});

it('a started worker\'s pool has that size', async () => {
  const caretaker = await startCaretaker({
    config: testConfig({ dbUrl: db.url, prefix, worker: { concurrency: 3, attempts: 1, backoffMs: 100, shutdownGraceMs: 1_000 } }),
    roles: ['worker'],
    log: testLogger,
  });
  try {
    expect(caretaker.state.options.max).toBe(8);
  } finally {
    await caretaker.stop();
  }
});
