/**
 * The checklist task, `caretaker checklist` / `caretaker done`, and the
 * weekly report's checklist section, on a real state database. Each item's
 * standing is planted through the records the task reads (when it was first
 * seen, when it was last done), with crons chosen so the standing holds
 * whatever the hour the test runs at.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { checklist } from '../../src/jobs/checklist';
import { migrate } from '../../src/results/migrate';
import { runTask } from '../../src/worker/run-task';
import { ChecklistStore } from '../../src/checklist/store';
import { buildWeeklyReport } from '../../src/reports/weekly-data';
import { renderText } from '../../src/reports/render-text';
import { renderHtml } from '../../src/reports/render-html';
import { weekContaining } from '../../src/reports/week';
import type { RawConfigInput } from '../../src/config/schema';
import { testConfig } from '../support/config';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { TEST_REDIS_URL } from '../support/env';
import { testLogger } from '../support/logger';
import { runCli } from '../support/cli';
import { preparedRun } from '../support/run-task';

const HOUR = 3_600_000;
let db: TestDatabase;
let dir: string;

/** Never done, first seen now: due this minute, overdue an hour on. */
const DUE = { id: 'rotate-keys', title: 'Rotate the API keys', cron: '* * * * *', graceHours: 1 };
/** Hourly, first seen two days ago, never done: long overdue. */
const OVERDUE = { id: 'update-docs', title: 'Update documentation', cron: '0 * * * *', graceHours: 1, link: 'https://wiki.example.com/runbook' };
/** Yearly, done today: done until next January. */
const DONE = { id: 'dr-review', title: 'Review the DR plan', cron: '0 0 1 1 *', graceHours: 168 };
const OFF = { id: 'review-dashboards', title: 'Review Grafana dashboards', cron: '0 9 * * *', enabled: false };

const config = (items: RawConfigInput['checklist']) => testConfig({ dbUrl: db.url, prefix: 'unused', checklist: items });
const run = (items: RawConfigInput['checklist'], dryRun = false) =>
  runTask({ run: preparedRun(checklist, config(items), 'caretaker'), dryRun, log: testLogger, state: db.pool });

async function plant(): Promise<void> {
  await db.pool.query('TRUNCATE caretaker.checklist_done, caretaker.checklist_items');
  await db.pool.query('INSERT INTO caretaker.checklist_items (item, first_seen_at) VALUES ($1, $2)', [OVERDUE.id, new Date(Date.now() - 48 * HOUR)]);
  await new ChecklistStore(db.pool).markDone(DONE.id, 'carol', 'walked through it with the team');
}

beforeAll(async () => {
  db = await createTestDatabase('checklist');
  await migrate(db.pool);
  dir = mkdtempSync(join(tmpdir(), 'ct-checklist-'));
});

afterAll(async () => {
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

beforeEach(plant);

describe('the checklist task', () => {
  it('is scheduled hourly on caretaker only while the config has an enabled item', () => {
    const ids = (items: RawConfigInput['checklist']) => config(items).schedulers.filter((e) => e.task === 'checklist').map((e) => [e.id, e.cron]);
    expect(ids([DUE, OFF])).toEqual([['hourly:checklist:caretaker', '7 * * * *']]);
    expect(ids([OFF])).toEqual([]);
    expect(ids([])).toEqual([]);
  });

  it('raises checklist_due for an item whose period started and checklist_overdue past its grace; a done one and a disabled one raise nothing', async () => {
    const result = await run([DUE, OVERDUE, DONE, OFF]);
    expect(result.status).toBe('warning');
    expect(result.findings.map((f) => [f.severity, f.code, f.subject])).toEqual([
      ['info', 'checklist_due', DUE.id],
      ['warning', 'checklist_overdue', OVERDUE.id],
    ]);
    const overdue = result.findings[1]!;
    expect(overdue.message).toMatch(/^Update documentation: overdue since \d{4}-\d\d-\d\d \d\d:00:00 UTC \(due since .*\); never marked done$/);
    expect(overdue.suggestion).toBe('Do it (https://wiki.example.com/runbook), then mark it done: caretaker done update-docs --note "...", or the console\'s Checklist page');
    expect(overdue.details).toMatchObject({ item: OVERDUE.id, link: OVERDUE.link });
    expect(Date.parse(String(overdue.details!.dueSince))).toBeLessThanOrEqual(Date.now() - 47 * HOUR);
    expect(result.summary).toBe('1 overdue (update-docs), 1 due (rotate-keys) of 3 checklist items');
    expect(result.metrics).toEqual({ checklist_items: 3, checklist_due: 1, checklist_overdue: 1 });
  });

  it('records when it first saw an item (a dry run records nothing)', async () => {
    const seen = async () => (await db.pool.query<{ item: string }>('SELECT item FROM caretaker.checklist_items ORDER BY item')).rows.map((r) => r.item);
    await run([DUE, OVERDUE], true);
    expect(await seen()).toEqual([OVERDUE.id]);
    await run([DUE, OVERDUE]);
    expect(await seen()).toEqual([DUE.id, OVERDUE.id].sort());
  });

  it('a "done" clears the item at the next run; with everything done it is ok with no finding', async () => {
    await new ChecklistStore(db.pool).markDone(OVERDUE.id, 'alice', undefined);
    const result = await run([OVERDUE, DONE]);
    expect([result.status, result.findings, result.summary]).toEqual(['ok', [], 'all 2 checklist items done for their period']);
  });

  it('without items it is ok and says so', async () => {
    expect(await run([])).toMatchObject({ status: 'ok', summary: 'no checklist items configured', findings: [] });
    expect(await run([OFF])).toMatchObject({ status: 'ok', summary: 'all 1 checklist items are disabled' });
  });
});

describe('caretaker checklist and caretaker done', () => {
  const file = () => {
    const path = join(dir, 'caretaker.yaml');
    writeFileSync(path, stringify({ redis: { url: TEST_REDIS_URL, prefix: 'unused' }, state: { url: db.url }, targets: { postgres: [{ name: 'main', url: db.url }] }, checklist: [DUE, OVERDUE, DONE, OFF] }));
    return path;
  };

  it('lists each enabled item with its state and exits 1 while one is overdue; done clears it, with who and the note', async () => {
    const config = file();
    const before = await runCli(['--config', config, 'checklist']);
    expect(before.code).toBe(1);
    expect(before.stdout).toMatch(/^update-docs +overdue +Update documentation: overdue since .*; never done$/m);
    expect(before.stdout).toMatch(/^rotate-keys +due +Rotate the API keys: due since .*, overdue from .*; never done$/m);
    expect(before.stdout).toMatch(/^dr-review +done +Review the DR plan: next due 20\d\d-01-01 00:00:00 UTC; last done .* by carol$/m);
    expect(before.stdout).not.toContain('review-dashboards');

    const done = await runCli(['--config', config, 'done', 'update-docs', '--note', 'rewrote the restore section', '--by', 'alice']);
    expect([done.code, done.stderr]).toEqual([0, '']);
    expect(done.stdout).toMatch(/^update-docs marked done by alice at .*: rewrote the restore section\n$/);

    const after = await runCli(['--config', config, 'checklist', '--json']);
    expect(after.code).toBe(0);
    const items = JSON.parse(after.stdout) as { id: string; state: string; lastDone?: { by: string; note?: string } }[];
    expect(items.find((i) => i.id === 'update-docs')).toMatchObject({ state: 'done', lastDone: { by: 'alice', note: 'rewrote the restore section' } });
    expect(items.map((i) => i.id)).toEqual(['rotate-keys', 'update-docs', 'dr-review']);
  });

  it('refuses an unknown item and a note that is too long, in one line each, recording nothing', async () => {
    const config = file();
    const unknown = await runCli(['--config', config, 'done', 'update-doc']);
    expect([unknown.code, unknown.stdout]).toEqual([3, '']);
    expect(unknown.stderr).toBe('caretaker: unknown checklist item "update-doc" (known: rotate-keys, update-docs, dr-review, review-dashboards)\n');
    const long = await runCli(['--config', config, 'done', 'update-docs', '--note', 'x'.repeat(501)]);
    expect([long.code, long.stderr]).toEqual([3, 'caretaker: --note must be at most 500 characters (it has 501)\n']);
    const { rows } = await db.pool.query('SELECT 1 FROM caretaker.checklist_done WHERE item = $1', ['update-docs']);
    expect(rows).toEqual([]);
  });
});

describe('the weekly report', () => {
  it('lists what was done in the week and what is overdue; without items it has no checklist section', async () => {
    const week = weekContaining(new Date(), 'UTC');
    await new ChecklistStore(db.pool).markDone(DUE.id, 'bob', 'rotated both');
    const items = config([DUE, OVERDUE, DONE, OFF]).checklist;
    const report = await buildWeeklyReport(db.pool, { week, title: 'AUDITRON', expected: [], checklist: items });
    expect(report.checklist.items).toBe(3);
    expect(report.checklist.overdue.map((o) => o.item)).toEqual([OVERDUE.id]);
    expect(report.checklist.done.map((d) => [d.item, d.by, d.note])).toEqual([
      [DONE.id, 'carol', 'walked through it with the team'],
      [DUE.id, 'bob', 'rotated both'],
    ]);
    const text = renderText(report, {});
    expect(text).toMatch(/^Checklist \(2 done this week, 1 overdue\)\n {2}\[OVERDUE\] Update documentation \(update-docs\): due since .*: https:\/\/wiki\.example\.com\/runbook\n {2}\[DONE\] Review the DR plan \(dr-review\) by carol, .*: walked through it with the team\n {2}\[DONE\] Rotate the API keys \(rotate-keys\) by bob, .*: rotated both$/m);
    expect(renderHtml(report, { imageSrc: () => undefined })).toContain('Checklist (2 done this week, 1 overdue)');

    const without = await buildWeeklyReport(db.pool, { week, title: 'AUDITRON', expected: [] });
    expect(without.checklist).toEqual({ items: 0, done: [], overdue: [] });
    expect(renderText(without, {})).not.toContain('Checklist');
  });
});

it('caretaker run checklist --json prints its one result and exits 1 while an item is overdue', async () => {
  const path = join(dir, 'run.yaml');
  writeFileSync(path, stringify({ redis: { url: TEST_REDIS_URL, prefix: 'unused' }, state: { url: db.url }, targets: { postgres: [{ name: 'main', url: db.url }] }, checklist: [OVERDUE, DONE] }));
  const out = await runCli(['--config', path, 'run', 'checklist', '--json']);
  expect(out.code).toBe(1);
  const result = JSON.parse(out.stdout) as { task: string; target: string; status: string; findings: { code: string }[] };
  expect([result.task, result.target, result.status, result.findings.map((f) => f.code)]).toEqual(['checklist', 'caretaker', 'warning', ['checklist_overdue']]);
});
