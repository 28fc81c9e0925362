/**
 * Opens a run's clients on first use and closes them after the run, so a
 * task only pays for what it touches and leaks nothing when it throws.
 */
import type { Client } from 'pg';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Pool } from 'pg';
import type { AnyTarget, BackupsTarget, PostgresTarget, RedisTarget } from '../config/schema';
import type { BackupStore } from '../backups/store';
import { createStore } from '../backups/create-store';
import { connectClient, endClient, type SessionLimits } from './postgres';
import { createRedis } from './redis';

export class TargetClients {
  private pg?: Promise<Client>;
  private redisClient?: Redis;
  private extra: Promise<Client>[] = [];
  private store?: BackupStore;

  constructor(
    private readonly target: AnyTarget,
    private readonly log: Logger,
    /** caretaker's own state database, for tasks whose target is caretaker itself. */
    readonly state: Pool,
  ) {}

  /** The target's PostgreSQL session (postgres targets only). */
  postgres(): Promise<Client> {
    const target = this.target as PostgresTarget;
    if (!('url' in target) || !('statementTimeoutMs' in target)) throw new Error(`target ${this.target.name} is not a postgres target`);
    this.pg ??= connectClient(target.url, target, this.log);
    return this.pg;
  }

  /** The target's Redis connection (redis targets only); fails fast rather than queueing forever. */
  redis(): Redis {
    const target = this.target as RedisTarget;
    if (!('url' in target)) throw new Error(`target ${this.target.name} is not a redis target`);
    this.redisClient ??= createRedis(target.url, this.log, { maxRetriesPerRequest: 1, connectTimeout: 5_000 });
    return this.redisClient;
  }

  /** The store of a backups target's dumps; its client (S3) is released when the run ends. */
  backupStore(): BackupStore {
    const target = this.target as BackupsTarget;
    if (!('store' in target)) throw new Error(`target ${this.target.name} is not a backups target`);
    this.store ??= createStore(target.store);
    return this.store;
  }

  /**
   * Another PostgreSQL session for this run (a backup's source database, a
   * scratch server), with the same limits and application name; closed with
   * the others when the run ends.
   */
  connect(url: string, limits: SessionLimits): Promise<Client> {
    const client = connectClient(url, limits, this.log);
    this.extra.push(client);
    return client;
  }

  async close(): Promise<void> {
    const sessions = [this.pg, ...this.extra];
    this.pg = undefined;
    this.extra = [];
    await Promise.all(sessions.map((s) => s?.then(endClient).catch(() => undefined)));
    this.redisClient?.disconnect();
    this.redisClient = undefined;
    this.store?.destroy?.();
    this.store = undefined;
  }
}
