/**
 * The Alertmanager channel and client against a real Alertmanager
 * (test/support/alertmanager.ts): what caretaker posts is what
 * Alertmanager lists, resolutions end alerts, re-posts keep them, and
 * failures are one clean error without the URL's credentials.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAlertmanagerNotifier } from '../../src/alerts/channels/alertmanager';
import type { AlertEvent, AlertMessage, RetryPolicy } from '../../src/alerts/notifier';
import { AlertmanagerError, createAlertmanagerClient } from '../../src/clients/alertmanager';
import { basicAuthToken } from '../../src/logger';
import { startAlertmanager, waitUntil, type TestAlertmanager } from '../support/alertmanager';
import { freePort } from '../support/ports';

/** Fast retries for tests; the bound is the same shape as the default. */
const RETRY: RetryPolicy = { attempts: 3, backoffMs: [10, 20], attemptTimeoutMs: 2_000 };
const PASSWORD = 'am-Pa55word-never-shown';

let am: TestAlertmanager;

beforeAll(async () => {
  am = await startAlertmanager();
});

afterAll(async () => {
  await am?.stop();
});

/** A target name of this test's own: Alertmanager is shared by the file's tests. */
const uniqueTarget = () => `db-${randomBytes(4).toString('hex')}`;

function event(target: string, over: Partial<AlertEvent> = {}): AlertEvent {
  return {
    task: 'backup-verify',
    target,
    code: 'backup_stale',
    subject: 'nightly',
    severity: 'critical',
    summary: `backup_stale on ${target}: the newest backup is 30 h old`,
    message: 'the newest backup nightly-42.sql.gz is 30 h old (objective 26 h)',
    suggestion: 'Check the backup job',
    openedAt: new Date('2026-03-02T10:00:00.000Z'),
    runUrl: 'https://caretaker.example.com/runs/42',
    checkUrl: 'https://caretaker.example.com/checks/backup-verify/db',
    ...over,
  };
}

function message(kind: AlertMessage['kind'], events: AlertEvent[]): AlertMessage {
  return { kind, title: `${kind}: ${events.length}`, text: 'text', fields: {}, events };
}

function notifier(url = am.url, resolveTimeoutSeconds = 300) {
  return createAlertmanagerNotifier({ name: 'am', channel: { kind: 'alertmanager', url, resolveTimeoutSeconds }, retry: RETRY });
}

const alertsOf = (server: TestAlertmanager, target: string) => server.alerts({ filter: `target="${target}"` });

describe('Alertmanager channel', () => {
  it('posts each problem as an alert with caretaker\'s labels, annotations and links', async () => {
    const target = uniqueTarget();
    const bare = event(target, { code: 'backup_missing', subject: 'weekly', severity: 'warning', suggestion: undefined, runUrl: undefined, checkUrl: undefined });
    await notifier().send(message('alert', [event(target), bare]));

    const alerts = await alertsOf(am, target);
    expect(alerts).toHaveLength(2);
    const full = alerts.find((a) => a.labels.alertname === 'backup_stale')!;
    expect(full.labels).toEqual({ alertname: 'backup_stale', severity: 'critical', task: 'backup-verify', target, subject: 'nightly' });
    expect(full.annotations).toEqual({
      summary: `backup_stale on ${target}: the newest backup is 30 h old`,
      description: 'the newest backup nightly-42.sql.gz is 30 h old (objective 26 h)',
      suggestion: 'Check the backup job',
      runbook_url: 'https://caretaker.example.com/runs/42',
    });
    expect(full.generatorURL).toBe('https://caretaker.example.com/checks/backup-verify/db');
    expect(full.startsAt).toBe('2026-03-02T10:00:00.000Z');
    expect(full.status.state).toBe('active');
    // No endsAt was sent: Alertmanager set its own, resolve_timeout ahead.
    expect(Date.parse(full.endsAt)).toBeGreaterThan(Date.parse(full.updatedAt));

    const other = alerts.find((a) => a.labels.alertname === 'backup_missing')!;
    expect(other.labels).toEqual({ alertname: 'backup_missing', severity: 'warning', task: 'backup-verify', target, subject: 'weekly' });
    expect(Object.keys(other.annotations).sort()).toEqual(['description', 'summary']);
    expect(other.generatorURL).toBeFalsy();
  });

  it('a resolution ends the alert: Alertmanager no longer lists it, the others stay', async () => {
    const target = uniqueTarget();
    const n = notifier();
    const stale = event(target);
    const missing = event(target, { code: 'backup_missing' });
    await n.send(message('alert', [stale, missing]));
    expect(await alertsOf(am, target)).toHaveLength(2);

    await n.send(message('resolved', [{ ...stale, resolvedAt: new Date() }]));
    const left = await alertsOf(am, target);
    expect(left.map((a) => a.labels.alertname)).toEqual(['backup_missing']);
    expect(await am.alerts({ filter: [`target="${target}"`, 'alertname="backup_stale"'], active: 'false' })).toEqual([]);
  });

  it('re-posts every third of resolve_timeout, and a re-post pushes the alert\'s end further', async () => {
    const target = uniqueTarget();
    const n = notifier(am.url, 300);
    expect(n.repostSeconds).toBe(100);
    await n.send(message('alert', [event(target)]));
    const [first] = await alertsOf(am, target);

    // Let Alertmanager's clock move past the first post's millisecond.
    await waitUntil(async () => Date.now() > Date.parse(first!.updatedAt) + 5, 'the clock to move');
    await n.repost!([event(target)]);
    const [again] = await alertsOf(am, target);
    expect(again!.fingerprint).toBe(first!.fingerprint);
    expect(again!.startsAt).toBe(first!.startsAt);
    expect(Date.parse(again!.endsAt)).toBeGreaterThan(Date.parse(first!.endsAt));
    expect(again!.status.state).toBe('active');
  });

  it('without re-posts Alertmanager resolves the alert by itself; a re-post brings it back', async () => {
    // Its own Alertmanager: a resolve_timeout short enough to watch it pass.
    const quick = await startAlertmanager({ resolveTimeout: '1s' });
    try {
      const target = uniqueTarget();
      const n = notifier(quick.url, 30);
      await n.send(message('alert', [event(target)]));
      await waitUntil(async () => (await alertsOf(quick, target)).length === 0, 'alertmanager to resolve the silent alert');

      await n.repost!([event(target)]);
      expect((await alertsOf(quick, target)).map((a) => a.status.state)).toEqual(['active']);
    } finally {
      await quick.stop();
    }
  });

  it('an unreachable Alertmanager is one clean error, without the URL\'s credentials', async () => {
    const port = await freePort();
    const n = notifier(`http://caretaker:${PASSWORD}@127.0.0.1:${port}/am/`);
    const err = (await n.send(message('alert', [event(uniqueTarget())])).catch((e: Error) => e)) as Error;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(new RegExp(`^alertmanager http://127\\.0\\.0\\.1:${port}: post alerts: ECONNREFUSED \\(after 3 attempts\\)$`));
    expect(err.message).not.toContain(PASSWORD);
    expect(err.message).not.toContain(basicAuthToken('caretaker', PASSWORD));
  });

  it('an empty batch posts nothing', async () => {
    const port = await freePort();
    // Nothing listens there: any request would fail.
    await expect(notifier(`http://127.0.0.1:${port}`).send(message('alert', []))).resolves.toBeUndefined();
    await expect(notifier(`http://127.0.0.1:${port}`).repost!([])).resolves.toBeUndefined();
  });
});

describe('Alertmanager behind basic auth and a route prefix', () => {
  let proxy: Server;
  let proxyUrl: string;
  /** Every request the proxy got: method, path, whether its credentials were right. */
  const seen: { method: string; path: string; authorized: boolean }[] = [];

  beforeAll(async () => {
    const expected = `Basic ${basicAuthToken('caretaker', PASSWORD)}`;
    // A reverse proxy like the ones Alertmanager usually sits behind: it checks the login and strips /am.
    proxy = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const authorized = req.headers.authorization === expected;
        const path = req.url ?? '/';
        seen.push({ method: req.method ?? 'GET', path, authorized });
        if (!authorized) {
          res.writeHead(401, { 'content-type': 'text/plain' });
          res.end(`unauthorized: ${req.headers.authorization ?? 'no credentials'}`);
          return;
        }
        const body = Buffer.concat(chunks);
        fetch(`${am.url}${path.replace(/^\/am/, '')}`, {
          method: req.method,
          headers: { 'content-type': 'application/json' },
          body: body.length ? body : undefined,
          signal: AbortSignal.timeout(5_000),
        }).then(
          async (upstream) => {
            res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'text/plain' });
            res.end(await upstream.text());
          },
          (err: Error) => {
            res.writeHead(502);
            res.end(err.message);
          },
        );
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    proxyUrl = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    proxy.closeAllConnections();
    await new Promise<void>((resolve) => proxy.close(() => resolve()));
  });

  beforeEach(() => {
    seen.length = 0;
  });

  it('credentials in the URL travel as a Basic header, under the route prefix', async () => {
    const target = uniqueTarget();
    await notifier(`http://caretaker:${PASSWORD}@${proxyUrl}/am/`).send(message('alert', [event(target)]));
    expect(seen).toEqual([{ method: 'POST', path: '/am/api/v2/alerts', authorized: true }]);
    expect(await alertsOf(am, target)).toHaveLength(1);
  });

  it('a refusal (401) is not posted again, and its error quotes no credential', async () => {
    const wrong = 'Wr0ng-pa55word-also-secret';
    const err = (await notifier(`http://caretaker:${wrong}@${proxyUrl}/am`).send(message('alert', [event(uniqueTarget())])).catch((e: Error) => e)) as Error;
    expect(seen).toHaveLength(1);
    expect(err.message).toMatch(new RegExp(`^alertmanager http://${proxyUrl.replace(/\./g, '\\.')}: post alerts: HTTP 401 \\(unauthorized: Basic \\*\\*\\*\\)`));
    expect(err.message).not.toContain(wrong);
    expect(err.message).not.toContain(basicAuthToken('caretaker', wrong));
  });
});

describe('Alertmanager client', () => {
  it('creates a silence, lists it active, and expires it', async () => {
    const client = createAlertmanagerClient({ url: am.url });
    const ns = `ns-${randomBytes(3).toString('hex')}`;
    const startsAt = new Date();
    const id = await client.createSilence({
      matchers: [{ name: 'namespace', value: ns, isRegex: false }],
      startsAt,
      endsAt: new Date(startsAt.getTime() + 600_000),
      createdBy: 'caretaker test',
      comment: 'a test silence',
    });
    const mine = (await client.listSilences([`namespace="${ns}"`])).filter((s) => s.id === id);
    expect(mine).toEqual([expect.objectContaining({ id, createdBy: 'caretaker test', comment: 'a test silence', status: { state: 'active' } })]);
    expect(mine[0]!.matchers).toEqual([{ name: 'namespace', value: ns, isRegex: false, isEqual: true }]);

    await client.expireSilence(id);
    expect((await client.listSilences()).find((s) => s.id === id)!.status.state).toBe('expired');
    // Expiring it again is no error.
    await client.expireSilence(id);
  });

  it('lists alerts with filters', async () => {
    const client = createAlertmanagerClient({ url: am.url });
    const target = uniqueTarget();
    await client.postAlerts([{ labels: { alertname: 'x', target } }, { labels: { alertname: 'y', target } }]);
    const listed = await client.listAlerts({ filter: [`target="${target}"`, 'alertname="y"'], silenced: false });
    expect(listed.map((a) => a.labels)).toEqual([{ alertname: 'y', target }]);
  });

  it('Alertmanager\'s refusal is an AlertmanagerError with its status and words', async () => {
    const client = createAlertmanagerClient({ url: am.url });
    const now = new Date();
    const err = (await client
      .createSilence({ matchers: [{ name: 'a', value: 'b', isRegex: false }], startsAt: now, endsAt: new Date(now.getTime() - 60_000), createdBy: 't', comment: 'c' })
      .catch((e: unknown) => e)) as AlertmanagerError;
    expect(err).toBeInstanceOf(AlertmanagerError);
    expect(err.status).toBe(400);
    expect(err.permanent).toBe(true);
    expect(err.message).toMatch(/^alertmanager http:\/\/127\.0\.0\.1:\d+: create silence: HTTP 400 \(.*end time.*\)$/);
  });

  it('a server that never answers is cut at the timeout', async () => {
    // Accepts the connection, never answers.
    const silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const port = (silent.address() as AddressInfo).port;
      const client = createAlertmanagerClient({ url: `http://u:${PASSWORD}@127.0.0.1:${port}`, timeoutMs: 200 });
      const err = (await client.listSilences().catch((e: unknown) => e)) as AlertmanagerError;
      expect(err.message).toBe(`alertmanager http://127.0.0.1:${port}: list silences: timed out`);
      expect(err.status).toBeUndefined();
      expect(err.permanent).toBe(false);
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
