/**
 * What the runner gives every task beyond its target: the previous result
 * of the same task on the same target, read from caretaker's history, and
 * a run that goes on without it when the history cannot be read; and the
 * check of the finding codes a task declares.
 */
import { Pool } from 'pg';
import { z } from 'zod';
import { defineTask, type PreviousResult } from '../../src/contract/task';
import type { TaskResult } from '../../src/contract/result';
import { migrate } from '../../src/results/migrate';
import { ResultStore } from '../../src/results/store';
import { runTask } from '../../src/worker/run-task';
import { refuseUndeclaredCodes } from '../../src/worker/undeclared-codes';
import { preparedRun } from '../support/run-task';
import { testConfig } from '../support/config';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { captureLog } from '../support/log-capture';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('runtask');
  await migrate(db.pool);
});
afterAll(async () => {
  await db.drop();
});

/** A task that reports what ctx.previousResult() gave it. */
const seen: PreviousResult[] = [];
const looksBack = defineTask({
  name: 'looks-back',
  description: 'reads its previous result',
  target: 'postgres',
  defaultSchedule: 'daily',
  timeoutMs: 10_000,
  changesTarget: false,
  params: z.strictObject({}),
  codes: {},
  async run(ctx) {
    seen.push(await ctx.previousResult());
    return { summary: 'looked back', findings: [], metrics: { n: seen.length } };
  },
});

const result = (task: string, target: string, at: string, extra: Partial<TaskResult> = {}): TaskResult => ({
  task, target, status: 'ok', startedAt: at, finishedAt: at, durationMs: 1, dryRun: false, summary: `${task} at ${at}`, findings: [], actions: [], metrics: {}, ...extra,
});

async function run(state: Pool, log = captureLog().log): Promise<PreviousResult> {
  seen.length = 0;
  const outcome = await runTask({ run: preparedRun(looksBack, testConfig({ dbUrl: db.url, prefix: 'unused' }), 'main'), dryRun: false, log, state });
  expect(outcome.status).toBe('ok');
  return seen[0]!;
}

it('gives the last completed result of this task on this target, not a skipped one, another task\'s or another target\'s', async () => {
  const store = new ResultStore(db.pool);
  expect(await run(db.pool)).toEqual({ readable: true });
  await store.save(result('looks-back', 'main', '2026-11-20T03:00:00.000Z', { metrics: { n: 1 } }));
  await store.save(result('looks-back', 'main', '2026-11-21T03:00:00.000Z', { skipped: true }));
  await store.save(result('looks-back', 'other', '2026-11-22T03:00:00.000Z'));
  await store.save(result('connections', 'main', '2026-11-22T03:00:00.000Z'));
  const previous = await run(db.pool);
  expect(previous.readable).toBe(true);
  expect(previous.result).toMatchObject({ task: 'looks-back', target: 'main', finishedAt: '2026-11-20T03:00:00.000Z', metrics: { n: 1 } });
});

it('with the history unreachable, the run goes on: readable false, no result, and a warning says why', async () => {
  const away = new Pool({ connectionString: 'postgres://postgres@127.0.0.1:1/nowhere', connectionTimeoutMillis: 1_000 });
  away.on('error', () => undefined);
  const capture = captureLog();
  try {
    expect(await run(away, capture.log)).toEqual({ readable: false });
  } finally {
    await away.end();
  }
  expect(capture.lines().some((l) => l.msg === 'cannot read the previous looks-back result: this run goes without it' && /ECONNREFUSED/.test(String(l.err)))).toBe(true);
});

describe('finding codes the task does not declare', () => {
  // A code computed at run time (the compiler checks literal ones): here, one the task never declared.
  const computed = (): 'declared_code' => ['un', 'declared_code'].join('') as 'declared_code';
  const slips = defineTask({
    name: 'slips',
    description: 'returns a code it does not declare',
    target: 'postgres',
    defaultSchedule: 'daily',
    timeoutMs: 10_000,
    changesTarget: false,
    params: z.strictObject({}),
    codes: { declared_code: 'the one code this task declares' },
    async run() {
      return { summary: 'slipped', findings: [{ severity: 'warning', code: computed(), subject: 'x', message: 'a finding' }] };
    },
  });
  const runSlips = (log = captureLog().log) => runTask({ run: preparedRun(slips, testConfig({ dbUrl: db.url, prefix: 'unused' }), 'main'), dryRun: false, log, state: db.pool });

  afterEach(() => refuseUndeclaredCodes(true));

  it('fails the run in the tests, naming the code', async () => {
    const result = await runSlips();
    expect(result).toMatchObject({ status: 'error', findings: [] });
    expect(result.summary).toContain('slips returned finding codes it does not declare: undeclared_code');
  });

  it('in service keeps the finding and logs the code', async () => {
    refuseUndeclaredCodes(false);
    const capture = captureLog();
    const result = await runSlips(capture.log);
    expect(result).toMatchObject({ status: 'warning', findings: [{ code: 'undeclared_code' }] });
    expect(capture.lines().some((l) => l.msg === 'finding codes the task does not declare (kept)' && JSON.stringify(l.codes) === '["undeclared_code"]')).toBe(true);
  });
});
