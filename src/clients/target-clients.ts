/**
 * Opens a run's clients on first use and closes them after the run, so a
 * task only pays for what it touches and leaks nothing when it throws: one
 * factory per target kind, each giving only what that kind has.
 */
import type { Client, Pool } from 'pg';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { KubernetesTarget, TargetByKind, TargetKind } from '../config/schema';
import type { ClientsByKind, CommonClients, ConnectPostgres, KubernetesApis } from '../contract/clients';
import { createStore } from '../backups/create-store';
import { connectClient, endClient } from './postgres';
import { createRedis } from './redis';
import { createKubernetesClients } from './kubernetes';
import { openQueues } from './queues';
import { createHttpProbe } from './http-probe';
import { createPrometheusClient } from './prometheus';

/** What every run's clients share: its logger, its abort signal, caretaker's state database. */
export interface RunScope {
  log: Logger;
  /** Aborted when the run ends or times out: a client bounds its calls by it. */
  signal: AbortSignal;
  state: Pool;
}

/** The clients one run opened, and closing them all. */
export class RunClientSet {
  private readonly closers: (() => Promise<void> | void)[] = [];

  constructor(readonly scope: RunScope) {}

  /** The clients of a target of kind `kind`, each made on first use. */
  open<K extends TargetKind>(kind: K, target: TargetByKind[K]): ClientsByKind[K] {
    return FACTORIES[kind](target, this);
  }

  /** Runs `close` when the run ends. */
  onClose(close: () => Promise<void> | void): void {
    this.closers.push(close);
  }

  /** Makes the value once, on first call, and releases it when the run ends. */
  lazy<T>(make: () => T, release: (value: T) => Promise<void> | void): () => T {
    let made: { value: T } | undefined;
    return () => {
      if (!made) {
        const value = make();
        made = { value };
        this.onClose(() => release(value));
      }
      return made.value;
    };
  }

  /** Every session and connection opened, closed; a close that fails is ignored (the run is over). */
  async close(): Promise<void> {
    const closers = this.closers.splice(0);
    await Promise.all(
      closers.map(async (close) => {
        try {
          await close();
        } catch {
          /* the run is over: nothing waits on this client any more */
        }
      }),
    );
  }

  common(): CommonClients {
    return { state: this.scope.state };
  }

  /** Another PostgreSQL session per call, closed with the rest. */
  connector(): ConnectPostgres {
    return (url, limits) => {
      const client = connectClient(url, limits, this.scope.log);
      this.onClose(() => closeSession(client));
      return client;
    };
  }

  /** One set of Kubernetes APIs per target name, for tasks that reach a cluster other than their target. */
  kubernetesOf(): (target: KubernetesTarget) => KubernetesApis {
    const made = new Map<string, KubernetesApis>();
    return (target) => {
      let apis = made.get(target.name);
      if (!apis) made.set(target.name, (apis = createKubernetesClients(target)));
      return apis;
    };
  }
}

const closeSession = (client: Promise<Client>) => client.then(endClient).catch(() => undefined);
const disconnect = (redis: Redis) => redis.disconnect();

/** One entry per kind: the compiler checks each gives exactly its kind's clients. */
const FACTORIES: { [K in TargetKind]: (target: TargetByKind[K], set: RunClientSet) => ClientsByKind[K] } = {
  postgres: (target, set) => ({
    ...set.common(),
    postgres: set.lazy(() => connectClient(target.url, target, set.scope.log), closeSession),
  }),
  redis: (target, set) => ({
    ...set.common(),
    redis: set.lazy(() => createRedis(target.url, set.scope.log, { maxRetriesPerRequest: 1, connectTimeout: 5_000 }), disconnect),
  }),
  queues: (target, set) => ({
    ...set.common(),
    queues: set.lazy(
      () => openQueues(target, set.scope.log),
      async (opened) => (await opened.catch(() => undefined))?.close(),
    ),
  }),
  kubernetes: (target, set) => ({
    ...set.common(),
    // Nothing to close: the generated clients open a connection per call, bounded by callOptions.
    kubernetes: set.lazy(() => createKubernetesClients(target), () => undefined),
  }),
  http: (_target, set) => ({
    ...set.common(),
    http: (options) => {
      const probe = createHttpProbe({ ...options, signal: set.scope.signal });
      set.onClose(() => probe.close());
      return probe;
    },
  }),
  prometheus: (target, set) => ({
    ...set.common(),
    prometheus: set.lazy(() => createPrometheusClient(target, set.scope.signal), () => undefined),
  }),
  backups: (target, set) => ({
    ...set.common(),
    backupStore: set.lazy(() => createStore(target.store), (store) => store.destroy?.()),
    connect: set.connector(),
    kubernetes: set.kubernetesOf(),
  }),
  lockfiles: (_target, set) => set.common(),
  caretaker: (_target, set) => ({
    ...set.common(),
    connect: set.connector(),
    kubernetes: set.kubernetesOf(),
  }),
};
