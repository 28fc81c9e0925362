/**
 * performance-review on a planted history (a real state database): three
 * months of slow-queries snapshots and of api-health and connections runs.
 * A statement whose month's mean rose past the threshold is a regression,
 * one that held steady is not; a database whose statistics were reset
 * between the months is not compared and says why; peaks and medians move
 * as planted; the review is emailed with its own subject and served at
 * /reports/2026-11 behind the login.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { stringify } from 'yaml';
import request from 'supertest';
import type { Finding, TaskResult } from '../../src/contract/result';
import { performanceReview } from '../../src/jobs/performance-review';
import { buildMonthlyReview } from '../../src/performance/review';
import { renderReviewText } from '../../src/performance/render';
import { parseMonth } from '../../src/reports/month';
import { migrate } from '../../src/results/migrate';
import { ResultStore } from '../../src/results/store';
import { reportsRouter } from '../../src/web/reports';
import { runTask } from '../../src/worker/run-task';
import { testConfig } from '../support/config';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { testLogger } from '../support/logger';
import { preparedRun } from '../support/run-task';
import { startSmtpSink, type SmtpSink } from '../support/smtp';
import { runCli } from '../support/cli';
import { TEST_REDIS_URL } from '../support/env';

let db: TestDatabase;
let smtp: SmtpSink;
const month = parseMonth('2026-11', 'UTC');
const RESET = '2026-01-01T00:00:00.000Z';

function run(task: string, target: string, finishedAt: string, metrics: Record<string, number>, findings: Finding[] = []): TaskResult {
  return { task, target, status: 'ok', startedAt: finishedAt, finishedAt, durationMs: 5, dryRun: false, summary: 'planted', findings, actions: [], metrics };
}

/** A slow-queries run whose top_statements carry these cumulative figures (since `statsReset`). */
function snapshot(target: string, finishedAt: string, statsReset: string, statements: { queryid: string; calls: number; totalMs: number }[]): TaskResult {
  const byTotal = statements.map((s) => ({ ...s, query: `SELECT /* ${s.queryid} */ 1`, meanMs: s.totalMs / s.calls }));
  return run('slow-queries', target, finishedAt, {}, [
    { severity: 'info', code: 'top_statements', subject: target, message: 'planted', details: { statsReset, byTotal, byMean: [] } },
  ]);
}

beforeAll(async () => {
  db = await createTestDatabase('perf_review');
  await migrate(db.pool);
  smtp = await startSmtpSink();
  const store = new ResultStore(db.pool);
  // main: q-slow runs at 10 ms in September and October, 40 ms in November; q-steady at 5 ms throughout.
  const main = [
    { at: '2026-09-28T03:00:00Z', slow: { calls: 1_000, totalMs: 10_000 }, steady: { calls: 10_000, totalMs: 50_000 } },
    { at: '2026-10-29T03:00:00Z', slow: { calls: 2_000, totalMs: 20_000 }, steady: { calls: 20_000, totalMs: 100_000 } },
    { at: '2026-11-29T03:00:00Z', slow: { calls: 3_000, totalMs: 60_000 }, steady: { calls: 30_000, totalMs: 150_000 } },
  ];
  for (const s of main) {
    await store.save(snapshot('main', s.at, RESET, [{ queryid: '101', ...s.slow }, { queryid: '202', ...s.steady }]));
  }
  // An earlier November run of main: the newest of the month is the one compared.
  await store.save(snapshot('main', '2026-11-02T03:00:00Z', RESET, [{ queryid: '101', calls: 2_100, totalMs: 21_000 }]));
  // reporting: reset on 5 November, between its October and November runs.
  await store.save(snapshot('reporting', '2026-10-29T03:00:00Z', RESET, [{ queryid: '303', calls: 500, totalMs: 500 }]));
  await store.save(snapshot('reporting', '2026-11-29T03:00:00Z', '2026-11-05T00:00:00.000Z', [{ queryid: '303', calls: 400, totalMs: 4_000 }]));
  // api-health p95: October 80–120 ms, November up to 250 ms; connections flat.
  for (const [day, p95, used] of [['2026-10-10', 80, 40], ['2026-10-20', 120, 42], ['2026-11-10', 150, 41], ['2026-11-20', 250, 43], ['2026-11-25', 200, 40]] as const) {
    await store.save(run('api-health', 'api', `${day}T03:00:00Z`, { latency_p95_ms: p95 }));
    await store.save(run('connections', 'main', `${day}T03:00:00Z`, { connections_used: used }));
  }
});

afterAll(async () => {
  await smtp?.close();
  await db?.drop();
});

const review = () => buildMonthlyReview(db.pool, { month, title: 'AUDITRON', regressionPercent: 50, minCalls: 100, top: 10 });

it('finds the statement whose month mean rose past the threshold, from the differences of the snapshots', async () => {
  const r = await review();
  expect(r.previous.id).toBe('2026-10');
  // November: (60 000 - 20 000) ms over 1 000 calls = 40 ms; October: (20 000 - 10 000) over 1 000 = 10 ms.
  expect(r.regressions).toEqual([expect.objectContaining({ target: 'main', queryid: '101', before: 10, now: 40, risePercent: 300, calls: 1_000 })]);
  expect(r.compared).toBe(2);
  expect(r.topStatements.find((t) => t.target === 'main')!.statements.map((s) => s.queryid)).toEqual(['202', '101']);
});

it('does not compare a database whose statistics were reset between the months, and says why', async () => {
  const r = await review();
  expect(r.notCompared).toEqual([{ target: 'reporting', reason: expect.stringMatching(/^pg_stat_statements was reset at 2026-11-05T00:00:00\.000Z, between the runs of 2026-10 and 2026-11/) }]);
  expect(r.regressions.map((x) => x.target)).not.toContain('reporting');
});

it('a month whose statements held steady has no regression, only its summary', async () => {
  // October against September: q-slow 10 ms both months, q-steady 5 ms.
  const october = await buildMonthlyReview(db.pool, { month: parseMonth('2026-10', 'UTC'), title: 'AUDITRON', regressionPercent: 50, minCalls: 100, top: 10 });
  expect([october.regressions, october.compared]).toEqual([[], 2]);
  const config = testConfig({ dbUrl: db.url, prefix: 'unused' });
  const result = await runTask({ run: preparedRun(performanceReview, config, 'caretaker', { month: '2026-10' }), dryRun: false, log: testLogger, state: db.pool });
  expect(result.status).toBe('ok');
  expect(result.findings.map((f) => f.code)).toEqual(['performance_summary']);
});

it('compares peaks and medians month over month', async () => {
  const r = await review();
  expect(r.series.find((s) => s.series === 'api_p95_ms')).toEqual(expect.objectContaining({ target: 'api', now: { peak: 250, median: 200, points: 3 }, before: { peak: 120, median: 100, points: 2 }, trend: 'up' }));
  expect(r.series.find((s) => s.series === 'connections_peak')).toMatchObject({ target: 'main', trend: 'flat' });
  expect(renderReviewText(r)).toMatch(/^ {2}API p95 latency, api: peak 250 ms, median 200 \(3 runs\); last month peak 120 ms, median 100 \(2 runs\); up$/m);
});

it('the task raises performance_regression and a summary, and mails the review with its own subject', async () => {
  const config = testConfig({
    dbUrl: db.url,
    prefix: 'unused',
    report: { title: 'AUDITRON' },
    notifications: { email: { smtp: { host: '127.0.0.1', port: smtp.port, secure: false }, from: 'caretaker@example.com', to: ['ops@example.com'] } },
  });
  const result = await runTask({ run: preparedRun(performanceReview, config, 'caretaker', { month: '2026-11' }), dryRun: false, log: testLogger, state: db.pool });
  expect(result.status).toBe('warning');
  expect(result.findings.map((f) => [f.severity, f.code, f.subject])).toEqual([
    ['warning', 'performance_regression', 'main queryid 101'],
    ['info', 'performance_summary', '2026-11'],
  ]);
  expect(result.summary).toBe('performance 2026-11 against 2026-10: 1 of 2 statements slower by more than 50 %; up: API p95 latency (api); 1 database not compared; sent to 1 recipient(s)');
  const mail = smtp.mails.at(-1)!;
  expect(mail.subject).toBe('[caretaker] AUDITRON performance 2026-11: 1 regression');
  expect(mail.text).toContain('main queryid 101: 10.0 ms → 40.0 ms (+300 %) over 1000 calls');
  expect(String(mail.html)).toContain('Statements slower by more than 50 % (1 of 2 compared)');
});

it('is served at /reports/2026-11; a month not started yet is a 404', async () => {
  const config = testConfig({ dbUrl: db.url, prefix: 'unused', report: { title: 'AUDITRON' }, tasks: { 'performance-review': { regressionPercent: 500 } } });
  const app = express().use('/reports', reportsRouter({ config, state: db.pool }));
  const page = await request(app).get('/reports/2026-11');
  expect(page.status).toBe(200);
  // The config's threshold: a 300 % rise is not past 500 %.
  expect(page.text).toContain('Statements slower by more than 500 % (0 of 2 compared)');
  expect(page.text).toContain('API p95 latency');
  expect((await request(app).get('/reports/2099-01')).status).toBe(404);
  expect((await request(app).get('/reports/2026-13')).status).toBe(404);
});

it('caretaker run performance-review --json --param month=2026-11 prints its one result', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ct-perf-review-'));
  try {
    const path = join(dir, 'caretaker.yaml');
    writeFileSync(path, stringify({ redis: { url: TEST_REDIS_URL, prefix: 'unused' }, state: { url: db.url }, targets: { postgres: [{ name: 'main', url: db.url }] } }));
    const out = await runCli(['--config', path, 'run', 'performance-review', '--json', '--param', 'month=2026-11']);
    expect(out.code).toBe(1);
    const result = JSON.parse(out.stdout) as { status: string; findings: { code: string }[]; summary: string };
    expect(result.findings.map((f) => f.code)).toEqual(['performance_regression', 'performance_summary']);
    expect(result.summary).toMatch(/; not sent \(no email configured\)$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
