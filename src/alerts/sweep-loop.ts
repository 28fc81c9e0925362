/**
 * Runs the alerter's sweep on a timer (held alerts whose silence or window
 * ended, Alertmanager re-posts). One sweep at a time; a slow one delays
 * the next rather than piling up. Each round reports its outcome
 * (`onSwept`: /livez's heartbeat, /health's loop state). The alerter's
 * `sweep` logs its own failures and resolves; one that rejects all the
 * same is reported as a failed round and the loop goes on.
 */
import type { Alerter } from './alerter';
import { outcomeOf, type LoopOutcome } from '../liveness/background';

export interface SweepLoop {
  close(): Promise<void>;
}

export interface SweepLoopOptions {
  /** Time between the end of one sweep and the start of the next: default the alerter's `sweepIntervalMs`; tests shorten it. */
  intervalMs?: number;
  /** Called after each sweep, with whether it worked. */
  onSwept?: (outcome: LoopOutcome) => void;
}

export function startAlertSweep(alerter: Pick<Alerter, 'sweep' | 'sweepIntervalMs'>, opts: SweepLoopOptions = {}): SweepLoop {
  const intervalMs = opts.intervalMs ?? alerter.sweepIntervalMs;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const tick = () => {
    running = outcomeOf(alerter.sweep())
      .then((outcome) => opts.onSwept?.(outcome))
      .finally(() => {
        if (!closed) timer = setTimeout(tick, intervalMs);
      });
  };
  timer = setTimeout(tick, intervalMs);
  return {
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
