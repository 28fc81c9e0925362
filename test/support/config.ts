/** Builds a validated Config in code, on the test database and prefix. */
import { validateConfig } from '../../src/config/load';
import type { Config, RawConfigInput } from '../../src/config/schema';
import { TASKS } from '../../src/jobs';
import { TEST_REDIS_URL } from './env';

export function testConfig(opts: { dbUrl: string; prefix: string } & Partial<RawConfigInput>): Config {
  const { dbUrl, prefix, ...rest } = opts;
  return validateConfig(
    {
      redis: { url: TEST_REDIS_URL, prefix },
      state: { url: dbUrl },
      targets: { postgres: [{ name: 'main', url: dbUrl }] },
      worker: { concurrency: 2, attempts: 1, backoffMs: 100, shutdownGraceMs: 5_000 },
      ...rest,
    },
    'test',
    TASKS,
  );
}
