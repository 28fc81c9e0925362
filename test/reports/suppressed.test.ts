/**
 * Waivers, silences and maintenance windows in the weekly report: a waived
 * finding leaves the open list and is listed under "Waived (N)" with its
 * reason and expiry; an expired waiver, one made after the week, or one the
 * finding's severity outgrew waives nothing; a silenced finding stays open,
 * marked with why, who and until when. In the data, the text, the HTML,
 * the email the task sends and the /reports page.
 */
import express from 'express';
import request from 'supertest';
import type { CaretakerTarget, Config } from '../../src/config/schema';
import type { Finding, TaskResult } from '../../src/contract/result';
import { weeklyReport, settingsFromTarget } from '../../src/jobs/weekly-report';
import { SilenceStore } from '../../src/alerts/suppress/silences';
import { migrate } from '../../src/results/migrate';
import { ResultStore } from '../../src/results/store';
import type { WeeklyReport } from '../../src/reports/model';
import { renderHtml } from '../../src/reports/render-html';
import { renderText } from '../../src/reports/render-text';
import { EXPIRING_WAIVER_DAYS, reportInstant } from '../../src/reports/suppressed';
import { parseWeek } from '../../src/reports/week';
import { buildWeeklyReport, reportSettingsOf } from '../../src/reports/weekly-data';
import { targetsOf } from '../../src/config/targets';
import { reportsRouter } from '../../src/web/reports';
import { runTask } from '../../src/worker/run-task';
import { preparedRun } from '../support/run-task';
import { testConfig } from '../support/config';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { testLogger } from '../support/logger';
import { startSmtpSink, type SmtpSink } from '../support/smtp';

const week = parseWeek('2026-W48', 'UTC');
/** The Monday-morning run: the report is judged at the week's end, 2026-11-30 00:00 UTC. */
const monday = new Date('2026-11-30T08:00:00Z');

const CONFIG_REASON = 'the app pool holds transactions open until app 4.2';
const STORED_REASON = 'kept for the month-end batch';
const SILENCE_REASON = 'schema migration in progress';

function result(task: string, target: string, finishedAt: string, findings: Finding[]): TaskResult {
  const status = findings.some((f) => f.severity === 'critical') ? 'critical' : findings.some((f) => f.severity === 'warning') ? 'warning' : 'ok';
  return { task, target, status, startedAt: finishedAt, finishedAt, durationMs: 5, dryRun: false, summary: 's', findings, actions: [], metrics: {} };
}

const warning = (code: string, subject: string, message = `${code} on ${subject}`): Finding => ({ severity: 'warning', code, subject, message });

/** A stored waiver with an explicit creation time (the store's add() stamps now()). */
async function storeWaiver(db: TestDatabase, w: { task: string; target: string; code: string; subject: string; reason: string; by: string; createdAt: string; expiresAt?: string }): Promise<string> {
  const { rows } = await db.pool.query<{ id: string }>(
    `INSERT INTO caretaker.waivers (task, target, code, subject, severity, reason, created_by, created_at, expires_at)
     VALUES ($1, $2, $3, $4, 'warning', $5, $6, $7, $8) RETURNING id`,
    [w.task, w.target, w.code, w.subject, w.reason, w.by, w.createdAt, w.expiresAt ?? null],
  );
  return String(rows[0]!.id);
}

describe('waived and silenced findings in the weekly report', () => {
  let db: TestDatabase;
  let config: Config;
  let smtp: SmtpSink;
  let soonId: string;
  let expiredId: string;
  let lateId: string;
  let report: WeeklyReport;

  beforeAll(async () => {
    db = await createTestDatabase('weekly_suppressed');
    await migrate(db.pool);
    smtp = await startSmtpSink();
    config = testConfig({
      dbUrl: db.url,
      prefix: 'unused',
      targets: { postgres: [{ name: 'main', url: db.url }, { name: 'replica', url: db.url }] },
      report: { title: 'AUDITRON' },
      notifications: { email: { smtp: { host: '127.0.0.1', port: smtp.port, secure: false }, from: 'caretaker@example.com', to: ['ops@example.com'] } },
      waivers: [
        // config-1: waives idle_in_transaction on any subject.
        { task: 'connections', target: 'main', code: 'idle_in_transaction', subject: '*', reason: CONFIG_REASON, until: '2027-03-01' },
        // config-2: accepts connections_high as a warning; it is critical now.
        { task: 'connections', target: 'main', code: 'connections_high', subject: 'main', reason: 'peak traffic accepted', severity: 'warning' },
      ],
      // Sundays 22:00 UTC for 4 hours: open when the week ends (Monday 00:00).
      maintenance: [{ name: 'replica-rebuild', cron: '0 22 * * 0', duration: '4h', target: 'replica', reason: 'rebuilding the replica' }],
    });

    const store = new ResultStore(db.pool);
    // The week before: idle_in_transaction was open then.
    await store.save(result('connections', 'main', '2026-11-18T03:00:00Z', [warning('idle_in_transaction', 'main')]));
    // This week.
    await store.save(result('connections', 'main', '2026-11-25T03:00:00Z', [
      warning('idle_in_transaction', 'main', '3 sessions idle in transaction'),
      { severity: 'critical', code: 'connections_high', subject: 'main', message: '95% of max_connections used' },
    ]));
    await store.save(result('index-audit', 'main', '2026-11-23T04:00:00Z', [
      warning('unused_index', 'public.orders_idx', 'public.orders_idx was never scanned'),
      warning('duplicate_index', 'public.a_idx'),
      warning('missing_index', 'public.events'),
    ]));
    await store.save(result('pg-health', 'main', '2026-11-26T03:00:00Z', [warning('long_transaction', 'pid 4242', 'a transaction open for 3 h')]));
    await store.save(result('pg-health', 'replica', '2026-11-26T03:00:00Z', [warning('replication_lag', 'replica', 'replica 20 min behind')]));

    // In force at the week's end, lapsing 10 days later.
    soonId = await storeWaiver(db, { task: 'index-audit', target: 'main', code: 'unused_index', subject: 'public.orders_idx', reason: STORED_REASON, by: 'alice', createdAt: '2026-11-20T10:00:00Z', expiresAt: '2026-12-10T00:00:00Z' });
    // Expired the day before the week ended.
    expiredId = await storeWaiver(db, { task: 'index-audit', target: 'main', code: 'duplicate_index', subject: 'public.a_idx', reason: 'expired one', by: 'alice', createdAt: '2026-11-01T10:00:00Z', expiresAt: '2026-11-29T00:00:00Z' });
    // Made after the week ended: it did not waive anything in that week.
    lateId = await storeWaiver(db, { task: 'index-audit', target: 'main', code: 'missing_index', subject: '*', reason: 'made later', by: 'carol', createdAt: '2026-12-01T10:00:00Z' });

    await new SilenceStore(db.pool).add({
      matchers: { task: 'pg-health', code: 'long_transaction' },
      startsAt: new Date('2026-11-28T00:00:00Z'),
      endsAt: new Date('2026-12-05T00:00:00Z'),
      reason: SILENCE_REASON,
      createdBy: 'bob',
    });
    // The report the tests below read: built here, so each test stands alone.
    report = await build();
  });
  afterAll(async () => {
    await smtp?.close();
    await db?.drop();
  });

  const build = (now = monday) => buildWeeklyReport(db.pool, { week, title: 'AUDITRON', expected: [], suppress: reportSettingsOf(config), now });

  it('takes waived findings off the open list and lists them apart with their waiver', async () => {
    expect(report.asOf).toBe(week.end);
    expect(report.open.map((f) => [f.severity, f.target, f.task, f.code])).toEqual([
      ['critical', 'main', 'connections', 'connections_high'],
      ['warning', 'main', 'index-audit', 'duplicate_index'],
      ['warning', 'main', 'index-audit', 'missing_index'],
      ['warning', 'main', 'pg-health', 'long_transaction'],
      ['warning', 'replica', 'pg-health', 'replication_lag'],
    ]);
    expect(report.headline).toEqual({ critical: 1, warning: 4, text: '1 critical, 4 warnings' });
    expect(report.waived).toEqual([
      expect.objectContaining({
        task: 'connections',
        target: 'main',
        code: 'idle_in_transaction',
        subject: 'main',
        waiver: {
          id: 'config-1',
          source: 'config',
          match: { task: 'connections', target: 'main', code: 'idle_in_transaction', subject: '*' },
          severity: 'warning',
          reason: CONFIG_REASON,
          by: 'config',
          expiresAt: '2027-03-01T00:00:00.000Z',
        },
      }),
      expect.objectContaining({
        task: 'index-audit',
        target: 'main',
        code: 'unused_index',
        subject: 'public.orders_idx',
        waiver: expect.objectContaining({ id: soonId, source: 'state', reason: STORED_REASON, by: 'alice', expiresAt: '2026-12-10T00:00:00.000Z' }),
      }),
    ]);
    // Still reported, only waived: not "resolved" since last week.
    expect(report.changes.resolved).toEqual([]);
    expect(report.changes.new.map((f) => f.code)).not.toContain('idle_in_transaction');
  });

  it('an expired waiver, a waiver made after the week and an outgrown one waive nothing', () => {
    const byCode = Object.fromEntries(report.open.map((f) => [f.code, f]));
    expect(byCode['duplicate_index']).not.toHaveProperty('outgrew');
    expect(byCode['missing_index']).not.toHaveProperty('outgrew');
    expect(report.waived.map((f) => f.waiver.id)).not.toContain(expiredId);
    expect(report.waived.map((f) => f.waiver.id)).not.toContain(lateId);
    // The severity rose above the one config-2 accepts: open again, and the report says why.
    expect(byCode['connections_high']!.outgrew).toMatchObject({ id: 'config-2', severity: 'warning' });
  });

  it('keeps silenced findings open, with why, who and until when', () => {
    const byCode = Object.fromEntries(report.open.map((f) => [f.code, f]));
    expect(byCode['long_transaction']!.silenced).toMatchObject({
      kind: 'silence',
      by: 'bob',
      reason: SILENCE_REASON,
      until: '2026-12-05T00:00:00.000Z',
      text: `silenced by bob until 2026-12-05T00:00:00.000Z: ${SILENCE_REASON}`,
    });
    expect(byCode['replication_lag']!.silenced).toMatchObject({ kind: 'maintenance', id: 'replica-rebuild', reason: 'rebuilding the replica', until: '2026-11-30T02:00:00.000Z' });
    expect(byCode['connections_high']).not.toHaveProperty('silenced');
  });

  it(`calls out the waivers that lapse within ${EXPIRING_WAIVER_DAYS} days`, () => {
    expect(report.expiringWaivers).toEqual([expect.objectContaining({ id: soonId, reason: STORED_REASON, by: 'alice', expiresAt: '2026-12-10T00:00:00.000Z', covers: 1 })]);
  });

  it('says so in the text and the HTML', () => {
    const text = renderText(report);
    expect(text).toContain('Open findings at the end of the week (5, 2 silenced)');
    expect(text).toContain('Waived (2)');
    expect(text).toContain('[warning] connections on main: idle_in_transaction main: 3 sessions idle in transaction');
    expect(text).toContain(`waived by config (waiver config-1), expires 2027-03-01 00:00:00 UTC: ${CONFIG_REASON}`);
    expect(text).toContain(`waived by alice (waiver ${soonId}), expires 2026-12-10 00:00:00 UTC (soon): ${STORED_REASON}`);
    expect(text).toContain('[WARNING] [SILENCED] long_transaction pid 4242');
    expect(text).toContain(`silenced by bob until 2026-12-05T00:00:00.000Z: ${SILENCE_REASON}`);
    expect(text).toContain('maintenance window replica-rebuild until 2026-11-30T02:00:00.000Z: rebuilding the replica');
    expect(text).toContain('open again: waiver config-2 accepts up to warning');
    expect(text).toContain(`Waivers expiring within ${EXPIRING_WAIVER_DAYS} days (1)`);
    // The open list names neither waived finding.
    const openPart = text.slice(text.indexOf('Open findings'), text.indexOf('Waived ('));
    expect(openPart).not.toContain('idle_in_transaction');
    expect(openPart).not.toContain('unused_index');

    const html = renderHtml(report, { imageSrc: () => undefined });
    expect(html).toContain('Open findings (5, 2 silenced)');
    expect(html).toContain('Waived (2)');
    expect(html).toContain(CONFIG_REASON);
    expect(html).toContain(STORED_REASON);
    expect(html).toContain('2027-03-01 00:00:00 UTC');
    expect(html).toContain('2026-12-10 00:00:00 UTC');
    expect(html).toContain('SILENCED');
    expect(html).toContain(`silenced by bob until 2026-12-05T00:00:00.000Z: ${SILENCE_REASON}`);
    expect(html).toContain(`Waivers expiring within ${EXPIRING_WAIVER_DAYS} days (1)`);
    const openHtml = html.slice(html.indexOf('Open findings'), html.indexOf('Waived ('));
    expect(openHtml).not.toContain('idle_in_transaction');
    expect(openHtml).not.toContain('unused_index');
  });

  it('the scheduled task reads the waivers and windows from the self-target and mails the same', async () => {
    const target = targetsOf(config, 'caretaker')[0] as CaretakerTarget;
    expect(settingsFromTarget(target)).toMatchObject({ waivers: config.waivers, maintenance: config.maintenance });
    const res = await runTask({ run: preparedRun(weeklyReport, config, target.name, { week: '2026-W48' }), dryRun: false, log: testLogger, state: db.pool });
    expect(res.summary).toBe('weekly report 2026-W48: 1 critical, 4 warnings; sent to 1 recipient(s)');
    expect(res.metrics).toMatchObject({ report_open_critical: 1, report_open_warning: 4, report_waived: 2 });
    const mail = smtp.mails.at(-1)!;
    for (const body of [String(mail.html), mail.text ?? '']) {
      expect(body).toContain('Waived (2)');
      expect(body).toContain(CONFIG_REASON);
      expect(body).toContain(STORED_REASON);
      expect(body).toContain(SILENCE_REASON);
    }
  });

  it('the /reports page shows the same', async () => {
    const app = express().use('/reports', reportsRouter({ config, state: db.pool }));
    const res = await request(app).get('/reports/2026-W48');
    expect(res.status).toBe(200);
    expect(res.text).toContain('Waived (2)');
    expect(res.text).toContain(STORED_REASON);
    expect(res.text).toContain('SILENCED');
    expect(res.text).toContain(SILENCE_REASON);
  });

  it('judges a week to date now, and a past week at its end', () => {
    const during = new Date('2026-11-25T12:00:00Z');
    expect(reportInstant(week, during)).toEqual(during);
    expect(reportInstant(week, monday)).toEqual(new Date(week.end));
  });

  it('a week to date applies what is in force now: the waiver made since, no expired silence', async () => {
    const now = new Date('2026-12-06T12:00:00Z');
    const thisWeek = parseWeek('2026-W49', 'UTC');
    const current = await buildWeeklyReport(db.pool, { week: thisWeek, title: 'AUDITRON', expected: [], suppress: reportSettingsOf(config), now });
    expect(current.asOf).toBe(now.toISOString());
    expect(current.waived.map((f) => f.code)).toEqual(['idle_in_transaction', 'missing_index', 'unused_index']);
    expect(current.open.find((f) => f.code === 'long_transaction')).not.toHaveProperty('silenced');
    // The stored waiver lapsed on 10 December: within 14 days of the 6th.
    expect(current.expiringWaivers.map((w) => w.id)).toEqual([soonId]);
  });

  it('makes as many statements whatever the fleet size', async () => {
    const count = async () => {
      const spy = jest.spyOn(db.pool, 'query');
      try {
        await build();
        return spy.mock.calls.length;
      } finally {
        spy.mockRestore();
      }
    };
    const small = await count();
    // 200 more targets, each with a finding and a waiver of its own.
    await db.pool.query(`
      WITH r AS (
        INSERT INTO caretaker.runs (task, target, status, dry_run, started_at, finished_at, duration_ms, summary, result)
        SELECT 'connections', 'db-' || t, 'warning', false, ts, ts, 5, 's', '{}'::jsonb
        FROM generate_series(1, 200) t, LATERAL (SELECT timestamptz '2026-11-27 03:00Z' AS ts) x
        RETURNING id, task, target, finished_at)
      INSERT INTO caretaker.findings (run_id, task, target, severity, code, subject, message, found_at)
      SELECT id, task, target, 'warning', 'idle_in_transaction', target, 'm', finished_at FROM r`);
    await db.pool.query(`
      INSERT INTO caretaker.waivers (task, target, code, subject, severity, reason, created_by, created_at)
      SELECT 'connections', 'db-' || t, 'idle_in_transaction', '*', 'warning', 'fleet', 'alice', '2026-11-01' FROM generate_series(1, 200) t`);
    expect(await count()).toBe(small);
    const big = await build();
    expect(big.waived).toHaveLength(2 + 200);
  });
});
