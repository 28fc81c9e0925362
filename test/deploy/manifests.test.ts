/**
 * The deployment files, checked without a cluster or a Docker engine: every
 * manifest under k8s/ validates against the Kubernetes API schemas
 * (kubernetes-models), runs locked down, and grants nothing beyond the RBAC
 * table below; the configs they mount validate with caretaker's own loader;
 * the Dockerfile and docker-compose.yml say what they must.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import type { IContainer } from 'kubernetes-models/v1/Container' with { 'resolution-mode': 'import' };
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec' with { 'resolution-mode': 'import' };
import type { IPolicyRule } from 'kubernetes-models/rbac.authorization.k8s.io/v1/PolicyRule' with { 'resolution-mode': 'import' };
import type { IRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding' with { 'resolution-mode': 'import' };
import { loadConfig, type Env } from '../../src/config/load';
import type { Config } from '../../src/config/schema';
import { ConfigError } from '../../src/errors';
import { TASKS } from '../../src/jobs';

const ROOT = resolve(__dirname, '../..');
const K8S = join(ROOT, 'k8s');
const NAMESPACE = 'caretaker';
const MONITORED = 'auditron';
const DRILL = 'auditron-staging';
const PLACEHOLDER = 'REPLACE_ME';

/** What the RBAC may grant, all of it: (namespace or * for cluster-wide, apiGroup, resource, verbs), and by which Role. */
const ALLOWED: { role: string; ns: string; group: string; resource: string; verbs: string[]; optIn: boolean }[] = [
  // k8s-health, error-logs, security-audit's pod checks: read only, in the monitored namespace (no task watches).
  { role: 'Role/caretaker-monitor', ns: MONITORED, group: '', resource: 'pods', verbs: ['get', 'list'], optIn: false },
  { role: 'Role/caretaker-monitor', ns: MONITORED, group: '', resource: 'pods/log', verbs: ['get'], optIn: false },
  { role: 'Role/caretaker-monitor', ns: MONITORED, group: '', resource: 'events', verbs: ['get', 'list'], optIn: false },
  { role: 'Role/caretaker-monitor', ns: MONITORED, group: 'apps', resource: 'deployments', verbs: ['get', 'list'], optIn: false },
  { role: 'Role/caretaker-monitor', ns: MONITORED, group: 'autoscaling', resource: 'horizontalpodautoscalers', verbs: ['get', 'list'], optIn: false },
  { role: 'Role/caretaker-monitor', ns: MONITORED, group: 'metrics.k8s.io', resource: 'pods', verbs: ['get', 'list'], optIn: false },
  // dr-drill's pod kill: the only delete, in the drill namespace only.
  { role: 'Role/caretaker-dr-drill', ns: DRILL, group: 'apps', resource: 'deployments', verbs: ['get'], optIn: false },
  { role: 'Role/caretaker-dr-drill', ns: DRILL, group: '', resource: 'pods', verbs: ['list', 'delete'], optIn: false },
  // security-audit, opt-in: listing secrets returns their values too; clusterrolebindings are the cluster's privilege map.
  { role: 'Role/caretaker-secret-age', ns: MONITORED, group: '', resource: 'secrets', verbs: ['list'], optIn: true },
  { role: 'Role/caretaker-bindings-read', ns: MONITORED, group: 'rbac.authorization.k8s.io', resource: 'rolebindings', verbs: ['list'], optIn: true },
  { role: 'ClusterRole/caretaker-cluster-admin-check', ns: '*', group: 'rbac.authorization.k8s.io', resource: 'clusterrolebindings', verbs: ['list'], optIn: true },
];

/** The kinds k8s/ may hold, and the kubernetes-models class of each. */
const MODELS: Record<string, string> = {
  'v1/Namespace': 'kubernetes-models/v1/Namespace',
  'v1/ConfigMap': 'kubernetes-models/v1/ConfigMap',
  'v1/Secret': 'kubernetes-models/v1/Secret',
  'v1/ServiceAccount': 'kubernetes-models/v1/ServiceAccount',
  'v1/Service': 'kubernetes-models/v1/Service',
  'apps/v1/Deployment': 'kubernetes-models/apps/v1/Deployment',
  'autoscaling/v2/HorizontalPodAutoscaler': 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler',
  'rbac.authorization.k8s.io/v1/Role': 'kubernetes-models/rbac.authorization.k8s.io/v1/Role',
  'rbac.authorization.k8s.io/v1/RoleBinding': 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding',
  'rbac.authorization.k8s.io/v1/ClusterRole': 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole',
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding',
};
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding']);

/** Plausible values for the Secret's keys: the config must validate with exactly these. */
const SAMPLE_ENV: Env = {
  REDIS_URL: 'redis://:pw@redis.caretaker.svc:6379',
  CARETAKER_STATE_URL: 'postgres://caretaker:pw@state-db:5432/caretaker',
  CARETAKER_ADMIN: 'admin:secret',
  CARETAKER_VIEWER: 'viewer:secret',
  AUDITRON_DATABASE_URL: 'postgres://caretaker:pw@auditron-db:5432/auditron',
  AUDITRON_REDIS_URL: 'redis://:pw@auditron-redis:6379',
  SCRATCH_DATABASE_URL: 'postgres://scratch:pw@scratch-db:5432/postgres',
};

interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}
interface Manifest {
  file: string; // relative to k8s/
  obj: KubeObject;
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? yamlFiles(join(dir, e.name)) : /\.ya?ml$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

function parseYamlFile(path: string): unknown[] {
  return parseAllDocuments(readFileSync(path, 'utf8')).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${path}: ${doc.errors.map((e) => e.message).join('; ')}`);
    return doc.toJS();
  }).filter((d) => d !== null);
}

const KUSTOMIZATION = 'kustomization.yaml';
const manifests: Manifest[] = yamlFiles(K8S)
  .filter((path) => relative(K8S, path) !== KUSTOMIZATION)
  .flatMap((path) => parseYamlFile(path).map((obj) => ({ file: relative(K8S, path), obj: obj as KubeObject })));

const id = (o: KubeObject) => `${o.kind}/${o.metadata?.name}`;
const ofKind = (kind: string) => manifests.filter((m) => m.obj.kind === kind);
const one = (kind: string, name: string): KubeObject => {
  const found = manifests.filter((m) => m.obj.kind === kind && m.obj.metadata.name === name);
  expect(found).toHaveLength(1);
  return found[0]!.obj;
};

/**
 * kubernetes-models is ESM-only, and its package exports have only an
 * "import" condition: jest's CommonJS runtime can neither resolve nor load
 * it. So its classes' validate() runs in a child node, on the same objects.
 */
const VALIDATOR = `
import { readFileSync } from 'node:fs';
const jobs = JSON.parse(readFileSync(0, 'utf8'));
const out = [];
for (const { module, kind, obj } of jobs) {
  try {
    const Model = (await import(module))[kind];
    new Model(obj).validate();
    out.push(null);
  } catch (err) {
    out.push(String(err && err.message));
  }
}
process.stdout.write(JSON.stringify(out));
`;
function validateWithModels(objects: KubeObject[]): (string | null)[] {
  const jobs = objects.map((obj) => ({ module: MODELS[`${obj.apiVersion}/${obj.kind}`], kind: obj.kind, obj }));
  const stdout = execFileSync(process.execPath, ['--input-type=module', '-e', VALIDATOR], { cwd: ROOT, input: JSON.stringify(jobs), encoding: 'utf8' });
  return JSON.parse(stdout) as (string | null)[];
}

function podSpec(deployment: KubeObject): IPodSpec {
  return (deployment.spec as { template: { spec: IPodSpec } }).template.spec;
}
function containersOf(deployment: KubeObject): IContainer[] {
  const spec = podSpec(deployment);
  return [...(spec.initContainers ?? []), ...spec.containers];
}
/** The `--role` a Deployment's containers start caretaker with. */
function roleOf(deployment: KubeObject): string {
  const args = podSpec(deployment).containers[0]!.args ?? [];
  expect(args.slice(0, 2)).toEqual(['start', '--role']);
  return args[2]!;
}
const deploymentFor = (role: string) => {
  const found = ofKind('Deployment').filter((m) => roleOf(m.obj) === role);
  expect(found).toHaveLength(1);
  return found[0]!.obj;
};

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'caretaker-deploy-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** caretaker's loader on a config text, as `--config FILE` would read it. */
function loadConfigText(text: string, env: Env): Config {
  const path = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, text);
  return loadConfig({ path, env, registry: TASKS });
}
const configMapText = () => (one('ConfigMap', 'caretaker-config').data as Record<string, string>)['caretaker.yaml']!;
const secretValues = () => {
  const secret = one('Secret', 'caretaker-env');
  const data = Object.fromEntries(Object.entries((secret.data ?? {}) as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
  return { ...data, ...((secret.stringData ?? {}) as Record<string, string>) };
};

describe('k8s/ manifests', () => {
  test('every document is a known kind and validates with kubernetes-models', () => {
    expect(manifests.length).toBeGreaterThan(10);
    for (const { file, obj } of manifests) {
      expect([file, MODELS[`${obj.apiVersion}/${obj.kind}`] ? 'known' : `unexpected ${obj.apiVersion} ${obj.kind}`]).toEqual([file, 'known']);
    }
    const errors = validateWithModels(manifests.map((m) => m.obj));
    expect(manifests.map((m, i) => [m.file, id(m.obj), errors[i]])).toEqual(manifests.map((m) => [m.file, id(m.obj), null]));
  });

  test('the validation catches a broken object (the check above can fail)', () => {
    const broken = structuredClone(deploymentFor('web'));
    const container = podSpec(broken).containers[0] as unknown as Record<string, unknown>;
    container.resources = { limits: { cpu: 'lots' } };
    container.securityContext = { runAsNonRoot: 'yes' };
    const [error] = validateWithModels([broken]);
    expect(error).toContain('resources/limits/cpu');
    expect(error).toContain('securityContext/runAsNonRoot must be boolean');
  });

  test('every object is in its namespace: caretaker, except the RBAC of the namespaces it reads', () => {
    const rbacNamespace: Record<string, string> = {
      'Role/caretaker-monitor': MONITORED, 'RoleBinding/caretaker-monitor': MONITORED,
      'Role/caretaker-dr-drill': DRILL, 'RoleBinding/caretaker-dr-drill': DRILL,
      'Role/caretaker-secret-age': MONITORED, 'RoleBinding/caretaker-secret-age': MONITORED,
      'Role/caretaker-bindings-read': MONITORED, 'RoleBinding/caretaker-bindings-read': MONITORED,
    };
    for (const { obj } of manifests) {
      const expected = CLUSTER_SCOPED.has(obj.kind) ? undefined : (rbacNamespace[id(obj)] ?? NAMESPACE);
      expect([id(obj), obj.metadata.namespace]).toEqual([id(obj), expected]);
    }
    expect(ofKind('Namespace').map((m) => m.obj.metadata.name)).toEqual([NAMESPACE]);
    expect(ofKind('Namespace')[0]!.obj.metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe('restricted');
  });

  test('every container runs as the image\'s non-root user, read-only, without privileges', () => {
    const imageUid = Number(dockerRuntimeUser().split(':')[0]);
    expect(ofKind('Deployment')).toHaveLength(3);
    for (const { obj } of ofKind('Deployment')) {
      const pod = podSpec(obj);
      expect([id(obj), pod.securityContext?.runAsNonRoot, pod.securityContext?.runAsUser, pod.securityContext?.seccompProfile?.type]).toEqual([id(obj), true, imageUid, 'RuntimeDefault']);
      expect([id(obj), pod.hostNetwork ?? false, pod.hostPID ?? false, pod.hostIPC ?? false]).toEqual([id(obj), false, false, false]);
      expect((pod.volumes ?? []).filter((v) => v.hostPath)).toEqual([]);
      for (const c of containersOf(obj)) {
        const sc = c.securityContext ?? {};
        expect([id(obj), c.name, sc.runAsNonRoot ?? pod.securityContext?.runAsNonRoot, sc.runAsUser ?? pod.securityContext?.runAsUser, sc.readOnlyRootFilesystem, sc.allowPrivilegeEscalation, sc.privileged ?? false, sc.capabilities?.drop, sc.capabilities?.add ?? []])
          .toEqual([id(obj), c.name, true, imageUid, true, false, false, ['ALL'], []]);
        // A read-only root: scratch space is an emptyDir on /tmp.
        const tmp = c.volumeMounts?.find((m) => m.mountPath === '/tmp');
        expect([id(obj), pod.volumes?.find((v) => v.name === tmp?.name)?.emptyDir !== undefined]).toEqual([id(obj), true]);
        const set = (v: unknown) => (v === undefined ? 'missing' : 'set');
        const { requests, limits } = c.resources ?? {};
        expect([id(obj), set(requests?.cpu), set(requests?.memory), set(limits?.cpu), set(limits?.memory)]).toEqual([id(obj), 'set', 'set', 'set', 'set']);
      }
    }
  });

  test('only the worker mounts a service account token, the caretaker one', () => {
    expect(one('ServiceAccount', 'caretaker').automountServiceAccountToken).toBe(false);
    for (const { obj } of ofKind('Deployment')) {
      const pod = podSpec(obj);
      const worker = roleOf(obj) === 'worker';
      expect([roleOf(obj), pod.automountServiceAccountToken, pod.serviceAccountName]).toEqual([roleOf(obj), worker, worker ? 'caretaker' : undefined]);
    }
  });

  test('one Deployment per role: one scheduler, workers under an HPA on CPU, the web role probed on /health behind its Service, the liveness of every role on /livez', () => {
    expect(ofKind('Deployment').map((m) => roleOf(m.obj)).sort()).toEqual(['scheduler', 'web', 'worker']);
    const scheduler = deploymentFor('scheduler');
    expect((scheduler.spec as { replicas: number }).replicas).toBe(1);

    const worker = deploymentFor('worker');
    expect((worker.spec as { replicas?: number }).replicas).toBeUndefined(); // the HPA owns it
    const hpas = ofKind('HorizontalPodAutoscaler').map((m) => m.obj.spec as { scaleTargetRef: { kind: string; name: string }; minReplicas: number; maxReplicas: number; metrics: { resource?: { name: string } }[] });
    expect(hpas.map((h) => h.scaleTargetRef)).toEqual([{ apiVersion: 'apps/v1', kind: 'Deployment', name: worker.metadata.name }]);
    expect(hpas[0]!.metrics.map((m) => m.resource?.name)).toEqual(['cpu']);
    expect(hpas[0]!.maxReplicas).toBeGreaterThan(hpas[0]!.minReplicas);

    const config = loadConfigText(configMapText(), SAMPLE_ENV);
    // The worker and the scheduler serve /livez alone on liveness.port, probed for liveness only.
    for (const role of ['scheduler', 'worker']) {
      const [c] = containersOf(deploymentFor(role));
      expect(c!.ports).toEqual([{ name: 'livez', containerPort: config.liveness.port, protocol: 'TCP' }]);
      expect(c!.livenessProbe?.httpGet).toEqual({ path: '/livez', port: 'livez' });
      expect([c!.readinessProbe, c!.startupProbe]).toEqual([undefined, undefined]);
    }
    expect(config.liveness.host).toBe('0.0.0.0');
    const web = deploymentFor('web');
    const [container] = containersOf(web);
    const port = container!.ports!.find((p) => p.name === 'http')!;
    for (const probe of [container!.readinessProbe, container!.startupProbe]) {
      expect(probe?.httpGet).toEqual({ path: '/health', port: 'http' });
    }
    // Restarting the web pod would not bring a database back: liveness is the process's own.
    expect(container!.livenessProbe?.httpGet).toEqual({ path: '/livez', port: 'http' });
    const service = one('Service', 'caretaker-web').spec as { selector: Record<string, string>; ports: { port: number; targetPort: string }[] };
    expect(service.selector).toEqual((web.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels);
    expect(service.ports.map((p) => p.targetPort)).toEqual(['http']);

    expect(port.containerPort).toBe(config.web.port);
  });

  test('the Secret is a template: placeholders only, and exactly the variables the config reads', () => {
    const values = secretValues();
    expect(Object.keys(values).length).toBeGreaterThan(0);
    for (const [key, value] of Object.entries(values)) expect([key, value]).toEqual([key, PLACEHOLDER]);
    const referenced = [...configMapText().matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!);
    expect(Object.keys(values).sort()).toEqual([...new Set(referenced)].sort());
    expect(Object.keys(SAMPLE_ENV).sort()).toEqual(Object.keys(values).sort());
    // Every pod gets every key: the whole config is validated in every role.
    for (const { obj } of ofKind('Deployment')) {
      for (const c of containersOf(obj)) expect(c.envFrom).toEqual([{ secretRef: { name: 'caretaker-env' } }]);
    }
  });

  test('the ConfigMap\'s caretaker.yaml validates with caretaker\'s loader, and fits the Deployments and the RBAC', () => {
    const config = loadConfigText(configMapText(), SAMPLE_ENV);
    expect(config.web.host).toBe('0.0.0.0');
    expect(config.web.auth.admin).toBe(SAMPLE_ENV.CARETAKER_ADMIN);
    for (const { obj } of ofKind('Deployment')) {
      const c = containersOf(obj)[0]!;
      const configPath = c.env?.find((e) => e.name === 'CARETAKER_CONFIG')?.value;
      const mount = c.volumeMounts?.find((m) => configPath === `${m.mountPath}/caretaker.yaml`);
      expect([roleOf(obj), podSpec(obj).volumes?.find((v) => v.name === mount?.name)?.configMap?.name]).toEqual([roleOf(obj), 'caretaker-config']);
    }
    // SIGTERM: the worker's grace period fits in the pod's.
    expect(podSpec(deploymentFor('worker')).terminationGracePeriodSeconds! * 1000).toBeGreaterThan(config.worker.shutdownGraceMs + 10_000);
    // A directory backup store is mounted in the workers, read-only unless caretaker takes the backups.
    const workerMounts = containersOf(deploymentFor('worker'))[0]!.volumeMounts ?? [];
    for (const b of config.targets.backups) {
      if (b.store.kind !== 'directory') continue;
      const path = b.store.path;
      expect([b.name, workerMounts.find((m) => m.mountPath === path)?.readOnly ?? false]).toEqual([b.name, !b.allow.backup]);
    }
    // The namespaces the config reads and drills are the ones the RBAC covers.
    expect(config.targets.kubernetes.map((k) => k.namespace)).toEqual([MONITORED]);
    expect([...new Set(config.targets.kubernetes.flatMap((k) => k.allow.podKillNamespaces))]).toEqual([DRILL]);
    expect(config.targets.backups.flatMap((b) => (b.drill ? [b.drill.namespace] : []))).toEqual([DRILL]);
  });

  test('caretaker refuses the Secret template as it is (a forgotten REPLACE_ME stops the start, naming the key)', () => {
    const env = Object.fromEntries(Object.keys(secretValues()).map((k) => [k, PLACEHOLDER]));
    let problems: string[] = [];
    try {
      loadConfigText(configMapText(), env);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      problems = (err as ConfigError).problems;
    }
    expect(problems).toEqual(expect.arrayContaining([expect.stringMatching(/^redis\.url: /), expect.stringMatching(/^web\.auth\.admin: /), expect.stringMatching(/^targets\.postgres\[0\]\.url: /)]));
  });

  test('the RBAC grants exactly the table above: delete only in the drill Role, secrets and cluster reads only opt-in', () => {
    const roles = new Map(manifests.filter((m) => m.obj.kind === 'Role' || m.obj.kind === 'ClusterRole').map((m) => [`${m.obj.metadata.namespace ?? '*'}/${id(m.obj)}`, m.obj]));
    const granted: string[] = [];
    const key = (role: string, ns: string, group: string, resource: string, verb: string, optIn: boolean) => `${role} ns=${ns} ${group || 'core'}/${resource} ${verb}${optIn ? ' (opt-in)' : ''}`;
    const bound = new Set<string>();
    for (const { file, obj } of manifests.filter((m) => m.obj.kind === 'RoleBinding' || m.obj.kind === 'ClusterRoleBinding')) {
      const binding = obj as unknown as IRoleBinding;
      expect([id(obj), binding.subjects]).toEqual([id(obj), [{ kind: 'ServiceAccount', name: 'caretaker', namespace: NAMESPACE }]]);
      const ns = obj.kind === 'RoleBinding' ? obj.metadata.namespace! : '*';
      // A RoleBinding may only refer to a Role of its own namespace defined here (no built-in ClusterRole such as view or edit).
      const roleKey = `${binding.roleRef.kind === 'Role' ? ns : '*'}/${binding.roleRef.kind}/${binding.roleRef.name}`;
      const role = roles.get(roleKey);
      expect([id(obj), roleKey, role !== undefined, binding.roleRef.kind === 'Role' || obj.kind === 'ClusterRoleBinding']).toEqual([id(obj), roleKey, true, true]);
      bound.add(roleKey);
      for (const rule of (role!.rules ?? []) as IPolicyRule[]) {
        expect([id(role!), rule.nonResourceURLs, rule.resourceNames]).toEqual([id(role!), undefined, undefined]);
        for (const group of rule.apiGroups ?? []) for (const resource of rule.resources ?? []) for (const verb of rule.verbs) {
          granted.push(key(id(role!), ns, group, resource, verb, file.startsWith('opt-in/')));
        }
      }
    }
    expect([...bound].sort()).toEqual([...roles.keys()].sort()); // no Role left unbound
    const allowed = ALLOWED.flatMap((a) => a.verbs.map((verb) => key(a.role, a.ns, a.group, a.resource, verb, a.optIn)));
    expect(granted.sort()).toEqual(allowed.sort());
    expect(granted.filter((g) => / delete/.test(g))).toEqual([key('Role/caretaker-dr-drill', DRILL, '', 'pods', 'delete', false)]);
    expect(granted.filter((g) => g.includes('*') && !g.includes('ns=*'))).toEqual([]);
  });

  test('kustomization.yaml applies every manifest except the Secret template and the opt-in RBAC', () => {
    const kustomization = parse(readFileSync(join(K8S, KUSTOMIZATION), 'utf8')) as { resources: string[]; namespace?: string };
    expect(kustomization.namespace).toBeUndefined(); // it would move the RoleBindings out of auditron
    const files = [...new Set(manifests.map((m) => m.file))];
    const expected = files.filter((f) => !f.startsWith('opt-in/') && f !== 'secret.template.yaml');
    expect([...kustomization.resources].sort()).toEqual(expected.sort());
    expect(files).toEqual(expect.arrayContaining(['secret.template.yaml', 'opt-in/rbac-secret-age.yaml', 'opt-in/rbac-cluster-admin-check.yaml']));
  });
});

/** The Dockerfile with its continuation lines joined. */
const dockerfile = () => readFileSync(join(ROOT, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
const runtimeStage = () => {
  const lines = dockerfile();
  return lines.slice(lines.map((l) => /^FROM\b/i.test(l)).lastIndexOf(true));
};
function dockerRuntimeUser(): string {
  const users = runtimeStage().filter((l) => /^USER\s/i.test(l));
  expect(users).toHaveLength(1);
  return users[0]!.split(/\s+/)[1]!;
}

describe('Dockerfile (text checks: no Docker engine here)', () => {
  test('two stages on node:20-bookworm-slim; the runtime has production dependencies, the PostgreSQL client and a non-root numeric user', () => {
    const lines = dockerfile();
    expect(lines).toContain('ARG NODE_IMAGE=node:20-bookworm-slim');
    expect(lines.filter((l) => /^FROM\s/i.test(l))).toEqual(['FROM ${NODE_IMAGE} AS build', 'FROM ${NODE_IMAGE} AS runtime']);
    const runtime = runtimeStage();
    expect(runtime.some((l) => /^RUN .*apt-get install .*\bpostgresql-client\b/.test(l))).toBe(true);
    expect(runtime.some((l) => /^RUN npm ci --omit=dev --ignore-scripts\b/.test(l))).toBe(true);
    expect(runtime).toContain('COPY --from=build /app/dist/src ./dist/src');
    // dependency-check's shipped versions file, found from dist/src by the package root.
    expect(runtime).toContain('COPY data ./data');
    expect(readFileSync(join(ROOT, 'bin/caretaker.js'), 'utf8')).toContain("require('../dist/src/cli.js')");
    const [uid, gid] = dockerRuntimeUser().split(':').map(Number);
    expect(uid).toBeGreaterThan(0);
    expect(gid).toBeGreaterThan(0);
    expect(runtime.slice(-2)).toEqual(['ENTRYPOINT ["node", "bin/caretaker.js"]', 'CMD ["start"]']);
  });

  test('everything it copies from the context exists and is not excluded by .dockerignore', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    const sources = dockerfile().filter((l) => /^COPY\s/.test(l) && !l.includes('--from=')).flatMap((l) => l.split(/\s+/).slice(1, -1));
    expect(sources.sort()).toEqual(['bin', 'data', 'package-lock.json', 'package-lock.json', 'package.json', 'package.json', 'src', 'tsconfig.json']);
    for (const source of sources) {
      expect([source, existsSync(join(ROOT, source)), ignored.includes(source)]).toEqual([source, true, false]);
    }
    expect(ignored).toEqual(expect.arrayContaining(['.env', 'node_modules', 'dist', '.git']));
  });

  describe('HEALTHCHECK', () => {
    let server: Server;
    let status = 200;
    let url: string;
    beforeAll(async () => {
      server = createServer((req, res) => {
        res.statusCode = req.url === '/health' ? status : 404;
        res.end();
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    /** Runs the HEALTHCHECK's exec-form command as Docker would; resolves with its exit code. */
    function healthcheck(env: Env): Promise<number> {
      const line = dockerfile().find((l) => l.startsWith('HEALTHCHECK '))!;
      const argv = JSON.parse(line.slice(line.indexOf('CMD [') + 4)) as string[];
      expect(argv[0]).toBe('node');
      return new Promise((done) => {
        spawn(process.execPath, argv.slice(1), { env: { PATH: process.env.PATH, ...env }, stdio: 'ignore' }).on('exit', (code) => done(code ?? -1));
      });
    }

    test('exits 0 on a 200 from /health, 1 on a 503 or nothing listening', async () => {
      status = 200;
      expect(await healthcheck({ CARETAKER_HEALTHCHECK_URL: url })).toBe(0);
      status = 503;
      expect(await healthcheck({ CARETAKER_HEALTHCHECK_URL: url })).toBe(1);
      expect(await healthcheck({ CARETAKER_HEALTHCHECK_URL: 'http://127.0.0.1:9/health' })).toBe(1);
      expect(dockerfile().find((l) => l.startsWith('HEALTHCHECK '))).toContain("'http://127.0.0.1:3000/health'");
    });
  });
});

/** Compose's own interpolation of `${VAR}`, `${VAR:-default}` and `${VAR:?error}` (test values for the variables). */
function composeInterpolate(value: string, env: Env): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-?])([^}]*))?\}/g, (_m, name: string, op?: string, arg?: string) => {
    const v = env[name];
    if (v) return v;
    if (op === '?') throw new Error(`compose: ${name} is required: ${arg}`);
    return op === '-' ? (arg ?? '') : '';
  });
}

describe('docker-compose.yml', () => {
  interface Service { image?: string; build?: unknown; command?: string[]; environment?: Record<string, string>; volumes?: string[]; ports?: string[]; depends_on?: Record<string, { condition: string }>; read_only?: boolean; tmpfs?: string[] }
  const compose = () => parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Service> };
  const composeEnv: Env = { POSTGRES_PASSWORD: 'pw0123', CARETAKER_ADMIN: 'admin:secret' };

  test('Redis, PostgreSQL 15 and caretaker, which waits for both to be healthy', () => {
    const { services } = compose();
    expect(Object.keys(services).sort()).toEqual(['caretaker', 'postgres', 'redis']);
    expect(services.postgres!.image).toMatch(/^postgres:15(\b|-)/);
    expect(services.redis!.image).toMatch(/^redis:/);
    expect(services.caretaker!.build).toBe('.');
    expect(services.caretaker!.depends_on).toEqual({ postgres: { condition: 'service_healthy' }, redis: { condition: 'service_healthy' } });
    expect(services.caretaker!.read_only).toBe(true);
    expect(services.caretaker!.tmpfs).toEqual(['/tmp']);
  });

  test('mounts a config file that exists and validates with the environment it passes; the web login comes from the environment', () => {
    const caretaker = compose().services.caretaker!;
    expect(() => composeInterpolate(caretaker.environment!.CARETAKER_ADMIN!, {})).toThrow(/CARETAKER_ADMIN is required/);
    const env = Object.fromEntries(Object.entries(caretaker.environment!).map(([k, v]) => [k, composeInterpolate(v, composeEnv)]));
    const mount = caretaker.volumes!.map((v) => v.split(':')).find(([, target]) => target === env.CARETAKER_CONFIG);
    expect(mount).toBeDefined();
    const [source, , mode] = mount!;
    expect(mode).toBe('ro');
    const file = resolve(ROOT, source!);
    expect(file.startsWith(ROOT) && existsSync(file)).toBe(true);
    const config = loadConfig({ path: file, env, registry: TASKS });
    expect(config.web.host).toBe('0.0.0.0');
    expect(config.web.auth.admin).toBe('admin:secret');
    expect(caretaker.ports).toEqual([`127.0.0.1:${config.web.port}:${config.web.port}`]);
    expect(new URL(config.redis.url).hostname).toBe('redis');
    expect(new URL(config.state.url).hostname).toBe('postgres');
    for (const b of config.targets.backups) {
      if (b.store.kind === 'directory') expect(caretaker.volumes!.some((v) => v.split(':')[1] === (b.store as { path: string }).path)).toBe(true);
    }
  });
});
