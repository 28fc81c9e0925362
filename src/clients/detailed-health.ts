/**
 * Reads a detailed health answer: its overall status and its components',
 * whichever of the common formats it follows (terminus, Spring actuator,
 * the IETF health-check draft, a flat `{ db: { status } }`), and judges a
 * status as healthy, degraded or down.
 */

/** Components listed from a detailed health answer, at most. */
const MAX_COMPONENTS = 100;
/** Statuses (lower-cased) that mean healthy, or degraded; anything else is down. */
const HEALTHY_STATUSES = new Set(['ok', 'up', 'pass', 'passed', 'healthy', 'green', 'available', 'online', 'success', 'operational']);
const DEGRADED_STATUSES = new Set(['degraded', 'warn', 'warning', 'yellow', 'partial', 'partially_available', 'unknown']);
/** Where detailed health formats keep their components (terminus, Spring actuator, the IETF health-check draft...). */
const COMPONENT_CONTAINERS = ['checks', 'components', 'details', 'services', 'dependencies', 'error', 'info'];

/** One component as the answer states it (a boolean status reads as "up" / "down"). */
export interface HealthComponent {
  name: string;
  status: string;
}

export interface DetailedHealth {
  /** The service's own overall word, when it gives one. */
  status?: string;
  /** At most 100, each named once with the worst status given for it. */
  components: HealthComponent[];
}

/** What a status means. */
export type HealthClass = 'ok' | 'degraded' | 'down';

/** The status and components of a JSON health answer; undefined when it is not one. */
export function readDetailedHealth(body: string): DetailedHealth | undefined {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (!isObject(json)) return undefined;
  const status = statusOf(json);
  const byName = new Map<string, string>();
  const add = (name: string, value: unknown) => {
    const s = Array.isArray(value) ? worstStatus(value.map(statusOf)) : statusOf(value);
    if (s === undefined || byName.size >= MAX_COMPONENTS) return;
    const before = byName.get(name);
    byName.set(name, before === undefined ? s : worstStatus([before, s])!);
  };
  for (const key of COMPONENT_CONTAINERS) {
    const container = json[key];
    if (isObject(container)) for (const [name, value] of Object.entries(container)) add(name, value);
  }
  for (const [name, value] of Object.entries(json)) if (!COMPONENT_CONTAINERS.includes(name)) add(name, value);
  if (status === undefined && byName.size === 0) return undefined;
  return { status, components: [...byName].map(([name, s]) => ({ name, status: s })) };
}

/** `UP`, `pass`, `green`... are ok; `warn`, `degraded`, `unknown`... degraded; anything else is down. */
export function classifyStatus(status: string): HealthClass {
  const s = status.toLowerCase();
  return HEALTHY_STATUSES.has(s) ? 'ok' : DEGRADED_STATUSES.has(s) ? 'degraded' : 'down';
}

const RANK = { ok: 0, degraded: 1, down: 2 } as const;

/** The worst class among the statuses; ok for none. */
export function worstClass(statuses: readonly string[]): HealthClass {
  return statuses.map(classifyStatus).reduce((a, b) => (RANK[b] > RANK[a] ? b : a), 'ok' as HealthClass);
}

function statusOf(value: unknown): string | undefined {
  if (!isObject(value)) return undefined;
  const s = value.status;
  return typeof s === 'string' ? s : typeof s === 'boolean' ? (s ? 'up' : 'down') : undefined;
}

/** The worst of the statuses as written (the first of equally bad ones). */
function worstStatus(statuses: (string | undefined)[]): string | undefined {
  const known = statuses.filter((s): s is string => s !== undefined);
  return known.reduce<string | undefined>((a, b) => (a === undefined || RANK[classifyStatus(b)] > RANK[classifyStatus(a)] ? b : a), undefined);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
