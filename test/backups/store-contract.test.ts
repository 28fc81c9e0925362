/**
 * One contract for every backup store: the same tests run against a
 * directory (a temporary one) and an S3 bucket (s3rver, a real S3-protocol
 * server in-process). Each test gets a fresh, empty store: its own
 * sub-directory, or its own key prefix in one bucket.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { inspect } from 'node:util';
import { HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { DirectoryStore } from '../../src/backups/directory-store';
import { S3Store } from '../../src/backups/s3-store';
import { listDumps, type BackupStore, type StoredObject } from '../../src/backups/store';
import { startS3, type S3TestServer } from '../support/s3';

const MiB = 1024 * 1024;

/** A store under test, plus raw access behind its back. */
interface Subject {
  store: BackupStore;
  /** Every name under the store's root, hidden and nested ones included (what a failed write could leave). */
  everything(): Promise<string[]>;
  /** Plants objects the store must not list: one in a sub-directory of its root, one beside the root. */
  plantOutside(): Promise<void>;
  /** Multipart uploads started so far (S3 only). */
  multipartUploads?(): number;
}

interface Backend {
  label: string;
  fresh(): Promise<Subject>;
}

let tempRoot: string;
let s3: S3TestServer;
let bucket: string;
let counter = 0;
const s3Stores: S3Store[] = [];

function s3Store(...args: ConstructorParameters<typeof S3Store>): S3Store {
  const store = new S3Store(...args);
  s3Stores.push(store);
  return store;
}

beforeAll(async () => {
  tempRoot = await mkdtemp(join(tmpdir(), 'caretaker-store-contract-'));
  s3 = await startS3();
  bucket = await s3.createBucket();
});

afterAll(async () => {
  for (const store of s3Stores) store.destroy();
  await s3?.stop();
  if (tempRoot) await rm(tempRoot, { recursive: true, force: true });
});

const directoryBackend: Backend = {
  label: 'DirectoryStore',
  async fresh() {
    const dir = join(tempRoot, `store-${++counter}`);
    await mkdir(dir);
    return {
      store: new DirectoryStore(dir),
      async everything() {
        return ((await readdir(dir, { recursive: true })) as string[]).sort();
      },
      async plantOutside() {
        await mkdir(join(dir, 'sub'));
        await writeFile(join(dir, 'sub', 'auditron-nested.sql.gz'), 'nested');
        await mkdir(`${dir}-old`);
        await writeFile(join(`${dir}-old`, 'auditron-beside.sql.gz'), 'beside');
      },
    };
  },
};

const s3Backend: Backend = {
  label: 'S3Store',
  async fresh() {
    const prefix = `store-${++counter}/`;
    const put = (key: string, body: string) => s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    return {
      store: s3Store(s3.storeConfig(bucket, prefix)),
      async everything() {
        const page = await s3.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
        return (page.Contents ?? []).map((o) => o.Key!.slice(prefix.length)).sort();
      },
      async plantOutside() {
        await put(`${prefix}sub/auditron-nested.sql.gz`, 'nested');
        await put(`${prefix.slice(0, -1)}-old/auditron-beside.sql.gz`, 'beside');
        await put(`${prefix.slice(0, -1)}-auditron-beside.sql.gz`, 'beside');
        await put('auditron-root.sql.gz', 'root');
      },
      multipartUploads() {
        return s3.requests.filter((r) => r.method === 'POST' && r.query.has('uploads') && r.path.startsWith(`/${bucket}/${prefix}`)).length;
      },
    };
  },
};

/** A byte stream of `totalBytes` random bytes in 64 KiB chunks; fails with `failWith` once `failAfter` bytes are out. */
function randomBody(totalBytes: number, opts: { failAfter?: number; failWith?: string } = {}): { body: Readable; sha256: () => string } {
  const hash = createHash('sha256');
  async function* chunks(): AsyncGenerator<Buffer> {
    let sent = 0;
    while (sent < totalBytes) {
      if (opts.failAfter !== undefined && sent >= opts.failAfter) throw new Error(opts.failWith ?? 'body failed');
      const chunk = randomBytes(Math.min(64 * 1024, totalBytes - sent));
      hash.update(chunk);
      sent += chunk.length;
      yield chunk;
    }
  }
  return { body: Readable.from(chunks(), { objectMode: false }), sha256: () => hash.digest('hex') };
}

function bodyOf(text: string): Readable {
  return Readable.from([Buffer.from(text)], { objectMode: false });
}

async function digest(stream: Readable): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

async function text(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Waits into the next wall-clock second, so the next write's time is later even at s3rver's 1 s resolution. */
async function nextSecond(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000) + 50));
}

/** A real time (fs dates come from Node's realm, so not `expect.any(Date)`). */
function expectValidDate(value: unknown): void {
  expect(Object.prototype.toString.call(value)).toBe('[object Date]');
  expect(Number.isNaN((value as Date).getTime())).toBe(false);
}

function names(objects: StoredObject[]): string[] {
  return objects.map((o) => o.name);
}

describe.each([directoryBackend, s3Backend])('$label', (backend) => {
  let subject: Subject;
  let store: BackupStore;

  beforeEach(async () => {
    subject = await backend.fresh();
    store = subject.store;
  });

  test('write, then stat, read and list give back the same bytes, size and time', async () => {
    const content = 'CREATE TABLE t (id int);\n-- PostgreSQL database dump complete\n';
    const written = await store.write('auditron-1.sql.gz', bodyOf(content));
    expect(written).toEqual({ name: 'auditron-1.sql.gz', sizeBytes: Buffer.byteLength(content), modifiedAt: written.modifiedAt });
    expectValidDate(written.modifiedAt);

    expect(await store.stat('auditron-1.sql.gz')).toEqual(written);
    expect(await text(await store.read('auditron-1.sql.gz'))).toBe(content);
    expect(await store.list()).toEqual([written]);
  });

  test('an empty body makes an empty object', async () => {
    const written = await store.write('empty.sql.gz', Readable.from([], { objectMode: false }));
    expect(written.sizeBytes).toBe(0);
    expect(await digest(await store.read('empty.sql.gz'))).toEqual({ sha256: createHash('sha256').digest('hex'), bytes: 0 });
  });

  test('list shows only the objects directly in the store, by name relative to its root', async () => {
    await subject.plantOutside();
    await store.write('auditron-1.sql.gz', bodyOf('one'));
    await store.write('auditron-2.dump', bodyOf('two!'));
    const listed = (await store.list()).sort((a, b) => a.name.localeCompare(b.name));
    expect(listed.map(({ name, sizeBytes }) => ({ name, sizeBytes }))).toEqual([
      { name: 'auditron-1.sql.gz', sizeBytes: 3 },
      { name: 'auditron-2.dump', sizeBytes: 4 },
    ]);
  });

  test('listDumps filters by pattern, leaves manifests out and puts the newest first', async () => {
    await subject.plantOutside();
    // Written first but named last: only the times can put it second.
    await store.write('auditron-b.sql.gz', bodyOf('older'));
    await nextSecond();
    await store.write('auditron-a.sql.gz', bodyOf('newer'));
    await store.write('auditron-a.sql.gz.manifest.json', bodyOf('{}'));
    await store.write('other-a.sql.gz', bodyOf('another target'));

    const dumps = await listDumps(store, 'auditron-*');
    expect(names(dumps)).toEqual(['auditron-a.sql.gz', 'auditron-b.sql.gz']);
    expect(dumps[0]!.modifiedAt.getTime()).toBeGreaterThan(dumps[1]!.modifiedAt.getTime());
    expect(names(await listDumps(store, 'other-*.sql.gz'))).toEqual(['other-a.sql.gz']);
    expect(await listDumps(store, 'nothing-*.sql.gz')).toEqual([]);
  });

  test('a 12 MiB streamed write comes back byte-identical', async () => {
    const size = 12 * MiB;
    const multipartBefore = subject.multipartUploads?.();
    const { body, sha256 } = randomBody(size);
    const written = await store.write('auditron-big.sql.gz', body);
    const expected = sha256();
    expect(written.sizeBytes).toBe(size);
    expect((await store.stat('auditron-big.sql.gz'))?.sizeBytes).toBe(size);
    expect(await digest(await store.read('auditron-big.sql.gz'))).toEqual({ sha256: expected, bytes: size });
    // On S3 that took a multipart upload (8 MiB parts), not one PUT.
    if (subject.multipartUploads) expect(subject.multipartUploads() - multipartBefore!).toBe(1);
  });

  test.each([
    ['after a few bytes', 1024],
    ['after more than one part', 9 * MiB],
  ])('a body that fails %s leaves no object behind', async (_label, failAfter) => {
    const { body } = randomBody(12 * MiB, { failAfter, failWith: 'pg_dump exited with code 1' });
    await expect(store.write('auditron-broken.sql.gz', body)).rejects.toThrow('pg_dump exited with code 1');
    expect(await store.stat('auditron-broken.sql.gz')).toBeUndefined();
    expect(await store.list()).toEqual([]);
    expect(await subject.everything()).toEqual([]);
  });

  test('a failed overwrite keeps the previous object as it was', async () => {
    await store.write('auditron-1.sql.gz', bodyOf('the good dump'));
    const before = await store.stat('auditron-1.sql.gz');
    const { body } = randomBody(12 * MiB, { failAfter: 9 * MiB, failWith: 'connection lost' });
    await expect(store.write('auditron-1.sql.gz', body)).rejects.toThrow('connection lost');
    expect(await store.stat('auditron-1.sql.gz')).toEqual(before);
    expect(await text(await store.read('auditron-1.sql.gz'))).toBe('the good dump');
  });

  test('a missing object: stat is undefined, read rejects naming it', async () => {
    expect(await store.stat('missing.sql.gz')).toBeUndefined();
    await expect(store.read('missing.sql.gz')).rejects.toThrow('missing.sql.gz');
  });

  test('remove deletes the object, and removing again is fine', async () => {
    await store.write('auditron-1.sql.gz', bodyOf('one'));
    await store.write('auditron-2.sql.gz', bodyOf('two'));
    await store.remove('auditron-1.sql.gz');
    expect(await store.stat('auditron-1.sql.gz')).toBeUndefined();
    expect(names(await store.list())).toEqual(['auditron-2.sql.gz']);
    await expect(store.remove('auditron-1.sql.gz')).resolves.toBeUndefined();
    await expect(store.remove('never-existed.sql.gz')).resolves.toBeUndefined();
  });

  test.each(['../escape.sql.gz', 'sub/inner.sql.gz', '/abs.sql.gz', '..', '.', ''])('the name %j is refused by every operation', async (name) => {
    await expect(store.stat(name)).rejects.toThrow(/not a file name/);
    await expect(store.read(name)).rejects.toThrow(/not a file name/);
    await expect(store.write(name, bodyOf('x'))).rejects.toThrow(/not a file name/);
    await expect(store.remove(name)).rejects.toThrow(/not a file name/);
    expect(await subject.everything()).toEqual([]);
  });
});

describe('S3Store specifics', () => {
  test('list follows continuation tokens across pages', async () => {
    const prefix = `paged-${++counter}/`;
    const store = s3Store(s3.storeConfig(bucket, prefix), { listPageSize: 2 });
    const expected: string[] = [];
    for (let i = 1; i <= 5; i++) {
      expected.push(`auditron-${i}.sql.gz`);
      await store.write(`auditron-${i}.sql.gz`, bodyOf(`dump ${i}`));
    }
    await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}sub/auditron-9.sql.gz`, Body: 'nested' }));
    const before = s3.requests.length;
    expect(names(await store.list()).sort()).toEqual(expected);
    const listings = s3.requests.slice(before).filter((r) => r.method === 'GET' && r.query.get('list-type') === '2');
    expect(listings.length).toBe(3);
    expect(listings.filter((r) => r.query.has('continuation-token')).length).toBe(2);
  });

  test('a write that fails after its first part aborts the multipart upload, and says when that fails too', async () => {
    const prefix = `aborted-${++counter}/`;
    const store = s3Store(s3.storeConfig(bucket, prefix));
    const before = s3.requests.length;
    const { body } = randomBody(12 * MiB, { failAfter: 9 * MiB, failWith: 'gzip: stdout: No space left on device' });
    const err = await store.write('auditron-1.sql.gz', body).then(() => new Error('resolved'), (e: unknown) => e as Error);
    const key = `/${bucket}/${prefix}auditron-1.sql.gz`;
    const requests = s3.requests.slice(before).filter((r) => r.path === key);
    const uploadId = requests.find((r) => r.method === 'PUT' && r.query.has('partNumber'))?.query.get('uploadId');
    expect(uploadId).toBeTruthy();
    expect(requests.filter((r) => r.method === 'DELETE').map((r) => r.query.get('uploadId'))).toEqual([uploadId]);
    expect(requests.some((r) => r.method === 'POST' && r.query.has('uploadId'))).toBe(false); // never completed
    // s3rver does not implement AbortMultipartUpload (405): the message says what that leaves behind.
    expect(err.message).toBe(
      `write auditron-1.sql.gz in s3://${bucket}/${prefix}: gzip: stdout: No space left on device; no object was created, ` +
        'but aborting its multipart upload failed too (MethodNotAllowed (HTTP 405): The specified method is not allowed against this resource.): ' +
        'its parts take space until a lifecycle rule (AbortIncompleteMultipartUpload) removes them',
    );
    expect((err.cause as Error).message).toBe('gzip: stdout: No space left on device');
  });

  test('a prefix without its slash, or with a leading one, means the same directory', async () => {
    const base = `norm-${++counter}`;
    const store = s3Store(s3.storeConfig(bucket, base));
    expect(store.description).toBe(`s3://${bucket}/${base}/`);
    await store.write('auditron-1.sql.gz', bodyOf('one'));
    const head = await s3.client.send(new HeadObjectCommand({ Bucket: bucket, Key: `${base}/auditron-1.sql.gz` }));
    expect(head.ContentLength).toBe(3);
    expect(names(await s3Store(s3.storeConfig(bucket, `/${base}/`)).list())).toEqual(['auditron-1.sql.gz']);
  });

  test('an empty prefix is the bucket root, sub-directories left out', async () => {
    const rootBucket = await s3.createBucket();
    const store = s3Store(s3.storeConfig(rootBucket, ''));
    expect(store.description).toBe(`s3://${rootBucket}/`);
    await s3.client.send(new PutObjectCommand({ Bucket: rootBucket, Key: 'postgres/auditron-0.sql.gz', Body: 'nested' }));
    await store.write('auditron-1.sql.gz', bodyOf('one'));
    expect(names(await store.list())).toEqual(['auditron-1.sql.gz']);
  });

  test('errors name the store and the object, never the credentials', async () => {
    const accessKeyId = 'AKIACARETAKERTEST0001';
    const secretAccessKey = 'wrong-secret-d41d8cd98f00b204e980';
    const store = s3Store({ ...s3.storeConfig(bucket, 'creds/'), accessKeyId, secretAccessKey });
    const failure = (p: Promise<unknown>) => p.then(() => new Error('resolved'), (err: unknown) => err as Error);
    const [listed, stat, written] = await Promise.all([
      failure(store.list()),
      failure(store.stat('auditron-1.sql.gz')),
      failure(store.write('auditron-1.sql.gz', bodyOf('one'))),
    ]);
    expect(listed.message).toBe(
      `list s3://${bucket}/creds/: InvalidAccessKeyId (HTTP 403): The AWS Access Key Id you provided does not exist in our records.`,
    );
    expect(stat.message).toBe(`stat auditron-1.sql.gz in s3://${bucket}/creds/: HTTP 403 Forbidden`);
    expect(written.message).toMatch(new RegExp(`^write auditron-1\\.sql\\.gz in s3://${bucket}/creds/: InvalidAccessKeyId \\(HTTP 403\\)`));
    for (const err of [listed, stat, written]) {
      const everything = inspect(err, { depth: 10 });
      expect(everything).not.toContain(secretAccessKey);
      expect(everything).not.toContain(accessKeyId);
    }
  });

  test('a missing bucket is an error that says so, not an empty store', async () => {
    const store = s3Store(s3.storeConfig('no-such-bucket-here', 'postgres/'));
    await expect(store.list()).rejects.toThrow(/^list s3:\/\/no-such-bucket-here\/postgres\/: NoSuchBucket/);
  });

  test('half a pair of credentials is refused at once', () => {
    const { secretAccessKey: _omitted, ...config } = s3.storeConfig(bucket, 'x/');
    expect(() => new S3Store(config)).toThrow(/give both accessKeyId and secretAccessKey, or neither/);
  });
});
