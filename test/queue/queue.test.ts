/**
 * caretaker's queue during a Redis outage: its errors are structured log
 * lines, each once while it repeats, never BullMQ's raw stack traces on
 * stderr.
 */
import { createRedis } from '../../src/clients/redis';
import { createQueue } from '../../src/queue/queue';
import { captureLog } from '../support/log-capture';
import { eventually } from '../support/jobs';
import { randomPrefix } from '../support/redis';

it('logs a Redis that is away as one warning, not a stack trace on stderr', async () => {
  const printed = jest.spyOn(console, 'error').mockImplementation(() => undefined);
  const captured = captureLog();
  const redis = createRedis('redis://127.0.0.1:1', captureLog().log, { retryStrategy: () => 50 });
  const queue = createQueue(redis, randomPrefix('queue_errors'), undefined, captured.log);
  try {
    await eventually(async () => captured.lines().find((l) => l.msg === 'queue: redis error'), 10_000, 'the queue to log the outage');
    // Several reconnect attempts later, still one line for the same error.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const lines = captured.lines().filter((l) => l.msg === 'queue: redis error');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, err: expect.stringMatching(/ECONNREFUSED/) });
    expect(printed).not.toHaveBeenCalled();
  } finally {
    printed.mockRestore();
    await queue.close().catch(() => undefined);
    redis.disconnect();
  }
});
