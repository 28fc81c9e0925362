/**
 * The PagerDuty channel against a local receiver that checks each request
 * as the Events API v2 documents it (POST /v2/enqueue: required fields,
 * the severity and action enums, the 255 limit of dedup_key and 1024 of
 * summary) and answers as PagerDuty does: 202 with the dedup_key, or 400
 * "invalid event" listing the problems.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createPagerdutyNotifier, pagerdutyDedupKey, type PagerdutyEvent } from '../../src/alerts/channels/pagerduty';
import type { AlertEvent, AlertMessage, RetryPolicy } from '../../src/alerts/notifier';
import { freePort } from '../support/ports';

const RETRY: RetryPolicy = { attempts: 3, backoffMs: [10, 20], attemptTimeoutMs: 2_000 };
/** Events API v2 routing keys are 32 characters. */
const ROUTING_KEY = randomBytes(16).toString('hex');

const TOP_LEVEL = new Set(['routing_key', 'event_action', 'dedup_key', 'payload', 'images', 'links', 'client', 'client_url']);
const PAYLOAD = new Set(['summary', 'source', 'severity', 'timestamp', 'component', 'group', 'class', 'custom_details']);
const SEVERITIES = ['critical', 'error', 'warning', 'info'];

/** The problems PagerDuty would list for this body; empty: it is a valid event. */
function problemsOf(body: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const str = (v: unknown) => typeof v === 'string' && v.length > 0;
  for (const key of Object.keys(body)) if (!TOP_LEVEL.has(key)) problems.push(`unknown field ${key}`);
  if (!str(body.routing_key)) problems.push("'routing_key' is missing or blank");
  if (!['trigger', 'acknowledge', 'resolve'].includes(body.event_action as string)) problems.push("'event_action' is invalid");
  if (body.dedup_key !== undefined && (!str(body.dedup_key) || (body.dedup_key as string).length > 255)) problems.push("'dedup_key' must be 1-255 characters");
  if (body.event_action !== 'trigger') {
    if (!str(body.dedup_key)) problems.push("'dedup_key' is required to acknowledge or resolve");
    return problems;
  }
  const payload = body.payload as Record<string, unknown> | undefined;
  if (!payload || typeof payload !== 'object') return [...problems, "'payload' is missing"];
  for (const key of Object.keys(payload)) if (!PAYLOAD.has(key)) problems.push(`unknown field payload.${key}`);
  if (!str(payload.summary) || (payload.summary as string).length > 1024) problems.push("'payload.summary' must be 1-1024 characters");
  if (!str(payload.source)) problems.push("'payload.source' is missing or blank");
  if (!SEVERITIES.includes(payload.severity as string)) problems.push("'payload.severity' is invalid");
  if (payload.timestamp !== undefined && Number.isNaN(Date.parse(payload.timestamp as string))) problems.push("'payload.timestamp' is not ISO 8601");
  for (const key of ['component', 'group', 'class'] as const) if (payload[key] !== undefined && typeof payload[key] !== 'string') problems.push(`'payload.${key}' must be a string`);
  if (payload.custom_details !== undefined && (typeof payload.custom_details !== 'object' || payload.custom_details === null)) problems.push("'payload.custom_details' must be an object");
  if (body.links !== undefined && (!Array.isArray(body.links) || body.links.some((l: { href?: unknown }) => !str(l.href)))) problems.push("'links' must be a list of {href, text}");
  for (const key of ['client', 'client_url'] as const) if (body[key] !== undefined && !str(body[key])) problems.push(`'${key}' must be a string`);
  return problems;
}

interface Receiver {
  url: string;
  /** Every body received, valid or not, in order. */
  received: PagerdutyEvent[];
  /** Answers the next requests with these statuses (then as the API would). */
  failNext: number[];
  close(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const received: PagerdutyEvent[] = [];
  const failNext: number[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const reply = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      } catch {
        return reply(400, { status: 'invalid event', message: 'Event object is invalid', errors: ['not JSON'] });
      }
      received.push(body as unknown as PagerdutyEvent);
      const forced = failNext.shift();
      if (forced !== undefined) return reply(forced, { status: 'error', message: `forced ${forced}` });
      if (req.method !== 'POST' || req.url !== '/v2/enqueue' || !/^application\/json/.test(req.headers['content-type'] ?? '')) {
        return reply(404, { status: 'not found', message: `${req.method} ${req.url}` });
      }
      const problems = problemsOf(body);
      if (problems.length) return reply(400, { status: 'invalid event', message: 'Event object is invalid', errors: problems });
      reply(202, { status: 'success', message: 'Event processed', dedup_key: body.dedup_key });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v2/enqueue`,
    received,
    failNext,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

let pd: Receiver;

beforeAll(async () => {
  pd = await startReceiver();
});

afterAll(async () => {
  await pd.close();
});

beforeEach(() => {
  pd.received.length = 0;
  pd.failNext.length = 0;
});

function event(over: Partial<AlertEvent> = {}): AlertEvent {
  return {
    task: 'backup-verify',
    target: 'db',
    code: 'backup_stale',
    subject: 'nightly',
    severity: 'critical',
    summary: 'backup_stale on db: the newest backup is 30 h old',
    message: 'the newest backup nightly-42.sql.gz is 30 h old (objective 26 h)',
    suggestion: 'Check the backup job',
    openedAt: new Date('2026-03-02T10:00:00.000Z'),
    runUrl: 'https://caretaker.example.com/runs/42',
    checkUrl: 'https://caretaker.example.com/checks/backup-verify/db',
    ...over,
  };
}

function message(kind: AlertMessage['kind'], events: AlertEvent[]): AlertMessage {
  return { kind, title: kind, text: 'text', fields: {}, events };
}

function notifier(url = pd.url, routingKey = ROUTING_KEY) {
  return createPagerdutyNotifier({ name: 'pager', channel: { kind: 'pagerduty', routingKey, url }, retry: RETRY });
}

describe('PagerDuty channel', () => {
  it('triggers a documented v2 event, then resolves it with the same dedup_key', async () => {
    const n = notifier();
    await n.send(message('alert', [event()]));
    await n.send(message('resolved', [{ ...event(), resolvedAt: new Date('2026-03-02T12:00:00.000Z') }]));

    expect(pd.received).toHaveLength(2);
    const [trigger, resolve] = pd.received;
    expect(trigger).toEqual({
      routing_key: ROUTING_KEY,
      event_action: 'trigger',
      dedup_key: 'caretaker/backup-verify/db/backup_stale/nightly',
      payload: {
        summary: 'backup_stale on db: the newest backup is 30 h old',
        source: 'db',
        severity: 'critical',
        timestamp: '2026-03-02T10:00:00.000Z',
        component: 'nightly',
        group: 'backup-verify',
        class: 'backup_stale',
        custom_details: expect.objectContaining({ message: 'the newest backup nightly-42.sql.gz is 30 h old (objective 26 h)', suggestion: 'Check the backup job' }),
      },
      links: [
        { href: 'https://caretaker.example.com/runs/42', text: expect.any(String) },
        { href: 'https://caretaker.example.com/checks/backup-verify/db', text: expect.any(String) },
      ],
      client: 'caretaker',
      client_url: 'https://caretaker.example.com/checks/backup-verify/db',
    });
    expect(resolve).toEqual({ routing_key: ROUTING_KEY, event_action: 'resolve', dedup_key: trigger!.dedup_key });
  });

  it('maps caretaker\'s severities onto PagerDuty\'s, one request per problem', async () => {
    await notifier().send(message('alert', [event({ severity: 'critical', code: 'a' }), event({ severity: 'warning', code: 'b' }), event({ severity: 'info', code: 'c' })]));
    const byClass = Object.fromEntries(pd.received.map((r) => [r.payload!.class, r.payload!.severity]));
    expect(byClass).toEqual({ a: 'critical', b: 'warning', c: 'info' });
  });

  it('keeps dedup_key within 255 and summary within 1024, stable and distinct', async () => {
    const long = (tail: string) => event({ subject: `${'schema.table_with_a_long_name/'.repeat(12)}${tail}`, summary: 'ü'.repeat(2000) });
    const n = notifier();
    await n.send(message('alert', [long('one')]));
    await n.send(message('alert', [long('one')]));
    await n.send(message('alert', [long('two')]));
    const keys = pd.received.map((r) => r.dedup_key);
    for (const key of keys) {
      expect(key.length).toBeLessThanOrEqual(255);
      expect(Buffer.byteLength(key)).toBeLessThanOrEqual(255);
      expect(key.startsWith('caretaker/backup-verify/db/backup_stale/')).toBe(true);
    }
    expect(keys[0]).toBe(keys[1]);
    expect(keys[2]).not.toBe(keys[0]);
    expect([...pd.received[0]!.payload!.summary].length).toBeLessThanOrEqual(1024);
    expect(pagerdutyDedupKey(long('one'))).toBe(keys[0]);
  });

  it('a refusal (400) quoting the routing key is one error without it, not re-sent', async () => {
    // A receiver that echoes the key it refused, as a proxy or a future API might.
    const echoing = await startEchoingRefusal();
    try {
      const err = (await notifier(echoing.url).send(message('alert', [event()])).catch((e: Error) => e)) as Error;
      expect(echoing.requests()).toBe(1);
      expect(err.message).toMatch(/^pagerduty http:\/\/127\.0\.0\.1:\d+: HTTP 400 \(Event object is invalid; .*\*\*\*.*\)/);
      expect(err.message).not.toContain(ROUTING_KEY);
    } finally {
      await echoing.close();
    }
  });

  it('a rate limit (429) or a server error is tried again, and only the events not yet accepted', async () => {
    pd.failNext.push(429);
    await notifier().send(message('alert', [event()]));
    expect(pd.received.map((r) => r.event_action)).toEqual(['trigger', 'trigger']);

    pd.received.length = 0;
    pd.failNext.push(202, 500);
    await notifier().send(message('alert', [event({ code: 'a' }), event({ code: 'b' })]));
    // Two in the first attempt (one refused with 500), then that one alone.
    expect(pd.received).toHaveLength(3);
    const retried = pd.received[2]!.dedup_key;
    expect(pd.received.slice(0, 2).map((r) => r.dedup_key)).toContain(retried);
  });

  it('an unreachable endpoint is one clean error without the routing key', async () => {
    const port = await freePort();
    const err = (await notifier(`http://127.0.0.1:${port}/v2/enqueue`).send(message('alert', [event()])).catch((e: Error) => e)) as Error;
    expect(err.message).toBe(`pagerduty http://127.0.0.1:${port}: ECONNREFUSED (after 3 attempts)`);
  });

  it('does not re-post: PagerDuty keeps an alert until it is resolved', () => {
    const n = notifier();
    expect(n.repostSeconds).toBeUndefined();
    expect(n.repost).toBeUndefined();
  });
});

/** Answers every request 400, its errors quoting the routing_key it got. */
async function startEchoingRefusal(): Promise<{ url: string; requests(): number; close(): Promise<void> }> {
  let n = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      n++;
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { routing_key: string };
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 'invalid event', message: 'Event object is invalid', errors: [`no integration with routing_key ${body.routing_key}`] }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v2/enqueue`,
    requests: () => n,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
