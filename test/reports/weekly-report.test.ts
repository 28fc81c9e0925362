import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TaskResult, Finding, Action } from '../../src/contract/result';
import type { CaretakerTarget } from '../../src/config/schema';
import { ResultStore } from '../../src/results/store';
import { migrate } from '../../src/results/migrate';
import { runTask } from '../../src/worker/run-task';
import { preparedOnSelf } from '../support/run-task';
import { weeklyReport } from '../../src/jobs/weekly-report';
import { buildWeeklyReport, type ReportSettings } from '../../src/reports/weekly-data';
import { WEEKLY_SQL } from '../../src/reports/weekly-data.sql';
import { isoWeeksInYear, lastCompleteWeek, parseWeek, weekContaining, weeksBefore } from '../../src/reports/week';
import { reportSubject } from '../../src/reports/send';
import type { WeeklyReport } from '../../src/reports/model';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { testLogger } from '../support/logger';
import { runCli } from '../support/cli';
import { startSmtpSink, type ReceivedMail, type SmtpSink } from '../support/smtp';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const SMTP_PASSWORD = 'smtp-s3cret-pw';
const DB_PASSWORD = 'db-s3cret-pw';

describe('ISO weeks', () => {
  it('parses a week into its bounds in UTC and in a zone', () => {
    expect(parseWeek('2026-W48', 'UTC')).toEqual({ id: '2026-W48', start: '2026-11-23T00:00:00.000Z', end: '2026-11-30T00:00:00.000Z', timezone: 'UTC' });
    const berlin = parseWeek('2026-W48', 'Europe/Berlin');
    expect([berlin.start, berlin.end]).toEqual(['2026-11-22T23:00:00.000Z', '2026-11-29T23:00:00.000Z']);
    // DST starts on Sunday 29 March 2026 in Berlin: that week is 167 hours long.
    const dst = parseWeek('2026-W13', 'Europe/Berlin');
    expect([dst.start, dst.end]).toEqual(['2026-03-22T23:00:00.000Z', '2026-03-29T22:00:00.000Z']);
  });

  it('knows which years have 53 weeks and crosses year boundaries', () => {
    expect([2020, 2021, 2025, 2026, 2027, 2032].map(isoWeeksInYear)).toEqual([53, 52, 52, 53, 52, 53]);
    expect(parseWeek('2026-W53', 'UTC')).toMatchObject({ start: '2026-12-28T00:00:00.000Z', end: '2027-01-04T00:00:00.000Z' });
    expect(() => parseWeek('2025-W53', 'UTC')).toThrow('2025 has weeks 01 to 52');
    expect(() => parseWeek('2026-W00', 'UTC')).toThrow();
    expect(() => parseWeek('2026-48', 'UTC')).toThrow('not an ISO week');
    // 2026-W01 starts in 2025; 1 January 2027 is in 2026-W53; 2027-W01 starts 4 January.
    expect(parseWeek('2026-W01', 'UTC').start).toBe('2025-12-29T00:00:00.000Z');
    expect(weekContaining(new Date('2027-01-01T12:00:00Z'), 'UTC').id).toBe('2026-W53');
    expect(weekContaining(new Date('2025-12-29T00:00:00Z'), 'UTC').id).toBe('2026-W01');
    expect(weeksBefore(parseWeek('2027-W01', 'UTC')).id).toBe('2026-W53');
    expect(weeksBefore(parseWeek('2026-W01', 'UTC'), 2).id).toBe('2025-W51');
  });

  it('cuts weeks in the given zone: Monday 00:30 in Berlin is still Sunday in UTC', () => {
    const instant = new Date('2026-11-22T23:30:00Z');
    expect(weekContaining(instant, 'Europe/Berlin').id).toBe('2026-W48');
    expect(weekContaining(instant, 'UTC').id).toBe('2026-W47');
    // The Monday 08:00 run reports the week that just ended.
    expect(lastCompleteWeek(new Date('2026-11-30T07:00:00Z'), 'Europe/Berlin').id).toBe('2026-W48');
    // 07:00 UTC on Monday is still Sunday night in Los Angeles; its Monday 08:00 is 16:00 UTC.
    expect(lastCompleteWeek(new Date('2026-11-30T07:00:00Z'), 'America/Los_Angeles').id).toBe('2026-W47');
    expect(lastCompleteWeek(new Date('2026-11-30T16:00:00Z'), 'America/Los_Angeles').id).toBe('2026-W48');
  });
});

function result(task: string, target: string, finishedAt: string, findings: Finding[], extra: Partial<TaskResult> = {}): TaskResult {
  const status = findings.some((f) => f.severity === 'critical') ? 'critical' : findings.some((f) => f.severity === 'warning') ? 'warning' : 'ok';
  return { task, target, status, startedAt: finishedAt, finishedAt, durationMs: 5, dryRun: false, summary: 's', findings, actions: [], metrics: {}, ...extra };
}

const still: Finding = { severity: 'warning', code: 'idle_in_transaction', subject: 'main', message: '3 sessions idle in transaction', suggestion: 'fix the app pool' };
const resolvedOne: Finding = { severity: 'critical', code: 'connections_high', subject: 'main', message: '95% of max_connections used' };
const fresh: Finding = { severity: 'critical', code: 'connections_near_max', subject: 'main', message: '190 of 200 connections', suggestion: 'raise max_connections or pool' };
const info: Finding = { severity: 'info', code: 'idle_connections', subject: 'main', message: '2 idle' };

const vacuumed: Action[] = [
  { kind: 'vacuum_analyze', subject: 'public.a', applied: true },
  { kind: 'vacuum_analyze', subject: 'public.b', applied: true },
  { kind: 'vacuum_analyze', subject: 'public.c', applied: false },
];

/** The caretaker self-target as targetsOf builds it, plus the schedulers the report needs. */
function selfTarget(s: ReportSettings): CaretakerTarget & { schedulers: ReportSettings['schedulers'] } {
  return {
    name: 'caretaker',
    retentionDays: 400,
    targets: { postgres: [], redis: [], queues: [], kubernetes: [], http: [], prometheus: [], backups: [], lockfiles: [] },
    notifications: { channels: {}, repeatAlertSeconds: 86_400, ...(s.email ? { email: s.email } : {}) },
    report: { title: s.title },
    timezone: s.timezone,
    ...(s.publicUrl ? { publicUrl: s.publicUrl } : {}),
    schedulers: s.schedulers,
    waivers: s.waivers,
    maintenance: s.maintenance,
    checklist: s.checklist,
    tasks: {},
  };
}

describe('the weekly report from stored runs', () => {
  let db: TestDatabase;
  let smtp: SmtpSink;
  let mails: ReceivedMail[];
  const week = parseWeek('2026-W48', 'UTC');
  const settings = (): ReportSettings => ({
    title: 'AUDITRON',
    timezone: 'UTC',
    publicUrl: 'https://caretaker.example.com',
    email: { smtp: { host: '127.0.0.1', port: smtp.port, secure: false, user: 'caretaker', password: SMTP_PASSWORD }, from: 'caretaker@example.com', to: ['ops@example.com', 'dba@example.com'] },
    // Weekly on Mondays: index-audit was due on 2026-11-23 (in 2026-W48, in the past) and never ran.
    schedulers: [
      { task: 'connections', target: 'main', cron: '0 3 * * *', timezone: 'UTC' },
      { task: 'index-audit', target: 'main', cron: '0 4 * * 1', timezone: 'UTC' },
    ],
    waivers: [],
    maintenance: [],
    checklist: [],
  });

  beforeAll(async () => {
    db = await createTestDatabase('weekly_report');
    await migrate(db.pool);
    const store = new ResultStore(db.pool);
    // Previous week (W47): a warning that stays, a critical that gets resolved.
    await store.save(result('connections', 'main', '2026-11-18T03:00:00Z', [still, resolvedOne, info], { metrics: { connections_used: 40 } }));
    await store.save(result('disk-check', 'main', '2026-11-19T04:00:00Z', [], { metrics: { database_size_bytes: 1_000_000 } }));
    // This week (W48): the warning again, the critical gone, a new critical; then a failed run.
    await store.save(result('connections', 'main', '2026-11-25T03:00:00Z', [still, fresh, info], { metrics: { connections_used: 55 } }));
    await store.save(result('connections', 'main', '2026-11-26T03:00:00Z', [], { status: 'error', summary: 'could not connect' }));
    await store.save(result('disk-check', 'main', '2026-11-26T04:00:00Z', [], { metrics: { database_size_bytes: 1_500_000 } }));
    await store.save(result('vacuum-analyze', 'main', '2026-11-24T03:00:00Z', [], { actions: vacuumed }));
    await store.save(result('vacuum-analyze', 'main', '2026-11-25T03:00:00Z', [], { dryRun: true, actions: [{ kind: 'vacuum_analyze', subject: 'public.d', applied: true }] }));
    await store.save(result('backup-verify', 'nightly', '2026-11-27T02:00:00Z', [], { metrics: { backup_age_seconds: 3600 } }));
    await store.save(result('restore-test', 'nightly', '2026-11-22T05:00:00Z', [], { metrics: { restore_seconds: 42 } }));
    await store.save(result('dr-drill', 'nightly', '2026-11-01T05:00:00Z', [], { metrics: { rto_seconds: 120, rpo_seconds: 7200 } }));
    // Next week (W49): must not leak into W48's report.
    await store.save(result('connections', 'main', '2026-12-01T03:00:00Z', [], { metrics: { connections_used: 999 } }));
    await db.pool.query(`INSERT INTO caretaker.notifier_failures (channel, error, failed_at) VALUES ('webhook', $1, '2026-11-25T10:00:00Z')`, [
      `connect ECONNREFUSED via postgres://app:${DB_PASSWORD}@db.internal/x`,
    ]);
    await db.pool.query(`INSERT INTO caretaker.missed_runs (schedule, task, target, due_at) VALUES ('weekly', 'index-audit', 'main', '2026-11-29T04:00:00Z')`);

    smtp = await startSmtpSink();
    ({ mails } = smtp);
  });
  afterAll(async () => {
    await smtp.close();
    await db.drop();
  });

  let report: WeeklyReport;
  it('shows new, resolved and still-open findings, runs, maintenance, backups, trends', async () => {
    report = await buildWeeklyReport(db.pool, { week, title: 'AUDITRON', expected: [{ task: 'index-audit', target: 'main' }, { task: 'connections', target: 'main' }], now: new Date('2026-11-30T08:00:00Z') });
    expect(report.headline).toEqual({ critical: 1, warning: 1, text: '1 critical, 1 warning' });
    expect(report.open.map((f) => [f.severity, f.code, f.firstSeen])).toEqual([
      ['critical', 'connections_near_max', '2026-11-25T03:00:00.000Z'],
      ['warning', 'idle_in_transaction', '2026-11-18T03:00:00.000Z'],
    ]);
    expect(report.open[0]).toMatchObject({ task: 'connections', target: 'main', suggestion: 'raise max_connections or pool', lastSeen: '2026-11-25T03:00:00.000Z' });
    expect(report.changes.new.map((f) => f.code)).toEqual(['connections_near_max']);
    expect(report.changes.resolved.map((f) => f.code)).toEqual(['connections_high']);
    expect(report.changes.stillOpen).toBe(1);

    const runs = Object.fromEntries(report.tasks.map((t) => [t.task, t]));
    expect(runs['index-audit']).toEqual({ task: 'index-audit', target: 'main', runs: 0, failures: 0, neverRan: true });
    expect(runs['connections']).toEqual({ task: 'connections', target: 'main', runs: 2, failures: 1, worst: 'error', lastSuccess: '2026-11-25T03:00:00.000Z', neverRan: false });
    expect(report.tasks[0]!.task).toBe('index-audit'); // never ran: first

    expect(report.maintenance.actions).toEqual([{ kind: 'vacuum_analyze', count: 2 }]);
    expect(report.backups).toEqual([
      {
        target: 'nightly',
        newestBackupAgeSeconds: 3600,
        lastRestoreTest: { at: '2026-11-22T05:00:00.000Z', status: 'ok', restoreSeconds: 42 },
        lastDrill: { at: '2026-11-01T05:00:00.000Z', status: 'ok', rtoSeconds: 120, rpoSeconds: 7200 },
      },
    ]);
    const size = report.trends.find((t) => t.metric === 'database_size_bytes')!;
    expect(size.series).toHaveLength(1);
    expect(size.series[0]!.points).toHaveLength(12);
    expect(size.series[0]!.points.slice(-2)).toEqual([{ week: '2026-W47', value: 1_000_000 }, { week: '2026-W48', value: 1_500_000 }]);
    expect(size.series[0]!.points[0]).toEqual({ week: '2026-W37' });
    const peak = report.trends.find((t) => t.metric === 'connections_peak')!;
    expect(peak.series[0]!.points.at(-1)).toEqual({ week: '2026-W48', value: 55 });
    expect(report.notifierFailures).toEqual([{ channel: 'webhook', count: 1, lastError: 'connect ECONNREFUSED via postgres://app:***@db.internal/x' }]);
    expect(report.missedRuns).toEqual([{ schedule: 'weekly', task: 'index-audit', target: 'main', due: '2026-11-29T04:00:00.000Z' }]);
    expect(reportSubject(report)).toBe('[caretaker] AUDITRON week 48: 1 critical, 1 warning');
  });

  it('the task emails it: subject, both parts, charts attached with the cids the HTML references, no secrets', async () => {
    const target = selfTarget(settings());
    const res = await runTask({ run: preparedOnSelf(weeklyReport, target, { week: '2026-W48' }), dryRun: false, log: testLogger, state: db.pool });
    expect(res.summary).toBe('weekly report 2026-W48: 1 critical, 1 warning; sent to 2 recipient(s)');
    expect(res.findings).toEqual([]);
    expect(res.metrics).toMatchObject({ report_sent: 1, report_open_critical: 1, report_open_warning: 1, report_charts: 3 });
    expect(mails).toHaveLength(1);
    const mail = mails[0]!;
    expect(mail.subject).toBe('[caretaker] AUDITRON week 48: 1 critical, 1 warning');
    expect((Array.isArray(mail.to) ? mail.to : [mail.to]).flatMap((a) => a!.value.map((v) => v.address))).toEqual(['ops@example.com', 'dba@example.com']);
    const html = String(mail.html);
    const text = mail.text ?? '';
    for (const body of [html, text]) {
      expect(body).toContain('connections_near_max');
      expect(body).toContain('raise max_connections or pool');
      expect(body).toContain('idle_in_transaction');
      expect(body).toContain('https://caretaker.example.com/reports/2026-W48');
      expect(body).not.toContain(SMTP_PASSWORD);
      expect(body).not.toContain(DB_PASSWORD);
    }
    expect(text).toContain('index-audit on main: NEVER RAN');
    expect(text).toContain('resolved: [critical] connections on main: connections_high main');
    // Three trends have data (size, connections, restore time): three PNGs, each referenced by cid.
    const pngs = mail.attachments.filter((a) => a.contentType === 'image/png');
    expect(pngs.map((a) => a.cid).sort()).toEqual(['trend-connections_peak@caretaker', 'trend-database_size_bytes@caretaker', 'trend-restore_seconds@caretaker']);
    const referenced = [...html.matchAll(/src="cid:([^"]+)"/g)].map((m) => m[1]).sort();
    expect(referenced).toEqual(pngs.map((a) => a.cid).sort());
    for (const a of pngs) expect(a.content.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
    expect(html).not.toMatch(/<script|<svg/i);
  });

  it('without email configured the task reports report_not_sent and sends nothing', async () => {
    const { email: _email, ...noEmail } = settings();
    const target = selfTarget(noEmail);
    const before = mails.length;
    const res = await runTask({ run: preparedOnSelf(weeklyReport, target, { week: '2026-W48' }), dryRun: false, log: testLogger, state: db.pool });
    expect(res.status).toBe('ok');
    expect(res.findings.map((f) => [f.severity, f.code, f.subject])).toEqual([['info', 'report_not_sent', '2026-W48']]);
    expect(mails.length).toBe(before);
  });

  describe('caretaker report weekly', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'ct-report-'));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    const report = (config: string, ...args: string[]) => runCli(['--config', config, 'report', 'weekly', '--week', '2026-W48', ...args]);
    function writeConfig(withEmail: boolean): string {
      const path = join(dir, `config-${withEmail}.json`);
      writeFileSync(
        path,
        JSON.stringify({
          state: { url: db.url },
          targets: { postgres: [{ name: 'main', url: db.url }] },
          report: { title: 'AUDITRON' },
          web: { publicUrl: 'https://caretaker.example.com' },
          ...(withEmail ? { notifications: { email: settings().email } } : {}),
        }),
      );
      return path;
    }

    it('--out writes the HTML with the headline and decodable PNG data URIs', async () => {
      const file = join(dir, 'report.html');
      const out = await report(writeConfig(false), '--out', file);
      expect(out.code).toBe(0);
      expect(out.stdout).toBe('');
      const html = readFileSync(file, 'utf8');
      expect(html).toContain('AUDITRON: week 2026-W48');
      expect(html).toContain('1 critical, 1 warning');
      const uris = [...html.matchAll(/src="data:image\/png;base64,([A-Za-z0-9+/=]+)"/g)].map((m) => m[1]!);
      expect(uris).toHaveLength(3);
      expect(Buffer.from(uris[0]!, 'base64').subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
      expect(html).not.toContain('cid:');
    });

    it('without --out prints the text; --send delivers it', async () => {
      const before = mails.length;
      const out = await report(writeConfig(true), '--send');
      expect(out.code).toBe(0);
      expect(out.stdout).toContain('AUDITRON: weekly report 2026-W48');
      expect(out.stdout).toContain('1 CRITICAL, 1 WARNING');
      expect(out.stderr).toContain('sent 2026-W48 to ops@example.com, dba@example.com');
      expect(mails.length).toBe(before + 1);
      expect(mails.at(-1)!.subject).toBe('[caretaker] AUDITRON week 48: 1 critical, 1 warning');
    });

    it('--send without email configured is a usage error', async () => {
      const out = await report(writeConfig(false), '--send');
      expect(out.code).toBe(3);
      expect(out.stderr).toBe('caretaker: --send needs notifications.email in the config\n');
    });
  });
});

describe('a year of history', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('weekly_year');
    await migrate(db.pool);
    // 17 tasks x 365 daily runs, 3 findings each (one warning, one critical on odd days, one info), in one statement.
    await db.pool.query(`
      WITH r AS (
        INSERT INTO caretaker.runs (task, target, status, dry_run, started_at, finished_at, duration_ms, summary, result)
        SELECT 'task-' || t, 'main', 'warning', false, ts, ts, 10, 's',
               jsonb_build_object('actions', jsonb_build_array(jsonb_build_object('kind', 'vacuum_analyze', 'subject', 'x', 'applied', true)),
                                  'metrics', jsonb_build_object('database_size_bytes', d * 1000, 'connections_used', d % 50))
        FROM generate_series(1, 17) t, generate_series(0, 364) d,
             LATERAL (SELECT timestamptz '2026-11-30 00:00Z' - make_interval(days => d) + interval '3 hours' AS ts) x
        RETURNING id, task, target, finished_at)
      INSERT INTO caretaker.findings (run_id, task, target, severity, code, subject, message, found_at)
      SELECT r.id, r.task, r.target, s.sev, s.code, 'public.t' || (extract(doy FROM r.finished_at)::int % 2), 'm', r.finished_at
      FROM r, (VALUES ('warning', 'w_code'), ('critical', 'c_code'), ('info', 'i_code')) s(sev, code)`);
    await db.pool.query(`UPDATE caretaker.runs SET task = 'disk-check' WHERE task = 'task-1'`);
    await db.pool.query(`UPDATE caretaker.findings SET task = 'disk-check' WHERE task = 'task-1'`);
    await db.pool.query('ANALYZE caretaker.runs; ANALYZE caretaker.findings');
  });
  afterAll(() => db.drop());

  it('builds the report and the findings query reads the findings indexes', async () => {
    const { rows } = await db.pool.query<{ runs: string; findings: string }>(
      'SELECT (SELECT count(*) FROM caretaker.runs) AS runs, (SELECT count(*) FROM caretaker.findings) AS findings',
    );
    expect(rows[0]).toEqual({ runs: String(17 * 365), findings: String(17 * 365 * 3) });
    const week = parseWeek('2026-W48', 'UTC');
    const started = process.hrtime.bigint();
    const report = await buildWeeklyReport(db.pool, { week, title: 't', expected: [], now: new Date('2026-11-30T08:00:00Z') });
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    console.log(`weekly report over ${17 * 365} runs / ${17 * 365 * 3} findings built in ${ms.toFixed(0)} ms`);
    expect(report.tasks).toHaveLength(17);
    expect(report.tasks[0]!.runs).toBe(7);
    expect(report.open.filter((f) => f.severity === 'critical')).toHaveLength(17);
    expect(report.maintenance.actions).toEqual([{ kind: 'vacuum_analyze', count: 17 * 7 }]);
    const sizes = report.trends.find((t) => t.metric === 'database_size_bytes')!.series[0]!.points;
    expect(sizes.filter((p) => p.value !== undefined)).toHaveLength(12);
    // Daily at 03:00 UTC, size = 1000 x days before 30 November: W48's largest is Monday the 23rd's.
    expect(sizes.at(-1)).toEqual({ week: '2026-W48', value: 7_000 });
    // In Los Angeles that Monday run is still Sunday evening of W47, and W48 takes the run of Monday the 30th.
    const inLosAngeles = await buildWeeklyReport(db.pool, { week: parseWeek('2026-W48', 'America/Los_Angeles'), title: 't', expected: [], now: new Date('2026-11-30T16:00:00Z') });
    const laSizes = inLosAngeles.trends.find((t) => t.metric === 'database_size_bytes')!.series[0]!.points;
    expect(laSizes.slice(-2)).toEqual([{ week: '2026-W47', value: 13_000 }, { week: '2026-W48', value: 6_000 }]);

    const plan = await db.pool.query(`EXPLAIN (FORMAT JSON) ${WEEKLY_SQL.openFindings}`, [week.end, weeksBefore(week).end]);
    const text = JSON.stringify(plan.rows[0]);
    expect(text).toContain('findings_run_id_idx');
    expect(text).toContain('findings_identity_idx');
    const scans: string[] = [];
    const walk = (node: Record<string, unknown>) => {
      if (node['Relation Name'] === 'findings') scans.push(String(node['Node Type']));
      for (const child of (node['Plans'] as Record<string, unknown>[] | undefined) ?? []) walk(child);
    };
    walk((plan.rows[0]['QUERY PLAN'] as { Plan: Record<string, unknown> }[])[0]!.Plan);
    expect(scans.length).toBeGreaterThan(0);
    expect(scans).not.toContain('Seq Scan');
  });
});
