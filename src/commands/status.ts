/**
 * `caretaker status`: the console's grid in the terminal. The first line is
 * a monitoring-plugin status line with perfdata, and the exit code is the
 * fleet's worst (see statusExitCode), so one Nagios check watches every
 * scheduled task; `--json` prints the whole status for scripts.
 */
import type { Config } from '../config/schema';
import { allTargetNames } from '../config/targets';
import { createPool, stateLimits } from '../clients/postgres';
import { createRedis } from '../clients/redis';
import { createQueue, type JobData } from '../queue/queue';
import type { Queue } from 'bullmq';
import { buildStatus, stateCountsText, statusExitCode, STATE_LABEL, STATES_WORST_FIRST, type CheckRow, type StatusReport } from '../status/status';
import { formatInZone } from '../schedules/cron';
import { silencedText } from '../status/suppressed';
import { formatDuration } from '../util/format';
import { UsageError, coerceError } from '../errors';
import { configFor, loggerFor, taskNamed } from './common';
import { println, type CliIO } from './io';

export interface StatusOptions {
  config?: string;
  json?: boolean;
  task?: string;
  target?: string;
}

const PLUGIN_STATE = ['OK', 'WARNING', 'CRITICAL', 'UNKNOWN'] as const;

/** `label=value` pairs after the `|`, as monitoring plugins print perfdata. */
function perfdata(report: StatusReport): string {
  const count = (state: CheckRow['state']) => report.checks.filter((c) => c.state === state).length;
  const open = (sev: 'critical' | 'warning') => report.checks.reduce((n, c) => n + c.open[sev], 0);
  const fields: [string, number][] = [
    ['checks', report.checks.length],
    ...STATES_WORST_FIRST.map((s): [string, number] => [s, count(s)]),
    ['findings_critical', open('critical')],
    ['findings_warning', open('warning')],
  ];
  return fields.map(([k, v]) => `${k}=${v}`).join(' ');
}

function pad(text: string, width: number): string {
  return text.length >= width ? `${text} ` : text.padEnd(width);
}

function printGrid(io: CliIO, report: StatusReport, timezone: string): void {
  let target: string | undefined;
  for (const c of report.checks) {
    if (c.target !== target) {
      target = c.target;
      println(io.stdout, `${c.target} (${c.targetKind})`);
    }
    const last = c.lastRun ? `${formatInZone(new Date(c.lastRun.finishedAt), timezone)}, ${formatDuration(c.lastRun.durationMs)}` : 'never';
    const open =
      [c.open.critical ? `${c.open.critical} critical` : '', c.open.warning ? `${c.open.warning} warning` : '', c.silenced ? `${c.silenced} silenced` : '', c.waived ? `${c.waived} waived` : '']
        .filter(Boolean)
        .join(', ') || '-';
    const next = c.nextDue ? formatInZone(new Date(c.nextDue), timezone) : report.schedulersRead ? 'not in Redis' : 'unknown';
    const summary = c.state === 'late' || c.state === 'missed' ? `due ${formatInZone(new Date(c.dueAt!), timezone)}, no run since` : (c.lastRun?.summary ?? '');
    println(io.stdout, `  ${pad(STATE_LABEL[c.state].toUpperCase(), 10)}${pad(c.task, 16)}${pad(c.schedule, 9)}last ${pad(last, 32)}next ${pad(next, 25)}open ${pad(open, 22)}${summary}`.trimEnd());
  }
}

function printFindings(io: CliIO, report: StatusReport, timezone: string): void {
  if (report.findings.length === 0) return;
  println(io.stdout);
  println(io.stdout, `open findings (${report.findings.length}):`);
  for (const f of report.findings) {
    println(io.stdout, `  [${f.severity.toUpperCase()}] ${f.target} ${f.task} ${f.code} ${f.subject}: ${f.message} (since ${formatInZone(new Date(f.firstSeen), timezone)})`);
    if (f.suggestion) println(io.stdout, `      suggestion: ${f.suggestion}`);
    if (f.silenced) println(io.stdout, `      ${silencedText(f.silenced, (iso) => formatInZone(new Date(iso), timezone))}`);
  }
}

function printWaived(io: CliIO, report: StatusReport, timezone: string): void {
  if (report.waived.length === 0) return;
  println(io.stdout);
  println(io.stdout, `waived (${report.waived.length}):`);
  for (const f of report.waived) {
    const until = f.waiver.expiresAt ? `until ${formatInZone(new Date(f.waiver.expiresAt), timezone)}` : 'no expiry';
    println(io.stdout, `  [${f.severity.toUpperCase()}] ${f.target} ${f.task} ${f.code} ${f.subject}: waiver ${f.waiver.id} by ${f.waiver.by}, ${until}: ${f.waiver.reason}`);
  }
}

/** Redis's queue for the next due times, or undefined when Redis does not answer (the rest still prints). */
async function connectQueue(config: Config, log: ReturnType<typeof loggerFor>): Promise<{ queue?: Queue<JobData>; close(): Promise<void> }> {
  const redis = createRedis(config.redis.url, log, { maxRetriesPerRequest: 1, connectTimeout: 3_000, retryStrategy: () => null, lazyConnect: true });
  try {
    await redis.connect();
  } catch {
    redis.disconnect();
    return { close: async () => undefined };
  }
  const queue = createQueue(redis, config.redis.prefix, undefined, log);
  return {
    queue,
    async close() {
      await queue.close().catch(() => undefined);
      redis.disconnect();
    },
  };
}

export async function statusCommand(io: CliIO, opts: StatusOptions): Promise<number> {
  const config = configFor(io, opts.config);
  if (opts.task) taskNamed(opts.task);
  if (opts.target && !allTargetNames(config).includes(opts.target)) {
    throw new UsageError(`unknown target ${JSON.stringify(opts.target)} (known: ${allTargetNames(config).join(', ')})`);
  }
  const log = loggerFor(io, config, opts.json ? {} : { human: true });
  const state = createPool(config.state.url, stateLimits(config.state), log, 4);
  const redis = await connectQueue(config, log);
  try {
    let report: StatusReport;
    try {
      // Bounded by the pool itself: connecting (10 s) and each query (statement timeout + 5 s, on the client too).
      report = await buildStatus({ state, queue: redis.queue, entries: config.schedulers, filter: { task: opts.task, target: opts.target }, suppress: config });
    } catch (err) {
      const e = coerceError(err) as Error & { code?: string };
      // A state database caretaker never started on has no history tables yet.
      if (e.code === '42P01') throw new Error('the state database has no history yet: start caretaker (or run "caretaker migrate") first', { cause: err });
      throw new Error(`cannot read the state database: ${e.message}`, { cause: err });
    }
    const code = statusExitCode(report);
    if (opts.json) {
      println(io.stdout, JSON.stringify({ ...report, exitCode: code }));
      return code;
    }
    const findings = `${report.findings.length} open finding${report.findings.length === 1 ? '' : 's'}${report.waived.length ? `, ${report.waived.length} waived` : ''}`;
    println(io.stdout, `CARETAKER ${PLUGIN_STATE[code]} - ${stateCountsText(report.checks)}; ${findings} | ${perfdata(report)}`);
    if (!report.schedulersRead) println(io.stdout, `(redis did not answer: next due times unknown)`);
    printGrid(io, report, config.timezone);
    printFindings(io, report, config.timezone);
    printWaived(io, report, config.timezone);
    return code;
  } finally {
    await redis.close();
    await state.end().catch(() => undefined);
  }
}
