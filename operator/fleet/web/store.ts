/**
 * The dashboard's copy of the fleet: device rows and rollouts, loaded once (api/devices, api/rollouts) and then kept
 * current by the event stream. Pages subscribe to what changed; nothing here touches the DOM.
 */
import type { DeviceRow, FleetEvents, RolloutView } from '../model';
import { getJson } from './api';
import type { SseMessage } from './sse-client';
import { rolloutActive } from './format';

export interface DeviceChange {
  /** Devices whose row changed or appeared. */
  changed: string[];
  removed: string[];
  /** A full reload: every row may have changed, and any row not in `devices` is gone. */
  full: boolean;
}

export class FleetStore {
  readonly devices = new Map<string, DeviceRow>();
  readonly rollouts = new Map<string, RolloutView>();
  /** Server clock minus browser clock (ms), from api/devices' `now`. */
  serverOffsetMs = 0;
  private readonly deviceListeners = new Set<(c: DeviceChange) => void>();
  private readonly rolloutListeners = new Set<(v: RolloutView | null) => void>();
  /** device -> the rollout waiting for it. */
  private pending = new Map<string, RolloutView>();

  /** Server time now (ms). */
  now(): number {
    return Date.now() + this.serverOffsetMs;
  }

  async load(): Promise<void> {
    const t0 = Date.now();
    const [d, r] = await Promise.all([getJson<{ devices: DeviceRow[]; now: number }>('api/devices'), getJson<{ rollouts: RolloutView[] }>('api/rollouts')]);
    this.serverOffsetMs = d.now - (t0 + Date.now()) / 2;
    this.devices.clear();
    for (const row of d.devices) this.devices.set(row.device, row);
    this.rollouts.clear();
    for (const v of r.rollouts) this.rollouts.set(v.id, v);
    this.indexPending();
    this.emitDevices({ changed: [...this.devices.keys()], removed: [], full: true });
    for (const l of this.rolloutListeners) l(null);
  }

  /** Applies one event of api/events. */
  apply(m: SseMessage): void {
    if (m.event === 'devices') {
      const { devices } = JSON.parse(m.data) as FleetEvents['devices'];
      for (const row of devices) this.devices.set(row.device, row);
      this.emitDevices({ changed: devices.map((r) => r.device), removed: [], full: false });
    } else if (m.event === 'removed') {
      const { devices } = JSON.parse(m.data) as FleetEvents['removed'];
      for (const id of devices) this.devices.delete(id);
      this.emitDevices({ changed: [], removed: devices, full: false });
    } else if (m.event === 'rollout') {
      const view = JSON.parse(m.data) as FleetEvents['rollout'];
      const before = new Set(this.pending.keys());
      this.rollouts.set(view.id, view);
      this.indexPending();
      // Rows whose "pending" mark appeared or went away change too.
      const touched = view.devices.map((d) => d.device).filter((id) => before.has(id) !== this.pending.has(id) && this.devices.has(id));
      if (touched.length) this.emitDevices({ changed: touched, removed: [], full: false });
      for (const l of this.rolloutListeners) l(view);
    }
  }

  /** The rollout a device is waiting for (it has not answered yet), if any. */
  pendingFor(device: string): RolloutView | undefined {
    return this.pending.get(device);
  }

  onDevices(l: (c: DeviceChange) => void): () => void {
    this.deviceListeners.add(l);
    return () => this.deviceListeners.delete(l);
  }

  /** `null`: the whole list was reloaded. */
  onRollout(l: (v: RolloutView | null) => void): () => void {
    this.rolloutListeners.add(l);
    return () => this.rolloutListeners.delete(l);
  }

  private emitDevices(c: DeviceChange): void {
    for (const l of this.deviceListeners) l(c);
  }

  private indexPending(): void {
    const pending = new Map<string, RolloutView>();
    const byAge = [...this.rollouts.values()].filter(rolloutActive).sort((a, b) => a.createdAt - b.createdAt);
    for (const v of byAge) for (const d of v.devices) if (d.state === 'pending' || d.state === 'waiting') pending.set(d.device, v);
    this.pending = pending;
  }
}
