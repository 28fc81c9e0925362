/**
 * What caretaker's maintenance costs the service it maintains: pgbench TPS
 * on its own (baseline) and while one night's maintenance (vacuum-analyze,
 * index-audit, disk-check, one after the other, as a worker would) runs
 * against the same database, in the same run. Two figures: TPS over the
 * whole window, and TPS during the seconds the maintenance actually ran
 * (from pgbench's per-second progress) against the same seconds of the
 * baseline round. Each round runs the maintenance twice, once with
 * vacuum-analyze at its default pace (autovacuum's cost delay and limit)
 * and once unthrottled (`costDelayMs: 0`, a manual VACUUM's pace), so the
 * pace's effect is measured in the same run. Rounds alternate their order
 * so drift on a shared machine hits every side.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { Client, Pool } from 'pg';
import pino from 'pino';
import { TASKS } from '../src/jobs';
import { validateConfig } from '../src/config/load';
import { migrate } from '../src/results/migrate';
import { runTask } from '../src/worker/run-task';

const run = promisify(execFile);

export interface PgbenchEnv {
  pgAdminUrl: string;
  redisUrl: string;
  /** pgbench scale factor: 100,000 accounts per unit. */
  scale: number;
  seconds: number;
  clients: number;
  rounds: number;
}

/** The maintenance a real night would run on the database while it serves traffic. */
export const MAINTENANCE_TASKS = ['vacuum-analyze', 'index-audit', 'disk-check'] as const;

function pgbenchArgs(url: URL): string[] {
  return ['-h', url.hostname, '-p', url.port || '5432', '-U', decodeURIComponent(url.username) || 'postgres'];
}

interface PgbenchRun {
  tps: number;
  /** TPS of each second, from `-P 1` (index 0 = first second). */
  perSecond: number[];
}

function pgbenchRun(url: URL, env: PgbenchEnv): Promise<PgbenchRun> {
  return new Promise((resolve, reject) => {
    const args = [...pgbenchArgs(url), '-n', '-P', '1', '-c', String(env.clients), '-j', String(Math.min(env.clients, 2)), '-T', String(env.seconds), url.pathname.slice(1)];
    execFile('pgbench', args, (err, stdout, stderr) => {
      if (err) return reject(err);
      const tps = /tps = ([0-9.]+) \(without initial connection time\)/.exec(stdout);
      if (!tps) return reject(new Error(`cannot read pgbench output:\n${stdout}`));
      const perSecond = [...stderr.matchAll(/progress: ([0-9.]+) s, ([0-9.]+) tps/g)].map((m) => Number(m[2]));
      resolve({ tps: Number(tps[1]), perSecond });
    });
  });
}

/** Mean of the per-second TPS in [from, to) seconds. */
function meanOver(perSecond: number[], from: number, to: number): number {
  const slice = perSecond.slice(Math.floor(from), Math.max(Math.ceil(to), Math.floor(from) + 1));
  return slice.reduce((a, b) => a + b, 0) / Math.max(slice.length, 1);
}

/** One way of running the maintenance, measured each round. */
export interface MaintenanceVariant {
  withMaintenance: number[];
  /** Per round: TPS during the maintenance seconds, and in the same seconds of the baseline round. */
  duringMaintenance: { baseline: number; with: number; seconds: number }[];
  /** How long one night's maintenance took, per round. */
  maintenanceMs: number[];
}

export interface PgbenchImpact {
  baseline: number[];
  /** vacuum-analyze at its default pace (autovacuum's). */
  paced: MaintenanceVariant;
  /** vacuum-analyze unthrottled, as a manual VACUUM runs. */
  unthrottled: MaintenanceVariant;
  /** What the maintenance did, per task, in the last round. */
  summaries: string[];
}

export async function benchPgbenchImpact(env: PgbenchEnv): Promise<PgbenchImpact> {
  const dbName = `ct_bench_pgbench_${randomBytes(4).toString('hex')}`;
  const admin = new Client({ connectionString: env.pgAdminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(dbName)}`);
  const url = Object.assign(new URL(env.pgAdminUrl), { pathname: `/${dbName}` });
  const state = new Pool({ connectionString: url.toString(), max: 2 });
  state.on('error', () => undefined);
  const log = pino({ level: 'silent' });
  try {
    await run('pgbench', [...pgbenchArgs(url), '-i', '-q', '-s', String(env.scale), dbName]);
    await migrate(state);
    const config = validateConfig(
      { redis: { url: env.redisUrl }, targets: { postgres: [{ name: 'bench', url: url.toString(), allow: { vacuum: true } }] } },
      'bench',
      TASKS,
    );
    const target = config.targets.postgres[0]!;
    const tasksWith = (overrides: Record<string, Record<string, unknown>>) =>
      MAINTENANCE_TASKS.map((name) => {
        const task = TASKS.get(name);
        if (!task) throw new Error(`task ${name} is not registered`);
        const prepared = task.prepare(config, { targetName: target.name, overrides: overrides[name] ?? {} });
        if (!prepared.ok) throw new Error(prepared.problems.join('; '));
        return prepared.run;
      });
    const pacedTasks = tasksWith({});
    const unthrottledTasks = tasksWith({ 'vacuum-analyze': { costDelayMs: 0 } });
    const variant = (): MaintenanceVariant => ({ withMaintenance: [], duringMaintenance: [], maintenanceMs: [] });

    const out: PgbenchImpact = { baseline: [], paced: variant(), unthrottled: variant(), summaries: [] };
    const summaries = out.summaries;
    // Every pgbench run starts from the same state: a night after a busy day,
    // a third of the accounts updated, so vacuum-analyze has real work. The
    // run before's leftovers are vacuumed away first (this machine's server
    // may run without autovacuum).
    const reset = async () => {
      await state.query('VACUUM ANALYZE pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history');
      const client = await state.connect();
      try {
        await client.query('UPDATE pgbench_accounts SET abalance = abalance WHERE aid % 3 = 0');
        // An idle backend flushes its statistics only after 10 s: now, so vacuum-analyze sees the dead tuples.
        await client.query('SELECT pg_stat_force_next_flush()');
      } finally {
        client.release();
      }
    };
    const alone = async () => {
      await reset();
      return pgbenchRun(url, env);
    };
    const withMaintenance = async (tasks: typeof pacedTasks) => {
      await reset();
      const started = Date.now();
      const traffic = pgbenchRun(url, env);
      // Let pgbench reach its stride first, as production traffic would be.
      await new Promise((r) => setTimeout(r, 2_000));
      const from = (Date.now() - started) / 1000;
      summaries.length = 0;
      for (const run of tasks) {
        const { task } = run;
        const result = await runTask({ run, dryRun: false, log, state });
        if (result.status === 'error') throw new Error(`${task.name}: ${result.summary}`);
        summaries.push(`${task.name}: ${result.summary}`);
      }
      const to = (Date.now() - started) / 1000;
      if (to > env.seconds) throw new Error(`maintenance took ${to.toFixed(1)} s, longer than the ${env.seconds} s window: raise seconds`);
      return { run: await traffic, from, to };
    };
    for (let round = 0; round < env.rounds; round++) {
      // A P U, then U P A: whatever drifts over the run weighs on every side alike.
      const steps: (() => Promise<void>)[] = [];
      let a: PgbenchRun | undefined;
      const results = new Map<MaintenanceVariant, Awaited<ReturnType<typeof withMaintenance>>>();
      steps.push(async () => void (a = await alone()));
      steps.push(async () => void results.set(out.paced, await withMaintenance(pacedTasks)));
      steps.push(async () => void results.set(out.unthrottled, await withMaintenance(unthrottledTasks)));
      if (round % 2 === 1) steps.reverse();
      for (const step of steps) await step();
      out.baseline.push(a!.tps);
      for (const [v, b] of results) {
        v.withMaintenance.push(b.run.tps);
        v.maintenanceMs.push((b.to - b.from) * 1000);
        v.duringMaintenance.push({ baseline: meanOver(a!.perSecond, b.from, b.to), with: meanOver(b.run.perSecond, b.from, b.to), seconds: b.to - b.from });
      }
    }
    return out;
  } finally {
    await state.end();
    await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(dbName)} WITH (FORCE)`);
    await admin.end();
  }
}
