/**
 * Runs device commands: parses a cmd payload against the protocol's command table (protocol/commands.ts) and calls
 * the handler for that command with its checked arguments. Always resolves to a reply; never throws.
 */
import { describeError } from '../../base/errors';
import { type CommandArgs, type CommandName, type CommandReply, parseCommand } from '../../protocol/commands';

/** One handler per command of the protocol: adding a command to the table without a handler does not compile. */
export type CommandHandlers = { [N in CommandName]: (args: CommandArgs<N>) => Promise<unknown> };

export class CommandRouter {
  constructor(private readonly handlers: CommandHandlers) {}

  async handle(payload: Uint8Array | string): Promise<CommandReply> {
    const parsed = parseCommand(payload);
    if (!parsed.ok) return parsed.reply;
    const { id, cmd, args } = parsed.command;
    try {
      const data = await (this.handlers[cmd] as (a: typeof args) => Promise<unknown>)(args);
      return { id, cmd, ok: true, ...(data === undefined ? {} : { data }) };
    } catch (e) {
      return { id, cmd, ok: false, error: describeError(e) };
    }
  }
}
