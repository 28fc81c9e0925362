/**
 * How each background loop's rounds went (the outbox flush, the job
 * scheduler re-sync, the missed-run check, the alert sweep), for /health. A
 * loop that fails logs and keeps going, so without this a flush failing for
 * an hour shows only in the logs. Every round reports: a failure records
 * when and why (one line, URL passwords redacted) and counts the failures in
 * a row; the next round that works ends the failing state.
 *
 * Failing is not stuck: /livez (liveness.ts) judges whether a loop comes
 * round at all; this says whether its rounds work.
 */
import { coerceError } from '../errors';
import { redactSecretsIn } from '../logger';

/** What one round of a loop came to. */
export type LoopOutcome = { ok: true } | { ok: false; error: unknown };

export const LOOP_OK: LoopOutcome = { ok: true };

/** What a round's promise came to: it never rejects, so a loop's chain goes on after a failed round. */
export function outcomeOf(round: Promise<unknown>): Promise<LoopOutcome> {
  return round.then(
    () => LOOP_OK,
    (error: unknown) => ({ ok: false, error }),
  );
}

/** A loop as /health shows it. */
export interface LoopState {
  /** `failing` from a failed round until the next one that works. */
  status: 'ok' | 'failing';
  /** When a round last worked (ISO time); absent until one has. */
  lastSuccessAt?: string;
  /** When a round last failed (ISO time), kept after the loop recovers. */
  lastFailureAt?: string;
  /** Why that round failed: one line, URL passwords redacted (the caller scrubs the config's secrets when it shows it). */
  lastError?: string;
  /** Failed rounds since the last one that worked. */
  consecutiveFailures: number;
}

/** The longest reason kept: a driver's error may quote a whole statement. */
const MAX_REASON_CHARS = 500;

/**
 * One line saying why `thrown` happened, URL passwords redacted. Node
 * reports a refused connection to a host with several addresses as an
 * AggregateError with an empty message: its first cause speaks then.
 */
export function failureReason(thrown: unknown): string {
  const err = coerceError(thrown);
  const inner = err instanceof AggregateError && err.errors.length > 0 ? coerceError(err.errors[0]) : undefined;
  const code = (err as { code?: unknown }).code;
  const message = err.message || inner?.message || (typeof code === 'string' ? code : err.name);
  const line = redactSecretsIn(message).replace(/\s+/g, ' ').trim();
  return line.length > MAX_REASON_CHARS ? `${line.slice(0, MAX_REASON_CHARS - 1)}…` : line;
}

/** The loops of this process and how their rounds went. */
export class BackgroundLoops {
  private readonly loops = new Map<string, LoopState>();
  private readonly listeners = new Set<(loop: string, state: LoopState) => void>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Lists `loop` (not failing) before its first round, so /health names every loop it watches. */
  watch(loop: string): void {
    if (!this.loops.has(loop)) this.loops.set(loop, { status: 'ok', consecutiveFailures: 0 });
  }

  /** Records one round of `loop`. */
  report(loop: string, outcome: LoopOutcome): void {
    const at = new Date(this.now()).toISOString();
    const state = this.loops.get(loop) ?? { status: 'ok', consecutiveFailures: 0 };
    const next: LoopState = outcome.ok
      ? { ...state, status: 'ok', lastSuccessAt: at, consecutiveFailures: 0 }
      : { ...state, status: 'failing', lastFailureAt: at, lastError: failureReason(outcome.error), consecutiveFailures: state.consecutiveFailures + 1 };
    this.loops.set(loop, next);
    for (const listener of this.listeners) {
      try {
        listener(loop, next);
      } catch {
        // A listener's mistake is its own: the loop that reported goes on.
      }
    }
  }

  /** Each watched loop's state, by name. */
  snapshot(): Record<string, LoopState> {
    return Object.fromEntries([...this.loops].map(([loop, state]) => [loop, { ...state }]));
  }

  /** The loops failing now. */
  failing(): string[] {
    return [...this.loops].filter(([, s]) => s.status === 'failing').map(([loop]) => loop);
  }

  /** Calls `listener` after every round reported (tests wait on it rather than on a clock); returns the unsubscribe. */
  onReport(listener: (loop: string, state: LoopState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
