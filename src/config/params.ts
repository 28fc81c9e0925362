/**
 * A run's params: the task's defaults, overridden by the config's
 * `tasks.<task>`, then the target's own `tasks.<task>`, then `--param`.
 */
import type { z } from 'zod';
import type { AnyTarget, Config } from './schema';
import { UsageError } from '../errors';

export type ParamsResult<P = Record<string, unknown>> = { ok: true; params: P } | { ok: false; problems: string[] };

/** What params are resolved for: a task's name and schema. */
export interface ParamsOwner<S extends z.ZodObject> {
  name: string;
  params: S;
}

/** Validates the merged params; problems are named by where the bad value came from. */
export function resolveParams<S extends z.ZodObject>(
  task: ParamsOwner<S>,
  config: Pick<Config, 'tasks'>,
  target: AnyTarget,
  overrides: Record<string, unknown> = {},
  overridePath = '--param',
): ParamsResult<z.output<S>> {
  const fromConfig = config.tasks[task.name] ?? {};
  const fromTarget = target.tasks?.[task.name] ?? {};
  const merged = { ...fromConfig, ...fromTarget, ...overrides };
  const parsed = task.params.safeParse(merged);
  if (parsed.success) return { ok: true, params: parsed.data };
  // Point at the layer the bad key came from, so the operator edits the right place.
  const problems: string[] = [];
  for (const issue of parsed.error.issues) {
    const unknown = issue.code === 'unrecognized_keys';
    const keys = unknown ? issue.keys : [String(issue.path[0] ?? '')];
    for (const key of keys) {
      // Own keys only: "constructor" is in every object.
      const origin = Object.hasOwn(overrides, key)
        ? `${overridePath} ${key}`
        : Object.hasOwn(fromTarget, key)
          ? `targets.${target.name}.tasks.${task.name}.${key}`
          : `tasks.${task.name}.${key}`;
      problems.push(`${origin}: ${unknown ? `not a param of ${task.name}` : issue.message}`);
    }
  }
  return { ok: false, problems };
}

/**
 * `--param KEY=VALUE` flags as an object. Values are read as JSON when they
 * parse (`1`, `true`, `["a"]`), else kept as strings (`app_user`).
 */
export function parseParamFlags(flags: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const flag of flags) {
    const eq = flag.indexOf('=');
    if (eq <= 0) throw new UsageError(`--param ${JSON.stringify(flag)}: expected KEY=VALUE`);
    const key = flag.slice(0, eq);
    const raw = flag.slice(eq + 1);
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(key)) throw new UsageError(`--param ${JSON.stringify(flag)}: ${JSON.stringify(key)} is not a param name`);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      /* a plain string */
    }
    out[key] = value;
  }
  return out;
}
