/** PLACEHOLDER while the S3 store is written (replaced before landing). */
import type { Readable } from 'node:stream';
import type { BackupStoreConfig } from '../config/schema';
import type { BackupStore, StoredObject } from './store';

type S3StoreConfig = Extract<BackupStoreConfig, { kind: 's3' }>;

export class S3Store implements BackupStore {
  readonly description: string;
  constructor(config: S3StoreConfig) {
    this.description = `s3://${config.bucket}/${config.prefix}`;
  }
  list(): Promise<StoredObject[]> {
    throw new Error('not implemented');
  }
  stat(_name: string): Promise<StoredObject | undefined> {
    throw new Error('not implemented');
  }
  read(_name: string): Promise<Readable> {
    throw new Error('not implemented');
  }
  write(_name: string, _body: Readable): Promise<StoredObject> {
    throw new Error('not implemented');
  }
  remove(_name: string): Promise<void> {
    throw new Error('not implemented');
  }
}
