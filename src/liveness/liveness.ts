/**
 * Whether a process's loops still make progress, for a liveness probe
 * (`/livez`). Busy or failing is alive: a scheduler whose database is down
 * keeps checking and failing, and a restart would not help. Stuck is not:
 * a loop that has not come round in far longer than its period, or a job
 * still in the processor long after its task's timeout (a process whose
 * event loop renews its job locks while its work never ends is never
 * handed on by BullMQ's stalled check). Kubernetes restarts a stuck process.
 */

export interface LivenessVerdict {
  live: boolean;
  /** What is stuck: `missed-run check: silent for 612 s (at most 180 s)`, `job 42 (vacuum-analyze on auditron): 3700 s in the processor (at most 3660 s)`. */
  stuck: string[];
}

export class Liveness {
  private readonly loops = new Map<string, { last: number; maxSilenceMs: number }>();
  private readonly jobs = new Map<string, { what: string; started: number; maxMs: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** `loop` came round (whether its work succeeded or not); it is stuck once silent for more than `maxSilenceMs`. */
  beat(loop: string, maxSilenceMs: number): void {
    this.loops.set(loop, { last: this.now(), maxSilenceMs });
  }

  /** Watches `loop` from now on: beats once, and returns its beat for each time it comes round. */
  loop(loop: string, maxSilenceMs: number): () => void {
    const beat = () => this.beat(loop, maxSilenceMs);
    beat();
    return beat;
  }

  /** A job entered the processor; it is stuck once there for more than `maxMs`. */
  jobStarted(id: string, what: string, maxMs: number): void {
    this.jobs.set(id, { what, started: this.now(), maxMs });
  }

  jobEnded(id: string): void {
    this.jobs.delete(id);
  }

  check(): LivenessVerdict {
    const now = this.now();
    const stuck: string[] = [];
    const s = (ms: number) => `${Math.round(ms / 1000)} s`;
    for (const [loop, l] of this.loops) {
      if (now - l.last > l.maxSilenceMs) stuck.push(`${loop}: silent for ${s(now - l.last)} (at most ${s(l.maxSilenceMs)})`);
    }
    for (const [id, j] of this.jobs) {
      if (now - j.started > j.maxMs) stuck.push(`job ${id} (${j.what}): ${s(now - j.started)} in the processor (at most ${s(j.maxMs)})`);
    }
    return { live: stuck.length === 0, stuck };
  }
}
