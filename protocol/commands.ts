/**
 * Commands: requests {id, cmd, args} on <prefix>/<device>/cmd, replies {id, cmd?, ok, error?, data?} on
 * <prefix>/<device>/cmd/reply with the same id. The table below is the one list of commands and their arguments:
 * the device dispatches on it (agent/commands/), operator tools build requests from it, docs/mqtt.md is generated
 * from it. A new command starts here.
 */
import { type Static, type TObject, Type } from '@sinclair/typebox';
import { SampleSchema } from './dataset';
import { CMD_MAX_BYTES, ID_PATTERN, ID_RULE } from './patterns';
import { parseJsonPayload, schemaErrors } from './validate';

const NoArgs = Type.Object({}, { additionalProperties: false });

/** collect-fetch: default and largest `maxBytes` (the encoded samples and images of one reply). */
export const COLLECT_FETCH_MAX_BYTES = 256 * 1024;
/** collect-fetch: smallest `maxBytes`. */
export const COLLECT_FETCH_MIN_BYTES = 1024;
/** collect-ack: most ids in one request (500 ids of ~24 characters stay far below CMD_MAX_BYTES). */
export const COLLECT_ACK_MAX_IDS = 500;
/** Largest JPEG the device keeps with a sample, so that one sample always fits in a reply of COLLECT_FETCH_MAX_BYTES. */
export const COLLECT_IMAGE_MAX_BYTES = 160 * 1024;
/** Largest collect-fetch reply an operator tool parses (a reply holds at most COLLECT_FETCH_MAX_BYTES of samples). */
export const COLLECT_REPLY_MAX_BYTES = 2 * COLLECT_FETCH_MAX_BYTES;
const SampleIdSchema = Type.String({ pattern: '^[0-9]+-[0-9]+$', maxLength: 40, description: 'a sample id, <run>-<frameId>' });

export const COMMANDS = {
  capture: { args: NoArgs, summary: 'take a frame now; replies with that frame\'s prediction (or the capture error)' },
  status: { args: NoArgs, summary: 'replies with the birth message, a telemetry snapshot and the head state' },
  rollback: { args: NoArgs, summary: 'make the previous head active again' },
  allow: {
    args: Type.Object(
      {
        id: Type.String({ pattern: ID_PATTERN, patternMessage: ID_RULE, description: 'head id: one applied on this device before' }),
        version: Type.Integer({ minimum: 1, description: 'the version to let through, at or below the highest applied' }),
        sha256: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$', patternMessage: 'must be 64 lowercase hex digits', description: 'only the head with this manifest.sha256' })),
        minutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 10080, description: 'minutes the allowance lasts (default 60)' })),
      },
      { additionalProperties: false },
    ),
    summary: 'let one older or equal version of a head through the downgrade check, once (docs/head-format.md)',
  },
  promote: { args: NoArgs, summary: 'make the head in shadow mode active' },
  pause: { args: NoArgs, summary: 'stop taking scheduled frames (commands still work); retained `paused` on schedule' },
  resume: { args: NoArgs, summary: 'take scheduled frames again; retained `running` on schedule' },
  snapshot: { args: NoArgs, summary: 'take a frame now and publish it as JPEG on snapshot (downscaled to snapshot.width)' },
  discard: { args: NoArgs, summary: 'drop the head in shadow mode' },
  shadow: {
    args: Type.Object(
      {
        frames: Type.Integer({ minimum: 1, description: 'frames the candidate runs beside the active head' }),
        autoPromoteAgreement: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'promote automatically at this top-1 agreement' })),
      },
      { additionalProperties: false },
    ),
    summary: 'run the next head received in shadow mode',
  },
  'collect-fetch': {
    args: Type.Object(
      {
        after: Type.Optional({ ...SampleIdSchema, description: 'only samples after this id (the last one of the previous reply)' }),
        maxBytes: Type.Optional(
          Type.Integer({ minimum: COLLECT_FETCH_MIN_BYTES, maximum: COLLECT_FETCH_MAX_BYTES, description: `bytes of samples and images per reply (default ${COLLECT_FETCH_MAX_BYTES}); at least one sample is sent` }),
        ),
      },
      { additionalProperties: false },
    ),
    summary: 'collected samples in id order, bounded by maxBytes: {samples, images: {id: base64 JPEG}, more} (docs/data-loop.md)',
  },
  'collect-ack': {
    args: Type.Object(
      { ids: Type.Array(SampleIdSchema, { maxItems: COLLECT_ACK_MAX_IDS, description: 'samples the server has stored safely' }) },
      { additionalProperties: false },
    ),
    summary: 'delete these collected samples (sent once the server stored them); replies {deleted}',
  },
  'collect-status': { args: NoArgs, summary: 'the collected samples on the device: {count, bytes, evicted, damaged, oldest, newest}' },
} satisfies Record<string, { args: TObject; summary: string }>;

/** What a device that does not collect answers to the collect-* commands (the agent and the simulator). */
export const COLLECT_DISABLED = 'collect is not enabled on this device (set collect.enabled: true in its config; docs/data-loop.md)';

export type CommandName = keyof typeof COMMANDS;
export type CommandArgs<N extends CommandName> = Static<(typeof COMMANDS)[N]['args']>;
export const COMMAND_NAMES = Object.keys(COMMANDS).sort() as CommandName[];

export const CommandRequestSchema = Type.Object({
  id: Type.Union([Type.String({ minLength: 1, maxLength: 128 }), Type.Integer()], { description: 'echoed in the reply' }),
  cmd: Type.String({ maxLength: 64 }),
  args: Type.Optional(Type.Object({})),
});
export type CommandRequest = Static<typeof CommandRequestSchema>;

export const CommandReplySchema = Type.Object({
  id: Type.Union([Type.String(), Type.Null()], { description: 'the request\'s id; null when the request had none' }),
  cmd: Type.Optional(Type.String()),
  ok: Type.Boolean(),
  error: Type.Optional(Type.String()),
  data: Type.Optional(Type.Unknown()),
});
export type CommandReply = Static<typeof CommandReplySchema>;

/** A request the device can run: known command, checked arguments. */
export type ParsedCommand = { [N in CommandName]: { id: string; cmd: N; args: CommandArgs<N> } }[CommandName];

/** Parses a cmd payload; on failure, the reply to send (with the id when one could be read). Never throws. */
export function parseCommand(payload: Uint8Array | string): { ok: true; command: ParsedCommand } | { ok: false; reply: CommandReply } {
  const parsed = parseJsonPayload(CommandRequestSchema, payload, 'command', CMD_MAX_BYTES);
  if (!parsed.ok) {
    const id = peekId(payload);
    return { ok: false, reply: { id, ok: false, error: `malformed ${parsed.error} (expected {"id": "...", "cmd": "...", "args": {...}})` } };
  }
  const req = parsed.value;
  const id = String(req.id);
  const cmd = req.cmd;
  if (!Object.hasOwn(COMMANDS, cmd)) {
    return { ok: false, reply: { id, cmd: cmd.slice(0, 64), ok: false, error: `unknown command ${JSON.stringify(cmd.slice(0, 64))} (known: ${COMMAND_NAMES.join(', ')})` } };
  }
  const name = cmd as CommandName;
  const args = req.args ?? {};
  const errors = schemaErrors(COMMANDS[name].args, args, 'args', 3);
  if (errors.length > 0) return { ok: false, reply: { id, cmd: name, ok: false, error: `${name}: ${errors.join('; ')}` } };
  return { ok: true, command: { id, cmd: name, args } as ParsedCommand };
}

/** The id of a request that failed validation, if it has a usable one, so the reply can still be matched. */
function peekId(payload: Uint8Array | string): string | null {
  const size = typeof payload === 'string' ? payload.length : payload.byteLength;
  if (size > CMD_MAX_BYTES) return null;
  try {
    const v = JSON.parse(typeof payload === 'string' ? payload : Buffer.from(payload).toString('utf8')) as { id?: unknown };
    if (typeof v?.id === 'string' && v.id.length > 0 && v.id.length <= 128) return v.id;
    if (typeof v?.id === 'number' && Number.isSafeInteger(v.id)) return String(v.id);
  } catch {
    // not JSON
  }
  return null;
}

/** Builds a request (operator tools). */
export function commandRequest<N extends CommandName>(id: string, cmd: N, args?: CommandArgs<N>): CommandRequest {
  return { id, cmd, ...(args === undefined ? {} : { args }) };
}

// ---------------------------------------------------------------------------------------------------------------
// Replies of the collect commands (issue 14's data loop): what `edgehead dataset pull` reads.

export const CollectFetchReplySchema = Type.Object({
  samples: Type.Array(SampleSchema),
  /** base64 JPEG per sample id, for the samples that have one (collect.images). */
  images: Type.Record(Type.String(), Type.String()),
  /** More samples after the last one of this reply. */
  more: Type.Boolean(),
});
export type CollectFetchReply = Static<typeof CollectFetchReplySchema>;

export const CollectAckReplySchema = Type.Object({ deleted: Type.Integer({ minimum: 0 }) });
export type CollectAckReply = Static<typeof CollectAckReplySchema>;

export const CollectStatusReplySchema = Type.Object({
  count: Type.Integer({ minimum: 0 }),
  bytes: Type.Integer({ minimum: 0 }),
  /** Samples dropped to stay within collect.maxMB since the agent started. */
  evicted: Type.Integer({ minimum: 0 }),
  /** Incomplete or damaged sample files removed at the start (after a crash or power cut). */
  damaged: Type.Integer({ minimum: 0 }),
  oldest: Type.Union([Type.String(), Type.Null()]),
  newest: Type.Union([Type.String(), Type.Null()]),
});
export type CollectStatusReply = Static<typeof CollectStatusReplySchema>;

/** Sample ids in collection order: by run, then frame (a plain string sort puts "10-1" before "9-1"). */
export function compareSampleIds(a: string, b: string): number {
  const [ra, fa] = a.split('-').map(Number) as [number, number];
  const [rb, fb] = b.split('-').map(Number) as [number, number];
  return ra - rb || fa - fb;
}
