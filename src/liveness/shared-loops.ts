/**
 * The background loops of every caretaker process on one Redis prefix, for
 * /health. A worker and a scheduler usually run apart from the web role (a
 * pod each), so the web role's own loops say nothing of theirs: each process
 * that runs loops publishes their states to caretaker's Redis after every
 * round and at least every PUBLISH_REFRESH_MS, under a key of its own that
 * expires after PUBLISH_EXPIRE_MS. A process killed without a goodbye drops
 * out once its key expires; a clean stop withdraws it at once.
 *
 * Writes and reads are bounded and skipped while the connection is not
 * ready: caretaker's client queues commands while offline (BullMQ needs
 * that), and a state written late would be older than the one it replaces.
 * Error texts are scrubbed of the config's secrets before they leave the
 * process; /health shows them with `?detail` only.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { scrubSecrets } from '../logger';
import { coerceError } from '../errors';
import { withTimeout } from '../util/timeout';
import type { BackgroundLoops, LoopState } from './background';

/** How often a process re-publishes its loops when no round reported in between. */
export const PUBLISH_REFRESH_MS = 30_000;
/** How long a published state outlives its process's last word: three refreshes. */
export const PUBLISH_EXPIRE_MS = 3 * PUBLISH_REFRESH_MS;
/** The bound on one write or read: caretaker's Redis is local to it. */
const REDIS_CALL_MS = 2_000;

/** One process's loops as it last published them. */
export interface PublishedLoops {
  /** When it published them (ISO time). */
  at: string;
  loops: Record<string, LoopState>;
}

/** The loops' states of caretaker's processes, in caretaker's Redis. */
export class LoopBoard {
  private readonly index: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.index = `${prefix}:caretaker:loops`;
  }

  private key(process: string): string {
    return `${this.index}:${process}`;
  }

  /** Replaces `process`'s entry; it expires unless published again within PUBLISH_EXPIRE_MS. */
  async publish(process: string, entry: PublishedLoops): Promise<void> {
    await this.call('publishing the loops', () =>
      this.redis.multi().set(this.key(process), JSON.stringify(entry), 'PX', PUBLISH_EXPIRE_MS).sadd(this.index, process).exec(),
    );
  }

  /** Removes `process`'s entry: its loops have stopped. */
  async withdraw(process: string): Promise<void> {
    await this.call('withdrawing the loops', () => this.redis.multi().del(this.key(process)).srem(this.index, process).exec());
  }

  /** Every process's entry that has not expired, by process name. */
  async read(): Promise<Map<string, PublishedLoops>> {
    const processes = await this.call('reading the loops', () => this.redis.smembers(this.index));
    const entries = new Map<string, PublishedLoops>();
    if (processes.length === 0) return entries;
    const values = await this.call('reading the loops', () => this.redis.mget(processes.map((p) => this.key(p))));
    const gone: string[] = [];
    processes.forEach((process, i) => {
      const value = values[i];
      if (value === null || value === undefined) return void gone.push(process);
      const entry = parseEntry(value);
      if (entry) entries.set(process, entry);
    });
    // Their keys expired: the index forgets them too (anyone reading may tidy it; it holds names only).
    if (gone.length > 0) void this.call('tidying the loops index', () => this.redis.srem(this.index, ...gone)).catch(() => undefined);
    return entries;
  }

  private async call<T>(what: string, command: () => Promise<T>): Promise<T> {
    if (this.redis.status !== 'ready') throw new Error(`${what}: Redis not connected (connection status "${this.redis.status}")`);
    return withTimeout(command(), REDIS_CALL_MS, what);
  }
}

/** An entry someone else wrote: trusted only as far as its shape. */
function parseEntry(value: string): PublishedLoops | undefined {
  try {
    const entry = JSON.parse(value) as Partial<PublishedLoops>;
    if (typeof entry.at !== 'string' || typeof entry.loops !== 'object' || entry.loops === null) return undefined;
    return { at: entry.at, loops: entry.loops };
  } catch {
    return undefined;
  }
}

export interface LoopPublisher {
  /** Stops publishing and withdraws this process's entry (bounded). */
  close(): Promise<void>;
}

/**
 * Publishes `loops` as `process` after every round and every `refreshMs`.
 * Rounds that report while a write is under way are folded into one more
 * write after it. A failed write is logged at debug level and retried by
 * the next round or refresh: Redis being away is /health's own check.
 */
export function publishLoops(opts: {
  board: LoopBoard;
  loops: BackgroundLoops;
  process: string;
  /** The config's secret values, scrubbed from the error texts published. */
  secrets: readonly string[];
  log: Logger;
  refreshMs?: number;
  now?: () => number;
}): LoopPublisher {
  const now = opts.now ?? Date.now;
  let writing: Promise<void> | undefined;
  let again = false;
  let closed = false;

  const entry = (): PublishedLoops => ({
    at: new Date(now()).toISOString(),
    loops: Object.fromEntries(
      Object.entries(opts.loops.snapshot()).map(([name, state]) => [name, state.lastError === undefined ? state : { ...state, lastError: scrubSecrets(state.lastError, opts.secrets) }]),
    ),
  });
  const write = (): void => {
    if (closed) return;
    if (writing) {
      again = true;
      return;
    }
    writing = (async () => {
      do {
        again = false;
        await opts.board.publish(opts.process, entry()).catch((err: unknown) => opts.log.debug({ err: coerceError(err).message }, 'loop states not published'));
      } while (again && !closed);
    })().finally(() => (writing = undefined));
  };

  const unsubscribe = opts.loops.onReport(() => write());
  const refresher = setInterval(write, opts.refreshMs ?? PUBLISH_REFRESH_MS);
  refresher.unref();
  write();

  return {
    async close() {
      closed = true;
      unsubscribe();
      clearInterval(refresher);
      await writing;
      await opts.board.withdraw(opts.process).catch((err: unknown) => opts.log.debug({ err: coerceError(err).message }, 'loop states not withdrawn: they expire by themselves'));
    },
  };
}

/** One loop over every process that runs it: its worst state, and each process's own. */
export interface MergedLoop {
  /** `failing` if it fails in any process; the newest success and failure; the most failures in a row; the newest failure's reason. */
  state: LoopState;
  byProcess: Record<string, LoopState>;
}

/** Merges the processes' loops by loop name (a loop in two workers is one line, failing if either fails). */
export function mergeLoops(processes: ReadonlyMap<string, Record<string, LoopState>>): Record<string, MergedLoop> {
  const merged: Record<string, MergedLoop> = {};
  for (const [process, loops] of processes) {
    for (const [name, state] of Object.entries(loops)) {
      const into = (merged[name] ??= { state: { status: 'ok', consecutiveFailures: 0 }, byProcess: {} });
      into.byProcess[process] = state;
      into.state = worse(into.state, state);
    }
  }
  return merged;
}

function worse(a: LoopState, b: LoopState): LoopState {
  const newer = (x?: string, y?: string) => (x === undefined ? y : y === undefined ? x : x > y ? x : y);
  const lastFailureAt = newer(a.lastFailureAt, b.lastFailureAt);
  const lastError = lastFailureAt === undefined ? undefined : lastFailureAt === b.lastFailureAt ? b.lastError : a.lastError;
  const state: LoopState = {
    status: a.status === 'failing' || b.status === 'failing' ? 'failing' : 'ok',
    consecutiveFailures: Math.max(a.consecutiveFailures, b.consecutiveFailures),
  };
  const lastSuccessAt = newer(a.lastSuccessAt, b.lastSuccessAt);
  if (lastSuccessAt !== undefined) state.lastSuccessAt = lastSuccessAt;
  if (lastFailureAt !== undefined) state.lastFailureAt = lastFailureAt;
  if (lastError !== undefined) state.lastError = lastError;
  return state;
}
