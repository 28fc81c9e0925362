/**
 * Config load at fleet size: N postgres targets and N backups targets
 * naming them (the shape that was quadratic), validated as `start` does.
 * Each size's time per target is printed beside the 200-target one from
 * the same run: linear keeps the ratio near 1.
 */
import { validateConfig } from '../src/config/load';
import { TASKS } from '../src/jobs';

function fleetConfig(n: number): unknown {
  const postgres = Array.from({ length: n }, (_, i) => ({ name: `db${i}`, url: `postgres://caretaker@10.0.${Math.floor(i / 250)}.${i % 250}:5432/app${i}` }));
  const backups = Array.from({ length: n }, (_, i) => ({
    name: `bk${i}`,
    database: `db${i}`,
    store: { kind: 'directory', path: `/backups/db${i}` },
    pattern: `app${i}-*.sql.gz`,
  }));
  return { redis: { url: 'redis://127.0.0.1:6379' }, state: { url: 'postgres://caretaker@127.0.0.1:5432/caretaker' }, targets: { postgres, backups } };
}

function medianMs(runs: number, work: () => void): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    work();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

export async function benchConfigLoad(sizes: readonly number[] = [200, 1_000, 3_000], runs = 5): Promise<{ size: number; ms: number; perTargetRatio: number }[]> {
  const out: { size: number; ms: number; perTargetRatio: number }[] = [];
  let basePerTarget = 0;
  for (const size of sizes) {
    const raw = fleetConfig(size);
    validateConfig(raw, 'bench', TASKS); // warm-up: zod's schema build, the registry's params
    const ms = medianMs(runs, () => validateConfig(raw, 'bench', TASKS));
    const perTarget = ms / size;
    if (out.length === 0) basePerTarget = perTarget;
    out.push({ size, ms, perTargetRatio: perTarget / basePerTarget });
  }
  return out;
}
