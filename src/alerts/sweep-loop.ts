/**
 * Runs the alerter's sweep on a timer (held alerts whose silence or window
 * ended, Alertmanager re-posts). One sweep at a time; a slow one delays
 * the next rather than piling up. `sweep` never throws.
 */
import type { Alerter } from './alerter';

export interface SweepLoop {
  close(): Promise<void>;
}

export function startAlertSweep(alerter: Pick<Alerter, 'sweep' | 'sweepIntervalMs'>, onSwept?: () => void): SweepLoop {
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const tick = () => {
    running = alerter.sweep().finally(() => {
      onSwept?.();
      if (!closed) timer = setTimeout(tick, alerter.sweepIntervalMs);
    });
  };
  timer = setTimeout(tick, alerter.sweepIntervalMs);
  return {
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
