/**
 * Every JSON payload on the wire: a TypeBox schema (the types are derived from it) and a typed constructor. The
 * device builds what it publishes through these constructors; whoever receives a payload checks it against its
 * schema (protocol/validate.ts). head/set is binary: protocol/head/format.ts. docs/mqtt.md is generated from here.
 */
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { CommandReplySchema, CommandRequestSchema } from './commands';
import { ID_PATTERN, ID_RULE } from './patterns';

const Id = Type.String({ pattern: ID_PATTERN, patternMessage: ID_RULE });
const IsoTime = Type.String({ description: 'ISO 8601 time, UTC' });
const Sha256 = Type.String({ pattern: '^[0-9a-f]{64}$', patternMessage: 'must be 64 lowercase hex digits' });

export const BackendSummarySchema = Type.Object({
  name: Type.String({ description: '"wasm" or "cpu"' }),
  simd: Type.Boolean(),
  threads: Type.Integer({ minimum: 1 }),
  threadsNote: Type.Optional(Type.String({ description: 'why fewer threads than asked for run' })),
  threadsPolicy: Type.Optional(Type.Literal('adaptive', { description: 'threads auto: frames move between 1 thread and threadsMax as measured (docs/threads.md)' })),
  threadsMax: Type.Optional(Type.Integer({ minimum: 1, description: 'the pool: the most threads frames can run with' })),
  threadsReason: Type.Optional(Type.String({ description: 'the last decision of the adaptive policy, with the medians it compared' })),
});
export type BackendSummary = Static<typeof BackendSummarySchema>;

export const ScoredLabelSchema = Type.Object({ label: Type.String(), score: Type.Number({ minimum: 0, maximum: 1 }) });
export const HeadIdSchema = Type.Object({ id: Id, version: Type.Integer({ minimum: 1 }) });
export type HeadId = Static<typeof HeadIdSchema>;

/** Retained on <prefix>/<device>/status while the agent is connected. */
export const BirthMessageSchema = Type.Object(
  {
    status: Type.Literal('online'),
    device: Id,
    groups: Type.Array(Id),
    version: Type.String({ description: 'agent version' }),
    startedAt: IsoTime,
    extractor: Type.Object({ id: Type.String(), fingerprint: Sha256 }),
    head: Type.Object({ id: Id, version: Type.Integer({ minimum: 1 }), sha256: Sha256 }, { description: 'the active head (re-published when it changes)' }),
    backend: BackendSummarySchema,
  },
  { description: 'birth: retained on status on every connection and after every head change' },
);
export type BirthMessage = Static<typeof BirthMessageSchema>;

/** The last will (reason "connection lost") and the graceful-shutdown message (reason "shutdown"). */
export const OfflineMessageSchema = Type.Object(
  {
    status: Type.Literal('offline'),
    device: Id,
    reason: Type.Union([Type.Literal('connection lost'), Type.Literal('shutdown')]),
    at: Type.Optional(IsoTime),
  },
  { description: 'last will (set at connect) and graceful shutdown, retained on status' },
);
export type OfflineMessage = Static<typeof OfflineMessageSchema>;

export const STAGES = ['capture', 'decode', 'resize', 'extract', 'head'] as const;
export type Stage = (typeof STAGES)[number];
const StageMs = Type.Object(Object.fromEntries(STAGES.map((s) => [s, Type.Number({ minimum: 0 })])) as Record<Stage, ReturnType<typeof Type.Number>>);

export const PredictionMessageSchema = Type.Object(
  {
    ts: Type.String({ description: 'capture time' }),
    run: Type.Integer({ minimum: 1, description: 'new at every agent start (one more, or a jump after damage); never repeats on a device' }),
    frameId: Type.Integer({ minimum: 1, description: 'from 1 within a run; (run, frameId) identifies a prediction' }),
    source: Type.String({ description: 'where the frame came from' }),
    top: Type.Array(ScoredLabelSchema, { minItems: 1, description: 'top-k labels, best first' }),
    head: HeadIdSchema,
    extractor: Type.String(),
    ms: StageMs,
    reason: Type.Optional(Type.Union([Type.Literal('capture'), Type.Literal('head-swap'), Type.Literal('heartbeat')], { description: 'set on frames that were not scheduled, and on heartbeats (predictions.maxIntervalSec)' })),
  },
  { description: 'one classified frame' },
);
export type PredictionMessage = Static<typeof PredictionMessageSchema>;

/** A condition that needs attention (disk full, camera failing, damaged queue records...), while it lasts. */
export const ProblemSchema = Type.Object({
  key: Type.String({ description: 'stable identifier, e.g. "disk-full"' }),
  message: Type.String({ description: 'one line a person can act on' }),
  since: IsoTime,
});
export type Problem = Static<typeof ProblemSchema>;

const Percentiles = Type.Union([Type.Object({ p50: Type.Number(), p95: Type.Number() }), Type.Null()]);
export type Percentiles = { p50: number; p95: number };
export const LATENCY_STAGES = [...STAGES, 'total'] as const;
export type LatencyStage = (typeof LATENCY_STAGES)[number];

/** Raspberry Pi firmware conditions, in the order of their bits (0-3 now, 16-19 since boot): agent/telemetry/throttled.ts. */
export const THROTTLE_CONDITIONS = ['under-voltage', 'arm-frequency-capped', 'throttled', 'soft-temperature-limit'] as const;
export type ThrottleCondition = (typeof THROTTLE_CONDITIONS)[number];
const ThrottleConditions = Type.Array(Type.Union(THROTTLE_CONDITIONS.map((c) => Type.Literal(c))));
export const ThrottledSchema = Type.Object({
  now: { ...ThrottleConditions, description: 'present now' },
  occurred: { ...ThrottleConditions, description: 'since boot' },
  raw: Type.String({ pattern: '^0x[0-9a-f]{1,8}$', patternMessage: 'must be 0x and 1 to 8 lowercase hex digits', description: 'the firmware\'s bit field, e.g. "0x50005"' }),
});
export type Throttled = Static<typeof ThrottledSchema>;

export const TelemetryMessageSchema = Type.Object(
  {
    ts: IsoTime,
    device: Id,
    uptimeSec: Type.Integer({ minimum: 0 }),
    frames: Type.Object({
      ok: Type.Integer(),
      skipped: Type.Integer(),
      failed: Type.Integer(),
      published: Type.Integer(),
      suppressed: Type.Integer(),
      unchanged: Type.Optional(
        Type.Integer({ minimum: 0, description: 'frames the motion gate (motion.gate) found unchanged: not classified, nothing published; absent from agents before it existed' }),
      ),
    }),
    latencyMs: Type.Object(Object.fromEntries(LATENCY_STAGES.map((s) => [s, Percentiles])) as Record<LatencyStage, typeof Percentiles>),
    rssMB: Type.Number(),
    heapMB: Type.Number(),
    tensors: Type.Integer({ minimum: 0 }),
    cpuTempC: Type.Union([Type.Number(), Type.Null()]),
    loadAvg: Type.Tuple([Type.Number(), Type.Number(), Type.Number()]),
    diskFreeMB: Type.Union([Type.Number(), Type.Null()]),
    mqtt: Type.Object({ connected: Type.Boolean(), reconnects: Type.Integer({ minimum: 0 }) }),
    offlineQueue: Type.Object({
      depth: Type.Integer({ minimum: 0 }),
      bytes: Type.Integer({ minimum: 0 }),
      dropped: Type.Integer({ minimum: 0, description: 'oldest records dropped to stay within offline.maxMB or on a full disk' }),
      skipped: Type.Integer({ minimum: 0, description: 'damaged records skipped since start' }),
    }),
    backend: BackendSummarySchema,
    problems: Type.Array(ProblemSchema, { description: 'conditions that need attention now (empty when all is well)' }),
    throttled: Type.Optional(
      Type.Union([ThrottledSchema, Type.Null()], {
        description: 'Raspberry Pi under-voltage and throttling from the firmware (get_throttled): conditions now and since boot; null when the board does not report it (not a Pi); absent from agents before it existed',
      }),
    ),
  },
  { description: 'health and counters, every telemetry.intervalSec' },
);
export type TelemetryMessage = Static<typeof TelemetryMessageSchema>;

export const HEAD_UPDATE_STATUSES = ['applied', 'rejected', 'duplicate', 'shadow', 'promoted', 'discarded', 'rolled-back'] as const;
export const HeadUpdateStatusSchema = Type.Union(HEAD_UPDATE_STATUSES.map((s) => Type.Literal(s)));
export type HeadUpdateStatus = (typeof HEAD_UPDATE_STATUSES)[number];
/** Statuses that mean a pushed head was taken. */
export const ACCEPTED_STATUSES: readonly HeadUpdateStatus[] = ['applied', 'duplicate', 'shadow'];

export const HeadRefSchema = Type.Object({ id: Id, version: Type.Integer({ minimum: 1 }), sha256: Sha256, appliedAt: IsoTime });
export type HeadRef = Static<typeof HeadRefSchema>;

export const HeadUpdateSchema = Type.Object({
  status: HeadUpdateStatusSchema,
  reason: Type.Optional(Type.String()),
  correlationId: Type.Union([Type.String({ pattern: '^[0-9a-f]{16}$' }), Type.Null()], { description: 'first 16 hex of sha256(payload); null for command-driven changes' }),
  via: Type.String({ description: 'the topic the payload came on, "cmd", "shadow" or "startup"' }),
  head: Type.Optional(Type.Union([HeadIdSchema, Type.Null()])),
  receivedAt: IsoTime,
  latencyMs: Type.Optional(Type.Number({ minimum: 0, description: 'receipt to applied (or rejected)' })),
});
export type HeadUpdate = Static<typeof HeadUpdateSchema>;

/** Retained on <prefix>/<device>/head/state after every head event and on every connection. */
export const HeadStateMessageSchema = Type.Object(
  {
    device: Id,
    active: HeadRefSchema,
    previous: Type.Union([HeadRefSchema, Type.Null()]),
    lastUpdate: HeadUpdateSchema,
    shadow: Type.Union([
      Type.Null(),
      Type.Object({
        candidate: Type.Object({ id: Id, version: Type.Integer({ minimum: 1 }), sha256: Sha256 }),
        frames: Type.Integer({ minimum: 1 }),
        seen: Type.Integer({ minimum: 0 }),
        agreement: Type.Union([Type.Number(), Type.Null()]),
        autoPromoteAgreement: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
      }),
    ]),
  },
  { description: 'the device\'s heads and the answer to the last head event' },
);
export type HeadStateMessage = Static<typeof HeadStateMessageSchema>;

/** The first 16 hex digits of sha256(payload bytes as received): ties a head/state answer to the push. */
export const correlationIdOf = (sha256Hex: string): string => sha256Hex.slice(0, 16);

// -------------------------------------------------------------------------------------------------------------
// Typed constructors: the one way each outgoing payload is made.

export function offlineMessage(device: string, reason: OfflineMessage['reason'], at?: Date): OfflineMessage {
  return { status: 'offline', device, reason, ...(reason === 'shutdown' ? { at: (at ?? new Date()).toISOString() } : {}) };
}

export function birthMessage(fields: Omit<BirthMessage, 'status'>): BirthMessage {
  return { status: 'online', ...fields };
}

const round1 = (x: number): number => Math.round(x * 10) / 10;
const round4 = (x: number): number => Math.round(x * 10000) / 10000;

/** A prediction: scores rounded to 4 digits, stage times to 0.1 ms. */
export function predictionMessage(fields: {
  capturedAt: number;
  run: number;
  frameId: number;
  source: string;
  top: readonly { label: string; score: number }[];
  head: HeadId;
  extractor: string;
  ms: Record<Stage, number>;
  reason?: PredictionMessage['reason'];
}): PredictionMessage {
  return {
    ts: new Date(fields.capturedAt).toISOString(),
    run: fields.run,
    frameId: fields.frameId,
    source: fields.source,
    top: fields.top.map((p) => ({ label: p.label, score: round4(p.score) })),
    head: { id: fields.head.id, version: fields.head.version },
    extractor: fields.extractor,
    ms: Object.fromEntries(STAGES.map((s) => [s, round1(fields.ms[s])])) as Record<Stage, number>,
    ...(fields.reason ? { reason: fields.reason } : {}),
  };
}

/** The JSON payloads by name: what docs/mqtt.md lists and what tests check published payloads against. */
export const PAYLOADS = {
  birth: BirthMessageSchema,
  offline: OfflineMessageSchema,
  prediction: PredictionMessageSchema,
  telemetry: TelemetryMessageSchema,
  headState: HeadStateMessageSchema,
  command: CommandRequestSchema,
  commandReply: CommandReplySchema,
} satisfies Record<string, TSchema>;

/** Serialises an outgoing payload (JSON, UTF-8). */
export function encodePayload<K extends keyof typeof PAYLOADS>(_kind: K, message: Static<(typeof PAYLOADS)[K]>): string {
  return JSON.stringify(message);
}
