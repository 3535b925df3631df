/**
 * The adaptive thread policy (`backend.threads: auto`): which of two thread counts the next frame runs with, from the
 * frame latencies measured so far and, when the platform tells it, how much CPU other processes use. Pure: no clock,
 * no WASM; adaptive-threads.ts feeds it and applies its answers. Why and how it behaves: docs/threads.md.
 *
 * Two counts, `low` (1) and `high` (the pool's threads). The policy runs one for a while, then *probes*: a few frames
 * at the other count, then a few at the current one (back to back, so both see the same conditions), and keeps
 * whichever was faster by more than a margin (hysteresis: equal speeds never flip it). It probes again
 *   - after an interval that doubles each time a probe confirms the current choice (a steady machine is probed
 *     rarely) and starts short again after a switch;
 *   - early when the pool's latency rose, or 1 thread's fell, by a factor (contention began or ended), or when the CPU
 *     other processes use changed by half a core or more since the last decision.
 * A probe costs a few frames at the other count: at worst those frames run at the slower speed.
 */
import { median } from '../../base/stats';

export interface ThreadPolicyOptions {
  /** Frames at the start before the first decision (JIT, operator set-up, memory growth). */
  warmupFrames: number;
  /** Frames of each count per probe; the first of each run is not counted (the pool's threads wake up). */
  probeFrames: number;
  /** How many recent frames of the current count stand for its speed (their median). */
  window: number;
  /** The other count must be faster by this fraction to win (0.1 = 10%). */
  margin: number;
  /** Frames between probes: starts at min, doubles when a probe confirms the choice, at most max. */
  reprobeMinFrames: number;
  reprobeMaxFrames: number;
  /** Probe early when the pool's median rose, or 1 thread's fell, by this factor since the last decision. */
  shiftFactor: number;
  /** Probe early when other processes' CPU use moved by this many cores since the last decision. */
  loadShiftCores: number;
}

export const DEFAULT_THREAD_POLICY: ThreadPolicyOptions = {
  warmupFrames: 8,
  probeFrames: 6,
  window: 9,
  margin: 0.1,
  reprobeMinFrames: 30,
  reprobeMaxFrames: 960,
  shiftFactor: 1.3,
  loadShiftCores: 0.5,
};

/** The last decision, for telemetry and logs. */
export interface ThreadDecision {
  /** The count chosen. */
  threads: number;
  /** Median ms per frame of each count when it was decided. */
  medians: Record<number, number>;
  /** Why a probe was made: the schedule, a latency shift, a load shift, or the first decision. */
  trigger: 'first' | 'schedule' | 'latency' | 'load';
  /** Cores other processes used at the decision, if known. */
  otherCores?: number;
  /** Frames observed when it was decided. */
  atFrame: number;
}


export class ThreadPolicy {
  private current: number;
  private frames = 0;
  /** The current count's frames since the last decision (the latency-shift check). */
  private recent: number[] = [];
  /**
   * While probing: both counts measured back to back, the other count first, so that both see the same conditions.
   * `runs` lists the counts still to run, `samples` what each measured.
   */
  private probe: { runs: number[]; samples: Map<number, number[]>; trigger: ThreadDecision['trigger'] } | undefined;
  private interval: number;
  private nextProbeAt: number;
  private baseline: number | undefined;
  private baselineLoad: number | undefined;
  private decisionRef: ThreadDecision | undefined;

  constructor(
    readonly low: number,
    readonly high: number,
    private readonly o: ThreadPolicyOptions = DEFAULT_THREAD_POLICY,
  ) {
    if (!(low >= 1 && high > low)) throw new Error(`thread policy needs 1 <= low < high (got ${low}, ${high})`);
    this.current = high;
    this.interval = o.reprobeMinFrames;
    this.nextProbeAt = o.warmupFrames;
  }

  /** The count the next frame should run with. */
  get threads(): number {
    return this.probe ? this.probe.runs[0]! : this.current;
  }

  /** True while a probe runs (telemetry shows the chosen count, not the probe's). */
  get probing(): boolean {
    return this.probe !== undefined;
  }

  /** The count chosen by the last decision (the start: `high`). */
  get chosen(): number {
    return this.current;
  }

  get decision(): ThreadDecision | undefined {
    return this.decisionRef;
  }

  /**
   * One frame ran with `this.threads` and took `ms`; `otherCores` = CPU other processes used recently (undefined
   * when unknown). Returns the count for the next frame.
   */
  observe(ms: number, otherCores?: number): number {
    if (!Number.isFinite(ms) || ms < 0) return this.threads;
    this.frames++;
    if (this.probe) {
      const p = this.probe;
      const count = p.runs[0]!;
      const xs = p.samples.get(count)!;
      xs.push(ms);
      if (xs.length >= this.o.probeFrames) {
        p.runs.shift();
        if (p.runs.length === 0) this.decide(otherCores);
      }
      return this.threads;
    }
    if (this.frames < this.o.warmupFrames) return this.threads;
    if (this.frames === this.o.warmupFrames) {
      this.startProbe('first');
      return this.threads;
    }
    this.recent.push(ms);
    if (this.recent.length > this.o.window) this.recent.shift();
    const trigger = this.trigger(otherCores);
    if (trigger) this.startProbe(trigger);
    return this.threads;
  }

  private trigger(otherCores: number | undefined): ThreadDecision['trigger'] | undefined {
    if (this.frames >= this.nextProbeAt) return 'schedule';
    // Early probes are spaced too (each costs frames at the other count): a load shift, which /proc measures
    // directly, after reprobeMinFrames; a latency shift, which noise can fake, after a quarter of the interval.
    const since = this.frames - (this.decisionRef?.atFrame ?? 0);
    if (since < this.o.reprobeMinFrames) return undefined;
    if (this.baselineLoad !== undefined && otherCores !== undefined && Math.abs(otherCores - this.baselineLoad) >= this.o.loadShiftCores) {
      return 'load';
    }
    if (since < this.interval / 4) return undefined;
    // A latency shift needs a full window of the current count since the last decision, and only a shift that the
    // other count could answer: the pool slowing down (contention began), or 1 thread speeding up (it ended). The
    // pool speeding up or 1 thread slowing down (yet more load) are no reason to try the other.
    if (this.baseline !== undefined && this.recent.length >= this.o.window) {
      const m = median(this.recent);
      if (this.current === this.high ? m > this.baseline * this.o.shiftFactor : m * this.o.shiftFactor < this.baseline) return 'latency';
    }
    return undefined;
  }

  private startProbe(trigger: ThreadDecision['trigger']): void {
    const other = this.current === this.high ? this.low : this.high;
    this.probe = { runs: [other, this.current], samples: new Map([[other, []], [this.current, []]]), trigger };
  }

  private decide(otherCores: number | undefined): void {
    const p = this.probe!;
    this.probe = undefined;
    // The first frame of each run is not counted: the pool's threads wake up, the caches refill.
    const ms = (n: number) => median(p.samples.get(n)!.slice(1));
    const other = this.current === this.high ? this.low : this.high;
    const theirs = ms(other);
    const ours = ms(this.current);
    const switched = theirs < ours * (1 - this.o.margin);
    if (switched) this.current = other;
    this.interval = switched ? this.o.reprobeMinFrames : Math.min(this.interval * 2, this.o.reprobeMaxFrames);
    this.nextProbeAt = this.frames + this.interval;
    this.baseline = switched ? theirs : ours;
    this.baselineLoad = otherCores;
    this.recent = [];
    this.decisionRef = {
      threads: this.current,
      medians: { [other]: round1(theirs), [this.high + this.low - other]: round1(ours) },
      trigger: p.trigger,
      ...(otherCores !== undefined ? { otherCores: round1(otherCores) } : {}),
      atFrame: this.frames,
    };
  }
}

const round1 = (x: number) => Math.round(x * 10) / 10;

/** One line for logs, telemetry and doctor: "2 threads: 12.1 ms vs 21.0 ms at 1 thread (schedule, frame 140, ...)". */
export function describeDecision(d: ThreadDecision): string {
  const other = Object.keys(d.medians)
    .map(Number)
    .find((n) => n !== d.threads)!;
  const plural = (n: number) => `${n} thread${n === 1 ? '' : 's'}`;
  const load = d.otherCores !== undefined ? `, other processes ${d.otherCores} cores` : '';
  return `${plural(d.threads)}: ${d.medians[d.threads]} ms vs ${d.medians[other]} ms at ${plural(other)} (${d.trigger}, frame ${d.atFrame}${load})`;
}
