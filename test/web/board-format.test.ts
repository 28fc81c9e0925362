/**
 * Bull Board tells outcomes apart: a job's name carries its status, its
 * return value leads with status, summary and findings, and it links to
 * caretaker's page of the run. Checked through the board's own JSON API (what
 * its UI renders) over jobs a real worker finished, and on junk job shapes.
 */
import { Worker, type Job } from 'bullmq';
import request from 'supertest';
import type express from 'express';
import { createRedis } from '../../src/clients/redis';
import type { Finding, TaskResult } from '../../src/contract/result';
import type { JobData } from '../../src/queue/queue';
import { findingLine, jobTitle, resultView } from '../../src/web/board-format';
import { BOARD_PATH, CONSOLE_PATH, runOfJobPath } from '../../src/web/paths';
import { createWebApp } from '../../src/web/server';
import { TEST_REDIS_URL } from '../support/env';
import { waitForJob } from '../support/jobs';
import { testLogger } from '../support/logger';
import { ADMIN, VIEWER, result, webFixture, type WebFixture } from './fixture';

const STALE: Finding = { severity: 'critical', code: 'backup_stale', subject: 'nightly', message: 'last backup is 3 days old', suggestion: 'check the backup job' };
const RESTORED: Finding = { severity: 'info', code: 'restore_ok', subject: 'nightly', message: 'restored 12 tables', details: { tables: 12 } };
const CRITICAL = result({
  task: 'restore-test',
  target: 'nightly',
  status: 'critical',
  finishedAt: '2026-03-01T03:00:00.000Z',
  summary: 'restore worked, but the backup is stale',
  findings: [STALE, RESTORED],
  actions: [{ kind: 'restore', subject: 'nightly', applied: true }],
  metrics: { tables: 12 },
});
const SKIPPED: TaskResult = { ...result({ task: 'vacuum', status: 'ok', finishedAt: '2026-03-01T03:00:00.000Z' }), skipped: true };

let fx: WebFixture;
let app: express.Express;
const ids: Record<string, string> = {};

/** The board's listing of one status, as the admin's UI fetches it. */
async function listed(status: string): Promise<Array<{ id: string; name: string; returnValue: unknown; externalUrl?: { href: string } }>> {
  const res = await request(app).get(`${BOARD_PATH}/api/queues?activeQueue=caretaker&status=${status}&page=1&jobsPerPage=50`).auth(ADMIN.user, ADMIN.password);
  expect(res.status).toBe(200);
  return res.body.queues[0].jobs;
}

const named = async (status: string) => new Map((await listed(status)).map((j) => [j.id, j]));

/** Runs each job to the end with a real worker whose processor returns the job's own `result`, or throws for `boom`. */
async function runToTheEnd(jobs: Array<{ key: string; name: string; data: unknown; result?: TaskResult }>): Promise<void> {
  const results = new Map<string, TaskResult | undefined>();
  for (const j of jobs) {
    const job = await fx.queue.add(j.name, j.data as JobData, { attempts: 1 });
    ids[j.key] = job.id!;
    results.set(job.id!, j.result);
  }
  const connection = createRedis(TEST_REDIS_URL, testLogger);
  const worker = new Worker(
    fx.queue.name,
    async (job: Job) => {
      if (job.name === 'boom') throw new Error('disk on fire');
      return results.get(job.id!);
    },
    { connection, prefix: fx.prefix },
  );
  try {
    for (const j of jobs) await waitForJob(fx.queue, ids[j.key]!);
  } finally {
    await worker.close();
    connection.disconnect();
  }
}

beforeAll(async () => {
  fx = await webFixture('board-format');
  app = createWebApp(fx.deps);
  await runToTheEnd([
    { key: 'critical', name: 'restore-test', data: { task: 'restore-test', target: 'nightly' }, result: CRITICAL },
    { key: 'dry', name: 'restore-test', data: { task: 'restore-test', target: 'nightly', dryRun: true }, result: { ...CRITICAL, dryRun: true } },
    { key: 'skipped', name: 'vacuum', data: { task: 'vacuum', target: 'main' }, result: SKIPPED },
    { key: 'failed', name: 'boom', data: { task: 'boom', target: 'main' } },
    { key: 'junk', name: 'by-hand', data: ['not', 'an', 'object'], result: 'done' as unknown as TaskResult },
  ]);
  ids.waiting = (await fx.queue.add('disk-check', { task: 'disk-check', target: 'main' })).id!;
});

afterAll(async () => {
  await fx.close();
});

describe('job names in the board carry the outcome', () => {
  it('names a critical run "task · target · CRITICAL" although it sits under Completed', async () => {
    const completed = await named('completed');
    expect(completed.get(ids.critical!)?.name).toBe('restore-test · nightly · CRITICAL');
    expect(completed.get(ids.dry!)?.name).toBe('restore-test · nightly · CRITICAL (dry run)');
    expect(completed.get(ids.skipped!)?.name).toBe('vacuum · main · SKIPPED');
    // Hand-added data that is not an object: the plain name, and the listing still answers.
    expect(completed.get(ids.junk!)?.name).toBe('by-hand');
  });

  it('names a failed job "… · ERROR" and an unfinished one "task · target"', async () => {
    expect((await named('failed')).get(ids.failed!)?.name).toBe('boom · main · ERROR');
    expect((await named('waiting')).get(ids.waiting!)?.name).toBe('disk-check · main');
  });

  it('names the job the same way for the viewer and on the job\'s own page', async () => {
    const viewer = await request(app).get(`${BOARD_PATH}/api/queues?activeQueue=caretaker&status=completed`).auth(VIEWER.user, VIEWER.password);
    expect(viewer.body.queues[0].jobs.map((j: { name: string }) => j.name)).toContain('restore-test · nightly · CRITICAL');
    const one = await request(app).get(`${BOARD_PATH}/api/queues/caretaker/${ids.critical}`).auth(ADMIN.user, ADMIN.password);
    expect(one.status).toBe(200);
    expect(one.body.job.name).toBe('restore-test · nightly · CRITICAL');
  });
});

describe('the return value leads with the outcome', () => {
  it('puts status, summary and findings (one line each) first, and keeps the rest of the result', async () => {
    const view = (await named('completed')).get(ids.critical!)?.returnValue as Record<string, unknown>;
    expect(Object.keys(view).slice(0, 3)).toEqual(['status', 'summary', 'findings']);
    expect(view.status).toBe('critical');
    expect(view.summary).toBe('restore worked, but the backup is stale');
    expect(view.findings).toEqual([
      'CRITICAL backup_stale · nightly: last backup is 3 days old → check the backup job',
      'INFO restore_ok · nightly: restored 12 tables',
    ]);
    // Nothing dropped: every other key as it was, and the finding with details whole.
    const { findings: _lines, findingsInFull, ...rest } = view;
    const { findings: _original, ...originalRest } = CRITICAL;
    expect(rest).toEqual(originalRest);
    expect(findingsInFull).toEqual([RESTORED]);
  });

  it('links each job to caretaker\'s page of its run', async () => {
    const job = (await named('completed')).get(ids.critical!);
    expect(job?.externalUrl?.href).toBe(runOfJobPath(ids.critical!));
  });

  it('links the header to the console and not to bull-board\'s docs', async () => {
    const page = await request(app).get(BOARD_PATH).auth(ADMIN.user, ADMIN.password);
    const config = JSON.parse(/<script id="__UI_CONFIG__" type="application\/json">(.*?)<\/script>/s.exec(page.text)![1]!);
    expect(config).toMatchObject({ miscLinks: [{ text: 'Console', url: CONSOLE_PATH }], hideDocsLink: true });
  });
});

describe('the formatters on any job shape', () => {
  it('never throw and fall back to the plain name', () => {
    for (const junk of [null, undefined, 42, 'x', [], { name: 7 }, { name: 'n', data: null, finishedOn: 1, returnvalue: [1] }]) {
      expect(typeof jobTitle(junk)).toBe('string');
      expect(() => resultView(junk)).not.toThrow();
    }
    expect(jobTitle({ name: 'n', data: null, finishedOn: 1, returnvalue: 'done' })).toBe('n');
    expect(jobTitle({ name: 'n', data: { task: { nested: true }, target: ['a'] } })).toBe('n');
  });

  it('keeps a hand-added target to one short line of text', () => {
    const title = jobTitle({ name: 'connections', data: { task: 'connections', target: `a\nb${'x'.repeat(500)}` } });
    expect(title).not.toContain('\n');
    expect(title.length).toBeLessThan(100);
    expect(title.startsWith('connections · a b')).toBe(true);
  });

  it('shows what is not a TaskResult as it is, and no key of a partial one goes missing', () => {
    expect(resultView('done')).toBe('done');
    expect(resultView([1, 2])).toEqual([1, 2]);
    const odd = { constructor: 1, extra: true, findings: 'none', status: 'ok' };
    const view = resultView(odd) as Record<string, unknown>;
    expect(Object.keys(view)).toEqual(['status', 'findings', 'constructor', 'extra']);
    expect({ ...view }).toEqual(odd);
  });

  it('leaves a finding that is not one as it is', () => {
    expect(findingLine({ severity: 'warning', code: 'c', subject: 's' })).toBeUndefined();
    expect(resultView({ findings: [{ note: 'free text' }] })).toEqual({ findings: [{ note: 'free text' }] });
  });
});
