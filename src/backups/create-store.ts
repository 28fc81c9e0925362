import type { BackupStoreConfig } from '../config/schema';
import { DirectoryStore } from './directory-store';
import { S3Store } from './s3-store';
import type { BackupStore } from './store';

/** The store a backups target's config describes. */
export function createStore(config: BackupStoreConfig): BackupStore {
  switch (config.kind) {
    case 'directory':
      return new DirectoryStore(config.path);
    case 's3':
      return new S3Store(config);
  }
}
