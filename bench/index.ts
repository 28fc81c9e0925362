/**
 * `npm run bench [-- NAME...]`: each figure beside its baseline measured in
 * the same run. NAME is one of the keys of BENCHES below (default: all).
 * Uses the local services (BENCH_PG_URL, BENCH_REDIS_URL to point elsewhere).
 */
import { benchWorkerOverhead } from './worker-overhead';
import { benchIndexAudit } from './index-audit';
import { benchPgbenchImpact, MAINTENANCE_TASKS } from './pgbench-impact';
import { benchBackupVerify } from './backup-verify';
import { benchRestoreTest } from './restore-test';
import { benchFleet } from './fleet';
import { benchConsole } from './console';
import { benchConfigLoad } from './config-load';
import { statePoolSize } from '../src/main';

const pgAdminUrl = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

const BENCHES: Record<string, () => Promise<void>> = {
  async 'state-pool'() {
    const env = { pgAdminUrl, redisUrl, jobs: 2000, concurrency: 8 };
    const sized = statePoolSize({ concurrency: env.concurrency }, ['worker']);
    console.log(`\n== caretaker worker at concurrency ${env.concurrency}: the old fixed state pool (5) beside the sized one (${sized}), ${env.jobs} no-op jobs, best of 3, interleaved`);
    let best = { fixed: 0, sized: 0 };
    for (let i = 0; i < 3; i++) {
      const fixed = await benchWorkerOverhead({ ...env, poolMax: 5 });
      const grown = await benchWorkerOverhead({ ...env, poolMax: sized });
      best = { fixed: Math.max(best.fixed, fixed.caretaker), sized: Math.max(best.sized, grown.caretaker) };
    }
    console.log(`  state pool 5 (before, baseline)            ${best.fixed.toFixed(0).padStart(6)} jobs/s`);
    console.log(`  state pool ${String(sized).padEnd(2)} (5 + concurrency)          ${best.sized.toFixed(0).padStart(6)} jobs/s   ratio ${(best.sized / best.fixed).toFixed(2)}`);
  },
  async 'config-load'() {
    console.log('\n== config load with N postgres + N backups targets (median of 5), per target beside the 200-target figure');
    for (const r of await benchConfigLoad()) {
      console.log(`  ${String(r.size).padStart(5)} + ${String(r.size).padEnd(5)} targets   ${r.ms.toFixed(1).padStart(8)} ms   per target ${((r.ms / r.size) * 1000).toFixed(1).padStart(6)} µs   ratio ${r.perTargetRatio.toFixed(2)}`);
    }
  },
  async 'backup-verify'() {
    console.log('\n== backup-verify beside gzip -t on the same files');
    await benchBackupVerify({});
  },
  async 'restore-test'() {
    console.log('\n== restore-test beside gunzip -c | psql');
    await benchRestoreTest({ pgAdminUrl });
  },
  async worker() {
    const env = { pgAdminUrl, redisUrl, jobs: 2000, concurrency: 4 };
    console.log(`\n== worker throughput, ${env.jobs} no-op jobs, concurrency ${env.concurrency} (best of 3)`);
    let best = { baseline: 0, caretaker: 0 };
    for (let i = 0; i < 3; i++) {
      const r = await benchWorkerOverhead(env);
      best = { baseline: Math.max(best.baseline, r.baseline), caretaker: Math.max(best.caretaker, r.caretaker) };
    }
    console.log(`  bare BullMQ worker (baseline)               ${best.baseline.toFixed(0).padStart(6)} jobs/s`);
    console.log(`  caretaker worker (validate, lock, store)    ${best.caretaker.toFixed(0).padStart(6)} jobs/s   ratio ${(best.caretaker / best.baseline).toFixed(2)}`);
    console.log(`  overhead ${(1000 / best.caretaker - 1000 / best.baseline).toFixed(2)} ms per job`);
  },
  async 'index-audit'() {
    console.log('\n== index-audit on a generated catalog');
    await benchIndexAudit({ pgAdminUrl });
  },
  async pgbench() {
    // BENCH_PGBENCH_SCALE / BENCH_PGBENCH_SECONDS: a bigger database makes the VACUUM, and so the "while it ran" window, last longer.
    const env = { pgAdminUrl, redisUrl, scale: Number(process.env.BENCH_PGBENCH_SCALE ?? 5), seconds: Number(process.env.BENCH_PGBENCH_SECONDS ?? 15), clients: 4, rounds: 2 };
    console.log(`\n== pgbench TPS alone and during ${MAINTENANCE_TASKS.join(' + ')} (scale ${env.scale}, ${env.clients} clients, ${env.seconds} s, ${env.rounds} rounds alternating)`);
    const r = await benchPgbenchImpact(env);
    const base = mean(r.baseline);
    for (const line of r.summaries) console.log(`  ${line}`);
    for (const [label, v] of [['vacuum at autovacuum\'s pace (default)', r.paced], ['vacuum unthrottled (costDelayMs: 0)', r.unthrottled]] as const) {
      const withM = mean(v.withMaintenance);
      const duringBase = mean(v.duringMaintenance.map((d) => d.baseline));
      const duringWith = mean(v.duringMaintenance.map((d) => d.with));
      console.log(`  ${label}: one night's maintenance took ${v.maintenanceMs.map((ms) => `${(ms / 1000).toFixed(1)} s`).join(', ')}`);
      console.log(`    whole ${env.seconds} s window:    alone ${base.toFixed(0).padStart(6)} tps   with maintenance ${withM.toFixed(0).padStart(6)} tps   ratio ${(withM / base).toFixed(3)} (goal >= 0.95)`);
      console.log(`    while maintenance ran:  alone ${duringBase.toFixed(0).padStart(6)} tps   with maintenance ${duringWith.toFixed(0).padStart(6)} tps   ratio ${(duringWith / duringBase).toFixed(3)}`);
    }
  },
  async fleet() {
    // BENCH_FLEET_SCENARIOS: worker processes x worker.concurrency, in order (caretaker's default concurrency is 2).
    const scenarios = (process.env.BENCH_FLEET_SCENARIOS ?? '1x2,2x2').split(',').map((s) => {
      const [workers, concurrency] = s.split('x').map(Number);
      return { workers: workers!, concurrency: concurrency! };
    });
    const env = { pgAdminUrl, redisUrl, databases: 200, queueTargets: 10, scenarios };
    console.log(`\n== fleet: ${env.databases} postgres + ${env.queueTargets} queues targets, the daily schedule fired once (attempts 1); 1 scheduler + worker processes × worker.concurrency: ${scenarios.map((s) => `${s.workers} × ${s.concurrency}`).join(', then ')}`);
    await benchFleet(env);
  },
  async console() {
    // BENCH_CONSOLE_TARGETS / _DAYS shrink the fleet or its history; BENCH_CONSOLE_PLANS=1 prints the query plans.
    const env = {
      pgAdminUrl,
      redisUrl,
      targets: Number(process.env.BENCH_CONSOLE_TARGETS ?? 200),
      days: Number(process.env.BENCH_CONSOLE_DAYS ?? 365),
      requests: 10,
      warmups: 2,
      plans: process.env.BENCH_CONSOLE_PLANS === '1',
    };
    console.log(`\n== console: GET / and buildStatus over ${env.targets} postgres targets and ${env.days} days of history, beside the weekly report page and a DISTINCT ON over the history`);
    await benchConsole(env);
  },
};

async function main(): Promise<void> {
  const names = process.argv.slice(2);
  const unknown = names.filter((n) => !(n in BENCHES));
  if (unknown.length > 0) throw new Error(`unknown bench ${unknown.join(', ')} (known: ${Object.keys(BENCHES).join(', ')})`);
  for (const name of names.length > 0 ? names : Object.keys(BENCHES)) await BENCHES[name]!();
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
