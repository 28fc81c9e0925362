import type { CaretakerTarget, Config, TargetByKind, TargetKind } from './schema';
import { UsageError } from '../errors';

/** The configured targets of one kind; `caretaker` is always the single self-target. */
export type TargetSources = Pick<Config, 'targets' | 'state' | 'notifications' | 'report' | 'timezone' | 'web' | 'waivers' | 'maintenance'> & Partial<Pick<Config, 'schedulers' | 'checklist'>>;

export function targetsOf<K extends TargetKind>(config: TargetSources, kind: K): TargetByKind[K][] {
  const { targets } = config;
  // One entry per kind, so the compiler checks that each kind's list is of its own type.
  const byKind: { [P in TargetKind]: () => TargetByKind[P][] } = {
    postgres: () => targets.postgres,
    redis: () => targets.redis,
    queues: () => targets.queues,
    kubernetes: () => targets.kubernetes,
    http: () => targets.http,
    prometheus: () => targets.prometheus,
    backups: () => targets.backups,
    lockfiles: () => targets.lockfiles,
    caretaker: () => [caretakerTarget(config)],
  };
  return byKind[kind]();
}

function caretakerTarget(config: TargetSources): CaretakerTarget {
  return {
    name: 'caretaker',
    retentionDays: config.state.retentionDays,
    targets: config.targets,
    notifications: config.notifications,
    report: config.report,
    timezone: config.timezone,
    publicUrl: config.web.publicUrl,
    schedulers: config.schedulers ?? [],
    waivers: config.waivers,
    maintenance: config.maintenance,
    checklist: config.checklist ?? [],
    tasks: {},
  };
}

/** The named target of a kind, or a usage error listing the ones that exist. */
export function findTarget<K extends TargetKind>(config: TargetSources, kind: K, name: string): TargetByKind[K] {
  const targets = targetsOf(config, kind);
  const found = targets.find((t) => t.name === name);
  if (!found) {
    const known = targets.map((t) => t.name).join(', ') || 'none configured';
    throw new UsageError(`unknown ${kind} target ${JSON.stringify(name)} (known: ${known})`);
  }
  return found;
}

/** Every configured target's name, of any kind, and `caretaker`. */
export function allTargetNames(config: Pick<Config, 'targets'>): string[] {
  return [...new Set([...Object.values(config.targets).flatMap((list) => list.map((t) => t.name)), 'caretaker'])];
}

/** What to say when a task's kind has no target: which config key to add it under. */
export function noTargetError(taskName: string, kind: TargetKind): UsageError {
  const article = /^(?:[aeiou]|http)/.test(kind) ? 'an' : 'a';
  return new UsageError(`${taskName} needs ${article} ${kind} target: add one under targets.${kind} in the config`);
}
