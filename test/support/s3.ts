/**
 * A real S3-protocol server for tests: s3rver in-process on 127.0.0.1, a
 * free port, its own temporary directory, silent. Start one per test file:
 *
 *   const s3 = await startS3();                  // beforeAll
 *   const bucket = await s3.createBucket();      // random name
 *   const store = new S3Store(s3.storeConfig(bucket, 'postgres/'));
 *   await s3.stop();                             // afterAll: server and directory gone
 *
 * `storeConfig` also fits runOnBackups' `backups.store`.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import type { S3StoreConfig } from '../../src/backups/s3-store';

/** The part of s3rver 3.7.1's API we use (it ships no types); it is a Koa application. */
interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  httpServer?: Server;
  middleware: KoaMiddleware[];
}
interface KoaContext {
  method: string;
  query: Record<string, string | string[] | undefined>;
  body: unknown;
}
type KoaMiddleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void> | void;
type S3rverClass = new (options: { address: string; port: number; silent: boolean; directory: string; resetOnClose?: boolean }) => S3rverInstance;
const S3rver = require('s3rver') as S3rverClass;
const S3RVER_VERSION = (require('s3rver/package.json') as { version: string }).version;

/** s3rver accepts only these credentials (any region). */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;
export const S3RVER_REGION = 'us-east-1';

/** One HTTP request the server received, for tests that assert on the protocol (multipart, pagination). */
export interface S3Request {
  method: string;
  /** Path without the query, e.g. "/bucket/prefix/name". */
  path: string;
  query: URLSearchParams;
}

export interface S3TestServer {
  /** e.g. "http://127.0.0.1:40123". */
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** A client for planting or inspecting objects behind a store's back. */
  client: S3Client;
  /** Every request so far, oldest first. */
  requests: S3Request[];
  /** TCP connections open to the server right now (a client that was never destroyed keeps its own). */
  openConnections(): Promise<number>;
  /** Creates a bucket (a random valid name by default) and resolves with its name. */
  createBucket(name?: string): Promise<string>;
  /** A complete `kind: 's3'` store config for this server. */
  storeConfig(bucket: string, prefix?: string): S3StoreConfig;
  /** Stops the server, closes the client and removes the directory. */
  stop(): Promise<void>;
}

/** `keepAliveTimeoutMs`: how long the server keeps an idle client connection (Node's default 5 s). */
export async function startS3(opts: { keepAliveTimeoutMs?: number } = {}): Promise<S3TestServer> {
  if (S3RVER_VERSION !== '3.7.1') throw new Error(`test/support/s3.ts patches s3rver 3.7.1's listing, found ${S3RVER_VERSION}: check pagedListings`);
  const directory = await mkdtemp(join(tmpdir(), 'caretaker-s3rver-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory });
  // Inside its XML encoder (middleware 0 logs, 1 encodes), so it sees the answer as an object.
  server.middleware.splice(2, 0, pagedListings);
  let address: AddressInfo;
  try {
    address = await server.run();
  } catch (err) {
    await rm(directory, { recursive: true, force: true });
    throw err;
  }
  if (opts.keepAliveTimeoutMs !== undefined) server.httpServer!.keepAliveTimeout = opts.keepAliveTimeoutMs;
  const requests: S3Request[] = [];
  // First in line: the listing shim rewrites req.url on its way through.
  server.httpServer?.prependListener('request', (req: { method?: string; url?: string }) => {
    const url = new URL(req.url ?? '/', 'http://s3rver');
    requests.push({ method: req.method ?? '', path: decodeURIComponent(url.pathname), query: url.searchParams });
  });
  const endpoint = `http://127.0.0.1:${address.port}`;
  const client = new S3Client({ endpoint, region: S3RVER_REGION, forcePathStyle: true, credentials: { ...S3RVER_CREDENTIALS } });

  return {
    endpoint,
    region: S3RVER_REGION,
    ...S3RVER_CREDENTIALS,
    client,
    requests,
    openConnections: () =>
      new Promise<number>((resolve, reject) => server.httpServer!.getConnections((err, n) => (err ? reject(err) : resolve(n)))),
    async createBucket(name = `ct-${randomBytes(5).toString('hex')}`) {
      await client.send(new CreateBucketCommand({ Bucket: name }));
      return name;
    },
    storeConfig(bucket, prefix = '') {
      return { kind: 's3', bucket, prefix, endpoint, region: S3RVER_REGION, forcePathStyle: true, ...S3RVER_CREDENTIALS };
    },
    async stop() {
      client.destroy();
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/**
 * s3rver 3.7.1 encrypts ListObjectsV2 continuation tokens with DES, which
 * OpenSSL 3 (Node >= 17) no longer has: any truncated V2 listing answers
 * HTTP 500. This serves V2 listings from s3rver's V1 listing (marker = the
 * last key returned) and answers in V2's shape with that marker as the
 * token, so clients page exactly as against real S3.
 */
const pagedListings: KoaMiddleware = async (ctx, next) => {
  if (ctx.method !== 'GET' || ctx.query['list-type'] !== '2') return next();
  const { 'list-type': _v2, 'continuation-token': token, 'start-after': startAfter, 'fetch-owner': _owner, ...rest } = ctx.query;
  const marker = typeof token === 'string' && token ? Buffer.from(token, 'base64url').toString('utf8') : startAfter;
  ctx.query = marker ? { ...rest, marker } : rest;
  await next();
  const result = (ctx.body as { ListBucketResult?: Record<string, unknown> } | undefined)?.ListBucketResult;
  if (!result) return;
  const { Marker: _marker, NextMarker, ...common } = result;
  const contents = (common.Contents ?? []) as { Key: string }[];
  const prefixes = (common.CommonPrefixes ?? []) as unknown[];
  const nextMarker = common.IsTruncated ? ((NextMarker as string | undefined) ?? contents.at(-1)?.Key) : undefined;
  ctx.body = {
    ListBucketResult: {
      ...common,
      ContinuationToken: token || undefined,
      StartAfter: token ? undefined : startAfter,
      NextContinuationToken: nextMarker ? Buffer.from(nextMarker, 'utf8').toString('base64url') : undefined,
      KeyCount: contents.length + prefixes.length,
    },
  };
};
