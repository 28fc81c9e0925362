/**
 * The whole path, in-process: an every-second schedule → BullMQ job
 * scheduler → worker → connections on a real database → TaskResult in the
 * job's return value, in the state database and in /api/runs.
 */
import { startCaretaker, type Caretaker } from '../src/main';
import type { TaskResult } from '../src/contract/result';
import { createTestDatabase, type TestDatabase } from './support/db';
import { deleteKeys, randomPrefix } from './support/redis';
import { testConfig } from './support/config';
import { testLogger } from './support/logger';
import { eventually } from './support/jobs';

const prefix = randomPrefix('e2e');
let db: TestDatabase;
let caretaker: Caretaker;
const auth = `Basic ${Buffer.from('admin:secret-pw').toString('base64')}`;

beforeAll(async () => {
  db = await createTestDatabase('e2e');
  const config = testConfig({
    dbUrl: db.url,
    prefix,
    web: { host: '127.0.0.1', port: 0, auth: { admin: 'admin:secret-pw' } },
    schedules: { everySecond: { cron: '* * * * * *', tasks: ['connections'] } },
  });
  caretaker = await startCaretaker({ config, roles: ['scheduler', 'worker', 'web'], log: testLogger });
});

afterAll(async () => {
  await caretaker?.stop();
  await db.drop();
  await deleteKeys(prefix);
});

describe('caretaker end to end', () => {
  it('declares the job schedulers of the config', async () => {
    const ids = (await caretaker.queue.getJobSchedulers(0, -1)).map((s) => s.key);
    expect(ids).toEqual(expect.arrayContaining(['everySecond:connections:main', 'daily:connections:main', 'daily:history-prune:caretaker']));
  });

  it('runs connections from the every-second schedule and keeps the result everywhere', async () => {
    const job = await eventually(async () => (await caretaker.queue.getJobs(['completed']))[0], 15_000, 'a completed job');
    const result = job.returnvalue as TaskResult;
    expect(job.name).toBe('connections');
    expect(job.data).toEqual({ task: 'connections', target: 'main', schedule: 'everySecond' });
    expect(result).toMatchObject({ task: 'connections', target: 'main' });
    expect(result.metrics.connections_max).toBeGreaterThan(0);

    const stored = await caretaker.store.list({ task: 'connections' });
    const row = stored.find((r) => r.jobId === job.id);
    expect(row).toMatchObject({ schedule: 'everySecond', status: result.status, result });

    const res = await fetch(`${caretaker.webUrl}/api/runs?task=connections`, { headers: { authorization: auth } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { runs: { jobId: string; result: TaskResult }[] };
    expect(body.runs.find((r) => r.jobId === job.id)?.result).toEqual(result);

    expect((await fetch(`${caretaker.webUrl}/api/runs`)).status).toBe(401);
  });

  it('shows the queue and its schedulers in Bull Board', async () => {
    const res = await fetch(`${caretaker.webUrl}/admin/queues/api/queues`, { headers: { authorization: auth } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { queues: { name: string }[] };
    expect(body.queues.map((q) => q.name)).toContain('caretaker');
  });
});
