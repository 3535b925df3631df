/**
 * The fleet server's shared vocabulary: what a device row is, what the history and the rollouts look like, and the
 * HTTP/SSE shapes the dashboard, the `edgehead fleet` CLI and the tests read. Every module of operator/fleet/ speaks
 * these types; nothing here does I/O.
 *
 *   operator/fleet/
 *     model.ts        this file
 *     config.ts       the server's config schema (defaults, validation, EDGEHEAD_FLEET_* env, generated docs)
 *     state.ts        FleetState: device rows rebuilt from the wire (retained status/head/state + live streams)
 *     ingest.ts       subscriptions: retained topics plainly, non-retained streams as $share/<group>/... (MQTT 5)
 *     history.ts      bounded per-device time series (1-min buckets, 24 h) for the charts
 *     metrics.ts      Prometheus registry over FleetState and the rollouts (bounded cardinality)
 *     rollout.ts      staged rollouts: canary, wait, rest, auto-halt, rollback (a state machine over FleetState)
 *     audit.ts        append-only JSONL audit log of every rollout step
 *     labels.ts       the labelling page's store: lists and moves pulled samples in dataset.dir
 *     http/           the HTTP server: auth, TLS, cross-site refusal, JSON API, SSE, static dashboard assets
 *     web/            the browser dashboard (bundled at build time with uPlot)
 *     simulate.ts     simulated devices speaking the real protocol (tests, benchmark)
 *     status.ts       `edgehead fleet status`: the fleet table from retained messages
 *     serve.ts        composition root of `edgehead fleet serve`
 */
import type { HeadStateMessage, HeadUpdate, Percentiles, Problem } from '../../protocol/messages';

export interface HeadSummary {
  id: string;
  version: number;
  sha256: string;
}

/** One device as the server knows it. Times are ms since the epoch (server clock) unless named `...Ts`. */
export interface DeviceRow {
  device: string;
  groups: string[];
  /** From the retained status topic: birth = true; last will / shutdown = false. null: never seen a status. */
  online: boolean | null;
  offlineReason: 'connection lost' | 'shutdown' | null;
  /** When `online` last changed (server clock). */
  statusSince: number | null;
  agentVersion: string | null;
  extractor: string | null;
  head: HeadSummary | null;
  previousHead: HeadSummary | null;
  /** head/state lastUpdate, as the device sent it. */
  lastUpdate: HeadUpdate | null;
  shadow: HeadStateMessage['shadow'];
  /** Any message from the device (server clock). */
  lastSeen: number | null;
  /** Capture time of the last prediction this replica received (device clock, ms). */
  lastFrameTs: number | null;
  lastLabel: string | null;
  lastScore: number | null;
  /** From the last telemetry: total latency percentiles (ms). */
  latencyMs: Percentiles | null;
  /** Frames classified per second, from the frames.ok delta between two telemetry messages. */
  fps: number | null;
  cpuTempC: number | null;
  rssMB: number | null;
  queueDepth: number | null;
  problems: Problem[];
}

/** History of one device: `t` are bucket start times (ms); other arrays align with `t` (null = no data). */
export interface DeviceHistory {
  device: string;
  resolutionSec: number;
  t: number[];
  latencyP50: (number | null)[];
  latencyP95: (number | null)[];
  cpuTempC: (number | null)[];
  fps: (number | null)[];
  /** Predictions per bucket by top-1 label (bounded: see history.ts). */
  labels: Record<string, number[]>;
}

export type RolloutTarget = { kind: 'devices'; devices: string[] } | { kind: 'group'; group: string } | { kind: 'all' };

export interface RolloutRequest {
  target: RolloutTarget;
  /** Canary devices by name, or a percentage of the target's known devices (at least 1). Default: rollouts.canaryPercent. */
  canary?: { devices: string[] } | { percent: number };
  /** For shadow-mode heads: the agreement each canary must reach over `frames` frames before the rest. */
  minAgreement?: number;
  /** How long a stage waits for answers before it halts (s). Default: rollouts.stageTimeoutSec. */
  stageTimeoutSec?: number;
  /** Who started it (the authenticated user, or "local"). Filled in by the server. */
  actor?: string;
}

export type RolloutPhase = 'canary' | 'rest' | 'done' | 'halted' | 'rolling-back' | 'rolled-back';

/** Per-device progress in a rollout. `pending`: not answered yet (offline devices stay pending until they converge). */
export type RolloutDeviceState = 'waiting' | 'pending' | 'applied' | 'shadow' | 'rejected' | 'offline' | 'rolled-back' | 'rollback-failed';

export interface RolloutDevice {
  device: string;
  stage: 'canary' | 'rest';
  state: RolloutDeviceState;
  reason: string | null;
  /** Shadow agreement last reported. */
  agreement: number | null;
  answeredAt: number | null;
}

export interface RolloutView {
  id: string;
  createdAt: number;
  actor: string;
  head: HeadSummary & { bytes: number; fileSha256: string; correlationId: string; signedBy: string | null };
  target: RolloutTarget;
  /** The topic the rest was (or will be) published on; retained for group and all. */
  topic: string | null;
  phase: RolloutPhase;
  /** Why it halted (first cause), or null. */
  haltReason: string | null;
  devices: RolloutDevice[];
  updatedAt: number;
}

/** Server-sent events on GET /api/events (`event:` name -> JSON `data:`). Rows are coalesced, at most once a second. */
export interface FleetEvents {
  /** Changed rows since the last event. */
  devices: { devices: DeviceRow[] };
  /** Devices forgotten (their retained status was cleared). */
  removed: { devices: string[] };
  rollout: RolloutView;
}

/** A pulled sample as the labelling page lists it (from its side-file, protocol/dataset.ts). */
export interface DatasetSample {
  /** The file base name, `<device>-<run>-<frameId>`: what the label requests and the image URL name. */
  name: string;
  device: string;
  id: string;
  /** Capture time, ISO 8601 UTC. */
  ts: string;
  /** Why the device kept it: low-confidence, label-change or sample. */
  reason: string;
  prediction: { label: string; score: number };
  /** Whether its JPEG is there (collect.images); false: features only. */
  image: boolean;
}

/** A class folder of the data folder and its samples (side-files, plus photos without one, as training counts them). */
export interface DatasetClass {
  name: string;
  count: number;
}

/** GET /api/dataset. */
export interface DatasetView {
  /** The data folder (dataset.dir), absolute. */
  dir: string;
  classes: DatasetClass[];
  /** Every unlabeled sample; `unlabeled` holds the oldest ones (at most dataset.maxList). */
  unlabeledCount: number;
  unlabeled: DatasetSample[];
  /** With ?class=C: that class's pulled samples (at most dataset.maxList). */
  class?: { name: string; samples: DatasetSample[] };
}

/** The JSON API (all under /api; POST bodies are JSON unless stated). */
export const API_ROUTES = {
  devices: 'GET /api/devices -> { devices: DeviceRow[], now }',
  device: 'GET /api/devices/:id -> { device: DeviceRow, history: DeviceHistory }',
  snapshot: 'GET /api/devices/:id/snapshot -> image/jpeg (the last snapshot this replica received) or 404',
  events: 'GET /api/events -> text/event-stream (FleetEvents)',
  rollouts: 'GET /api/rollouts -> { rollouts: RolloutView[] }',
  rollout: 'GET /api/rollouts/:id -> RolloutView',
  start: 'POST /api/rollouts?target=all|group:G|devices:a,b[&canary=a,b|&canaryPercent=N][&minAgreement=X][&stageTimeoutSec=S] body: the head file (application/octet-stream) -> 201 RolloutView',
  halt: 'POST /api/rollouts/:id/halt -> RolloutView',
  rollback: 'POST /api/rollouts/:id/rollback -> RolloutView',
  dataset: 'GET /api/dataset[?class=C] -> DatasetView (404 when dataset.dir is not set)',
  datasetImage: 'GET /api/dataset/image/:name -> image/jpeg (a pulled sample\'s picture) or 404',
  label: 'POST /api/dataset/label body: {samples: [name...], class} -> {moved} (into DIR/<class>/, created when new)',
  unlabel: 'POST /api/dataset/unlabel body: {samples: [name...]} -> {moved} (back into DIR/unlabeled/)',
  metrics: 'GET /metrics -> Prometheus text format',
  health: 'GET /healthz -> { ok, broker }',
} as const;
