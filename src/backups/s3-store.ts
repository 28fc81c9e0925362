/**
 * Dumps in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW...), under a key
 * prefix that acts as the store's directory. Reads and writes stream: a read
 * is the GetObject body, a write goes through lib-storage's multipart
 * `Upload` with bounded parts, so memory stays constant whatever the dump size.
 */
import { STATUS_CODES } from 'node:http';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { BackupStoreConfig } from '../config/schema';
import { redactSecretsIn } from '../logger';
import type { BackupStore, StoredObject } from './store';

export type S3StoreConfig = Extract<BackupStoreConfig, { kind: 's3' }>;

/**
 * Size of one multipart part (S3's minimum is 5 MiB). S3 allows 10,000 parts,
 * so the largest dump one write can store is 10,000 × 8 MiB ≈ 78 GiB.
 */
export const PART_SIZE_BYTES = 8 * 1024 * 1024;
/** Parts uploaded at once: a write holds about (QUEUE_SIZE + 1) × PART_SIZE_BYTES ≈ 40 MiB. */
export const QUEUE_SIZE = 4;
/** Keys per ListObjectsV2 page (S3's maximum). */
export const LIST_PAGE_SIZE = 1000;
/** Connecting to the endpoint; a transfer itself has no timeout (a slow reader pauses it). */
const CONNECTION_TIMEOUT_MS = 10_000;

/** Tuning for tests; production uses the defaults above. */
export interface S3StoreOptions {
  listPageSize?: number;
  partSizeBytes?: number;
  queueSize?: number;
}

export class S3Store implements BackupStore {
  readonly description: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  /** "" or ends with "/". */
  private readonly prefix: string;
  private readonly listPageSize: number;
  private readonly partSizeBytes: number;
  private readonly queueSize: number;

  constructor(config: S3StoreConfig, options: S3StoreOptions = {}) {
    this.bucket = config.bucket;
    this.prefix = normalizePrefix(config.prefix);
    this.description = `s3://${this.bucket}/${this.prefix}`;
    this.listPageSize = options.listPageSize ?? LIST_PAGE_SIZE;
    this.partSizeBytes = options.partSizeBytes ?? PART_SIZE_BYTES;
    this.queueSize = options.queueSize ?? QUEUE_SIZE;
    if (Boolean(config.accessKeyId) !== Boolean(config.secretAccessKey)) {
      throw new Error(`${this.description}: give both accessKeyId and secretAccessKey, or neither (the AWS SDK's default credential chain)`);
    }
    const clientConfig: S3ClientConfig = {
      region: config.region,
      forcePathStyle: config.forcePathStyle,
      requestHandler: { connectionTimeout: CONNECTION_TIMEOUT_MS },
    };
    if (config.endpoint) {
      clientConfig.endpoint = config.endpoint;
      // S3-compatible servers often reject the SDK's default CRC32 trailing
      // checksums (aws-sdk-js-v3#6810); dumps carry their own sha256 in the manifest.
      clientConfig.requestChecksumCalculation = 'WHEN_REQUIRED';
      clientConfig.responseChecksumValidation = 'WHEN_REQUIRED';
    }
    if (config.accessKeyId && config.secretAccessKey) {
      clientConfig.credentials = { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey };
    }
    this.client = new S3Client(clientConfig);
  }

  /** Objects directly under the prefix, across every page of the listing. */
  async list(): Promise<StoredObject[]> {
    const out: StoredObject[] = [];
    let token: string | undefined;
    do {
      const page = await this.client
        .send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix,
            Delimiter: '/',
            MaxKeys: this.listPageSize,
            ContinuationToken: token,
          }),
        )
        .catch((err: unknown) => {
          throw this.failure('list', undefined, err);
        });
      for (const o of page.Contents ?? []) {
        const name = o.Key?.slice(this.prefix.length);
        // The prefix's own "directory marker" object has an empty name.
        if (!name || name.includes('/')) continue;
        out.push({ name, sizeBytes: o.Size ?? 0, modifiedAt: o.LastModified ?? new Date(0) });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  async stat(name: string): Promise<StoredObject | undefined> {
    const key = this.key(name);
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { name, sizeBytes: head.ContentLength ?? 0, modifiedAt: head.LastModified ?? new Date(0) };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw this.failure('stat', name, err);
    }
  }

  /** The object's body as it arrives from the server: never buffered whole. */
  async read(name: string): Promise<Readable> {
    const key = this.key(name);
    try {
      const got = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      if (!(got.Body instanceof Readable)) throw new Error('the response has no readable body');
      return got.Body;
    } catch (err) {
      throw this.failure('read', name, err);
    }
  }

  /**
   * Streams `body` into the object: one PUT below a part's size, else a
   * multipart upload that is completed only after the body ended cleanly and
   * every part arrived, and aborted otherwise, so the object appears whole
   * or not at all (an existing object of that name stays as it was).
   */
  async write(name: string, body: Readable): Promise<StoredObject> {
    const key = this.key(name);
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: key, Body: body },
      partSize: this.partSizeBytes,
      queueSize: this.queueSize,
      // We abort ourselves, so that a failing abort cannot hide why the write failed.
      leavePartsOnError: true,
    });
    try {
      await upload.done();
    } catch (err) {
      if (!body.destroyed) body.destroy();
      const leftover = upload.uploadId ? await this.abortUpload(key, upload.uploadId) : '';
      throw this.failure('write', name, err, leftover);
    }
    const stored = await this.stat(name);
    if (!stored) throw new Error(`write ${name} in ${this.description}: the object is missing right after its upload completed`);
    return stored;
  }

  /** Idempotent: removing a missing object succeeds. */
  async remove(name: string): Promise<void> {
    const key = this.key(name);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      if (isNotFound(err)) return;
      throw this.failure('remove', name, err);
    }
  }

  /** Releases the client's sockets: TargetClients calls it when the run ends. */
  destroy(): void {
    this.client.destroy();
  }

  /** Names are file names only, as in the directory store: no "/" and no "." or "..". */
  private key(name: string): string {
    if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
      throw new Error(`not a file name in ${this.description}: ${JSON.stringify(name)}`);
    }
    return this.prefix + name;
  }

  /** Aborts a multipart upload; returns a note for the error message when that fails too. */
  private async abortUpload(key: string, uploadId: string): Promise<string> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }));
      return '';
    } catch (err) {
      return `; no object was created, but aborting its multipart upload failed too (${describeError(err)}): its parts take space until a lifecycle rule (AbortIncompleteMultipartUpload) removes them`;
    }
  }

  /** An error naming the operation, the object and the store; never the credentials. */
  private failure(operation: string, name: string | undefined, err: unknown, note = ''): Error {
    const what = name === undefined ? `${operation} ${this.description}` : `${operation} ${name} in ${this.description}`;
    return new Error(`${what}: ${describeError(err)}${note}`, { cause: safeCause(err) });
  }
}

/** "postgres" and "/postgres/" both mean the "directory" postgres/; "" is the bucket's root. */
function normalizePrefix(prefix: string): string {
  const trimmed = prefix.replace(/^\/+/, '');
  return trimmed === '' || trimmed.endsWith('/') ? trimmed : `${trimmed}/`;
}

/**
 * No such key. Not any 404: NoSuchBucket is a misconfiguration, not a missing
 * dump (a HEAD answer has no body, though, so stat cannot tell the two apart).
 */
function isNotFound(err: unknown): boolean {
  return isErrorLike(err) && (err.name === 'NotFound' || err.name === 'NoSuchKey');
}

/** "NoSuchBucket (HTTP 404): The specified bucket does not exist"; "HTTP 403 Forbidden" for a body-less answer (HEAD). */
function describeError(err: unknown): string {
  if (!isErrorLike(err)) return redactSecretsIn(String(err));
  const status = err.$metadata?.httpStatusCode;
  if (status && (err.name === 'Unknown' || err.message === 'UnknownError')) return `HTTP ${status} ${STATUS_CODES[status] ?? ''}`.trim();
  const head = status ? `${err.name} (HTTP ${status})` : err.name;
  const message = err.message && err.message !== err.name ? redactSecretsIn(err.message) : '';
  if (!message) return head;
  return head === 'Error' ? message : `${head}: ${message}`;
}

interface SdkError {
  $metadata?: { httpStatusCode?: number; requestId?: string; extendedRequestId?: string; attempts?: number };
}

/** Not `instanceof Error`: errors from Node's core (fs, net) come from another realm under jest. */
function isErrorLike(err: unknown): err is Error & SdkError {
  return typeof err === 'object' && err !== null && typeof (err as Error).message === 'string';
}

/**
 * An S3 service error carries the fields of the server's error body, e.g.
 * `AWSAccessKeyId`, `StringToSign`: keep only name, message, stack and the
 * request ids, since error serializers (pino's) log every field of a cause.
 * Other errors (the body's own) are kept as they are.
 */
function safeCause(err: unknown): unknown {
  if (!isErrorLike(err) || !('$metadata' in err)) return err;
  const meta = err.$metadata ?? {};
  const clean = new Error(redactSecretsIn(err.message));
  clean.name = err.name;
  clean.stack = `${clean.name}: ${clean.message}\n${(err.stack ?? '').split('\n').slice(1).join('\n')}`;
  return Object.assign(clean, {
    $metadata: { httpStatusCode: meta.httpStatusCode, requestId: meta.requestId, extendedRequestId: meta.extendedRequestId, attempts: meta.attempts },
  });
}
