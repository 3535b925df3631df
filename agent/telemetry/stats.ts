/** Frame counters and per-stage latency percentiles over a sliding window of recent frames. */
import type { Percentiles, TelemetryMessage } from '../../protocol/messages';

export type Stage = keyof TelemetryMessage['latencyMs'];
const STAGES: Stage[] = ['capture', 'decode', 'resize', 'extract', 'head', 'total'];

export class FrameStats {
  ok = 0;
  failed = 0;
  published = 0;
  suppressed = 0;
  /** Frames the motion gate found unchanged (not classified). */
  unchanged = 0;
  private readonly windows = new Map<Stage, number[]>(STAGES.map((s) => [s, []]));
  private readonly observers: ((stage: Stage, ms: number) => void)[] = [];

  constructor(private readonly windowSize = 500) {}

  /** Called with every stage time record() keeps (agent/metrics feeds its histograms from here). */
  onRecord(fn: (stage: Stage, ms: number) => void): void {
    this.observers.push(fn);
  }

  record(ms: Partial<Record<Stage, number>>): void {
    for (const [stage, v] of Object.entries(ms) as [Stage, number][]) {
      const w = this.windows.get(stage);
      if (!w || !Number.isFinite(v)) continue;
      w.push(v);
      if (w.length > this.windowSize) w.shift();
      for (const fn of this.observers) fn(stage, v);
    }
  }

  percentiles(): Record<Stage, Percentiles | null> {
    return Object.fromEntries(STAGES.map((s) => [s, percentilesOf(this.windows.get(s)!)])) as Record<Stage, Percentiles | null>;
  }
}

export function percentilesOf(values: number[]): Percentiles | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
  const r = (x: number) => Math.round(x * 100) / 100;
  return { p50: r(at(0.5)), p95: r(at(0.95)) };
}
