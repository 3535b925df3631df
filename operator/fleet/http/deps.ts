/**
 * What the HTTP server needs from the rest of the fleet server, as structural interfaces: FleetState, FleetHistory,
 * Rollouts and the metrics registry satisfy them without this folder importing them (the tests pass fakes).
 * Listeners are removed with what `on` returned when that is a function (an unsubscriber), else with `off`.
 */
import type { DatasetView, DeviceHistory, DeviceRow, RolloutRequest, RolloutView } from '../model';

export interface FleetSource {
  rows(): DeviceRow[];
  row(id: string): DeviceRow | undefined;
  /** The last snapshot (JPEG) this replica received from the device. */
  snapshot(id: string): Buffer | undefined;
  on(event: 'change' | 'removed', listener: (device: string) => void): unknown;
  off?(event: 'change' | 'removed', listener: (device: string) => void): unknown;
}

export interface HistorySource {
  get(device: string): DeviceHistory;
}

export interface RolloutControl {
  /** Validates and starts; throws EdgeheadError BAD_HEAD (the file) or BAD_ARGS (the request) for bad uploads. */
  start(bytes: Uint8Array, req: RolloutRequest): Promise<RolloutView>;
  halt(id: string, actor: string, reason?: string): Promise<RolloutView>;
  rollback(id: string, actor: string): Promise<RolloutView>;
  list(): RolloutView[];
  get(id: string): RolloutView | undefined;
  on(event: 'change', listener: (view: RolloutView) => void): unknown;
  off?(event: 'change', listener: (view: RolloutView) => void): unknown;
}

/** The labelling page's data folder (labels.ts DatasetLabels); BAD_ARGS errors for bad names and classes. */
export interface DatasetSource {
  view(className?: string): Promise<DatasetView>;
  /** A sample's JPEG, or undefined (unknown name, or features only). */
  image(name: string): Promise<Buffer | undefined>;
  label(samples: readonly string[], className: string): Promise<{ moved: number }>;
  unlabel(samples: readonly string[]): Promise<{ moved: number }>;
}

export interface MetricsSource {
  contentType: string;
  metrics(): Promise<string>;
}

export interface Health {
  ok: boolean;
  broker: { connected: boolean };
}

/** One file of the dashboard: what it is and its bytes. */
export interface WebAsset {
  contentType: string;
  body: Buffer;
}

/** The dashboard's files by URL path: "/index.html", "/assets/app.js", "/assets/app.css". */
export type WebAssets = Map<string, WebAsset>;
