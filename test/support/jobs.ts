import type { Job, Queue } from 'bullmq';

/** Waits (bounded) until a job is completed or failed; returns the finished job. */
export async function waitForJob<T>(queue: Queue<T>, id: string, timeoutMs = 15_000): Promise<Job<T>> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const state = await queue.getJobState(id);
    if (state === 'completed' || state === 'failed') return (await queue.getJob(id)) as Job<T>;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`job ${id} did not finish within ${timeoutMs} ms (state ${await queue.getJobState(id)})`);
}

/** Waits (bounded) until `check` returns a value other than undefined. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
