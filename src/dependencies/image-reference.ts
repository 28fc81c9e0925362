/**
 * Container image references as Docker reads them (`nginx`,
 * `ghcr.io/org/app:1.2`, `localhost:5000/app@sha256:...`), so that the
 * image a pod runs and the registry it came from are named the way
 * `docker pull` would name them.
 */

/** An image reference, normalized: `nginx` is `{ registry: 'docker.io', repository: 'library/nginx' }`. */
export interface ImageReference {
  /** The registry's host as written (`ghcr.io`, `localhost:5000`), `docker.io` for Docker Hub. */
  registry: string;
  /** The repository path inside the registry, `library/` added to Docker Hub's official images. */
  repository: string;
  /** The tag, when one is written; a reference with neither tag nor digest means `latest` to Docker. */
  tag?: string;
  /** `algorithm:hex`, when the reference pins one; kept beside the tag when both are written. */
  digest?: string;
}

/** Docker Hub's name in references; its API lives at another host. */
const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_API = 'registry-1.docker.io';
/** Older spellings of Docker Hub that Docker rewrites to `docker.io`. */
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/** Docker's limit on the length of a repository name (registry included). */
const MAX_NAME_LENGTH = 255;
/** How much of a bad reference an error quotes. */
const MAX_QUOTED = 200;

/** One path component: lowercase alphanumerics joined by `.`, `_`, `__` or runs of `-` (distribution's grammar). */
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
/** A tag: a word character, then up to 127 word characters, dots or dashes. */
const TAG = /^[\w][\w.-]{0,127}$/;
/** A host name (labels of letters, digits and inner dashes) or a bracketed IPv6 address, then an optional port. */
const REGISTRY_HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[a-fA-F0-9:]+\])(?::[0-9]{1,5})?$/;
/** A digest: algorithm, colon, encoded hash (distribution's grammar); sha256 and sha512 are checked for their length. */
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const DIGEST_LENGTHS: Record<string, RegExp> = { sha256: /^[a-f0-9]{64}$/, sha512: /^[a-f0-9]{128}$/ };

/**
 * `ref` split into registry, repository, tag and digest, with Docker's
 * defaults filled in. Throws `invalid image reference "REF": why` when it
 * is not a reference Docker would accept.
 */
export function parseImageReference(ref: string): ImageReference {
  const fail = (why: string): never => {
    throw new Error(`invalid image reference ${quote(ref)}: ${why}`);
  };
  if (ref.trim() === '') fail('it is empty');
  if (ref !== ref.trim()) fail('it has spaces around it');

  const at = ref.indexOf('@');
  let rest = ref;
  let digest: string | undefined;
  if (at >= 0) {
    digest = ref.slice(at + 1);
    rest = ref.slice(0, at);
    if (!isDigest(digest)) fail('the part after "@" is not a digest (sha256:<64 hex digits>)');
  }

  // A tag's colon comes after the last slash; a colon before it is a registry's port.
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) fail('the tag has characters a tag cannot have (letters, digits, "_", "." and "-", at most 128)');
  }

  const slash = rest.indexOf('/');
  const first = slash < 0 ? '' : rest.slice(0, slash);
  const hasRegistry = slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost');
  let registry = hasRegistry ? first : DOCKER_HUB;
  let repository = hasRegistry ? rest.slice(slash + 1) : rest;
  if (!REGISTRY_HOST.test(registry)) fail(`${quote(registry)} is not a registry host[:port]`);
  if (DOCKER_HUB_ALIASES.has(registry.toLowerCase())) registry = DOCKER_HUB;

  if (repository === '') fail('the repository name is missing');
  const bad = repository.split('/').find((c) => !PATH_COMPONENT.test(c));
  if (bad !== undefined) fail(`the repository component ${quote(bad)} is not lowercase letters and digits joined by ".", "_" or "-"`);
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  if (rest.length > MAX_NAME_LENGTH) fail(`the name is longer than ${MAX_NAME_LENGTH} characters`);

  return { registry, repository, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** The host the registry's HTTP API answers on: Docker Hub's is not `docker.io` but `registry-1.docker.io`. */
export function registryApiHost(registry: string): string {
  return DOCKER_HUB_ALIASES.has(registry.toLowerCase()) ? DOCKER_HUB_API : registry;
}

/**
 * The digest in a Kubernetes `containerStatus.imageID`:
 * `docker-pullable://repo@sha256:...` and `repo@sha256:...` carry the
 * manifest digest the image was pulled by; a bare `sha256:...` (or
 * `docker://sha256:...`) is what some runtimes report for an image they did
 * not pull by digest, and is then the image's config digest, which no
 * registry manifest digest will equal. Undefined for an empty imageID (a
 * container not started yet); throws when there is no digest in it.
 */
export function digestOfImageId(imageID: string): string | undefined {
  if (imageID === '') return undefined;
  const withoutScheme = imageID.replace(/^[a-z][a-z0-9+.-]*:\/\//, '');
  const at = withoutScheme.lastIndexOf('@');
  const digest = at >= 0 ? withoutScheme.slice(at + 1) : withoutScheme;
  if (!isDigest(digest)) throw new Error(`image ID ${quote(imageID)} carries no digest (expected repo@sha256:<64 hex digits> or sha256:<64 hex digits>)`);
  return digest;
}

/** `algorithm:hex` in distribution's grammar, with the right length for sha256 and sha512. */
function isDigest(text: string): boolean {
  if (!DIGEST.test(text)) return false;
  const [algorithm, encoded] = text.split(':') as [string, string];
  const length = DIGEST_LENGTHS[algorithm];
  return length ? length.test(encoded) : true;
}

/** A reference as an error quotes it: JSON-escaped, so a newline in it cannot break the message's line. */
function quote(text: string): string {
  const cut = text.length > MAX_QUOTED ? `${text.slice(0, MAX_QUOTED)}…` : text;
  return JSON.stringify(cut);
}
