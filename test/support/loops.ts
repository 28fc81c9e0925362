/**
 * Waiting for a background loop's round instead of a clock: resolves with
 * the first report of `loop` that `match` accepts, from now on. Bounded, so
 * a loop that never reports fails the test with its name.
 */
import type { BackgroundLoops, LoopState } from '../../src/liveness/background';

export function nextReport(loops: BackgroundLoops, loop: string, match: (state: LoopState) => boolean = () => true, timeoutMs = 15_000): Promise<LoopState> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`no report of "${loop}" as expected within ${timeoutMs} ms (now ${JSON.stringify(loops.snapshot()[loop])})`));
    }, timeoutMs);
    const stop = loops.onReport((name, state) => {
      if (name !== loop || !match(state)) return;
      clearTimeout(timer);
      stop();
      resolve(state);
    });
  });
}
