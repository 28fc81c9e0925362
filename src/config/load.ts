/**
 * The one place that reads the environment: turns a config file (or, without
 * one, the local defaults from env) into a validated `Config`, or throws a
 * ConfigError listing every problem with its path. What the command line
 * needs without a config (its log level, CARETAKER_DEBUG) is environment.ts.
 */
import { userInfo } from 'node:os';
import type { TaskRegistry } from '../jobs';
import { ConfigError } from '../errors';
import { configSchema, type BackupsTarget, type Config, type ParsedConfig, type QueuesTarget, type TargetKind } from './schema';
import { SCRATCH_PREFIX, databaseOf, isScratchName } from '../backups/scratch';
import { formatIssues, formatPath } from './format-issues';
import { interpolate } from './interpolate';
import { readYamlFile } from './read-yaml';
import { resolveParams } from './params';
import { RUNBOOK_TASKS } from '../schedules/catalog';
import { expandSchedulers, resolveSchedules } from '../schedules/resolve';
import { targetsOf } from './targets';
import { resolveAlerting, type ResolvedAlerting } from './alerting';
import { resolveChecklist } from './checklist';

export type { Env } from './environment';
import type { Env } from './environment';

export interface LoadConfigOptions {
  /** `--config FILE`; else `CARETAKER_CONFIG`; else local defaults from env. */
  path?: string;
  env: Env;
  registry: TaskRegistry;
}

export const LOCAL_DEFAULTS = {
  databaseUrl: 'postgres://localhost:5432/postgres',
  redisUrl: 'redis://127.0.0.1:6379',
} as const;

/**
 * The local default database URL with a user name, as psql would pick it
 * (PGUSER, else the OS user): node-pg only looks at $USER, which services
 * and containers often do not set.
 */
function defaultDatabaseUrl(env: Env): string {
  const url = new URL(LOCAL_DEFAULTS.databaseUrl);
  url.username = encodeURIComponent(env.PGUSER || env.USER || userInfo().username);
  return url.toString();
}

export function loadConfig({ path, env, registry }: LoadConfigOptions): Config {
  const file = path ?? (env.CARETAKER_CONFIG || undefined);
  const source = file ?? 'environment defaults';
  let raw: unknown;
  if (file) {
    // readYamlFile refuses __proto__, constructor and prototype as keys anywhere, so the copies
    // made from the file's keys after it (interpolate, zod's records, resolveParams merging the
    // config's, the target's and a job's params by spread) never meet a key that reaches a prototype.
    const interpolated = interpolate(readYamlFile(file), env);
    if (interpolated.problems.length > 0) throw new ConfigError(source, interpolated.problems);
    raw = interpolated.value;
  } else {
    raw = configFromEnv(env);
  }
  return validateConfig(raw, source, registry);
}

/** Validates already-parsed data: used by loadConfig and by tests building configs in code. */
export function validateConfig(raw: unknown, source: string, registry: TaskRegistry): Config {
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(source, formatIssues(parsed.error));
  const config = parsed.data;
  const schedules = resolveSchedules(config, registry);
  const routing = resolveAlerting(config.notifications);
  const checklist = resolveChecklist(config, schedules.schedules);
  const problems = [...checkReferences(config, registry), ...schedules.problems, ...routing.problems, ...checklist.problems];
  const stateUrl = config.state.url ?? config.targets.postgres[0]?.url;
  if (!stateUrl) problems.push('state.url: required when no postgres target is configured');
  if (problems.length > 0) throw new ConfigError(source, problems);
  const resolved: Config = { ...config, targets: { ...config.targets, backups: resolveBackups(config, routing.alerting), queues: resolveQueues(config) }, state: { ...config.state, url: stateUrl! }, source, schedulers: [], alerting: routing.alerting, checklist: checklist.items };
  resolved.schedulers = expandSchedulers(schedules.schedules, resolved, registry);
  return resolved;
}

/** Targets by name (names are unique within a kind: checkReferences says so first). */
function byName<T extends { name: string }>(targets: readonly T[]): Map<string, T> {
  return new Map(targets.map((t) => [t.name, t]));
}

/** Queues targets carry the redis target they live on. */
function resolveQueues(config: ParsedConfig): QueuesTarget[] {
  const redis = byName(config.targets.redis);
  return config.targets.queues.map((q) => ({ ...q, redisTarget: redis.get(q.redis)! }));
}

/**
 * Backups targets carry the targets they name, and the Alertmanagers of
 * the alerting channels (dr-drill silences its pod kill there), so a task
 * needs nothing but its target.
 */
function resolveBackups(config: ParsedConfig, alerting: ResolvedAlerting): BackupsTarget[] {
  const alertmanagers = [...new Set(Object.values(alerting.channels).flatMap((c) => (c.kind === 'alertmanager' ? [c.url] : [])))];
  const postgres = byName(config.targets.postgres);
  const kubernetes = byName(config.targets.kubernetes);
  return config.targets.backups.map((b) => ({
    ...b,
    source: postgres.get(b.database)!,
    drillKubernetes: b.drill ? kubernetes.get(b.drill.kubernetes) : undefined,
    alertmanagers,
  }));
}

/** Local defaults (the README's Quick start): one postgres target `default`, Redis, web on 127.0.0.1:3000. */
function configFromEnv(env: Env): unknown {
  const port = env.PORT ? Number(env.PORT) : undefined;
  if (port !== undefined && !Number.isInteger(port)) {
    throw new ConfigError('environment defaults', [`PORT: ${JSON.stringify(env.PORT)} is not a port number`]);
  }
  return {
    redis: { url: env.REDIS_URL || LOCAL_DEFAULTS.redisUrl },
    state: { url: env.CARETAKER_STATE_URL || undefined },
    web: {
      host: env.HOST || '127.0.0.1',
      port: port ?? 3000,
      auth: { admin: env.CARETAKER_ADMIN || undefined, viewer: env.CARETAKER_VIEWER || undefined },
    },
    targets: { postgres: [{ name: 'default', url: env.DATABASE_URL || defaultDatabaseUrl(env) }] },
  };
}

/** Cross-field rules zod cannot see: unique names, references, task params. */
function checkReferences(config: ParsedConfig, registry: TaskRegistry): string[] {
  const problems: string[] = [];
  for (const [kind, targets] of Object.entries(config.targets) as [Exclude<TargetKind, 'caretaker'>, { name: string }[]][]) {
    const seen = new Set<string>();
    (targets as { name: string; tasks?: Record<string, unknown> }[]).forEach((t, i) => {
      for (const task of Object.keys(t.tasks ?? {})) {
        if (!registry.has(task) && !Object.hasOwn(RUNBOOK_TASKS, task)) problems.push(`${formatPath(['targets', kind, i, 'tasks', task])}: unknown task ${JSON.stringify(task)}`);
      }
      if (seen.has(t.name)) problems.push(`targets.${kind}[${i}].name: duplicate target name ${JSON.stringify(t.name)}`);
      seen.add(t.name);
    });
  }
  // Each kind's names once: a look-up per reference keeps a fleet's config linear to load.
  const redisNames = new Set(config.targets.redis.map((t) => t.name));
  const postgresNames = new Set(config.targets.postgres.map((t) => t.name));
  const kubernetesNames = new Set(config.targets.kubernetes.map((t) => t.name));
  config.targets.queues.forEach((q, i) => {
    if (!redisNames.has(q.redis)) problems.push(`targets.queues[${i}].redis: no redis target named ${JSON.stringify(q.redis)}`);
  });
  config.targets.backups.forEach((b, i) => {
    if (!postgresNames.has(b.database)) problems.push(`targets.backups[${i}].database: no postgres target named ${JSON.stringify(b.database)}`);
    if (b.drill && !kubernetesNames.has(b.drill.kubernetes)) {
      problems.push(`targets.backups[${i}].drill.kubernetes: no kubernetes target named ${JSON.stringify(b.drill.kubernetes)}`);
    }
    if (b.scratch && isScratchName(databaseOf(b.scratch.url))) {
      problems.push(`targets.backups[${i}].scratch.url: the maintenance database must not start with "${SCRATCH_PREFIX}"`);
    }
  });
  // A restore test may drop its scratch databases: no configured target may look like one.
  config.targets.postgres.forEach((t, i) => {
    if (isScratchName(databaseOf(t.url))) problems.push(`targets.postgres[${i}].url: database names starting with "${SCRATCH_PREFIX}" are reserved for restore tests`);
  });

  for (const name of Object.keys(config.tasks)) {
    if (!registry.has(name) && !Object.hasOwn(RUNBOOK_TASKS, name)) problems.push(`${formatPath(['tasks', name])}: unknown task ${JSON.stringify(name)}`);
  }
  // Every (task, target) pair must have valid params now, not at 3 a.m.
  for (const task of registry.values()) {
    for (const target of targetsOf(config as Config, task.target)) {
      const result = resolveParams(task, config, target);
      if (!result.ok) problems.push(...result.problems);
    }
    // And what a task reads per target of another kind, from that target's own tasks.<task>.
    for (const kind of task.perTarget?.kinds ?? []) {
      targetsOf(config as Config, kind).forEach((target, i) => {
        const own = target.tasks?.[task.name];
        if (own === undefined) return;
        const parsed = task.perTarget!.params.safeParse(own);
        if (!parsed.success) problems.push(...formatIssues(parsed.error, ['targets', kind, i, 'tasks', task.name]));
      });
    }
  }
  return [...new Set(problems)];
}

