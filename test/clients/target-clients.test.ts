/**
 * A run's clients are released when the run ends: here the S3 client of a
 * backups target's store, which otherwise keeps a keep-alive socket per run
 * open for the worker's lifetime.
 */
import { backupVerify } from '../../src/jobs/backup-verify';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { runOnBackups } from '../support/backups';
import { eventually } from '../support/jobs';
import { startS3, type S3TestServer } from '../support/s3';

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
