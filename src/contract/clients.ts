/**
 * What a task may open on its target, by target kind: the runner hands a
 * task `ctx.clients` of its own kind only (a redis task has no
 * `postgres()`), opens each client on first use and closes them all when
 * the run ends, however it ends. src/clients/ implements these.
 */
import type { Client, Pool } from 'pg';
import type { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import type { AppsV1Api, AutoscalingV2Api, CoreV1Api, CustomObjectsApi, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import type { KubernetesTarget } from '../config/schema';
import type { BackupStore } from './backup-store';
import type { HttpProbe, HttpProbeOptions } from './http-probe';
import type { PrometheusClient } from './prometheus';

/** The bounds every caretaker session sets on itself. */
export interface SessionLimits {
  statementTimeoutMs: number;
  lockTimeoutMs: number;
  /** Sessions left idle in a transaction by a bug of ours are ended by the server. */
  idleInTransactionTimeoutMs?: number;
}

/** The Kubernetes APIs of one cluster. Cheap to make: nothing connects until a call. */
export interface KubernetesApis {
  /** The API server's URL, for messages. */
  server: string;
  core: CoreV1Api;
  apps: AppsV1Api;
  autoscaling: AutoscalingV2Api;
  rbac: RbacAuthorizationV1Api;
  /** Custom objects, through which metrics.k8s.io's pod usage is read. */
  custom: CustomObjectsApi;
}

/** The BullMQ queues of a queues target, over one Redis connection that has answered a PING. */
export interface QueuesClient {
  redis: Redis;
  /** The queue under the target's prefix; opened once per name, without touching its meta key. */
  queue(name: string): Queue;
}

/** What every run has, whatever its target. */
export interface CommonClients {
  /** caretaker's own state database (history), for tasks that compare with or report on it. */
  state: Pool;
}

/** Another PostgreSQL session for this run (a backup's source, a scratch server), closed with the others. */
export type ConnectPostgres = (url: string, limits: SessionLimits) => Promise<Client>;

export interface ClientsByKind {
  postgres: CommonClients & {
    /** The target's session, with its statement and lock timeouts set. */
    postgres(): Promise<Client>;
  };
  redis: CommonClients & {
    /** The target's connection; fails fast rather than queueing forever. */
    redis(): Redis;
  };
  queues: CommonClients & {
    /** Rejects naming the Redis address and why when it does not answer. */
    queues(): Promise<QueuesClient>;
  };
  kubernetes: CommonClients & {
    kubernetes(): KubernetesApis;
  };
  http: CommonClients & {
    /** The probe for this run's requests (TLS options come from the task's params). */
    http(options: HttpProbeOptions): HttpProbe;
  };
  prometheus: CommonClients & {
    prometheus(): PrometheusClient;
  };
  backups: CommonClients & {
    backupStore(): BackupStore;
    connect: ConnectPostgres;
    /** The cluster of the drill's `kubernetes` target. */
    kubernetes(target: KubernetesTarget): KubernetesApis;
  };
  /** Files and registries read over fetch, opened by the task itself: nothing to hand out but the history. */
  lockfiles: CommonClients;
  caretaker: CommonClients & {
    /** Sessions on the targets it looks across (security-audit). */
    connect: ConnectPostgres;
    kubernetes(target: KubernetesTarget): KubernetesApis;
  };
}
