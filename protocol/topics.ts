/**
 * Every MQTT topic and payload type of the agent, in one place (documented with examples in docs/mqtt.md).
 * All payloads are UTF-8 JSON except head/set (the binary head format, docs/head-format.md).
 */
import type { Prediction } from '../agent/inference/dense-head';

export interface Topics {
  /** Retained availability: birth {status: "online", ...}; last will / shutdown {status: "offline"}. */
  status: string;
  predictions: string;
  telemetry: string;
  /** Requests {id, cmd, args}. */
  cmd: string;
  /** Replies {id, ok, error?, data?}. */
  cmdReply: string;
  /** Binary head for this device. */
  headSet: string;
  /** Retained head state. */
  headState: string;
  /** Binary head for each group the device is in (retained by publishers). */
  groupHeadSet: string[];
  /** Binary head for the whole fleet (retained by publishers). */
  allHeadSet: string;
}

export function deviceTopics(prefix: string, deviceId: string, groups: readonly string[] = []): Topics {
  const d = `${prefix}/${deviceId}`;
  return {
    status: `${d}/status`,
    predictions: `${d}/predictions`,
    telemetry: `${d}/telemetry`,
    cmd: `${d}/cmd`,
    cmdReply: `${d}/cmd/reply`,
    headSet: `${d}/head/set`,
    headState: `${d}/head/state`,
    groupHeadSet: groups.map((g) => groupHeadTopic(prefix, g)),
    allHeadSet: fleetHeadTopic(prefix),
  };
}

export const groupHeadTopic = (prefix: string, group: string): string => `${prefix}/groups/${group}/head/set`;
export const fleetHeadTopic = (prefix: string): string => `${prefix}/all/head/set`;
export const deviceHeadTopic = (prefix: string, deviceId: string): string => `${prefix}/${deviceId}/head/set`;
export const deviceHeadStateTopic = (prefix: string, deviceId: string): string => `${prefix}/${deviceId}/head/state`;

export interface BackendSummary {
  name: string;
  simd: boolean;
  threads: number;
  threadsNote?: string;
}

/** Retained on <prefix>/<device>/status while the agent is connected. */
export interface BirthMessage {
  status: 'online';
  device: string;
  groups: string[];
  version: string;
  startedAt: string;
  extractor: { id: string; fingerprint: string };
  head: { id: string; version: number; sha256: string };
  backend: BackendSummary;
}

/** The last will (reason "connection lost") and the graceful-shutdown message (reason "shutdown"). */
export interface OfflineMessage {
  status: 'offline';
  device: string;
  reason: 'connection lost' | 'shutdown';
  at?: string;
}

export interface PredictionMessage {
  ts: string;
  /** Increments once per agent start (persisted): with frameId it orders predictions across restarts. */
  run: number;
  /** Monotonic within a run, from 1. */
  frameId: number;
  source: string;
  top: Prediction[];
  head: { id: string; version: number };
  extractor: string;
  /** Milliseconds per stage. */
  ms: { capture: number; decode: number; resize: number; extract: number; head: number };
  /** Set when this is not a scheduled frame: "capture" (command) or "head-swap" (re-prediction with a new head). */
  reason?: 'capture' | 'head-swap';
}

export interface Percentiles {
  p50: number;
  p95: number;
}

export interface TelemetryMessage {
  ts: string;
  device: string;
  uptimeSec: number;
  frames: { ok: number; skipped: number; failed: number; published: number; suppressed: number };
  latencyMs: Record<'capture' | 'decode' | 'resize' | 'extract' | 'head' | 'total', Percentiles | null>;
  rssMB: number;
  heapMB: number;
  tensors: number;
  cpuTempC: number | null;
  loadAvg: [number, number, number];
  diskFreeMB: number | null;
  mqtt: { connected: boolean; reconnects: number };
  offlineQueue: { depth: number; bytes: number; dropped: number };
  backend: BackendSummary;
}

export interface CommandRequest {
  id: string;
  cmd: string;
  args?: Record<string, unknown>;
}

export interface CommandReply {
  id: string | null;
  cmd?: string;
  ok: boolean;
  error?: string;
  data?: unknown;
}

/** A head as head/state describes it. */
export interface HeadRef {
  id: string;
  version: number;
  sha256: string;
  appliedAt: string;
}

export type HeadUpdateStatus = 'applied' | 'rejected' | 'duplicate' | 'shadow' | 'promoted' | 'discarded' | 'rolled-back';

/**
 * Retained on <prefix>/<device>/head/state after every head event.
 * correlationId = the first 16 hex digits of sha256(payload bytes as received): a publisher computes it from the
 * file it sent and waits for a state whose lastUpdate carries it (edgehead head push does).
 */
export interface HeadStateMessage {
  device: string;
  active: HeadRef;
  previous: HeadRef | null;
  lastUpdate: {
    status: HeadUpdateStatus;
    reason?: string;
    correlationId: string | null;
    /** The topic the payload came on, or "cmd" for command-driven changes. */
    via: string;
    head?: { id: string; version: number } | null;
    receivedAt: string;
    /** Receipt to applied (or rejected), ms. */
    latencyMs?: number;
  };
  shadow: null | {
    candidate: { id: string; version: number; sha256: string };
    frames: number;
    seen: number;
    agreement: number | null;
    autoPromoteAgreement?: number;
  };
}

export const correlationIdOf = (sha256Hex: string): string => sha256Hex.slice(0, 16);
