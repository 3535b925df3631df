/**
 * FleetHistory: bounded per-device time series for the dashboard's charts (latency p50/p95, CPU temperature,
 * frames/s, and the label mix of the predictions), kept in process only (a restart starts empty).
 *
 * Each device has a ring of N = retentionHours * 3600 / resolutionSec buckets (24 h at 60 s: 1,440), allocated when
 * the device first sends data, as typed arrays:
 *   - bucket number (Uint32Array: floor(ms / 1000 / resolutionSec))             4 B
 *   - sums of the 4 telemetry series (Float32Array x 4)                         16 B
 *   - sample counts of the 4 series (Uint8Array x 4, saturating at 255)          4 B
 *   - per label: predictions per bucket (Uint16Array, saturating at 65,535)      2 B, allocated per label seen
 * so 24 B per bucket + 2 B per bucket and label: at the defaults (1,440 buckets, maxLabels 16 + "(other)")
 * ~34 KiB per device for telemetry and at most ~48 KiB more for labels, i.e. at most ~82 KiB per device
 * (~80 MiB per 1,000 devices at worst, ~40 MiB with a handful of labels each). A bucket's value is the mean of the
 * samples it received. Labels beyond maxLabels per device are summed as "(other)".
 *
 * Slots are reused as time moves on: a sample for bucket b lands in slot b mod N after the slot is cleared if it
 * held an older bucket; a sample older than the bucket in its slot (more than the retention ago) is dropped.
 * Times are the server's clock (what the caller passes), never the device's.
 */
import { type Clock, systemClock } from '../../base/clock';
import type { DeviceHistory } from './model';

export const OTHER_LABEL = '(other)';

export interface TelemetryPoint {
  latencyP50: number | null;
  latencyP95: number | null;
  cpuTempC: number | null;
  fps: number | null;
}

const SERIES = ['latencyP50', 'latencyP95', 'cpuTempC', 'fps'] as const;
type Series = (typeof SERIES)[number];

export interface FleetHistoryOptions {
  resolutionSec: number;
  retentionHours: number;
  /** Labels with their own series per device; the rest go to "(other)". */
  maxLabels: number;
  /** "Now" for get(): the series end at the current bucket. Default: the system clock. */
  clock?: Clock;
  /** Devices with a history at most (FleetState bounds its devices too); samples of further devices are dropped. */
  maxDevices?: number;
}

class DeviceRing {
  readonly bucket: Uint32Array;
  readonly sums: Float32Array[];
  readonly counts: Uint8Array[];
  readonly labels = new Map<string, Uint16Array>();
  /** Newest bucket number written. */
  newest = 0;

  constructor(readonly size: number) {
    this.bucket = new Uint32Array(size);
    this.sums = SERIES.map(() => new Float32Array(size));
    this.counts = SERIES.map(() => new Uint8Array(size));
  }

  /** The slot of bucket b, cleared if it held an older bucket; undefined when b is older than the slot's bucket. */
  slot(b: number): number | undefined {
    const i = b % this.size;
    const held = this.bucket[i]!;
    if (held === b) return i;
    if (held > b) return undefined;
    this.bucket[i] = b;
    for (const s of this.sums) s[i] = 0;
    for (const c of this.counts) c[i] = 0;
    for (const l of this.labels.values()) l[i] = 0;
    if (b > this.newest) this.newest = b;
    return i;
  }
}

export class FleetHistory {
  readonly resolutionSec: number;
  /** Buckets per device. */
  readonly size: number;
  private readonly rings = new Map<string, DeviceRing>();

  constructor(private readonly opts: FleetHistoryOptions) {
    this.resolutionSec = opts.resolutionSec;
    this.size = Math.max(1, Math.ceil((opts.retentionHours * 3600) / opts.resolutionSec));
  }

  /** Bytes of typed arrays per device with `labels` label series (for docs and the benchmark). */
  static bytesPerDevice(buckets: number, labels: number): number {
    return buckets * (4 + 4 * 4 + 4 * 1 + 2 * labels);
  }

  private bucketOf(tsMs: number): number {
    return Math.floor(tsMs / 1000 / this.resolutionSec);
  }

  private ring(device: string): DeviceRing | undefined {
    let r = this.rings.get(device);
    if (!r) {
      if (this.rings.size >= (this.opts.maxDevices ?? Infinity)) return undefined;
      this.rings.set(device, (r = new DeviceRing(this.size)));
    }
    return r;
  }

  addTelemetry(device: string, tsMs: number, point: TelemetryPoint): void {
    if (!Number.isFinite(tsMs) || tsMs < 0) return;
    const r = this.ring(device);
    const i = r?.slot(this.bucketOf(tsMs));
    if (!r || i === undefined) return;
    SERIES.forEach((name: Series, k) => {
      const v = point[name];
      if (v === null || !Number.isFinite(v) || r.counts[k]![i] === 255) return;
      r.sums[k]![i]! += v;
      r.counts[k]![i]!++;
    });
  }

  addPrediction(device: string, tsMs: number, label: string): void {
    if (!Number.isFinite(tsMs) || tsMs < 0) return;
    const r = this.ring(device);
    const i = r?.slot(this.bucketOf(tsMs));
    if (!r || i === undefined) return;
    let series = r.labels.get(label);
    if (!series) {
      const own = [...r.labels.keys()].filter((l) => l !== OTHER_LABEL).length;
      const key = own < this.opts.maxLabels ? label : OTHER_LABEL;
      series = r.labels.get(key);
      if (!series) {
        series = new Uint16Array(this.size);
        r.labels.set(key, series);
      }
    }
    if (series[i]! < 0xffff) series[i]!++;
  }

  /** The device's series from its oldest retained bucket to the current one (gaps: null, or 0 predictions). */
  get(device: string): DeviceHistory {
    const out: DeviceHistory = { device, resolutionSec: this.resolutionSec, t: [], latencyP50: [], latencyP95: [], cpuTempC: [], fps: [], labels: {} };
    const r = this.rings.get(device);
    if (!r) return out;
    const end = Math.max(this.bucketOf((this.opts.clock ?? systemClock).now()), r.newest);
    let start = end - this.size + 1;
    // Skip the leading buckets that hold nothing (a device seen an hour ago does not get a day of nulls).
    let oldest = Infinity;
    for (let i = 0; i < this.size; i++) {
      const b = r.bucket[i]!;
      if (b >= start && b <= end && b < oldest && this.hasData(r, i)) oldest = b;
    }
    if (oldest === Infinity) return out;
    start = oldest;
    for (const label of r.labels.keys()) out.labels[label] = [];
    const ms = this.resolutionSec * 1000;
    for (let b = start; b <= end; b++) {
      const i = b % this.size;
      const here = r.bucket[i] === b;
      out.t.push(b * ms);
      SERIES.forEach((name, k) => {
        const n = here ? r.counts[k]![i]! : 0;
        out[name].push(n > 0 ? r.sums[k]![i]! / n : null);
      });
      for (const [label, series] of r.labels) out.labels[label]!.push(here ? series[i]! : 0);
    }
    return out;
  }

  private hasData(r: DeviceRing, i: number): boolean {
    if (r.counts.some((c) => c[i]! > 0)) return true;
    for (const l of r.labels.values()) if (l[i]! > 0) return true;
    return false;
  }

  forget(device: string): void {
    this.rings.delete(device);
  }

  /** Devices with a history. */
  get devices(): number {
    return this.rings.size;
  }
}
