/**
 * A run's clients are released when the run ends: the S3 client of a
 * backups target's store, which otherwise keeps a keep-alive socket per run
 * open for the worker's lifetime, and a PostgreSQL session whose server
 * stopped answering.
 */
import { backupVerify } from '../../src/jobs/backup-verify';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { runOnBackups } from '../support/backups';
import { eventually } from '../support/jobs';
import { startS3, type S3TestServer } from '../support/s3';
import { RunClientSet } from '../../src/clients/target-clients';
import { testConfig } from '../support/config';
import { TEST_REDIS_URL } from '../support/env';
import { testLogger } from '../support/logger';
import { startBlackholeProxyToPostgres } from '../support/blackhole-proxy';

let db: TestDatabase;
let s3: S3TestServer;
let bucket: string;

beforeAll(async () => {
  db = await createTestDatabase('targetclients');
  // Idle connections stay open until their client lets go: only a destroyed client closes them in time.
  s3 = await startS3({ keepAliveTimeoutMs: 120_000 });
  bucket = await s3.createBucket();
});

afterAll(async () => {
  await s3?.stop();
  await db?.drop();
});

it('closes the S3 store\'s connections when the run ends', async () => {
  const before = await s3.openConnections();
  const requestsBefore = s3.requests.length;
  const result = await runOnBackups(backupVerify, { sourceUrl: db.url, state: db.pool, name: 'offsite', backups: { store: s3.storeConfig(bucket), pattern: 'nightly-*.sql.gz' } });
  // It did talk to S3 (listed the bucket, found nothing).
  expect(result.findings.map((f) => f.code)).toContain('backup_missing');
  expect(s3.requests.length).toBeGreaterThan(requestsBefore);
  await eventually(async () => ((await s3.openConnections()) <= before ? true : undefined), 10_000, `the run's S3 connections to close (open: ${await s3.openConnections()}, before the run: ${before})`);
});

it('ends the run\'s PostgreSQL session even when its server stopped answering (bounded, then cut)', async () => {
  const proxy = await startBlackholeProxyToPostgres();
  const url = new URL(db.url);
  url.port = String(proxy.port);
  const config = testConfig({ dbUrl: url.toString(), prefix: 'unused' });
  const set = new RunClientSet({ log: testLogger, signal: new AbortController().signal, state: db.pool });
  const clients = set.open('postgres', config.targets.postgres[0]!);
  try {
    const client = await clients.postgres();
    await client.query('SELECT 1');
    // The peer is gone between the run's last query and its end (pg cuts a session with a query still in flight itself).
    proxy.blackhole();
    // Without a bound, end() waits for the goodbye of a server that never answers, and the run (and its job) with it.
    const closed = await Promise.race([set.close().then(() => 'closed'), new Promise((resolve) => setTimeout(() => resolve('still waiting'), 15_000).unref())]);
    expect(closed).toBe('closed');
  } finally {
    await proxy.close();
  }
}, 30_000);

it('gives each target kind only its own clients, opening none until asked', async () => {
  const config = testConfig({
    dbUrl: db.url,
    prefix: 'unused',
    targets: {
      postgres: [{ name: 'main', url: db.url }],
      redis: [{ name: 'cache', url: 'redis://127.0.0.1:1' }],
      queues: [{ name: 'jobs', redis: 'cache', queues: ['emails'] }],
      http: [{ name: 'api', url: 'http://127.0.0.1:1/health' }],
      prometheus: [{ name: 'prom', url: 'http://127.0.0.1:1' }],
    },
  });
  const set = new RunClientSet({ log: testLogger, signal: new AbortController().signal, state: db.pool });
  try {
    // Nothing above connected: the unreachable redis, API and Prometheus would have made each throw or hang.
    expect(Object.keys(set.open('postgres', config.targets.postgres[0]!)).sort()).toEqual(['postgres', 'state']);
    expect(Object.keys(set.open('redis', config.targets.redis[0]!)).sort()).toEqual(['redis', 'state']);
    expect(Object.keys(set.open('queues', config.targets.queues[0]!)).sort()).toEqual(['queues', 'state']);
    expect(Object.keys(set.open('http', config.targets.http[0]!)).sort()).toEqual(['http', 'state']);
    expect(Object.keys(set.open('prometheus', config.targets.prometheus[0]!)).sort()).toEqual(['prometheus', 'state']);
    const queues = set.open('queues', config.targets.queues[0]!);
    await expect(queues.queues()).rejects.toThrow(/^cannot reach redis at 127\.0\.0\.1:1: .*ECONNREFUSED/);
  } finally {
    await set.close();
  }
});

it('closes the queues target\'s Redis connection and its queues when the run ends', async () => {
  const config = testConfig({ dbUrl: db.url, prefix: 'unused', targets: { redis: [{ name: 'cache', url: TEST_REDIS_URL }], queues: [{ name: 'jobs', redis: 'cache', queues: ['emails'] }] } });
  const set = new RunClientSet({ log: testLogger, signal: new AbortController().signal, state: db.pool });
  const { redis, queue } = await set.open('queues', config.targets.queues[0]!).queues();
  expect(await redis.ping()).toBe('PONG');
  // One Queue per name, whatever the number of look-ups.
  expect(queue('emails')).toBe(queue('emails'));
  await set.close();
  await eventually(async () => (redis.status === 'end' ? true : undefined), 5_000, `the queues' redis connection to end (status ${redis.status})`);
});
