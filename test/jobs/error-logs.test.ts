/**
 * error-logs against the fake Kubernetes API server (test/support/kube-api.ts),
 * through a kubeconfig and the real @kubernetes/client-node: pino JSON and
 * plain-text logs with known errors, grouped into signatures with exact
 * counts; spikes against the bound and a stored previous result; limitBytes
 * honoured; secrets kept out of samples; unreadable logs noted.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { errorLogs } from '../../src/jobs/error-logs';
import type { Finding, TaskResult } from '../../src/contract/result';
import { migrate } from '../../src/results/migrate';
import { ResultStore } from '../../src/results/store';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { runOn } from '../support/run-on';
import { deployment, pod, startKubeApi, type KubeApi } from '../support/kube-api';

const HOUR = 3_600_000;

let db: TestDatabase;
let dir: string;
let api: KubeApi;
let target: string;

beforeAll(async () => {
  db = await createTestDatabase('errorlogs');
  await migrate(db.pool);
  dir = mkdtempSync(join(tmpdir(), 'ct-errorlogs-'));
});
afterAll(async () => {
  await db.drop();
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  api = await startKubeApi();
  target = `kube-${randomBytes(3).toString('hex')}`;
});
afterEach(async () => {
  await api.close();
});

function run(params: Record<string, unknown> = {}, deployments: string[] = []): Promise<TaskResult> {
  const kubeconfig = api.writeKubeconfig(dir);
  return runOn(errorLogs, 'kubernetes', { kubernetes: [{ name: target, namespace: 'shop', deployments, kubeconfig }] }, params, false, { state: db.pool });
}

const byCode = (r: TaskResult, code: string): Finding[] => r.findings.filter((f) => f.code === code);
/** A pino line as the application writes it. */
const pino = (level: number, msg: string | undefined, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ level, time: Date.now(), pid: 1, hostname: 'web-1', ...(msg === undefined ? {} : { msg }), ...extra });
const bytes = (lines: string[]) => lines.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);

/** web (2 pods) and worker (1 pod, app + proxy). */
function workloads() {
  const web = api.addDeployment(deployment({ name: 'web', namespace: 'shop', replicas: 2 }));
  const worker = api.addDeployment(deployment({ name: 'worker', namespace: 'shop', replicas: 1, containers: [{ name: 'app' }, { name: 'proxy' }] }));
  return { web: web.pods.map((p) => p.metadata!.name!), worker: worker.pods[0]!.metadata!.name! };
}

/** Lines that are not errors, whatever words they contain. */
const QUIET = [
  pino(30, 'request completed', { responseTime: 12 }),
  pino(40, 'ERROR budget at 80 %'),
  pino(30, 'retrying after error'),
  '[2024-05-01 10:00:00] INFO upstream ok',
  'errors=0 processed=10',
  'level=info msg="no error here"',
  'Error: lower-case stack trace heads are not counted',
  '    at Object.<anonymous> (/app/index.js:1:1)',
];

describe('error-logs: a healthy namespace', () => {
  it('finds no error line in logs full of harmless words, and counts what it read', async () => {
    const { web, worker } = workloads();
    api.setLogs('shop', web[0]!, 'app', QUIET);
    api.setLogs('shop', web[1]!, 'app', QUIET.slice(0, 3));
    api.setLogs('shop', worker, 'proxy', QUIET.slice(3));

    const result = await run();
    expect(result.status).toBe('ok');
    expect(result.findings).toEqual([]);
    expect(result.metrics).toEqual({ error_lines: 0, log_bytes_read: bytes(QUIET) + bytes(QUIET.slice(0, 3)) + bytes(QUIET.slice(3)), pods_read: 3 });
    expect(result.summary).toMatch(/^shop: 0 error lines in 24 h from 3 pods \(.+ read\), 0 signatures$/);
    // Every container, each with sinceSeconds and limitBytes; read-only.
    const logs = api.requestsOf('GET', '/api/v1/namespaces/shop/pods/').filter((r) => r.path.endsWith('/log'));
    expect(logs.map((r) => `${r.path.split('/')[6]}/${r.query.container}`).sort()).toEqual([`${web[0]}/app`, `${web[1]}/app`, `${worker}/app`, `${worker}/proxy`].sort());
    expect(logs.every((r) => r.query.sinceSeconds === '86400' && r.query.limitBytes === String(5 * 1024 * 1024))).toBe(true);
    expect(api.requests.every((r) => r.method === 'GET')).toBe(true);
  });
});

/** 20 error lines in 6 signatures, across both deployments, among quiet lines; and one error too old to count. */
function plantErrors() {
  const { web, worker } = workloads();
  const ids = ['9f1c2d3e-1111-4a4a-8b8b-123456789abc', '0a1b2c3d-2222-4c4c-9d9d-abcdefabcdef', '7e6d5c4b-3333-4e4e-8f8f-0123456789ab', 'c0ffee00-4444-4f4f-8a8a-feedfacecafe'];
  api.setLogs('shop', web[0]!, 'app', [
    { at: new Date(Date.now() - 25 * HOUR), text: pino(50, 'db query failed after 1 ms for user 1') },
    ...[[1234, 42], [88, 7], [5012, 42], [3, 9], [77, 1000], [1, 2]].map(([ms, user]) => pino(50, `db query failed after ${ms} ms for user ${user}`)),
    pino(60, 'cannot connect to redis at 10.0.0.5:6379'),
    pino(60, 'cannot connect to redis at 10.0.0.6:6380'),
    ...[1, 2, 3].map(() => pino(50, undefined, { err: { type: 'TypeError', message: "Cannot read properties of undefined (reading 'id')", stack: 'TypeError: ...\n    at handler' } })),
    ...QUIET,
  ]);
  api.setLogs('shop', web[1]!, 'app', [
    ...ids.map((id, i) => `2024-05-01T10:00:0${i}.123Z ERROR [api] request ${id} failed: upstream "${['payments', 'ledger'][i % 2]}" returned ${502 + i}`),
    'time=2024-05-01T10:00:00Z level=error msg="job 17 failed" id=0xdeadbeef',
    'time=2024-05-01T11:30:00Z level=error msg="job 942 failed" id=0x1f',
    JSON.stringify({ level: 'error', message: 'payment declined for order 991' }),
    JSON.stringify({ level: 'error', message: 'payment declined for order 12' }),
    ...QUIET,
  ]);
  api.setLogs('shop', worker, 'app', [pino(50, 'db query failed after 99 ms for user 7')]);
  return { web, worker };
}

const EXPECTED_SIGNATURES = [
  { signature: 'db query failed after <n> ms for user <n>', count: 7, deployments: ['web', 'worker'] },
  { signature: '<ts> ERROR [api] request <uuid> failed: upstream <str> returned <n>', count: 4, deployments: ['web'] },
  { signature: 'TypeError: Cannot read properties of undefined (reading <str>)', count: 3, deployments: ['web'] },
  { signature: 'cannot connect to redis at <ip>', count: 2, deployments: ['web'] },
  { signature: 'payment declined for order <n>', count: 2, deployments: ['web'] },
  { signature: 'time=<ts> level=error msg=<str> id=<hex>', count: 2, deployments: ['web'] },
];

describe('error-logs: counting and grouping', () => {
  it('counts pino level >= 50 and plain-text error lines, grouped by signature with exact counts', async () => {
    plantErrors();
    const result = await run();

    expect(result.status).toBe('ok');
    expect(result.metrics).toMatchObject({ error_lines: 20, pods_read: 3 });
    expect(byCode(result, 'error_log_spike')).toEqual([]);
    const summary = byCode(result, 'error_log_summary');
    expect(summary).toHaveLength(1);
    expect(summary[0]!.severity).toBe('info');
    const d = summary[0]!.details as { topSignatures: { signature: string; count: number; sample: string; deployments: string[] }[]; byDeployment: Record<string, number>; distinctSignatures: number };
    expect(d.topSignatures.map(({ signature, count, deployments }) => ({ signature, count, deployments }))).toEqual(EXPECTED_SIGNATURES);
    expect(d.byDeployment).toEqual({ web: 19, worker: 1 });
    expect(d.distinctSignatures).toBe(6);
    // One sample each: the first line seen, as logged.
    expect(JSON.parse(d.topSignatures[0]!.sample)).toMatchObject({ level: 50, msg: 'db query failed after 1234 ms for user 42' });
    expect(d.topSignatures[5]!.sample).toBe('time=2024-05-01T10:00:00Z level=error msg="job 17 failed" id=0xdeadbeef');
    expect(result.summary).toMatch(/^shop: 20 error lines in 24 h from 3 pods \(.+ read\), 6 signatures; top: "db query failed after <n> ms for user <n>" ×7$/);
  });

  it('raises error_log_spike above the bound, with the top signatures', async () => {
    plantErrors();
    const result = await run({ maxErrors: 10 });
    expect(result.status).toBe('warning');
    const spike = byCode(result, 'error_log_spike');
    expect(spike).toHaveLength(1);
    expect(spike[0]).toMatchObject({ severity: 'warning', subject: 'shop' });
    expect(spike[0]!.message).toBe(
      '20 error lines in 24 h from 3 pods: above the bound of 10; top: "db query failed after <n> ms for user <n>" ×7, "<ts> ERROR [api] request <uuid> failed: upstream <str> returned <n>" ×4, "TypeError: Cannot read properties of undefined (reading <str>)" ×3',
    );
    expect(spike[0]!.details).toMatchObject({ reasons: ['bound'], errorLines: 20, bound: 10, previous: null });
    expect((spike[0]!.details!.topSignatures as unknown[]).length).toBe(6);
    expect(byCode(result, 'error_log_summary')).toEqual([]);
  });

  it('raises error_log_spike against the previous run: over spikeFactor × its count and at least spikeMinimum', async () => {
    plantErrors();
    const store = new ResultStore(db.pool);
    const previous = (errorLines: number, hoursAgo: number) => {
      const at = new Date(Date.now() - hoursAgo * HOUR).toISOString();
      return store.save({
        task: 'error-logs', target, status: 'ok', startedAt: at, finishedAt: at, durationMs: 1000, dryRun: false,
        summary: 'fabricated', findings: [], actions: [], metrics: { error_lines: errorLines, log_bytes_read: 1, pods_read: 1 },
      }).then(() => at);
    };

    const at5 = await previous(5, 24);
    const spiked = await run();
    expect(spiked.status).toBe('warning');
    expect(byCode(spiked, 'error_log_spike')[0]!.details).toMatchObject({ reasons: ['previous'], previous: { errorLines: 5, at: at5 } });
    expect(byCode(spiked, 'error_log_spike')[0]!.message).toContain(`4.0× the previous run's 5 (${at5})`);

    // 20 is not more than 3 × 7: no spike.
    await previous(7, 12);
    expect(byCode(await run(), 'error_log_spike')).toEqual([]);

    // Over 3 × the previous, but under spikeMinimum: no spike either.
    await previous(1, 6);
    expect(byCode(await run({ spikeMinimum: 21 }), 'error_log_spike')).toEqual([]);
    expect(byCode(await run({ spikeMinimum: 20 }), 'error_log_spike')[0]!.details).toMatchObject({ reasons: ['previous'] });
  });

  it('reads the previous instance of a container that restarted within the window', async () => {
    const jobs = api.addDeployment(deployment({ name: 'jobs', namespace: 'shop', replicas: 1 }), { readyPods: 0, unreadyState: 'crash-loop' });
    const name = jobs.pods[0]!.metadata!.name!;
    api.setLogs('shop', name, 'app', ['starting']);
    api.setLogs('shop', name, 'app', ['starting', pino(60, 'missing env DATABASE_URL'), 'FATAL exiting'], { previous: true });
    const result = await run();
    expect(result.metrics).toMatchObject({ error_lines: 2, pods_read: 1 });
    const logs = api.requests.filter((r) => r.path.endsWith('/log'));
    expect(logs.map((r) => r.query.previous ?? 'false').sort()).toEqual(['false', 'true']);
  });
});

describe('error-logs: bounded reading', () => {
  it('asks for limitBytes, stops counting there, and says the count is a lower bound', async () => {
    const chatty = api.addDeployment(deployment({ name: 'chatty', namespace: 'shop', replicas: 1 }));
    const name = chatty.pods[0]!.metadata!.name!;
    // 100 error lines of exactly 50 bytes with their newline.
    const lines = Array.from({ length: 100 }, (_, i) => `ERROR chatty line ${String(i).padStart(3, '0')} `.padEnd(49, '.'));
    expect(bytes(lines)).toBe(5_000);
    api.setLogs('shop', name, 'app', lines);

    const result = await run({ limitBytes: 1_024 });
    const request = api.requests.find((r) => r.path.endsWith('/log'))!;
    expect(request.query).toMatchObject({ limitBytes: '1024', sinceSeconds: '86400', container: 'app' });
    // 20 whole lines in 1024 bytes; the 21st is cut and not counted.
    expect(result.metrics).toEqual({ error_lines: 20, log_bytes_read: 1_024, pods_read: 1 });
    expect(byCode(result, 'log_truncated')).toEqual([
      expect.objectContaining({ severity: 'info', details: { limitBytes: 1_024, count: 1, containers: [{ deployment: 'chatty', pod: name, container: 'app', previous: false, bytes: 1_024 }] } }),
    ]);
    expect(result.summary).toMatch(/^shop: 20 error lines in 24 h \(at least\)/);
  });
});

describe('error-logs: secrets', () => {
  it('keeps tokens, passwords and URL credentials out of samples, signatures and the whole result', async () => {
    const web = api.addDeployment(deployment({ name: 'web', namespace: 'shop', replicas: 1 }));
    const name = web.pods[0]!.metadata!.name!;
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlc2lnbmF0dXJl';
    api.setLogs('shop', name, 'app', [
      pino(50, 'login failed for postgres://app:hunter2@db:5432/app with password=hunter2', { req: { headers: { authorization: `Bearer ${jwt}` } } }),
      'ERROR upstream call failed: Authorization: Bearer sk_live_0123456789abcdef token=s3cr3tT0k3n',
      `level=error msg="refresh failed" refresh_token=${jwt} api_key: AKIAABCDEFGHIJKLMNOP`,
    ]);
    const result = await run({ maxErrors: 0 });
    expect(result.metrics.error_lines).toBe(3);
    const text = JSON.stringify(result);
    for (const secret of ['hunter2', jwt, 'eyJhbGciOiJIUzI1NiJ9', 'sk_live_0123456789abcdef', 's3cr3tT0k3n', 'AKIAABCDEFGHIJKLMNOP']) expect(text).not.toContain(secret);
    const top = byCode(result, 'error_log_spike')[0]!.details!.topSignatures as { signature: string; sample: string }[];
    expect(top.map((t) => t.signature).sort()).toEqual([
      'ERROR upstream call failed: Authorization: Bearer [redacted] token=[redacted]',
      'level=error msg=<str> refresh_token=[redacted] api_key: [redacted]',
      'login failed for postgres://app:***@db:<n>/app with password=[redacted]',
    ]);
    expect(top.find((t) => t.signature.startsWith('login'))!.sample).toContain('"authorization":"Bearer [redacted]"');
  });

  it('cuts samples to sampleChars after redacting', async () => {
    const web = api.addDeployment(deployment({ name: 'web', namespace: 'shop', replicas: 1 }));
    api.setLogs('shop', web.pods[0]!.metadata!.name!, 'app', [`ERROR ${'x'.repeat(500)} password=hunter2`]);
    const result = await run({ sampleChars: 60 });
    const sample = (byCode(result, 'error_log_summary')[0]!.details!.topSignatures as { sample: string }[])[0]!.sample;
    expect(sample).toHaveLength(60);
    expect(sample.endsWith('…')).toBe(true);
    expect(JSON.stringify(result)).not.toContain('hunter2');
  });
});

describe('error-logs: what it cannot read', () => {
  it('notes logs it may not read (403), as info', async () => {
    const { web } = workloads();
    api.forbid('get', 'pods/log');
    const result = await run();
    expect(result.status).toBe('ok');
    expect(result.metrics).toEqual({ error_lines: 0, log_bytes_read: 0, pods_read: 0 });
    const note = byCode(result, 'log_unreadable')[0]!;
    expect(note).toMatchObject({ severity: 'info', details: expect.objectContaining({ count: 4 }) });
    expect(note.message).toContain(`${web[0]}/app: 403: pods "${web[0]}" is forbidden: User "system:serviceaccount:caretaker:caretaker" cannot get resource "pods/log"`);
    expect(note.suggestion).toMatch(/pods\/log/);
  });

  it('notes a container that has not started yet, and reads the others', async () => {
    workloads();
    const pending = api.addPod(pod({ owner: api.findDeployment('shop', 'web')!, state: 'pending' })).metadata!.name!;
    const result = await run();
    expect(result.status).toBe('ok');
    expect(result.metrics.pods_read).toBe(3);
    expect(byCode(result, 'log_unreadable')[0]!.details).toEqual({
      count: 1,
      containers: [{ deployment: 'web', pod: pending, container: 'app', previous: false, error: `400: container "app" in pod "${pending}" is waiting to start: ContainerCreating` }],
    });
  });

  it('a 403 on listing pods is an error result', async () => {
    workloads();
    api.forbid('list', 'pods');
    const result = await run();
    expect(result.status).toBe('error');
    expect(result.summary).toMatch(/^error-logs failed on kube-\w+: cannot list pods in namespace shop: 403: pods is forbidden/);
  });
});
