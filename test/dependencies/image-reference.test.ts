/**
 * Image references normalized as Docker does, the digest of a pod's
 * imageID, and registry credentials from a docker config.json.
 */
import { credentialsFor, normalizeRegistryKey } from '../../src/dependencies/docker-credentials';
import { digestOfImageId, parseImageReference, registryApiHost } from '../../src/dependencies/image-reference';

const DIGEST = `sha256:${'ab12'.repeat(16)}`;

describe('parseImageReference', () => {
  it.each([
    ['nginx', { registry: 'docker.io', repository: 'library/nginx' }],
    ['nginx:1.27', { registry: 'docker.io', repository: 'library/nginx', tag: '1.27' }],
    ['bitnami/redis:7.2', { registry: 'docker.io', repository: 'bitnami/redis', tag: '7.2' }],
    ['docker.io/nginx', { registry: 'docker.io', repository: 'library/nginx' }],
    ['index.docker.io/library/nginx:latest', { registry: 'docker.io', repository: 'library/nginx', tag: 'latest' }],
    ['ghcr.io/org/app:1.2', { registry: 'ghcr.io', repository: 'org/app', tag: '1.2' }],
    ['ghcr.io/org/team/app', { registry: 'ghcr.io', repository: 'org/team/app' }],
    [`localhost:5000/app@${DIGEST}`, { registry: 'localhost:5000', repository: 'app', digest: DIGEST }],
    ['localhost/app:dev', { registry: 'localhost', repository: 'app', tag: 'dev' }],
    [`app:1.2@${DIGEST}`, { registry: 'docker.io', repository: 'library/app', tag: '1.2', digest: DIGEST }],
    ['registry.example.com:8443/a/b-c_d.e:v1.0.0-rc.1', { registry: 'registry.example.com:8443', repository: 'a/b-c_d.e', tag: 'v1.0.0-rc.1' }],
    ['10.0.0.5:5000/app:1', { registry: '10.0.0.5:5000', repository: 'app', tag: '1' }],
    ['[::1]:5000/app:1', { registry: '[::1]:5000', repository: 'app', tag: '1' }],
  ])('reads %s', (ref, expected) => {
    expect(parseImageReference(ref)).toEqual(expected);
  });

  it('takes a first component without ".", ":" or "localhost" as part of a Docker Hub repository', () => {
    expect(parseImageReference('myorg/tools/app:2')).toEqual({ registry: 'docker.io', repository: 'myorg/tools/app', tag: '2' });
  });

  it.each([
    ['', /is empty/],
    ['Nginx', /component "Nginx"/],
    ['ghcr.io/Org/app', /component "Org"/],
    ['app:', /tag/],
    ['app:bad/tag', /"app:bad" is not a registry host/],
    ['app@sha256:1234', /not a digest/],
    [`app@md5:${'a'.repeat(64)}@x`, /not a digest/],
    ['https://ghcr.io/org/app', /registry host|component/],
    ['ghcr.io/', /repository name is missing/],
    ['a//b', /component ""/],
    [' nginx', /spaces/],
  ])('refuses %j with one line naming it', (ref, why) => {
    let message = '';
    try {
      parseImageReference(ref);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(why);
    expect(message).toContain(`invalid image reference ${JSON.stringify(ref)}`);
    expect(message).not.toContain('\n');
  });

  it('refuses a name longer than 255 characters, quoting only its start', () => {
    const ref = `org/${'a'.repeat(300)}`;
    expect(() => parseImageReference(ref)).toThrow(`invalid image reference "org/${'a'.repeat(196)}…": the name is longer than 255 characters`);
  });

  it('keeps a newline in a bad reference from breaking its error onto two lines', () => {
    expect(() => parseImageReference('app\n:1')).toThrow(/^invalid image reference "app\\n:1": [^\n]+$/);
  });
});

describe('registryApiHost', () => {
  it("gives Docker Hub's API host for docker.io and its aliases, any other registry as it is", () => {
    expect(registryApiHost('docker.io')).toBe('registry-1.docker.io');
    expect(registryApiHost('index.docker.io')).toBe('registry-1.docker.io');
    expect(registryApiHost('ghcr.io')).toBe('ghcr.io');
    expect(registryApiHost('localhost:5000')).toBe('localhost:5000');
    expect(registryApiHost(parseImageReference('nginx').registry)).toBe('registry-1.docker.io');
  });
});

describe('digestOfImageId', () => {
  it.each([
    [`docker-pullable://nginx@${DIGEST}`],
    [`docker-pullable://ghcr.io/org/app@${DIGEST}`],
    [`docker.io/library/nginx@${DIGEST}`],
    [`localhost:5000/app@${DIGEST}`],
    [DIGEST],
    [`docker://${DIGEST}`],
  ])('finds the digest in %s', (imageID) => {
    expect(digestOfImageId(imageID)).toBe(DIGEST);
  });

  it('gives undefined for a container not started yet (empty imageID)', () => {
    expect(digestOfImageId('')).toBeUndefined();
  });

  it.each([['nginx:1.27'], ['docker-pullable://nginx'], ['sha256:abc'], [`nginx@sha256:${'Z'.repeat(64)}`]])('refuses %s, naming it', (imageID) => {
    expect(() => digestOfImageId(imageID)).toThrow(`image ID ${JSON.stringify(imageID)} carries no digest`);
  });
});

describe('credentialsFor (docker config.json)', () => {
  const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
  const config = JSON.stringify({
    auths: {
      'https://index.docker.io/v1/': { auth: b64('hubuser:hub:pass:with:colons') },
      'registry.example.com:5000': { username: 'alice', password: 'pw-alice' },
      'https://ghcr.io/v2/': { auth: b64('bob:ghp_token123') },
      'http://Insecure.Local:8080': { identitytoken: 'refresh-abc-123', auth: b64('carol:ignored') },
      'quay.io': {},
    },
    credsStore: 'desktop',
  });

  it('normalizes the keys docker login writes', () => {
    expect(normalizeRegistryKey('https://index.docker.io/v1/')).toBe('docker.io');
    expect(normalizeRegistryKey('registry-1.docker.io')).toBe('docker.io');
    expect(normalizeRegistryKey('https://ghcr.io/v2/')).toBe('ghcr.io');
    expect(normalizeRegistryKey('http://Host.Example:5000')).toBe('host.example:5000');
    expect(normalizeRegistryKey('host.example:5000')).toBe('host.example:5000');
  });

  it('decodes `auth` (base64 user:password, the password may hold colons) for Docker Hub under any of its names', () => {
    const hub = { kind: 'basic', username: 'hubuser', password: 'hub:pass:with:colons' };
    expect(credentialsFor('docker.io', config)).toEqual(hub);
    expect(credentialsFor('index.docker.io', config)).toEqual(hub);
    expect(credentialsFor(parseImageReference('nginx').registry, config)).toEqual(hub);
  });

  it('reads username/password, an https://host/v2/ key, and an identity token before `auth`', () => {
    expect(credentialsFor('registry.example.com:5000', config)).toEqual({ kind: 'basic', username: 'alice', password: 'pw-alice' });
    expect(credentialsFor('ghcr.io', config)).toEqual({ kind: 'basic', username: 'bob', password: 'ghp_token123' });
    expect(credentialsFor('insecure.local:8080', config)).toEqual({ kind: 'identity-token', identityToken: 'refresh-abc-123' });
  });

  it('gives undefined for a registry it does not hold, an empty entry (a credential store keeps it), or no auths', () => {
    expect(credentialsFor('registry.example.com', config)).toBeUndefined();
    expect(credentialsFor('quay.io', config)).toBeUndefined();
    expect(credentialsFor('ghcr.io', JSON.stringify({ credsStore: 'pass' }))).toBeUndefined();
  });

  it('reads a Kubernetes .dockerconfigjson decoded from its secret', () => {
    const secretData = b64(JSON.stringify({ auths: { 'registry.internal:5000': { username: 'ci', password: 's3cret-pw', auth: b64('ci:s3cret-pw') } } }));
    const decoded = Buffer.from(secretData, 'base64').toString('utf8');
    expect(credentialsFor('registry.internal:5000', decoded)).toEqual({ kind: 'basic', username: 'ci', password: 's3cret-pw' });
  });

  it('refuses malformed JSON in one line that quotes none of it', () => {
    const broken = '{"auths": {"ghcr.io": {"auth": "c2VjcmV0LXZhbHVlOnB3"} oops';
    let message = '';
    try {
      credentialsFor('ghcr.io', broken);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toBe('the docker config is not valid JSON');
  });

  it('refuses an unusable entry for the registry asked, without its content', () => {
    const bad = JSON.stringify({ auths: { 'ghcr.io': { auth: 'not base64 !!! secret-xyz' }, 'quay.io': { auth: b64('no-colon-secret') } } });
    expect(() => credentialsFor('ghcr.io', bad)).toThrow(/^the docker config's entry for ghcr\.io has an "auth" that is not the base64 of user:password$/);
    expect(() => credentialsFor('quay.io', bad)).toThrow(/^the docker config's entry for quay\.io has an "auth" that is not the base64 of user:password$/);
    expect(() => credentialsFor('ghcr.io', '[1,2]')).toThrow('the docker config is not a JSON object');
    expect(() => credentialsFor('ghcr.io', '{"auths": "x"}')).toThrow('"auths" is not an object');
  });
});
