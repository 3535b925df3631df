/**
 * The device's command service: subscribes to <prefix>/<device>/cmd, runs each request through the command table
 * (protocol/commands.ts; handlers built by the composition root) and answers on cmd/reply with the same id.
 */
import { describeError } from '../../base/errors';
import { createLogger } from '../../base/log';
import type { BrokerClient, RefusedPayload } from '../../mqtt/broker';
import { encodePayload } from '../../protocol/messages';
import type { DeviceTopics } from '../../protocol/topics';
import type { CommandReply } from '../../protocol/commands';
import { type CommandHandlers, CommandRouter } from './command-router';

const log = createLogger('commands');

export class DeviceCommands {
  private readonly router: CommandRouter;

  constructor(
    private readonly broker: BrokerClient,
    private readonly topics: Pick<DeviceTopics, 'cmd' | 'cmdReply'>,
    handlers: CommandHandlers,
  ) {
    this.router = new CommandRouter(handlers);
  }

  /** Handles one request payload and publishes the reply. Never throws. */
  async handle(payload: Uint8Array): Promise<void> {
    await this.reply(await this.router.handle(payload));
  }

  /** Answers a request the MQTT client refused unread (too large): no id can be read from it. Never throws. */
  async refuse(r: RefusedPayload): Promise<void> {
    await this.reply({ id: null, ok: false, error: `malformed command: too large (${r.bytes} bytes > limit ${r.limit})` });
  }

  private async reply(reply: CommandReply): Promise<void> {
    if (!reply.ok) log.info('command failed', { id: reply.id, cmd: reply.cmd, error: reply.error });
    await this.broker.publish(this.topics.cmdReply, encodePayload('commandReply', reply), { qos: 1, retain: false }).catch((e) => {
      log.warn('command reply not published', { error: describeError(e) });
    });
  }
}
