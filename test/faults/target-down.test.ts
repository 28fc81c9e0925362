/**
 * Fault 4: the target database is down, refuses, cuts caretaker's session
 * or times its statements out. Each case ends as an `error` result naming
 * the cause, retried with backoff, one alert when the retries are spent, and
 * the worker stays up and serves the next job.
 */
import { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import { TASKS } from '../../src/jobs';
import { createQueue, jobOptions, type JobData } from '../../src/queue/queue';
import { ResultStore } from '../../src/results/store';
import { migrate } from '../../src/results/migrate';
import { startWorker, type WorkerRole } from '../../src/worker/worker';
import { createAlerter } from '../../src/alerts/alerter';
import type { Config } from '../../src/config/schema';
import { createTestDatabase, urlFor, type TestDatabase } from '../support/db';
import { deleteKeys, randomPrefix } from '../support/redis';
import { testConfig } from '../support/config';
import { testLogger } from '../support/logger';
import { TEST_REDIS_URL } from '../support/env';
import { eventually, waitForJob } from '../support/jobs';
import { startStallingProxyToPostgres, type StallingProxy } from '../support/processes';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook';

const prefix = randomPrefix('targetdown');
let db: TestDatabase;
/** The slow target's own database: its catalog is locked by the test, which the state database must never be. */
let slowDb: TestDatabase;
let redis: Redis;
let queue: Queue<JobData>;
let role: WorkerRole;
let proxy: StallingProxy;
let receiver: WebhookReceiver<{ kind: string; alerts?: { code: string }[]; text: string }>;
let config: Config;
let alerter: ReturnType<typeof createAlerter>;

beforeAll(async () => {
  db = await createTestDatabase('targetdown');
  slowDb = await createTestDatabase('targetdown_slow');
  await migrate(db.pool);
  redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  queue = createQueue(redis, prefix);
  proxy = await startStallingProxyToPostgres();
  receiver = await startWebhookReceiver();
  const proxied = new URL(urlFor(db.name));
  proxied.port = String(proxy.port);
  config = testConfig({
    dbUrl: db.url,
    prefix,
    worker: { concurrency: 1, attempts: 3, backoffMs: 50, shutdownGraceMs: 5_000 },
    notifications: { webhook: { url: receiver.url } },
    targets: {
      postgres: [
        { name: 'main', url: db.url },
        { name: 'refusing', url: 'postgres://postgres@127.0.0.1:1/nowhere' },
        { name: 'proxied', url: proxied.toString() },
        // Statements bounded at 100 ms, lock waits far longer: a blocked statement ends on statement_timeout.
        { name: 'slow', url: slowDb.url, statementTimeoutMs: 100, lockTimeoutMs: 60_000 },
      ],
    },
  } as never);
  alerter = createAlerter({ config, state: db.pool, log: testLogger });
  role = startWorker({
    config,
    registry: TASKS,
    store: new ResultStore(db.pool),
    state: db.pool,
    redis,
    connection: redis,
    log: testLogger,
    onResult: (result, job) => void alerter.onResult(result, job.id),
  });
});

afterAll(async () => {
  await role?.close(5_000);
  await alerter?.drain();
  await queue.close();
  redis.disconnect();
  await proxy?.close();
  await receiver.close();
  await db.drop();
  await slowDb?.drop();
  await deleteKeys(prefix);
});

const add = (target: string) => queue.add('connections', { task: 'connections', target }, jobOptions(config.worker));

describe('the target database is down or refuses', () => {
  it('a refused connection: retried with backoff, one error result naming the cause, one alert, and the worker serves on', async () => {
    const job = await add('refusing');
    const done = await waitForJob(queue, job.id!);
    expect(await done.getState()).toBe('failed');
    expect(done.attemptsMade).toBe(3);
    expect(done.opts.backoff).toEqual({ type: 'exponential', delay: 50 });
    expect(done.failedReason).toMatch(/^connections failed on refusing: cannot connect to postgres: .*ECONNREFUSED/);
    const { rows } = await db.pool.query(`SELECT status, summary FROM caretaker.runs WHERE job_id = $1`, [job.id]);
    expect(rows).toEqual([{ status: 'error', summary: done.failedReason }]);
    await alerter.drain();
    const alerts = receiver.received.filter((h) => h.kind === 'alert' && h.alerts?.some((a) => a.code === 'run_error'));
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.text).toMatch(/ECONNREFUSED/);

    const next = await waitForJob(queue, (await add('main')).id!);
    expect(await next.getState()).toBe('completed');
  });

  it('caretaker\'s session terminated mid-task (pg_terminate_backend): an error result naming it', async () => {
    proxy.hold();
    const job = await queue.add('connections', { task: 'connections', target: 'proxied' }, { ...jobOptions(config.worker), attempts: 1 });
    // The task connected and sent its first query, which the proxy holds: it is mid-run.
    await eventually(async () => (proxy.held() > 0 ? true : undefined), 15_000, 'the task to be mid-run');
    const { rows } = await db.pool.query(
      `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'caretaker' AND pid <> pg_backend_pid() AND client_port IS NOT NULL AND state = 'idle'`,
    );
    expect(rows.some((r) => r.killed)).toBe(true);
    proxy.release();
    const done = await waitForJob(queue, job.id!);
    expect(await done.getState()).toBe('failed');
    expect(done.failedReason).toMatch(/^connections failed on proxied: .*(terminat|Connection terminated)/i);

    const next = await waitForJob(queue, (await add('main')).id!);
    expect(await next.getState()).toBe('completed');
  });

  it('a statement timing out (statement_timeout behind a lock): retried, one error result naming the timeout, one alert', async () => {
    const holder = await slowDb.pool.connect();
    try {
      // disk-check steps round a table a migration holds (it sizes the rest), but not round the catalog: with
      // pg_statistic held, planning any of its statements waits for the lock until the statement times out.
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE pg_catalog.pg_statistic IN ACCESS EXCLUSIVE MODE');
      const job = await queue.add('disk-check', { task: 'disk-check', target: 'slow' }, jobOptions(config.worker));
      const done = await waitForJob(queue, job.id!);
      expect(await done.getState()).toBe('failed');
      expect(done.attemptsMade).toBe(3);
      expect(done.failedReason).toMatch(/^disk-check failed on slow: .*canceling statement due to statement timeout/);
      const { rows } = await db.pool.query(`SELECT status, summary FROM caretaker.runs WHERE job_id = $1`, [job.id]);
      expect(rows).toEqual([{ status: 'error', summary: done.failedReason }]);
      await alerter.drain();
      const alerts = receiver.received.filter((h) => h.kind === 'alert' && h.alerts?.some((a) => a.code === 'run_error') && /statement timeout/.test(h.text));
      expect(alerts).toHaveLength(1);
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    const next = await waitForJob(queue, (await add('main')).id!);
    expect(await next.getState()).toBe('completed');
  });
});
