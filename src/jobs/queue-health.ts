/**
 * queue-health (daily): the runbook's "monitor queue length < 100", failed
 * and stuck jobs, paused queues and dead letters of the monitored
 * application's BullMQ queues, and its "clean old jobs" when allowed.
 *
 * Reads through BullMQ's own Queue API (counts, ranges, isPaused), opened
 * with `skipMetasUpdate` so that looking writes nothing, on one connection
 * closed after the run. Every read is bounded: failed and active jobs are
 * read in pages up to a cap; counts come from ZCOUNT/ZCARD, never from
 * loading jobs. The only change is `queue.clean` of old completed and failed
 * jobs, with `allow.clean`, obeying --dry-run (then it counts instead).
 *
 * Metrics: totals over the monitored queues (`queue_waiting_total`, ...) and
 * per queue `queue_<name>_<state>`, the name lower-cased with every run of
 * other characters than a-z and 0-9 turned into `_` (`emails.v2` →
 * `queue_emails_v2_waiting`).
 */
import { z } from 'zod';
import type { Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { defineTask, type FindingCodes, type PreviousResult } from '../contract/task';
import type { Action, Finding } from '../contract/result';
import { formatDuration, windowText } from '../util/format';

const NAME = 'queue-health';
const DAY_S = 86_400;
/** Jobs read per round trip when paging through failed or active jobs. */
const PAGE = 100;
/**
 * The job states counted per queue. A paused queue keeps its jobs in `wait`
 * since BullMQ 5; older versions move them to a `paused` list, which is
 * counted as waiting too (the application may run an older BullMQ).
 */
const COUNTED = ['waiting', 'prioritized', 'active', 'delayed', 'failed', 'completed'] as const;

const codes = {
  queue_backlog: 'more than `backlog` jobs waiting in a queue (critical past `backlogCritical`, when set)',
  failed_jobs: 'at least `failedWarning` jobs failed since the last run (a first run: `failedWindowSeconds`), reasons counted',
  failed_jobs_retained: 'failed jobs from before the last run still kept in a queue (a warning from `failedRetainedWarning`)',
  stuck_jobs: 'jobs active for more than `stuckSeconds`: a worker that died or hangs',
  queue_paused: 'a paused queue',
  dead_letter_jobs: 'jobs waiting, delayed or failed in a queue listed in `deadLetterQueues`',
  queue_missing: 'a configured queue with no keys under the prefix: nothing was ever added to it',
} satisfies FindingCodes;
type Code = keyof typeof codes;

const params = z
  .strictObject({
    /** Waiting jobs (wait + prioritized, + a pre-BullMQ-5 paused list) above which `queue_backlog` is a warning (the runbook's queue length < 100)... */
    backlog: z.number().int().min(0).default(100),
    /** ...and critical; unset: never critical. */
    backlogCritical: z.number().int().min(1).optional(),
    /** Jobs failed since the previous run that raise `failed_jobs`. */
    failedWarning: z.number().int().min(1).default(1),
    /** Without a previous run, "since the last run" means this far back. */
    failedWindowSeconds: z.number().int().min(60).default(DAY_S),
    /**
     * Failed jobs from before the last run, still in the failed set, at or
     * above which `failed_jobs_retained` is a warning; unset: it stays info.
     * Info by default because many applications keep failed jobs on purpose
     * (BullMQ keeps them until removed): they are reported every run, but a
     * week-old failure must not hold the queue at warning until it is cleaned.
     */
    failedRetainedWarning: z.number().int().min(1).optional(),
    /** Failed jobs read per queue (and per kind: new, retained) to group their reasons; the counts themselves are exact. */
    failedScanLimit: z.number().int().min(1).max(10_000).default(500),
    /** Failure reasons listed per queue, most frequent first. */
    topReasons: z.number().int().min(1).max(50).default(5),
    /** An active job processing for longer than this is `stuck_jobs`. */
    stuckSeconds: z.number().int().min(1).default(1_800),
    /** Active jobs read per queue. */
    activeScanLimit: z.number().int().min(1).max(10_000).default(1_000),
    /** With allow.clean: completed jobs finished longer ago than this are removed... */
    cleanCompletedAgeSeconds: z.number().int().min(60).default(DAY_S),
    /** ...and failed ones (kept longer: they are the evidence)... */
    cleanFailedAgeSeconds: z.number().int().min(60).default(7 * DAY_S),
    /** ...at most this many per queue and state per run. */
    cleanLimit: z.number().int().min(1).max(10_000).default(1_000),
    /** Jobs listed in a finding's details. */
    maxListed: z.number().int().min(1).max(1_000).default(20),
  })
  .refine((p) => p.backlogCritical === undefined || p.backlogCritical >= p.backlog, {
    error: 'backlogCritical must not be below backlog',
    path: ['backlogCritical'],
  });
type Params = z.infer<typeof params>;

type Counts = Record<(typeof COUNTED)[number] | 'paused', number>;

/** What one run needs to look at a queue, shared by the checks below. */
interface Look {
  queue: Queue;
  redis: Redis;
  p: Params;
  findings: Finding<Code>[];
  signal: AbortSignal;
}

export const queueHealth = defineTask({
  name: NAME,
  description: 'BullMQ queues: backlog, failed jobs since the last run with their reasons, stuck and paused queues, dead letters; cleans old jobs when allowed',
  target: 'queues',
  defaultSchedule: 'daily',
  timeoutMs: 120_000,
  changesTarget: true,
  params,
  codes,
  async run(ctx, p) {
    const { target } = ctx;
    const { redis, queue: queueNamed } = await ctx.clients.queues();
    const since = failedSince(await ctx.previousResult(), p.failedWindowSeconds);
    const findings: Finding<Code>[] = [];
    const actions: Action[] = [];
    const metrics: Record<string, number> = {};
    const totals = { waiting: 0, active: 0, failed: 0, delayed: 0, failedSince: 0, failedRetained: 0, stuck: 0, paused: 0, deadLetters: 0, cleaned: 0, wouldClean: 0 };
    const missing: string[] = [];
    const deadLetter = new Set(target.deadLetterQueues);
    const names = [...new Set([...target.queues, ...target.deadLetterQueues])];

    for (const [i, name] of names.entries()) {
      ctx.signal.throwIfAborted();
      const queue = queueNamed(name);
      const look: Look = { queue, redis, p, findings, signal: ctx.signal };

      if (!(await exists(queue, redis))) {
        missing.push(name);
        findings.push({
          severity: 'info',
          code: 'queue_missing',
          subject: name,
          message: `queue ${name} has no keys under prefix ${target.prefix}: nothing was ever added to it`,
          suggestion: 'Check the queue name and the prefix in the config against the application\'s',
          details: { queue: name, prefix: target.prefix },
        });
        continue;
      }
      const raw = await queue.getJobCounts(...COUNTED);
      const counts = { ...(Object.fromEntries(COUNTED.map((s) => [s, raw[s] ?? 0])) as Counts), paused: await redis.llen(queue.keys.paused!) };
      const waiting = counts.waiting + counts.prioritized + counts.paused;
      const key = `queue_${sanitise(name)}`;
      Object.assign(metrics, { [`${key}_waiting`]: waiting, [`${key}_active`]: counts.active, [`${key}_failed`]: counts.failed, [`${key}_delayed`]: counts.delayed });

      if (deadLetter.has(name)) {
        totals.deadLetters += await checkDeadLetters(look, counts, waiting);
      } else {
        totals.waiting += waiting;
        totals.active += counts.active;
        totals.failed += counts.failed;
        totals.delayed += counts.delayed;
        checkBacklog(look, waiting, counts);
        totals.failedSince += await checkFailed(look, since, counts.failed);
        totals.failedRetained += await checkRetainedFailed(look, since, counts.failed);
        totals.stuck += await checkStuck(look);
        if (await queue.isPaused()) {
          totals.paused++;
          findings.push({
            severity: 'warning',
            code: 'queue_paused',
            subject: name,
            message: `queue ${name} is paused with ${waiting} jobs waiting`,
            suggestion: 'Resume it (Bull Board, or queue.resume()) unless it was paused on purpose',
            details: { queue: name, waiting },
          });
        }
        if (target.allow.clean) {
          for (const state of ['completed', 'failed'] as const) {
            const age = state === 'completed' ? p.cleanCompletedAgeSeconds : p.cleanFailedAgeSeconds;
            const action = await clean(look, state, age, ctx.dryRun);
            if (!action) continue;
            actions.push(action);
            if (action.applied) ctx.applied(action);
            const jobs = action.details!.jobs as number;
            if (action.applied) totals.cleaned += jobs;
            else totals.wouldClean += jobs;
          }
        }
      }
      await ctx.progress(((i + 1) / names.length) * 100);
    }

    Object.assign(metrics, {
      queue_waiting_total: totals.waiting,
      queue_active_total: totals.active,
      queue_failed_total: totals.failed,
      queue_delayed_total: totals.delayed,
      queue_failed_since_last_run: totals.failedSince,
      queue_failed_retained: totals.failedRetained,
      queue_stuck_jobs: totals.stuck,
      queue_paused: totals.paused,
      queue_dead_letter_jobs: totals.deadLetters,
      queue_cleaned_jobs: totals.cleaned,
      queue_missing: missing.length,
    });
    const parts = [
      `${names.length} queue${names.length === 1 ? '' : 's'}: ${totals.waiting} waiting`,
      `${totals.active} active`,
      `${totals.failedSince} failed ${sinceText(since, p.failedWindowSeconds)}` + (totals.failedRetained > 0 ? ` (${totals.failedRetained} older still failed)` : ''),
      `${totals.stuck} stuck`,
      `${totals.paused} paused`,
    ];
    if (target.deadLetterQueues.length > 0) parts.push(`${totals.deadLetters} dead letters`);
    if (missing.length > 0) parts.push(`missing: ${missing.join(', ')}`);
    if (target.allow.clean) parts.push(ctx.dryRun ? `would clean ${totals.wouldClean} old jobs` : `cleaned ${totals.cleaned} old jobs`);
    return { summary: parts.join(', '), findings, actions, metrics };
  },
});

/** Whether BullMQ ever wrote a key of this queue (one EXISTS over all of them). */
async function exists(queue: Queue, redis: Redis): Promise<boolean> {
  const keys = Object.entries(queue.keys).filter(([type]) => type !== '').map(([, key]) => key);
  return (await redis.exists(...keys)) > 0;
}

function checkBacklog({ queue, p, findings }: Look, waiting: number, counts: Counts): void {
  if (waiting <= p.backlog) return;
  const critical = p.backlogCritical !== undefined && waiting > p.backlogCritical;
  findings.push({
    severity: critical ? 'critical' : 'warning',
    code: 'queue_backlog',
    subject: queue.name,
    message: `${waiting} jobs waiting in ${queue.name} (over ${critical ? p.backlogCritical : p.backlog}), ${counts.active} active`,
    suggestion: 'Check that workers are running and keeping up (Bull Board, worker logs); scale the workers out if the load is real',
    details: { queue: queue.name, waiting, wait: counts.waiting, paused: counts.paused, prioritized: counts.prioritized, active: counts.active, delayed: counts.delayed, threshold: p.backlog },
  });
}

/**
 * Failed jobs since the last run (`failed_jobs`): exact count, reasons
 * grouped over the newest `failedScanLimit`.
 */
async function checkFailed(look: Look, since: Since, failedTotal: number): Promise<number> {
  const { queue, redis, p, findings } = look;
  // The failed set is scored by finishedOn.
  const count = await redis.zcount(queue.keys.failed, `(${since.at.getTime()}`, '+inf');
  if (count < p.failedWarning) return count;
  const read = await readFailed(look, 'newest', (finishedOn) => finishedOn > since.at.getTime(), Math.min(count, p.failedScanLimit));
  const top = read.top;
  findings.push({
    severity: 'warning',
    code: 'failed_jobs',
    subject: queue.name,
    message: `${count} jobs failed in ${queue.name} ${sinceText(since, p.failedWindowSeconds)}` + (top[0] ? `; top reason (${top[0].count}×): ${top[0].reason}` : ''),
    suggestion: 'Read the reasons and stack traces in Bull Board; retry the failed jobs once the cause is fixed',
    details: { queue: queue.name, failed: count, failedTotal, since: since.at.toISOString(), window: since.window, scanned: read.scanned, distinctReasons: read.distinctReasons, topReasons: top },
  });
  return count;
}

/**
 * Failed jobs from before the last run that are still in the failed set
 * (`failed_jobs_retained`): neither retried nor removed. Kept apart from
 * failed_jobs so that "new since the last run" keeps its meaning while
 * what is still broken is reported every run, not only the run after it
 * failed. Reasons grouped over the oldest `failedScanLimit`.
 */
async function checkRetainedFailed(look: Look, since: Since, failedTotal: number): Promise<number> {
  const { queue, redis, p, findings } = look;
  const count = await redis.zcount(queue.keys.failed, '-inf', since.at.getTime());
  if (count === 0) return 0;
  const read = await readFailed(look, 'oldest', (finishedOn) => finishedOn <= since.at.getTime(), Math.min(count, p.failedScanLimit));
  const top = read.top;
  const oldest = read.oldest;
  const warn = p.failedRetainedWarning !== undefined && count >= p.failedRetainedWarning;
  const before = since.window === 'since_last_run' ? 'from before the last run' : `older than ${windowText(p.failedWindowSeconds)}`;
  findings.push({
    severity: warn ? 'warning' : 'info',
    code: 'failed_jobs_retained',
    subject: queue.name,
    message:
      `${count} failed jobs ${before} are still in ${queue.name}` +
      (oldest ? ` (oldest failed ${formatDuration(Date.now() - oldest.finishedOn)} ago)` : '') +
      (top[0] ? `; top reason (${top[0].count}×): ${top[0].reason}` : ''),
    suggestion: 'Retry them once the cause is fixed, or remove them (Bull Board); with allow.clean, failed jobs older than cleanFailedAgeSeconds are removed',
    details: {
      queue: queue.name,
      retained: count,
      failedTotal,
      before: since.at.toISOString(),
      window: since.window,
      oldestFailedAt: oldest ? new Date(oldest.finishedOn).toISOString() : undefined,
      oldestJobId: oldest?.id,
      scanned: read.scanned,
      distinctReasons: read.distinctReasons,
      topReasons: top,
      ...(p.failedRetainedWarning !== undefined ? { threshold: p.failedRetainedWarning } : {}),
    },
  });
  return count;
}

interface FailedRead {
  scanned: number;
  distinctReasons: number;
  top: { reason: string; count: number; sampleJobId?: string; sampleJobName: string }[];
  /** The earliest failure read (the set's oldest when reading oldest first). */
  oldest?: { id?: string; finishedOn: number };
}

/**
 * Reads up to `toRead` failed jobs that `wanted` (by finishedOn) accepts,
 * in pages from the newest or the oldest end of the failed set, and groups
 * the first lines of their failedReason. The set is scored by finishedOn,
 * so the wanted jobs sit together at the end read from.
 */
async function readFailed({ queue, p, signal }: Look, from: 'newest' | 'oldest', wanted: (finishedOn: number) => boolean, toRead: number): Promise<FailedRead> {
  const reasons = new Map<string, { count: number; sample: { id?: string; name: string } }>();
  let scanned = 0;
  let oldest: FailedRead['oldest'];
  // The wanted jobs are the first `toRead` from that end: reading those positions is enough, and bounded.
  for (let start = 0; start < toRead; start += PAGE) {
    signal.throwIfAborted();
    const page = await queue.getJobs(['failed'], start, Math.min(start + PAGE, toRead) - 1, from === 'oldest');
    for (const job of page) {
      const finishedOn = job.finishedOn ?? 0;
      if (!wanted(finishedOn)) continue; // failed again in between, or its score and finishedOn disagree
      scanned++;
      if (!oldest || finishedOn < oldest.finishedOn) oldest = { id: job.id, finishedOn };
      const reason = firstLine(job.failedReason) || '(no reason)';
      const entry = reasons.get(reason) ?? { count: 0, sample: { id: job.id, name: job.name } };
      entry.count++;
      reasons.set(reason, entry);
    }
    if (page.length < PAGE) break;
  }
  const top = [...reasons.entries()]
    .sort((a, b) => b[1].count - a[1].count || a[0].localeCompare(b[0]))
    .slice(0, p.topReasons)
    .map(([reason, e]) => ({ reason, count: e.count, sampleJobId: e.sample.id, sampleJobName: e.sample.name }));
  return { scanned, distinctReasons: reasons.size, top, oldest };
}

/** Active jobs processing for longer than stuckSeconds (a worker that died or hangs). */
async function checkStuck({ queue, p, findings, signal }: Look): Promise<number> {
  const cutoff = Date.now() - p.stuckSeconds * 1000;
  const stuck: Job[] = [];
  for (let start = 0; start < p.activeScanLimit; start += PAGE) {
    signal.throwIfAborted();
    const page = await queue.getActive(start, Math.min(start + PAGE, p.activeScanLimit) - 1);
    stuck.push(...page.filter((j) => j.processedOn !== undefined && j.processedOn < cutoff));
    if (page.length < PAGE) break;
  }
  if (stuck.length === 0) return 0;
  stuck.sort((a, b) => a.processedOn! - b.processedOn!);
  const now = Date.now();
  findings.push({
    severity: 'warning',
    code: 'stuck_jobs',
    subject: queue.name,
    message: `${stuck.length} jobs in ${queue.name} active for more than ${formatDuration(p.stuckSeconds * 1000)} (oldest ${formatDuration(now - stuck[0]!.processedOn!)})`,
    suggestion: 'Check the workers processing them (hung on I/O, or a lock renewal failing); a stalled job returns to the queue once its lock expires',
    details: {
      queue: queue.name,
      count: stuck.length,
      thresholdSeconds: p.stuckSeconds,
      jobs: stuck.slice(0, p.maxListed).map((j) => ({ id: j.id, name: j.name, activeSeconds: Math.round((now - j.processedOn!) / 1000), attemptsMade: j.attemptsMade })),
    },
  });
  return stuck.length;
}

/** Any job left in a dead-letter queue (waiting, delayed or failed) is a finding. */
async function checkDeadLetters({ queue, p, findings }: Look, counts: Counts, waiting: number): Promise<number> {
  const jobs = waiting + counts.delayed + counts.failed;
  if (jobs === 0) return 0;
  const sample = (await queue.getJobs(['waiting', 'prioritized', 'delayed', 'failed'], 0, Math.min(p.maxListed, 5) - 1)).slice(0, 5);
  findings.push({
    severity: 'warning',
    code: 'dead_letter_jobs',
    subject: queue.name,
    message: `${jobs} jobs in dead-letter queue ${queue.name} (${waiting} waiting, ${counts.failed} failed, ${counts.delayed} delayed)`,
    suggestion: 'Inspect them in Bull Board; fix the cause, then replay or remove them',
    details: {
      queue: queue.name,
      jobs,
      waiting,
      failed: counts.failed,
      delayed: counts.delayed,
      sample: sample.map((j) => ({ id: j.id, name: j.name, failedReason: firstLine(j.failedReason) || undefined, createdAt: new Date(j.timestamp).toISOString() })),
    },
  });
  return jobs;
}

/**
 * `queue.clean` of jobs finished more than `ageSeconds` ago, at most
 * cleanLimit; in a dry run, counts them the same way (the set is scored by
 * finishedOn) and deletes nothing. No action when there is nothing to clean.
 */
async function clean({ queue, redis, p }: Look, state: 'completed' | 'failed', ageSeconds: number, dryRun: boolean): Promise<Action | undefined> {
  const graceMs = ageSeconds * 1000;
  const details = { queue: queue.name, state, olderThanSeconds: ageSeconds, limit: p.cleanLimit };
  if (dryRun) {
    const older = await redis.zcount(queue.keys[state]!, '-inf', Date.now() - graceMs);
    const jobs = Math.min(older, p.cleanLimit);
    return jobs > 0 ? { kind: 'queue_clean', subject: `${queue.name}:${state}`, applied: false, details: { ...details, jobs } } : undefined;
  }
  const started = Date.now();
  const removed = await queue.clean(graceMs, p.cleanLimit, state);
  if (removed.length === 0) return undefined;
  return { kind: 'queue_clean', subject: `${queue.name}:${state}`, applied: true, durationMs: Date.now() - started, details: { ...details, jobs: removed.length } };
}

interface Since {
  at: Date;
  window: 'since_last_run' | 'window';
}

/** The previous run's end, or `failedWindowSeconds` ago without one. */
function failedSince({ result: previous }: PreviousResult, windowSeconds: number): Since {
  const at = previous ? Date.parse(previous.finishedAt) : NaN;
  if (Number.isFinite(at)) return { at: new Date(at), window: 'since_last_run' };
  return { at: new Date(Date.now() - windowSeconds * 1000), window: 'window' };
}

function sinceText(since: Since, windowSeconds: number): string {
  if (since.window === 'since_last_run') return 'since the last run';
  return `in the last ${windowText(windowSeconds)}`;
}

function firstLine(text: string | undefined): string {
  return (text ?? '').split('\n', 1)[0]!.trim().slice(0, 200);
}

/** A queue name as part of a metric name: `emails.v2` → `emails_v2`. */
export function sanitise(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '') || 'unnamed';
}
