/**
 * Commands over MQTT: requests {id, cmd, args} on <prefix>/<device>/cmd, replies {id, ok, error?, data?} on
 * <prefix>/<device>/cmd/reply with the same id. Malformed or unknown commands get an error reply (when an id can
 * be found) and never throw.
 */
import { describeError } from '../../base/errors';
import type { CommandReply, CommandRequest } from '../../protocol/topics';

export type CommandHandler = (args: Record<string, unknown>) => Promise<unknown>;

export class CommandRouter {
  private readonly handlers = new Map<string, CommandHandler>();

  register(name: string, handler: CommandHandler): void {
    this.handlers.set(name, handler);
  }

  get names(): string[] {
    return [...this.handlers.keys()].sort();
  }

  /** Parses and runs one request payload; always resolves to a reply. */
  async handle(payload: Buffer | string): Promise<CommandReply> {
    let req: Partial<CommandRequest>;
    try {
      req = JSON.parse(payload.toString()) as Partial<CommandRequest>;
    } catch {
      return { id: null, ok: false, error: 'malformed command: not JSON (expected {"id": "...", "cmd": "...", "args": {...}})' };
    }
    if (req === null || typeof req !== 'object' || Array.isArray(req)) {
      return { id: null, ok: false, error: 'malformed command: expected a JSON object {"id", "cmd", "args"}' };
    }
    const id = typeof req.id === 'string' || typeof req.id === 'number' ? String(req.id) : null;
    if (id === null) return { id: null, ok: false, error: 'malformed command: "id" (string) is required' };
    if (typeof req.cmd !== 'string') return { id, ok: false, error: 'malformed command: "cmd" (string) is required' };
    const handler = this.handlers.get(req.cmd);
    if (!handler) return { id, cmd: req.cmd, ok: false, error: `unknown command "${req.cmd}" (known: ${this.names.join(', ')})` };
    if (req.args !== undefined && (req.args === null || typeof req.args !== 'object' || Array.isArray(req.args))) {
      return { id, cmd: req.cmd, ok: false, error: 'malformed command: "args" must be an object' };
    }
    try {
      const data = await handler((req.args ?? {}) as Record<string, unknown>);
      return { id, cmd: req.cmd, ok: true, ...(data === undefined ? {} : { data }) };
    } catch (e) {
      return { id, cmd: req.cmd, ok: false, error: describeError(e) };
    }
  }
}
