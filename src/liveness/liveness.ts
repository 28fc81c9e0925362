/**
 * Whether a process's loops still make progress, for a liveness probe
 * (`/livez`). Busy or failing is alive: a scheduler whose database is down
 * keeps checking and failing, and a restart would not help. Stuck is not:
 * a loop that has not come round in far longer than its period, or a job
 * still in the processor long after its task's timeout (a process whose
 * event loop renews its job locks while its work never ends is never
 * handed on by BullMQ's stalled check). Kubernetes restarts a stuck process.
 *
 * Whether a loop's rounds work is `background` (background.ts), for /health:
 * each round reports once, through the function `loop()` returns, which is
 * both its heartbeat here and its outcome there. The web role reaches both
 * through this one object, and other processes' outcomes through Redis
 * (shared-loops.ts).
 */
import { hostname } from 'node:os';
import { BackgroundLoops, type LoopOutcome } from './background';

/** What a loop calls after each round: its heartbeat, and whether the round worked. */
export type LoopReport = (outcome: LoopOutcome) => void;

export interface LivenessVerdict {
  live: boolean;
  /** What is stuck: `missed-run check: silent for 612 s (at most 180 s)`, `job 42 (vacuum-analyze on auditron): 3700 s in the processor (at most 3660 s)`. */
  stuck: string[];
}

let processesNamed = 0;

/**
 * This process as /health names it: `host:pid` (a pod's hostname is its
 * name), with `/2`, `/3`… for each further caretaker started in the same
 * process (tests do), so that no two share an entry.
 */
function nextProcessName(): string {
  processesNamed += 1;
  return `${hostname()}:${process.pid}${processesNamed > 1 ? `/${processesNamed}` : ''}`;
}

export class Liveness {
  private readonly loops = new Map<string, { last: number; maxSilenceMs: number }>();
  private readonly jobs = new Map<string, { what: string; started: number; maxMs: number }>();
  /** How the loops' rounds went, on the same clock. */
  readonly background: BackgroundLoops;
  /** The name its loops are published under, for the web role of another process. */
  readonly processName: string;

  constructor(private readonly now: () => number = Date.now) {
    this.background = new BackgroundLoops(now);
    this.processName = nextProcessName();
  }

  /** `loop` came round (whether its work succeeded or not); it is stuck once silent for more than `maxSilenceMs`. */
  beat(loop: string, maxSilenceMs: number): void {
    this.loops.set(loop, { last: this.now(), maxSilenceMs });
  }

  /** Watches `loop` from now on: beats once, and returns what each of its rounds reports to (a beat, and the outcome for `background`). */
  loop(loop: string, maxSilenceMs: number): LoopReport {
    this.beat(loop, maxSilenceMs);
    this.background.watch(loop);
    return (outcome) => {
      this.beat(loop, maxSilenceMs);
      this.background.report(loop, outcome);
    };
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
