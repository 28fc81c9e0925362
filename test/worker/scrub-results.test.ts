/**
 * What a task copies from a target's answer into its result (a Prometheus
 * label, an S3 error, a server echoing the request) is scrubbed of every
 * secret of the config before anyone sees it: the job's return value (the
 * board), the history and the alert all carry `***`.
 */
import { Redis } from 'ioredis';
import { z } from 'zod';
import type { TaskResult } from '../../src/contract/result';
import { defineTask, type Task } from '../../src/contract/task';
import { createQueue } from '../../src/queue/queue';
import { migrate } from '../../src/results/migrate';
import { ResultStore } from '../../src/results/store';
import { startWorker } from '../../src/worker/worker';
import { testConfig } from '../support/config';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { TEST_REDIS_URL } from '../support/env';
import { waitForJob } from '../support/jobs';
import { testLogger } from '../support/logger';
import { deleteKeys, randomPrefix } from '../support/redis';

const PASSWORD = 'pg-s3cret-Pa55';
const TOKEN = 'T0KEN-9f8e7d6c5b4a';
let db: TestDatabase;
const prefix = randomPrefix('scrub');

beforeAll(async () => {
  db = await createTestDatabase('scrub');
  await migrate(db.pool);
});
afterAll(async () => {
  await db?.drop();
  await deleteKeys(prefix);
});

it('scrubs the config\'s secrets from a result that quotes them, in the return value and the history', async () => {
  // A target whose server quotes back what it was sent.
  const echo: Task = defineTask({
    name: 'echo',
    description: 'quotes its target',
    target: 'postgres',
    defaultSchedule: 'daily',
    timeoutMs: 10_000,
    changesTarget: false,
    params: z.strictObject({}),
    codes: { echoed: 'a finding quoting the secrets a target echoed' },
    run: async () => ({
      summary: `server said: password ${PASSWORD} rejected`,
      findings: [{ severity: 'warning', code: 'echoed', subject: `hook/${TOKEN}`, message: `label token="${TOKEN}"`, details: { [`key-${TOKEN}`]: [`x ${PASSWORD} y`] } }],
      metrics: { ok: 1 },
    }),
  });
  const target = new URL(db.url);
  target.password = PASSWORD;
  const config = testConfig({
    dbUrl: db.url,
    prefix,
    targets: { postgres: [{ name: 'main', url: target.toString() }] },
    notifications: { webhook: { url: `http://127.0.0.1:9/hook/${TOKEN}` } },
  });
  const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  const queue = createQueue(redis, prefix);
  const role = startWorker({ config, registry: new Map([[echo.name, echo]]), store: new ResultStore(db.pool), state: db.pool, redis, connection: redis, log: testLogger });
  try {
    const job = await queue.add('echo', { task: 'echo', target: 'main' }, { attempts: 1 });
    const done = await waitForJob(queue, job.id!, 15_000);
    const returned = done.returnvalue as TaskResult;
    const { rows } = await db.pool.query<{ result: TaskResult; summary: string }>('SELECT result, summary FROM caretaker.runs WHERE job_id = $1', [job.id]);
    const findings = await db.pool.query('SELECT subject, message, details FROM caretaker.findings');
    for (const text of [JSON.stringify(returned), JSON.stringify(rows), JSON.stringify(findings.rows)]) {
      expect(text).not.toContain(PASSWORD);
      expect(text).not.toContain(TOKEN);
    }
    expect(returned.summary).toBe('server said: password *** rejected');
    expect(returned.findings[0]).toMatchObject({ subject: 'hook/***', message: 'label token="***"', details: { 'key-***': ['x *** y'] } });
    expect(returned.metrics).toEqual({ ok: 1 });
  } finally {
    await role.close(2_000);
    await queue.close();
    redis.disconnect();
  }
});
