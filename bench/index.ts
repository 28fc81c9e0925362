/**
 * `npm run bench`: each figure beside its baseline measured in the same run.
 * Uses the local services (BENCH_PG_URL, BENCH_REDIS_URL to point elsewhere).
 */
import { benchWorkerOverhead } from './worker-overhead';

async function main(): Promise<void> {
  const env = {
    pgAdminUrl: process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    redisUrl: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379',
    jobs: Number(process.env.BENCH_JOBS ?? 2000),
    concurrency: Number(process.env.BENCH_CONCURRENCY ?? 4),
  };
  console.log(`worker throughput, ${env.jobs} no-op jobs, concurrency ${env.concurrency} (best of 3)`);
  let best = { baseline: 0, caretaker: 0 };
  for (let i = 0; i < 3; i++) {
    const r = await benchWorkerOverhead(env);
    best = { baseline: Math.max(best.baseline, r.baseline), caretaker: Math.max(best.caretaker, r.caretaker) };
  }
  const perJobMs = 1000 / best.caretaker - 1000 / best.baseline;
  console.log(`  bare BullMQ worker (baseline)      ${best.baseline.toFixed(0).padStart(6)} jobs/s`);
  console.log(`  caretaker worker (validate, lock,  ${best.caretaker.toFixed(0).padStart(6)} jobs/s   ratio ${(best.caretaker / best.baseline).toFixed(2)}`);
  console.log(`    store the result)                overhead ${perJobMs.toFixed(2)} ms per job`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
