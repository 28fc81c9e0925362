/**
 * security-audit: each per-kind check against the real thing (PostgreSQL
 * roles and grants, two Redis servers, HTTPS servers with chosen
 * certificates, the fake Kubernetes API through a kubeconfig), then the task
 * as the worker runs it, on caretaker's self-target carrying every target.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { Redis } from 'ioredis';
import type { Finding, TaskResult } from '../../src/contract/result';
import type { KubernetesTarget } from '../../src/config/schema';
import { params as auditParams, securityAudit, type SecurityAuditParams } from '../../src/jobs/security-audit';
import { auditPostgres, type PostgresAuditOptions } from '../../src/security/postgres';
import { auditRedis } from '../../src/security/redis';
import { auditTls, type TlsAuditOptions } from '../../src/security/tls';
import { createKubernetesClients } from '../../src/clients/kubernetes';
import { auditKubernetes, METADATA_ONLY_ACCEPT, type KubernetesAuditOptions } from '../../src/security/kubernetes';
import { createTestDatabase, dropRoles, randomRoleName, urlFor, type TestDatabase } from '../support/db';
import { TEST_REDIS_URL } from '../support/env';
import { closedPort, daysFromNow, makeCa, makeCertificate, startTestServer, type TestServer } from '../support/https-server';
import { clusterRoleBinding, deployment, pod, roleBinding, secret, startKubeApi, type KubeApi } from '../support/kube-api';
import { runOn } from '../support/run-on';
import { startRedisServer, type OwnRedis } from '../support/redis-server';
import { freePort } from '../support/ports';

const DAY_MS = 86_400_000;
const daysAgo = (days: number) => new Date(Date.now() - days * DAY_MS);
const never = new AbortController().signal;
const defaults: SecurityAuditParams = auditParams.parse({});
const codes = (findings: Finding[]) => findings.map((f) => f.code);
const about = (findings: Finding[], subject: string) => findings.filter((f) => f.subject === subject);

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ct-security-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// -- PostgreSQL ---------------------------------------------------------------

describe('auditPostgres', () => {
  const superRole = randomRoleName('sa_super');
  const loginRole = randomRoleName('sa_login');
  const expiringRole = randomRoleName('sa_exp');
  const nopwRole = randomRoleName('sa_nopw');
  const mine = [superRole, loginRole, expiringRole, nopwRole];
  let clean: TestDatabase;
  let planted: TestDatabase;
  const sessions: Client[] = [];
  const pgDefaults: PostgresAuditOptions = { allowedSuperusers: ['postgres'], passwordExemptRoles: ['postgres'], requirePasswordExpiry: false };

  async function session(url: string): Promise<Client> {
    const c = new Client({ connectionString: url });
    await c.connect();
    sessions.push(c);
    return c;
  }
  /** Findings about this file's roles only: roles are server-wide, other test files make theirs. */
  const onMine = (findings: Finding[]) => findings.filter((f) => mine.some((r) => f.subject === `role ${r}`));

  beforeAll(async () => {
    clean = await createTestDatabase('security_clean');
    planted = await createTestDatabase('security_planted');
    const c = await session(clean.url);
    await c.query(`CREATE ROLE ${superRole} SUPERUSER LOGIN PASSWORD 'x-${randomBytes(6).toString('hex')}'`);
    await c.query(`CREATE ROLE ${loginRole} LOGIN PASSWORD 'x-${randomBytes(6).toString('hex')}'`);
    await c.query(`CREATE ROLE ${expiringRole} LOGIN PASSWORD 'x-${randomBytes(6).toString('hex')}' VALID UNTIL '2099-01-01'`);
    await c.query(`CREATE ROLE ${nopwRole} LOGIN`);
    const p = await session(planted.url);
    await p.query('GRANT CREATE ON SCHEMA public TO PUBLIC');
    await p.query('CREATE SCHEMA app');
    await p.query('GRANT CREATE ON SCHEMA app TO PUBLIC');
    await p.query(`REVOKE CONNECT ON DATABASE ${p.escapeIdentifier(planted.name)} FROM PUBLIC`);
  });
  afterAll(async () => {
    await Promise.all(sessions.map((s) => s.end().catch(() => undefined)));
    await clean?.drop();
    await planted?.drop();
    await dropRoles(...mine);
  });

  it('reports superusers outside the allow-list, and neither the allowed bootstrap superuser nor ordinary roles', async () => {
    const { findings, metrics } = await auditPostgres(await session(clean.url), pgDefaults);
    const supers = findings.filter((f) => f.code === 'superuser_role');
    expect(supers).toContainEqual({
      severity: 'warning',
      code: 'superuser_role',
      subject: `role ${superRole}`,
      message: `role ${superRole} is a superuser and can log in`,
      suggestion: expect.stringContaining(`ALTER ROLE "${superRole}" NOSUPERUSER;`),
      details: { role: superRole, canLogin: true },
    });
    expect(supers.map((f) => f.subject)).not.toContain('role postgres');
    expect(onMine(supers).map((f) => f.subject)).toEqual([`role ${superRole}`]);
    expect(metrics.superuser_role_count).toBe(supers.length);

    const allowed = await auditPostgres(await session(clean.url), { ...pgDefaults, allowedSuperusers: ['postgres', superRole] });
    expect(onMine(allowed.findings).filter((f) => f.code === 'superuser_role')).toEqual([]);
  });

  it('reports login roles without a password (superuser session), not those with one nor the exempt ones', async () => {
    const { findings, metrics } = await auditPostgres(await session(clean.url), pgDefaults);
    const nopw = findings.filter((f) => f.code === 'login_without_password');
    expect(onMine(nopw)).toEqual([
      expect.objectContaining({ severity: 'warning', subject: `role ${nopwRole}`, details: { role: nopwRole }, suggestion: expect.stringContaining(`ALTER ROLE "${nopwRole}" PASSWORD`) }),
    ]);
    expect(nopw.map((f) => f.subject)).not.toContain('role postgres');
    expect(metrics.login_without_password_count).toBe(nopw.length);
    expect(findings.filter((f) => f.code === 'audit_incomplete')).toEqual([]);

    const exempt = await auditPostgres(await session(clean.url), { ...pgDefaults, passwordExemptRoles: ['postgres', nopwRole] });
    expect(onMine(exempt.findings).filter((f) => f.code === 'login_without_password')).toEqual([]);
  });

  it('reports passwords without expiry as info by default and as warnings when the policy requires expiry', async () => {
    const byDefault = await auditPostgres(await session(clean.url), pgDefaults);
    // The role with VALID UNTIL is fine; the one without a password is reported as such, not twice.
    expect(onMine(byDefault.findings).filter((f) => f.code === 'password_no_expiry').map((f) => [f.subject, f.severity]).sort()).toEqual([
      [`role ${loginRole}`, 'info'],
      [`role ${superRole}`, 'info'],
    ]);

    const required = await auditPostgres(await session(clean.url), { ...pgDefaults, requirePasswordExpiry: true });
    const mineRequired = onMine(required.findings).filter((f) => f.code === 'password_no_expiry');
    expect(mineRequired.map((f) => [f.subject, f.severity]).sort()).toEqual([
      [`role ${loginRole}`, 'warning'],
      [`role ${superRole}`, 'warning'],
    ]);
    expect(mineRequired[0]!.suggestion).toMatch(/VALID UNTIL '\d{4}-\d\d-\d\d'/);
    expect(required.findings.filter((f) => f.subject === 'role postgres')).toEqual([]);
  });

  it('says it cannot check for passwordless roles when the session cannot read pg_authid', async () => {
    const { findings } = await auditPostgres(await session(urlFor(clean.name, loginRole)), pgDefaults);
    expect(findings.filter((f) => f.code === 'login_without_password')).toEqual([]);
    expect(findings.filter((f) => f.code === 'audit_incomplete')).toEqual([
      expect.objectContaining({ severity: 'info', subject: 'pg_authid', details: { check: 'login_without_password' } }),
    ]);
    // The other checks still ran: a non-superuser reads pg_roles.
    expect(onMine(findings).filter((f) => f.code === 'superuser_role')).toHaveLength(1);
  });

  it('finds no PUBLIC CREATE on a fresh database (PostgreSQL 15 revokes it) and reports CONNECT for PUBLIC as info', async () => {
    const { findings, metrics } = await auditPostgres(await session(clean.url), pgDefaults);
    expect(findings.filter((f) => f.code === 'public_schema_create')).toEqual([]);
    expect(metrics.public_schema_create_count).toBe(0);
    expect(about(findings, `database ${clean.name}`)).toEqual([
      {
        severity: 'info',
        code: 'database_connect_public',
        subject: `database ${clean.name}`,
        message: `every role (PUBLIC) may connect to database ${clean.name} (PostgreSQL's default)`,
        suggestion: `REVOKE CONNECT ON DATABASE "${clean.name}" FROM PUBLIC; GRANT CONNECT ON DATABASE "${clean.name}" TO the roles that use it`,
        details: { database: clean.name },
      },
    ]);
  });

  it('reports each schema where PUBLIC may CREATE, and no CONNECT finding once PUBLIC lost it', async () => {
    const { findings, metrics } = await auditPostgres(await session(planted.url), pgDefaults);
    const creates = findings.filter((f) => f.code === 'public_schema_create');
    expect(creates.map((f) => f.subject)).toEqual(['schema app', 'schema public']);
    expect(creates[1]).toMatchObject({
      severity: 'warning',
      suggestion: expect.stringMatching(/^REVOKE CREATE ON SCHEMA "public" FROM PUBLIC;/),
      details: { schema: 'public', owner: 'pg_database_owner' },
    });
    expect(metrics.public_schema_create_count).toBe(2);
    expect(about(findings, `database ${planted.name}`)).toEqual([]);
  });
});

// -- Redis --------------------------------------------------------------------

describe('auditRedis', () => {
  const password = randomBytes(12).toString('hex');
  const aclPassword = randomBytes(12).toString('hex');
  let own: OwnRedis;
  let port: number;
  let admin: Redis;
  let url: string;

  beforeAll(async () => {
    own = await startRedisServer({ password });
    ({ admin, url, port } = own);
    // A user that may do anything but CONFIG, as managed services hand out.
    await admin.call('ACL', 'SETUSER', 'auditor', 'on', `>${aclPassword}`, '~*', '&*', '+@all', '-config');
  });
  afterAll(async () => {
    await own?.stop();
  });
  afterEach(async () => {
    await admin.config('SET', 'protected-mode', 'yes');
  });

  it('raises redis_no_auth on the shared Redis, which answers without credentials', async () => {
    const shared = new Redis(TEST_REDIS_URL, { lazyConnect: true });
    const [, protectedMode] = (await shared.config('GET', 'protected-mode')) as string[];
    shared.disconnect();
    expect(protectedMode).toBe('yes'); // the shared instance's default; the finding below depends on it

    const u = new URL(TEST_REDIS_URL);
    const endpoint = `${u.hostname}:${u.port || 6379}`;
    const { findings, metrics } = await auditRedis(TEST_REDIS_URL, { timeoutMs: 5_000 }, never);
    expect(findings).toEqual([
      expect.objectContaining({ severity: 'warning', code: 'redis_no_auth', subject: endpoint, details: { endpoint, urlHasCredentials: false } }),
    ]);
    expect(metrics).toMatchObject({ redis_no_auth_count: 1, redis_protected_mode_off_count: 0, redis_requires_auth: 0 });
  });

  it('raises nothing on a Redis that requires a password, and never shows the password', async () => {
    const result = await auditRedis(url, { timeoutMs: 5_000 }, never);
    expect(result.findings).toEqual([]);
    expect(result.metrics).toMatchObject({ redis_no_auth_count: 0, redis_requires_auth: 1 });
    expect(JSON.stringify(result)).not.toContain(password);
  });

  it('reports protected-mode off: info while a password is required', async () => {
    await admin.config('SET', 'protected-mode', 'no');
    const { findings } = await auditRedis(url, { timeoutMs: 5_000 }, never);
    expect(findings).toEqual([
      expect.objectContaining({ severity: 'info', code: 'redis_protected_mode_off', subject: `127.0.0.1:${port}`, details: { endpoint: `127.0.0.1:${port}`, protectedMode: 'no' } }),
    ]);
  });

  it('says it cannot read protected-mode when CONFIG is refused, and still checks authentication', async () => {
    const result = await auditRedis(`redis://auditor:${aclPassword}@127.0.0.1:${port}`, { timeoutMs: 5_000 }, never);
    expect(result.findings).toEqual([
      expect.objectContaining({ severity: 'info', code: 'audit_incomplete', subject: `127.0.0.1:${port}`, details: { endpoint: `127.0.0.1:${port}`, check: 'redis_protected_mode_off' } }),
    ]);
    expect(result.findings[0]!.message).toMatch(/NOPERM/);
    expect(JSON.stringify(result)).not.toContain(aclPassword);
  });

  it('throws when the server cannot be reached', async () => {
    const closed = await freePort();
    await expect(auditRedis(`redis://:${password}@127.0.0.1:${closed}`, { timeoutMs: 2_000 }, never)).rejects.toThrow(`cannot reach redis 127.0.0.1:${closed}`);
  });
});

// -- TLS ----------------------------------------------------------------------

describe('auditTls', () => {
  const servers: TestServer[] = [];
  const tlsDefaults: TlsAuditOptions = { warningDays: 21, criticalDays: 7, checkTrust: true, timeoutMs: 5_000 };
  const ca = makeCa();
  async function serve(notAfter: Date, opts: { signedBy?: typeof ca; notBefore?: Date } = {}): Promise<TestServer> {
    const s = await startTestServer({ tls: makeCertificate({ notAfter, ...opts }), routes: { '/health': {} } });
    servers.push(s);
    return s;
  }
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()));
  });

  it('raises tls_expiring as critical for a self-signed certificate expiring in 3 days, and tls_untrusted', async () => {
    const s = await serve(daysFromNow(3));
    const endpoint = `127.0.0.1:${s.port}`;
    const { findings, metrics } = await auditTls([s.url('/health')], tlsDefaults, never);
    expect(codes(findings)).toEqual(['tls_expiring', 'tls_untrusted']);
    expect(findings[0]).toMatchObject({
      severity: 'critical',
      subject: endpoint,
      message: expect.stringMatching(new RegExp(`^the certificate of ${endpoint} expires in 2 days \\(\\d{4}-\\d\\d-\\d\\d; critical below 7 days\\)$`)),
      details: { endpoint, daysLeft: 2, selfSigned: true, authorized: false },
    });
    expect(findings[1]).toMatchObject({ severity: 'warning', subject: endpoint, details: { authorizationError: 'DEPTH_ZERO_SELF_SIGNED_CERT' } });
    expect(metrics).toMatchObject({ tls_expiring_count: 1, tls_untrusted_count: 1, tls_endpoints_checked: 1 });
  });

  it('raises a warning at 10 days left, and critical once expired (without tls_untrusted on top)', async () => {
    const soon = await serve(daysFromNow(10), { signedBy: ca });
    const expired = await serve(daysAgo(1), { signedBy: ca, notBefore: daysAgo(30) });
    const { findings } = await auditTls([soon.url('/health'), expired.url('/health')], { ...tlsDefaults, extraCa: ca.cert }, never);
    expect(findings.map((f) => [f.code, f.subject, f.severity])).toEqual([
      ['tls_expiring', `127.0.0.1:${soon.port}`, 'warning'],
      ['tls_expiring', `127.0.0.1:${expired.port}`, 'critical'],
    ]);
    expect(findings[0]!.details).toMatchObject({ daysLeft: 9, authorized: true });
    expect(findings[1]!.message).toMatch(/expired on \d{4}-\d\d-\d\d$/);
  });

  it('gives no finding for a trusted certificate with months left; checks a host:port once and skips http URLs', async () => {
    const s = await serve(daysFromNow(90), { signedBy: ca });
    const result = await auditTls([s.url('/health'), s.url('/health/detailed'), 'http://127.0.0.1:1/health'], { ...tlsDefaults, extraCa: ca.cert }, never);
    expect(result.findings).toEqual([]);
    expect(result.metrics).toMatchObject({ tls_expiring_count: 0, tls_untrusted_count: 0, tls_endpoints_checked: 1, tls_endpoints_plain_http: 1 });
  });

  it('does not report trust when checkTrust is off', async () => {
    const s = await serve(daysFromNow(90));
    expect((await auditTls([s.url('/health')], { ...tlsDefaults, checkTrust: false }, never)).findings).toEqual([]);
  });

  it('reports an endpoint it cannot reach as audit_incomplete', async () => {
    const port = await closedPort();
    const { findings, metrics } = await auditTls([`https://127.0.0.1:${port}/health`], tlsDefaults, never);
    expect(findings).toEqual([
      expect.objectContaining({ severity: 'warning', code: 'audit_incomplete', subject: `127.0.0.1:${port}`, details: { endpoint: `127.0.0.1:${port}`, check: 'tls_expiring' } }),
    ]);
    expect(findings[0]!.message).toMatch(/ECONNREFUSED/);
    expect(metrics.tls_endpoints_checked).toBe(0);
  });
});

// -- Kubernetes ---------------------------------------------------------------

const NS = 'shop';
/** A value that must never leave the API server. */
const SECRET_VALUE = `sk_live_${randomBytes(12).toString('hex')}`;
const nonRoot = { runAsNonRoot: true, runAsUser: 10001 };

/** A namespace with nothing to report, even with every check on. */
function healthy(api: KubeApi): void {
  api.addDeployment(deployment({ name: 'web', namespace: NS, replicas: 2, containers: [{ name: 'app', securityContext: nonRoot }] }));
  const bare = pod({ name: 'batch-1', namespace: NS });
  bare.spec!.securityContext = { runAsNonRoot: true }; // pod level covers its containers
  api.addPod(bare);
  api.addSecret(secret({ name: 'db-credentials', namespace: NS, data: { password: SECRET_VALUE }, createdAt: daysAgo(10) }));
  // Rotated in place 10 days ago: creationTimestamp is old, the data is not.
  api.addSecret(secret({ name: 'api-key', namespace: NS, data: { key: SECRET_VALUE }, createdAt: daysAgo(400), dataWrittenAt: daysAgo(10), lastApplied: true }));
  // Never rotated by us: service-account tokens and Helm's release records.
  api.addSecret(secret({ name: 'web-token', namespace: NS, type: 'kubernetes.io/service-account-token', annotations: { 'kubernetes.io/service-account.name': 'web' }, data: { token: SECRET_VALUE }, createdAt: daysAgo(500) }));
  api.addSecret(secret({ name: 'sh.helm.release.v1.web.v3', namespace: NS, type: 'helm.sh/release.v1', labels: { name: 'web', owner: 'helm', status: 'deployed', version: '3' }, data: { release: 'H4sI' }, createdAt: daysAgo(300) }));
  // An old secret of another namespace is not ours.
  api.addSecret(secret({ name: 'legacy', namespace: 'other', data: { k: 'v' }, createdAt: daysAgo(900) }));
  api.addRoleBinding(roleBinding({ name: 'web-view', namespace: NS, roleRef: { kind: 'ClusterRole', name: 'view' }, subjects: [{ kind: 'ServiceAccount', name: 'web' }] }));
  api.addClusterRoleBinding(clusterRoleBinding({ name: 'cluster-admin', roleRef: { kind: 'ClusterRole', name: 'cluster-admin' }, subjects: [{ kind: 'Group', name: 'system:masters' }] }));
  api.addClusterRoleBinding(clusterRoleBinding({ name: 'other-admin', roleRef: { kind: 'ClusterRole', name: 'cluster-admin' }, subjects: [{ kind: 'ServiceAccount', name: 'bot', namespace: 'other' }] }));
}

/** Every Kubernetes code once (plus a second cluster-admin route). */
function broken(api: KubeApi): void {
  api.addSecret(secret({ name: 'stripe-api-key', namespace: NS, data: { apiKey: SECRET_VALUE }, createdAt: daysAgo(120), lastApplied: true }));
  api.addClusterRoleBinding(clusterRoleBinding({ name: 'ci-admin', roleRef: { kind: 'ClusterRole', name: 'cluster-admin' }, subjects: [{ kind: 'ServiceAccount', name: 'deployer', namespace: NS }] }));
  api.addRoleBinding(roleBinding({ name: 'ops-admin', namespace: NS, roleRef: { kind: 'ClusterRole', name: 'cluster-admin' }, subjects: [{ kind: 'ServiceAccount', name: 'ops' }] }));
  api.addDeployment(deployment({ name: 'node-agent', namespace: NS, replicas: 1, containers: [{ name: 'agent', securityContext: { ...nonRoot, privileged: true } }] }));
  const root = pod({ name: 'debug', namespace: NS, containers: [{ name: 'shell', securityContext: { runAsUser: 0 } }] });
  root.spec!.serviceAccountName = 'deployer';
  api.addPod(root);
  const host = pod({ name: 'sniffer', namespace: NS, containers: [{ name: 'tcpdump', securityContext: nonRoot }] });
  host.spec!.hostNetwork = true;
  api.addPod(host);
}

describe('auditKubernetes', () => {
  let api: KubeApi;
  let target: KubernetesTarget;
  const k8sAll: KubernetesAuditOptions = { checkSecrets: true, secretRotationDays: 90, ignoreSecrets: [], checkRbac: true, checkHostNamespaces: true, timeoutMs: 5_000 };

  beforeEach(async () => {
    api = await startKubeApi();
    target = { name: 'prod', namespace: NS, deployments: [], kubeconfig: api.writeKubeconfig(dir), allow: { podKillNamespaces: [] }, tasks: {} };
  });
  afterEach(async () => {
    await api.close();
  });

  it('finds nothing in a healthy namespace with every check on', async () => {
    healthy(api);
    const { findings, metrics } = await auditKubernetes(target, k8sAll, never, createKubernetesClients);
    expect(findings).toEqual([]);
    expect(metrics).toMatchObject({
      kubernetes_pods_checked: 3,
      kubernetes_secrets_checked: 2,
      kubernetes_secrets_skipped: 2,
      kubernetes_rolebindings_checked: 1,
      kubernetes_clusterrolebindings_checked: 2,
      privileged_pod_count: 0,
      root_pod_count: 0,
      secret_rotation_due_count: 0,
      cluster_admin_binding_count: 0,
    });
  });

  it('raises each code in a broken namespace, naming the object, and never returns a secret value', async () => {
    healthy(api);
    broken(api);
    const result = await auditKubernetes(target, k8sAll, never, createKubernetesClients);
    const { findings } = result;
    expect(findings.map((f) => [f.code, f.subject, f.severity])).toEqual([
      ['privileged_pod', `${NS}/deployment/node-agent`, 'critical'],
      ['root_pod', `${NS}/pod/debug`, 'warning'],
      ['host_namespace_pod', `${NS}/pod/sniffer`, 'warning'],
      ['secret_rotation_due', `${NS}/secret/stripe-api-key`, 'warning'],
      ['cluster_admin_binding', `${NS}/serviceaccount/ops`, 'warning'],
      ['cluster_admin_binding', `${NS}/serviceaccount/deployer`, 'critical'],
    ]);
    expect(findings[1]).toMatchObject({ message: `pod debug (1 pod) runs containers as root (shell)`, details: { containers: [{ container: 'shell', reason: 'runAsUser: 0' }] } });
    expect(findings[3]).toMatchObject({
      message: 'secret stripe-api-key was last written 120 days ago (rotation age 90 days)',
      details: { namespace: NS, secret: 'stripe-api-key', ageDays: 120, basis: 'managedFields', rotationDays: 90 },
    });
    expect(findings[5]).toMatchObject({
      message: `service account ${NS}/deployer is bound to ClusterRole cluster-admin by clusterrolebinding ci-admin: a compromised pod running as it controls the whole cluster`,
      details: { bindingKind: 'ClusterRoleBinding', binding: 'ci-admin', usedByPods: ['debug'] },
    });
    expect(result.metrics).toMatchObject({ privileged_pod_count: 1, root_pod_count: 1, host_namespace_pod_count: 1, secret_rotation_due_count: 1, cluster_admin_binding_count: 2 });

    const json = JSON.stringify(result);
    expect(json).not.toContain(SECRET_VALUE);
    expect(json).not.toContain(Buffer.from(SECRET_VALUE).toString('base64'));
    expect(json).not.toContain('last-applied-configuration');
    // The API server was asked for metadata only.
    const secretRequests = api.requests.filter((r) => r.path === `/api/v1/namespaces/${NS}/secrets`);
    expect(secretRequests.map((r) => r.accept)).toEqual([METADATA_ONLY_ACCEPT]);
  });

  it('reports pods without runAsNonRoot as may-run-as-root, grouped by deployment', async () => {
    api.addDeployment(deployment({ name: 'legacy', namespace: NS, replicas: 2 }));
    const { findings } = await auditKubernetes(target, { ...k8sAll, checkSecrets: false, checkRbac: false }, never, createKubernetesClients);
    expect(findings).toEqual([
      expect.objectContaining({
        code: 'root_pod',
        subject: `${NS}/deployment/legacy`,
        message: 'deployment legacy (2 pods) may run containers as root (app)',
        details: expect.objectContaining({ workload: 'Deployment/legacy', podCount: 2 }),
      }),
    ]);
  });

  it('reports a cluster-admin binding of every service account of the namespace (group subject)', async () => {
    api.addClusterRoleBinding(clusterRoleBinding({ name: 'lazy', roleRef: { kind: 'ClusterRole', name: 'cluster-admin' }, subjects: [{ kind: 'Group', name: `system:serviceaccounts:${NS}` }] }));
    const { findings } = await auditKubernetes(target, { ...k8sAll, checkSecrets: false }, never, createKubernetesClients);
    expect(findings.map((f) => [f.code, f.subject, f.severity])).toEqual([['cluster_admin_binding', `group system:serviceaccounts:${NS}`, 'critical']]);
  });

  it('makes no secrets or RBAC request at all when checkSecrets and checkRbac are off (the defaults)', async () => {
    healthy(api);
    broken(api);
    const { findings } = await auditKubernetes(target, { ...k8sAll, checkSecrets: defaults.checkSecrets, checkRbac: defaults.checkRbac }, never, createKubernetesClients);
    expect(codes(findings)).toEqual(['privileged_pod', 'root_pod', 'host_namespace_pod']);
    expect(api.requests.map((r) => r.path)).toEqual([`/api/v1/namespaces/${NS}/pods`]);
  });

  it('skips host namespaces when checkHostNamespaces is off, and ignored secrets', async () => {
    broken(api);
    const { findings } = await auditKubernetes(target, { ...k8sAll, checkHostNamespaces: false, ignoreSecrets: ['stripe-api-key'] }, never, createKubernetesClients);
    expect(codes(findings)).not.toContain('host_namespace_pod');
    expect(codes(findings)).not.toContain('secret_rotation_due');
  });

  it('uses the creation time when managedFields are missing, and never returns values even from a server that ignores the metadata-only request', async () => {
    api.addSecret(secret({ name: 'old', namespace: NS, data: { password: SECRET_VALUE }, createdAt: daysAgo(95), noManagedFields: true, lastApplied: true }));
    // A server (or proxy) that answers the full SecretList whatever the Accept header says.
    api.route('GET', new RegExp(`^/api/v1/namespaces/${NS}/secrets$`), () => ({ json: { kind: 'SecretList', apiVersion: 'v1', metadata: {}, items: api.secrets } }));
    const result = await auditKubernetes(target, { ...k8sAll, checkRbac: false }, never, createKubernetesClients);
    expect(result.findings.filter((f) => f.code === 'secret_rotation_due')).toEqual([
      expect.objectContaining({ subject: `${NS}/secret/old`, details: expect.objectContaining({ ageDays: 95, basis: 'creationTimestamp' }) }),
    ]);
    const json = JSON.stringify(result);
    expect(json).not.toContain(SECRET_VALUE);
    expect(json).not.toContain(Buffer.from(SECRET_VALUE).toString('base64'));
  });

  it('reports a refused check as audit_incomplete and keeps the others', async () => {
    broken(api);
    api.forbid('list', 'clusterrolebindings');
    api.forbid('list', 'secrets', NS);
    const { findings } = await auditKubernetes(target, k8sAll, never, createKubernetesClients);
    expect(findings.filter((f) => f.code === 'audit_incomplete').map((f) => [f.subject, f.severity])).toEqual([
      [`${NS}/secrets`, 'warning'],
      [`${NS}/clusterrolebindings`, 'warning'],
    ]);
    expect(findings.find((f) => f.subject === `${NS}/clusterrolebindings`)!.message).toMatch(/^cannot list clusterrolebindings: 403: clusterrolebindings.rbac.authorization.k8s.io is forbidden/);
    expect(findings.filter((f) => f.code === 'cluster_admin_binding').map((f) => f.subject)).toEqual([`${NS}/serviceaccount/ops`]);
    expect(codes(findings)).toContain('privileged_pod');
  });

  it('throws when the API refuses everything (bad credentials)', async () => {
    const bad = { ...target, kubeconfig: api.writeKubeconfig(dir, { token: 'wrong', fileName: 'bad.yaml' }) };
    await expect(auditKubernetes(bad, k8sAll, never, createKubernetesClients)).rejects.toThrow(/cannot list pods in shop: 401/);
  });
});

// -- the task -----------------------------------------------------------------

describe('security-audit task', () => {
  let api: KubeApi;
  let db: TestDatabase;
  let https: TestServer;

  beforeAll(async () => {
    db = await createTestDatabase('security_task');
    api = await startKubeApi();
    https = await startTestServer({ tls: makeCertificate({ notAfter: daysFromNow(3) }), routes: { '/health': {} } });
  });
  afterAll(async () => {
    await api?.close();
    await https?.close();
    await db?.drop();
  });

  const kube = () => ({ name: 'prod', namespace: NS, kubeconfig: api.writeKubeconfig(dir, { fileName: 'task.yaml' }) });

  it('audits every configured target in one run, prefixing subjects with the target name', async () => {
    broken(api);
    const result = await runOn(securityAudit, 'caretaker', {
      postgres: [{ name: 'main', url: db.url }],
      redis: [{ name: 'cache', url: TEST_REDIS_URL }],
      // Two URLs on one https endpoint and a plain-http one: one TLS endpoint to audit.
      http: [{ name: 'api', url: https.url('/health'), detailedUrl: https.url('/health/detailed') }, { name: 'plain', url: 'http://127.0.0.1:9/health' }],
      kubernetes: [kube()],
    }, { checkSecrets: true, checkRbac: true });
    expect(result.status).toBe('critical');
    const u = new URL(TEST_REDIS_URL);
    const subjects = result.findings.map((f) => f.subject);
    expect(subjects).toContain(`main/database ${db.name}`);
    expect(subjects).toContain(`cache/${u.hostname}:${u.port || 6379}`);
    expect(subjects).toContain(`127.0.0.1:${https.port}`);
    expect(subjects).toContain(`prod/${NS}/deployment/node-agent`);
    expect(result.findings.find((f) => f.code === 'redis_no_auth')!.details).toMatchObject({ target: 'cache', targetKind: 'redis' });
    expect(result.metrics).toMatchObject({
      security_targets_audited: 4,
      security_targets_failed: 0,
      redis_no_auth_count: 1,
      tls_expiring_count: 1,
      privileged_pod_count: 1,
      secret_rotation_due_count: 1,
      cluster_admin_binding_count: 2,
    });
    expect(result.summary).toMatch(/^audited 1 postgres, 1 redis, 1 TLS endpoint, 1 kubernetes: [1-9]\d* critical, \d+ warnings? \(.*privileged_pod 1.*\)$/);
    expect(JSON.stringify(result)).not.toContain(SECRET_VALUE);
  });

  it("reports CONNECT for PUBLIC on the target's own database only, and on the server's other databases with allDatabases: true", async () => {
    const others = [await createTestDatabase('security_tenant_a'), await createTestDatabase('security_tenant_b')];
    try {
      const connectSubjects = (r: TaskResult) => r.findings.filter((f) => f.code === 'database_connect_public').map((f) => f.subject);
      const own = await runOn(securityAudit, 'caretaker', { postgres: [{ name: 'main', url: db.url }] }, { kinds: ['postgres'] });
      // Every database on the server allows PUBLIC to connect (the default), yet only the target's own is reported.
      expect(connectSubjects(own)).toEqual([`main/database ${db.name}`]);
      expect(own.metrics.database_connect_public_count).toBe(1);

      const all = await runOn(securityAudit, 'caretaker', { postgres: [{ name: 'main', url: db.url, allDatabases: true }] }, { kinds: ['postgres'] });
      expect(connectSubjects(all)).toEqual(expect.arrayContaining([db, ...others].map((d) => `main/database ${d.name}`)));
    } finally {
      await Promise.all(others.map((d) => d.drop()));
    }
  });

  it('goes on past a target it cannot reach, and is an error only when it could audit none', async () => {
    const down = `redis://:${randomBytes(6).toString('hex')}@127.0.0.1:${await closedPort()}`;
    const partial = await runOn(securityAudit, 'caretaker', { redis: [{ name: 'down', url: down }], http: [{ name: 'api', url: https.url('/health') }] }, { tlsCheckTrust: false });
    expect(partial.status).toBe('critical');
    expect(partial.findings.filter((f) => f.code === 'audit_incomplete')).toEqual([
      expect.objectContaining({ severity: 'warning', subject: 'down', message: expect.stringMatching(/^cannot audit redis target down: cannot reach redis 127\.0\.0\.1:\d+/) }),
    ]);
    expect(partial.metrics).toMatchObject({ security_targets_audited: 1, security_targets_failed: 1, audit_incomplete_count: 1 });
    expect(partial.summary).toMatch(/; 1 target not audited$/);
    expect(JSON.stringify(partial)).not.toContain(new URL(down).password);

    const none = await runOn(securityAudit, 'caretaker', { redis: [{ name: 'down', url: down }] });
    expect(none.status).toBe('error');
    expect(none.summary).toMatch(/no target could be audited: redis down: cannot reach redis/);
  });

  it('audits only the kinds asked for, and has nothing to do without targets', async () => {
    const tlsOnly = await runOn(securityAudit, 'caretaker', { redis: [{ name: 'cache', url: TEST_REDIS_URL }], http: [{ name: 'api', url: https.url('/health') }] }, { kinds: ['tls'], tlsCheckTrust: false });
    expect(codes(tlsOnly.findings)).toEqual(['tls_expiring']);
    const nothing = await runOn(securityAudit, 'caretaker', {});
    expect(nothing).toMatchObject({ status: 'ok', findings: [] });
    expect(nothing.summary).toMatch(/^nothing to audit/);
  });

  it('reads a private CA for tls_untrusted from tlsCaFile', async () => {
    const ca = makeCa();
    const trusted = await startTestServer({ tls: makeCertificate({ notAfter: daysFromNow(60), signedBy: ca }), routes: { '/health': {} } });
    try {
      const caFile = join(dir, 'ca.pem');
      writeFileSync(caFile, ca.cert);
      const targets = { http: [{ name: 'api', url: trusted.url('/health') }] };
      expect(codes((await runOn(securityAudit, 'caretaker', targets)).findings)).toEqual(['tls_untrusted']);
      expect((await runOn(securityAudit, 'caretaker', targets, { tlsCaFile: caFile })).findings).toEqual([]);
    } finally {
      await trusted.close();
    }
  });

  it('rejects a critical threshold above the warning one', () => {
    expect(auditParams.safeParse({ tlsWarningDays: 5, tlsCriticalDays: 7 }).success).toBe(false);
  });
});
