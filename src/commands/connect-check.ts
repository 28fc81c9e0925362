/**
 * `caretaker check-config --connect`: a valid config can still name a
 * server that does not answer, or credentials it refuses, and that should
 * show before the 3 a.m. run, not in it. Every configured server is tried
 * once, all at the same time, each within CONNECT_TIMEOUT_MS, with the
 * clients the tasks use; nothing is changed (a PING, `SELECT version()`,
 * a GET, a list). A line's reason is scrubbed of every secret the config
 * holds, since servers' errors may quote the URL or the login they got.
 */
import type { Redis } from 'ioredis';
import type { Config, BackupsTarget, HttpTarget, KubernetesTarget, PrometheusTarget } from '../config/schema';
import type { ChannelConfig } from '../config/alerting-schema';
import { connectClient, endClient, type SessionLimits } from '../clients/postgres';
import { oneShotRedis, recordErrors, redisAddress } from '../clients/redis';
import { createSmtpTransport } from '../clients/smtp';
import { apiErrorMessage, callOptions, createKubernetesClients } from '../clients/kubernetes';
import { createStore } from '../backups/create-store';
import type { BackupStore } from '../backups/store';
import { configSecrets } from '../config/secrets';
import { redactSecretsIn, redactUrl, scrubSecrets, type Logger } from '../logger';
import { coerceError } from '../errors';
import { withTimeout } from '../util/timeout';
import { fetchFailureReason, urlOrigin } from '../util/fetch-errors';
import { lockfilesAnswer } from '../dependencies/packages';

/** How long each server has to answer: long enough for a slow link, short enough that a dead one says so at once. */
export const CONNECT_TIMEOUT_MS = 5_000;

/**
 * The clients' own timeouts are a little longer than the check's deadline:
 * the deadline decides (and says "timed out" the same way for every kind),
 * closing what is still open; theirs only back it up.
 */
const BACKSTOP_MARGIN_MS = 1_000;

/** One server tried: `label` names it (`postgres main`, `smtp email`), `detail` is what answered or why nothing did. */
export interface ConnectOutcome {
  label: string;
  ok: boolean;
  detail: string;
}

interface Check {
  label: string;
  /** Resolves with what answered (`PostgreSQL 16.4`), rejects with why not; `signal` fires at the deadline. */
  probe(signal: AbortSignal): Promise<string>;
}

/** Tries every server `config` names, concurrently; one outcome per server, in the config's order. */
export async function checkConnections(config: Config, log: Logger, timeoutMs = CONNECT_TIMEOUT_MS): Promise<ConnectOutcome[]> {
  const secrets = configSecrets(config);
  const scrub = (text: string) => redactSecretsIn(scrubSecrets(text, secrets));
  return Promise.all(checksOf(config, log, timeoutMs).map((check) => runCheck(check, timeoutMs, scrub)));
}

/** The line check-config prints for an outcome. */
export function outcomeLine(o: ConnectOutcome): string {
  return o.ok ? `${o.label}: ok${o.detail ? ` (${o.detail})` : ''}` : `${o.label}: failed: ${o.detail}`;
}

async function runCheck(check: Check, timeoutMs: number, scrub: (text: string) => string): Promise<ConnectOutcome> {
  const deadline = new AbortController();
  try {
    // The probes bound themselves too; this bound holds even where a library's own timeout would not fire.
    const detail = await withTimeout(check.probe(deadline.signal), timeoutMs, 'the check');
    return { label: check.label, ok: true, detail: scrub(detail) };
  } catch (err) {
    return { label: check.label, ok: false, detail: scrub(coerceError(err).message) };
  } finally {
    deadline.abort(new Error('check finished'));
  }
}

function checksOf(config: Config, log: Logger, timeoutMs: number): Check[] {
  const t = config.targets;
  const backstopMs = timeoutMs + BACKSTOP_MARGIN_MS;
  const limits: SessionLimits = { statementTimeoutMs: timeoutMs, lockTimeoutMs: Math.min(timeoutMs, 1_000) };
  const postgres = (url: string) => (signal: AbortSignal) => postgresAnswers(url, limits, log, signal);
  const redis = (url: string) => (signal: AbortSignal) => redisAnswers(url, backstopMs, signal);
  return [
    { label: 'caretaker state database', probe: postgres(config.state.url) },
    { label: 'caretaker redis', probe: redis(config.redis.url) },
    ...t.postgres.map((p) => ({ label: `postgres ${p.name}`, probe: postgres(p.url) })),
    ...t.redis.map((r) => ({ label: `redis ${r.name}`, probe: redis(r.url) })),
    ...t.queues.map((q) => ({ label: `queues ${q.name}`, probe: async (signal: AbortSignal) => `${await redis(q.redisTarget.url)(signal)}, on redis ${q.redisTarget.name}` })),
    ...t.kubernetes.map((k) => ({ label: `kubernetes ${k.name}`, probe: (signal: AbortSignal) => kubernetesAnswers(k, signal, backstopMs) })),
    ...t.http.map((h) => ({ label: `http ${h.name}`, probe: (signal: AbortSignal) => httpTargetAnswers(h, signal) })),
    ...t.prometheus.map((p) => ({ label: `prometheus ${p.name}`, probe: (signal: AbortSignal) => prometheusAnswers(p, signal) })),
    ...t.backups.map((b) => ({ label: `backups ${b.name}`, probe: (signal: AbortSignal) => backupsAnswer(b, postgres, signal) })),
    ...t.lockfiles.map((l) => ({ label: `lockfiles ${l.name}`, probe: (signal: AbortSignal) => lockfilesAnswer(l, { timeoutMs, signal }) })),
    ...emailChannels(config).map(([name, smtp]) => ({ label: `smtp ${name}`, probe: (signal: AbortSignal) => smtpAnswers(smtp, backstopMs, signal) })),
  ];
}

/** Runs `close` when the deadline passes while the probe is still at work; detach it once done. */
function onDeadline(signal: AbortSignal, close: () => void): () => void {
  signal.addEventListener('abort', close, { once: true });
  return () => signal.removeEventListener('abort', close);
}

// -- PostgreSQL -----------------------------------------------------------------

async function postgresAnswers(url: string, limits: SessionLimits, log: Logger, signal: AbortSignal): Promise<string> {
  const pending = connectClient(url, limits, log);
  const endSession = () => pending.then(endClient, () => undefined);
  // Past the deadline nobody waits for this session: end it (a connect still pending gives up on pg's own connect timeout).
  const detach = onDeadline(signal, () => void endSession());
  try {
    const { rows } = await (await pending).query<{ version: string }>('SELECT version() AS version');
    return /^\S+ \S+/.exec(rows[0]?.version ?? '')?.[0] ?? 'answered';
  } finally {
    detach();
    await endSession();
  }
}

// -- Redis --------------------------------------------------------------------

async function redisAnswers(url: string, backstopMs: number, signal: AbortSignal): Promise<string> {
  const redis: Redis = oneShotRedis(url, backstopMs);
  // connect() only rejects with "Connection is closed."; the client's last error says why (ECONNREFUSED, WRONGPASS).
  const lastError = recordErrors(redis);
  const detach = onDeadline(signal, () => redis.disconnect());
  try {
    await redis.connect();
    await redis.ping();
    return `PONG from ${redisAddress(url)}`;
  } catch (err) {
    throw new Error(`redis ${redisAddress(url)}: ${lastError() ?? coerceError(err).message}`, { cause: err });
  } finally {
    detach();
    redis.disconnect();
  }
}

// -- HTTP and Prometheus --------------------------------------------------------

/** A GET as the tasks send it: never following redirects (a token goes where it was configured for only), credentials as basic auth. */
async function httpGet(url: string, signal: AbortSignal, headers: Record<string, string> = {}): Promise<Response> {
  const target = new URL(url);
  if (target.username || target.password) {
    // fetch refuses URLs with credentials.
    headers = { ...headers, authorization: `Basic ${Buffer.from(`${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}`).toString('base64')}` };
    target.username = '';
    target.password = '';
  }
  try {
    return await fetch(target, { headers: { 'user-agent': 'caretaker check-config', ...headers }, redirect: 'manual', signal });
  } catch (err) {
    throw new Error(`no answer from ${urlOrigin(url)} (${fetchFailureReason(err)})`, { cause: err });
  }
}

/** An answer below 400 (a health endpoint's 200, a redirect the tasks would report) means the URL is right and the server up. */
async function answeredWell(res: Response, where: string): Promise<string> {
  await res.body?.cancel();
  if (res.status >= 400) throw new Error(`${where} answered HTTP ${res.status}${res.status === 401 || res.status === 403 ? ' (check the token)' : ''}`);
  return `HTTP ${res.status}`;
}

async function httpTargetAnswers(t: HttpTarget, signal: AbortSignal): Promise<string> {
  const health = await answeredWell(await httpGet(t.url, signal), 'url');
  if (!t.detailedUrl) return health;
  const headers: Record<string, string> = t.token ? { authorization: `Bearer ${t.token}` } : {};
  const detailed = await answeredWell(await httpGet(t.detailedUrl, signal, headers), 'detailedUrl');
  return `${health}; detailedUrl ${detailed}`;
}

/** The instant query `1`: what metrics-review asks, in its smallest form, so a wrong base URL or token shows. */
async function prometheusAnswers(t: PrometheusTarget, signal: AbortSignal): Promise<string> {
  const base = new URL(t.url);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  const query = new URL('api/v1/query?query=1', base);
  const res = await httpGet(query.toString(), signal, t.token ? { authorization: `Bearer ${t.token}`, accept: 'application/json' } : { accept: 'application/json' });
  if (res.status !== 200) return answeredWell(res, 'the query API');
  const body = (await res.json().catch(() => undefined)) as { status?: unknown } | undefined;
  if (body?.status !== 'success') throw new Error(`${urlOrigin(t.url)} answered 200 but not with the Prometheus API's JSON: is the url the server's base URL?`);
  return 'query API answered';
}

// -- Kubernetes -------------------------------------------------------------------

/** One pod listed in the target's namespace: the API server, the credentials and the Role that k8s-health needs. */
async function kubernetesAnswers(t: KubernetesTarget, signal: AbortSignal, backstopMs: number): Promise<string> {
  const clients = createKubernetesClients(t);
  try {
    await clients.core.listNamespacedPod({ namespace: t.namespace, limit: 1 }, callOptions(signal, backstopMs));
  } catch (err) {
    throw new Error(`${urlOrigin(clients.server)}: ${apiErrorMessage(err)}`, { cause: err });
  }
  return `pods listed in namespace ${t.namespace} on ${urlOrigin(clients.server)}`;
}

// -- Backups ------------------------------------------------------------------------

/**
 * The store (listed), the source database and the scratch server: the
 * three that restore-test needs. The failures are named each, so the
 * operator knows which of the servers to look at.
 */
async function backupsAnswer(t: BackupsTarget, postgres: (url: string) => (signal: AbortSignal) => Promise<string>, signal: AbortSignal): Promise<string> {
  const parts = [
    storeAnswers(t, signal),
    named(`source database (postgres ${t.source.name})`, postgres(t.source.url)(signal)),
    ...(t.scratch ? [named(`scratch server ${redactUrl(t.scratch.url)}`, postgres(t.scratch.url)(signal))] : []),
  ];
  const settled = await Promise.allSettled(parts);
  const failures = settled.flatMap((s) => (s.status === 'rejected' ? [coerceError(s.reason).message] : []));
  if (failures.length > 0) throw new Error(failures.join('; '));
  const [store] = settled as PromiseFulfilledResult<string>[];
  return [store!.value, `source ${t.source.name} ok`, t.scratch ? 'scratch server ok' : 'no scratch server: restore-test cannot run'].join('; ');
}

/** `work`'s failure, prefixed with which server it was. */
async function named(server: string, work: Promise<string>): Promise<string> {
  try {
    return await work;
  } catch (err) {
    throw new Error(`${server}: ${coerceError(err).message}`, { cause: err });
  }
}

async function storeAnswers(t: BackupsTarget, signal: AbortSignal): Promise<string> {
  let store: BackupStore | undefined;
  let detach = () => {};
  try {
    store = createStore(t.store);
    // An S3 list past the deadline is cut with the client's sockets.
    detach = onDeadline(signal, () => store?.destroy?.());
    const objects = await store.list();
    return `store ${store.description}: ${objects.length} file${objects.length === 1 ? '' : 's'}`;
  } catch (err) {
    throw new Error(`store${store ? ` ${store.description}` : ''}: ${coerceError(err).message}`, { cause: err });
  } finally {
    detach();
    store?.destroy?.();
  }
}

// -- SMTP -----------------------------------------------------------------------------

type SmtpSettings = Extract<ChannelConfig, { kind: 'email' }>['smtp'];

/** The email channels (`notifications.email` is the one named `email`): the weekly report and alerts go through them. */
function emailChannels(config: Config): [string, SmtpSettings][] {
  return Object.entries(config.alerting.channels).flatMap(([name, channel]) => (channel.kind === 'email' ? [[name, channel.smtp] as [string, SmtpSettings]] : []));
}

/** nodemailer's verify(): connects, says EHLO, logs in when a user is set; sends nothing. */
async function smtpAnswers(smtp: SmtpSettings, backstopMs: number, signal: AbortSignal): Promise<string> {
  const transport = createSmtpTransport(smtp, { connectMs: backstopMs, socketMs: backstopMs });
  const detach = onDeadline(signal, () => transport.close());
  try {
    await transport.verify();
    return `${smtp.host}:${smtp.port}${smtp.user ? ', logged in' : ''}`;
  } catch (err) {
    throw new Error(`${smtp.host}:${smtp.port}: ${coerceError(err).message}`, { cause: err });
  } finally {
    detach();
    transport.close();
  }
}
