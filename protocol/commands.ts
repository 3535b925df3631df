/**
 * Commands: requests {id, cmd, args} on <prefix>/<device>/cmd, replies {id, cmd?, ok, error?, data?} on
 * <prefix>/<device>/cmd/reply with the same id. The table below is the one list of commands and their arguments:
 * the device dispatches on it (agent/commands/), operator tools build requests from it, docs/mqtt.md is generated
 * from it. A new command starts here.
 */
import { type Static, type TObject, Type } from '@sinclair/typebox';
import { CMD_MAX_BYTES, ID_PATTERN, ID_RULE } from './patterns';
import { parseJsonPayload, schemaErrors } from './validate';

const NoArgs = Type.Object({}, { additionalProperties: false });

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
} satisfies Record<string, { args: TObject; summary: string }>;

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
