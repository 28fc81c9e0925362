/**
 * /metrics: counts read from the state database at scrape time, in a
 * Prometheus exposition that parses line by line.
 */
import { register as globalRegistry } from 'prom-client';
import request from 'supertest';
import type express from 'express';
import { METRICS_SQL } from '../../src/web/metrics';
import { createWebApp } from '../../src/web/server';
import { result, webFixture, type WebFixture } from './fixture';

let fx: WebFixture;
let app: express.Express;

/** A fixed clock: every run is placed relative to it. */
const T = Date.parse('2026-03-02T03:00:00Z');
const at = (minutesBefore: number) => new Date(T - minutesBefore * 60_000).toISOString();
const epoch = (minutesBefore: number) => String((T - minutesBefore * 60_000) / 1000);

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN)$/;

/** Parses the text format strictly: HELP, TYPE, blank lines and samples only. */
function parseExposition(text: string): { types: Map<string, string>; samples: Map<string, string> } {
  const types = new Map<string, string>();
  const samples = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ')) continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      types.set(type[1]!, type[2]!);
      continue;
    }
    const sample = SAMPLE.exec(line);
    if (!sample) throw new Error(`not a valid exposition line: ${JSON.stringify(line)}`);
    samples.set(`${sample[1]}${sample[2] ?? ''}`, sample[3]!);
  }
  return { types, samples };
}

function linesOf(text: string, name: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

beforeAll(async () => {
  fx = await webFixture('metrics');
  app = createWebApp(fx.deps);
});

afterAll(async () => {
  await fx.close();
});

it('reports zero findings per severity and no runs on an empty history', async () => {
  const res = await request(app).get('/metrics');
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
  expect(linesOf(res.text, 'caretaker_runs_total')).toEqual([]);
  expect(linesOf(res.text, 'caretaker_findings')).toEqual([
    'caretaker_findings{severity="info"} 0',
    'caretaker_findings{severity="warning"} 0',
    'caretaker_findings{severity="critical"} 0',
  ]);
});

describe('after some runs', () => {
  beforeAll(async () => {
    const s = fx.store;
    await s.save(result({ task: 'connections', status: 'ok', finishedAt: at(180), durationMs: 50 }));
    await s.save(
      result({
        task: 'connections',
        status: 'warning',
        finishedAt: at(60),
        durationMs: 2_000,
        findings: [
          { severity: 'warning', code: 'connections_high', subject: 'main', message: '85% of max_connections' },
          { severity: 'info', code: 'idle_sessions', subject: 'main', message: '3 idle sessions' },
        ],
      }),
    );
    await s.save(result({ task: 'connections', target: 'replica', status: 'error', finishedAt: at(30), durationMs: 20_000 }));
    await s.save(
      result({
        task: 'index-audit',
        status: 'critical',
        finishedAt: at(120),
        durationMs: 400_000,
        findings: [
          { severity: 'critical', code: 'index_invalid', subject: 'public.a_idx', message: 'invalid index' },
          { severity: 'critical', code: 'index_invalid', subject: 'public.b_idx', message: 'invalid index' },
          { severity: 'critical', code: 'index_invalid', subject: 'public.c_idx', message: 'invalid index' },
          { severity: 'warning', code: 'index_unused', subject: 'public.d_idx', message: 'never scanned' },
        ],
      }),
    );
    // A later run of index-audit found the target busy: it says nothing about the target.
    await s.save(
      result({
        task: 'index-audit',
        status: 'ok',
        skipped: true,
        finishedAt: at(10),
        durationMs: 0,
        findings: [{ severity: 'info', code: 'run_skipped', subject: 'index-audit:main', message: 'busy' }],
      }),
    );
    // Exactly on a bucket bound: `le` is inclusive.
    await s.save(
      result({
        task: 'vacuum-analyze',
        status: 'ok',
        finishedAt: at(240),
        durationMs: 100,
        findings: [{ severity: 'info', code: 'vacuumed', subject: 'public.t', message: 'vacuumed' }],
      }),
    );
    // A later error knows nothing of the target either: the ok run's findings stand.
    await s.save(result({ task: 'vacuum-analyze', status: 'error', finishedAt: at(5), durationMs: 1_000 }));
  });

  let text: string;
  beforeAll(async () => {
    const res = await request(app).get('/metrics');
    expect(res.status).toBe(200);
    text = res.text;
  });

  it('is a parseable exposition with the four metric families typed', () => {
    const { types } = parseExposition(text);
    expect(Object.fromEntries(types)).toEqual({
      caretaker_runs_total: 'counter',
      caretaker_run_duration_seconds: 'histogram',
      caretaker_findings: 'gauge',
      caretaker_last_success_timestamp_seconds: 'gauge',
    });
  });

  it('counts every stored run by task and status', () => {
    expect(linesOf(text, 'caretaker_runs_total')).toEqual([
      'caretaker_runs_total{task="connections",status="error"} 1',
      'caretaker_runs_total{task="connections",status="ok"} 1',
      'caretaker_runs_total{task="connections",status="warning"} 1',
      'caretaker_runs_total{task="index-audit",status="critical"} 1',
      'caretaker_runs_total{task="index-audit",status="ok"} 1',
      'caretaker_runs_total{task="vacuum-analyze",status="error"} 1',
      'caretaker_runs_total{task="vacuum-analyze",status="ok"} 1',
    ]);
  });

  it('builds cumulative duration buckets per task, skipped runs left out', () => {
    const { samples } = parseExposition(text);
    const bucket = (task: string, le: string) => samples.get(`caretaker_run_duration_seconds_bucket{task="${task}",le="${le}"}`);
    // connections: 0.05 s, 2 s, 20 s.
    expect(['0.1', '0.5', '1', '5', '15', '60', '300', '900', '3600', '+Inf'].map((le) => bucket('connections', le))).toEqual([
      '1', '1', '1', '2', '2', '3', '3', '3', '3', '3',
    ]);
    expect(samples.get('caretaker_run_duration_seconds_sum{task="connections"}')).toBe('22.05');
    expect(samples.get('caretaker_run_duration_seconds_count{task="connections"}')).toBe('3');
    // index-audit: one 400 s run; the skipped one is not a duration.
    expect(bucket('index-audit', '300')).toBe('0');
    expect(bucket('index-audit', '900')).toBe('1');
    expect(samples.get('caretaker_run_duration_seconds_count{task="index-audit"}')).toBe('1');
    // vacuum-analyze: 0.1 s counts in le="0.1".
    expect(bucket('vacuum-analyze', '0.1')).toBe('1');
    expect(bucket('vacuum-analyze', '1')).toBe('2');
    expect(samples.get('caretaker_run_duration_seconds_sum{task="vacuum-analyze"}')).toBe('1.1');
  });

  it('counts the findings of the latest run that did its work, per (task, target)', () => {
    expect(linesOf(text, 'caretaker_findings')).toEqual([
      'caretaker_findings{severity="info"} 2',
      'caretaker_findings{severity="warning"} 2',
      'caretaker_findings{severity="critical"} 3',
    ]);
  });

  it('gives the last time each task did its work on each target', () => {
    expect(linesOf(text, 'caretaker_last_success_timestamp_seconds')).toEqual([
      `caretaker_last_success_timestamp_seconds{task="connections",target="main"} ${epoch(60)}`,
      `caretaker_last_success_timestamp_seconds{task="index-audit",target="main"} ${epoch(120)}`,
      `caretaker_last_success_timestamp_seconds{task="vacuum-analyze",target="main"} ${epoch(240)}`,
    ]);
  });

  it('answers without credentials and leaves prom-client\'s global registry alone', async () => {
    expect(globalRegistry.getSingleMetric('caretaker_runs_total')).toBeUndefined();
    expect(await globalRegistry.metrics()).not.toContain('caretaker_');
  });
});

it('reads findings through the run_id index, never a scan of the findings table', async () => {
  const client = await fx.db.pool.connect();
  try {
    // The tables are tiny here; forbid scans to see whether the index can serve the join.
    await client.query('SET enable_seqscan = off');
    const { rows } = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${METRICS_SQL.latestFindings}`);
    const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
    expect(plan).toContain('findings_run_id_idx');
    expect(plan).not.toMatch(/Seq Scan on findings/);
  } finally {
    await client.query('RESET enable_seqscan');
    client.release();
  }
});
