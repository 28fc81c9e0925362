/**
 * dependency-check's images: each container image the watched deployments
 * run, against its registry (OCI distribution API). Per deployment and
 * container, at most one finding of each kind:
 *
 * - `image_outdated`: newer tags by semver (patch, minor, major: the worst
 *   severity of the levels there are, every level named in the message);
 * - `image_tag_moved`: the tag's digest in the registry is not the digest
 *   the pods run (`imageID`): the tag was re-pushed, the pods run the old one;
 * - `image_unpinned`: `latest` or no tag: nobody can say what runs;
 * - `image_check_failed` (info): the registry could not be asked (refused
 *   the credentials, unreachable); the other images are still checked.
 *
 * Credentials come from a docker config.json the operator names, else from
 * the pods' imagePullSecrets when caretaker may read them.
 */
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import semver from 'semver';
import type { Finding, Severity } from '../contract/result';
import type { FindingCodes } from '../contract/task';
import type { KubernetesApis } from '../contract/clients';
import type { KubernetesTarget } from '../config/schema';
import { coerceError } from '../errors';
import { redactSecretsIn } from '../logger';
import { createRegistryClient, type RegistryClient, type RegistryCredentials } from '../clients/oci-registry';
import { loadWorkloads } from '../kubernetes/workloads';
import { callOptions } from '../clients/kubernetes';
import { credentialsFor } from './docker-credentials';
import { digestOfImageId, parseImageReference, registryApiHost, type ImageReference } from './image-reference';

export const IMAGE_CODES = {
  image_outdated: 'A running image has newer semver tags in its registry (patch, minor or major)',
  image_tag_moved: "The running image's tag points at another digest in the registry than the pods run",
  image_unpinned: 'A container runs `latest` or an image without a tag: what runs cannot be told',
  image_check_failed: 'An image could not be compared with its registry (unreachable, credentials refused)',
} as const satisfies FindingCodes;
export type ImageCode = keyof typeof IMAGE_CODES;

export type UpdateLevel = 'patch' | 'minor' | 'major';

export interface ImageCheckOptions {
  /** host:port of registries reached over plain http. */
  insecureRegistries: readonly string[];
  /** A docker config.json's content, for registry credentials. */
  dockerConfig?: string;
  /** Only tags matching it count as releases (e.g. `^v?\d+\.\d+\.\d+$`). */
  tagPattern?: RegExp;
  includePrereleases: boolean;
  severity: Record<UpdateLevel, Severity>;
  timeoutMs: number;
  signal: AbortSignal;
}

export interface ImageCheckResult {
  findings: Finding<ImageCode>[];
  /** Distinct (deployment, container) images looked at. */
  checked: number;
}

/** One container of one deployment, with every digest its pods run. */
interface RunningImage {
  subject: string;
  image: string;
  ref: ImageReference;
  digests: Set<string>;
}

const LEVEL_RANK: Record<UpdateLevel, number> = { patch: 0, minor: 1, major: 2 };
const SEVERITY_RANK: Record<Severity, number> = { info: 0, warning: 1, critical: 2 };

export async function checkImages(k8s: KubernetesApis, target: KubernetesTarget, opts: ImageCheckOptions): Promise<ImageCheckResult> {
  const { workloads } = await loadWorkloads(k8s, target, opts.signal);
  const running: RunningImage[] = [];
  const pullSecrets = new Set<string>();
  for (const w of workloads) {
    const containers: V1Container[] = w.deployment.spec?.template.spec?.containers ?? [];
    for (const s of w.deployment.spec?.template.spec?.imagePullSecrets ?? []) if (s.name) pullSecrets.add(s.name);
    for (const c of containers) {
      if (!c.image) continue;
      const subject = `${target.name}/${target.namespace}/deployment/${w.name}/${c.name}`;
      let ref: ImageReference;
      try {
        ref = parseImageReference(c.image);
      } catch {
        // Reported below as a check that failed: the reference itself cannot be read.
        running.push({ subject, image: c.image, ref: { registry: '', repository: '' }, digests: new Set() });
        continue;
      }
      running.push({ subject, image: c.image, ref, digests: digestsOf(w.pods, c.name) });
    }
  }

  const findings: Finding<ImageCode>[] = [];
  const credentials = await credentialSource(k8s, target, [...pullSecrets], opts);
  const clients = new Map<string, RegistryClient>();
  const client = (registry: string): RegistryClient => {
    let c = clients.get(registry);
    if (!c) {
      const creds = credentials(registry);
      c = createRegistryClient({
        registry: registryApiHost(registry),
        insecure: opts.insecureRegistries.includes(registry),
        ...(creds ? { credentials: creds } : {}),
        timeoutMs: opts.timeoutMs,
        signal: opts.signal,
      });
      clients.set(registry, c);
    }
    return c;
  };
  // Tags are listed once per repository, whatever the number of deployments running it.
  const tagLists = new Map<string, Promise<string[]>>();

  for (const img of running) {
    if (!img.ref.repository) {
      findings.push(failed(img, 'the image reference cannot be read'));
      continue;
    }
    if (img.ref.tag === undefined || img.ref.tag === 'latest') {
      if (!img.ref.digest) findings.push(unpinned(img));
      continue;
    }
    const tag = img.ref.tag;
    const registry = client(img.ref.registry);
    const key = `${img.ref.registry}/${img.ref.repository}`;
    try {
      if (!tagLists.has(key)) tagLists.set(key, registry.listTags(img.ref.repository));
      const [tags, digest] = await Promise.all([tagLists.get(key)!, img.ref.digest ? Promise.resolve(undefined) : registry.manifestDigest(img.ref.repository, tag)]);
      const outdated = outdatedFinding(img, tag, tags, opts);
      if (outdated) findings.push(outdated);
      if (digest && img.digests.size > 0 && ![...img.digests].every((d) => d === digest)) findings.push(moved(img, tag, digest));
    } catch (err) {
      if (opts.signal.aborted) throw coerceError(opts.signal.reason);
      findings.push(failed(img, redactSecretsIn(coerceError(err).message)));
    }
  }
  return { findings, checked: running.length };
}

/** The digests the pods' containers named `container` run (containers not started yet have none). */
function digestsOf(pods: V1Pod[], container: string): Set<string> {
  const digests = new Set<string>();
  for (const p of pods) {
    for (const s of p.status?.containerStatuses ?? []) {
      if (s.name !== container || !s.imageID) continue;
      try {
        const d = digestOfImageId(s.imageID);
        if (d) digests.add(d);
      } catch {
        // An imageID of a form we do not read: that pod says nothing about its digest.
      }
    }
  }
  return digests;
}

/**
 * Where a registry's credentials come from: the operator's docker config
 * first, else the deployments' imagePullSecrets that caretaker may read (a
 * Secret it may not read is skipped: the registry then says whether it
 * needs them).
 */
async function credentialSource(k8s: KubernetesApis, target: KubernetesTarget, secretNames: string[], opts: ImageCheckOptions): Promise<(registry: string) => RegistryCredentials | undefined> {
  const configs: string[] = opts.dockerConfig ? [opts.dockerConfig] : [];
  for (const name of secretNames) {
    try {
      const secret = await k8s.core.readNamespacedSecret({ name, namespace: target.namespace }, callOptions(opts.signal));
      const data = secret.data?.['.dockerconfigjson'] ?? secret.data?.['.dockercfg'];
      if (data) configs.push(Buffer.from(data, 'base64').toString('utf8'));
    } catch {
      // Not readable with caretaker's role, or gone: no credentials from it.
    }
  }
  return (registry) => {
    for (const config of configs) {
      try {
        const found = credentialsFor(registry, config);
        if (found) return found;
      } catch {
        // A malformed config gives nothing; the next one may.
      }
    }
    return undefined;
  };
}

/** Semver of a tag (`1.2.3`, `v1.2.3`); null when it is not one. */
function versionOfTag(tag: string): semver.SemVer | null {
  return semver.parse(tag.replace(/^v(?=\d)/, ''));
}

function outdatedFinding(img: RunningImage, tag: string, tags: string[], opts: ImageCheckOptions): Finding<ImageCode> | undefined {
  const current = versionOfTag(tag);
  if (!current) return undefined;
  const newest: Partial<Record<UpdateLevel, { tag: string; version: semver.SemVer }>> = {};
  for (const t of tags) {
    if (opts.tagPattern && !opts.tagPattern.test(t)) continue;
    const v = versionOfTag(t);
    if (!v || semver.lte(v, current)) continue;
    if (v.prerelease.length > 0 && !opts.includePrereleases) continue;
    const level: UpdateLevel = v.major !== current.major ? 'major' : v.minor !== current.minor ? 'minor' : 'patch';
    const best = newest[level];
    if (!best || semver.gt(v, best.version)) newest[level] = { tag: t, version: v };
  }
  const levels = (Object.keys(newest) as UpdateLevel[]).sort((a, b) => LEVEL_RANK[a] - LEVEL_RANK[b]);
  if (levels.length === 0) return undefined;
  const severity = levels.map((l) => opts.severity[l]).reduce((a, b) => (SEVERITY_RANK[b] > SEVERITY_RANK[a] ? b : a));
  const newer = levels.map((l) => `${l} ${newest[l]!.tag}`).join(', ');
  return {
    severity,
    code: 'image_outdated',
    subject: img.subject,
    message: `${img.image} is behind its registry: newer ${newer}`,
    suggestion: `Update the deployment's image (${levels.includes('patch') ? `the patch release ${newest.patch!.tag} first` : `to ${newest[levels[0]!]!.tag}`}) after reading its release notes`,
    details: { image: img.image, registry: img.ref.registry, repository: img.ref.repository, tag, ...Object.fromEntries(levels.map((l) => [l, newest[l]!.tag])) },
  };
}

function moved(img: RunningImage, tag: string, digest: string): Finding<ImageCode> {
  const runs = [...img.digests];
  return {
    severity: 'warning',
    code: 'image_tag_moved',
    subject: img.subject,
    message: `${img.ref.repository}:${tag} points at ${short(digest)} in ${img.ref.registry}, but the pods run ${runs.map(short).join(', ')}: the tag was pushed again`,
    suggestion: 'Pin the image by digest (image@sha256:...) so that what runs is what was reviewed; restart the pods to run the new one if it is wanted',
    details: { image: img.image, tag, registryDigest: digest, runningDigests: runs },
  };
}

function unpinned(img: RunningImage): Finding<ImageCode> {
  return {
    severity: 'warning',
    code: 'image_unpinned',
    subject: img.subject,
    message: `${img.image} has ${img.ref.tag === 'latest' ? 'the tag latest' : 'no tag'}: which release runs cannot be told, and a restart may bring another`,
    suggestion: 'Deploy a version tag, or pin the digest (image@sha256:...)',
    details: { image: img.image },
  };
}

function failed(img: RunningImage, reason: string): Finding<ImageCode> {
  return {
    severity: 'info',
    code: 'image_check_failed',
    subject: img.subject,
    message: `${img.image} was not compared with its registry: ${reason}`,
    suggestion: 'Check that caretaker reaches the registry (tasks.dependency-check.insecureRegistries for a plain-http one) and has its credentials (dockerConfig, or a readable imagePullSecret)',
    details: { image: img.image, reason },
  };
}

const short = (digest: string) => digest.replace(/^(sha256:[0-9a-f]{12})[0-9a-f]+$/, '$1…');
