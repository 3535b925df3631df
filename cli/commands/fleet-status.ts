/** `edgehead fleet status`: the fleet table (or JSON) from the broker's retained messages. */
import { EdgeheadError } from '../../base/errors';
import { defaultFleetConfig } from '../../operator/fleet/config';
import { DEFAULT_STATUS_TIMEOUT_MS, fetchFleetStatus, formatFleetTable } from '../../operator/fleet/status';
import { type Command, help, numberArg, parseCommandArgs } from '../args';
import { BROKER_OPTIONS_WITH_PASSWORD, brokerArgs } from '../broker-args';

const D = defaultFleetConfig();
const USAGE = `edgehead fleet status --broker URL [--prefix P] [--json] [--timeout S] [--ca F --cert F --key F]
       [--username U [--password-file F]]
  Subscribes to <prefix>/+/status and <prefix>/+/head/state, waits until the broker has sent the retained messages
  (${DEFAULT_STATUS_TIMEOUT_MS / 1000} s at most, --timeout S) and prints one row per device: group, online, agent version,
  head id/version, the last head update and problems. --json prints {"devices": [...]} (the server's DeviceRow).
  Live streams (telemetry, predictions) are not retained: latency, temperature and problems need \`fleet serve\`.
  Defaults: --prefix ${D.broker.topicPrefix}. The password: --password-file F (its first line) or EDGEHEAD_PUSH_PASSWORD.
  Exit 0 (also for an empty fleet); 1 when the broker cannot be reached.`;

export const fleetStatusCommand: Command = {
  name: 'status',
  summary: 'the fleet table from the retained status and head/state topics',
  usage: USAGE,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      argv,
      {
        ...BROKER_OPTIONS_WITH_PASSWORD,
        json: { type: 'boolean' },
        timeout: { type: 'string' },
      },
      USAGE,
    );
    if (values.help) return help(USAGE);
    if (positionals.length > 0) throw new EdgeheadError('BAD_ARGS', `fleet status takes no arguments (got ${JSON.stringify(positionals[0])})`);
    if (!values.broker) throw new EdgeheadError('BAD_ARGS', 'fleet status needs --broker URL (e.g. mqtt://broker.local:1883)');
    const conn = brokerArgs(values.broker, values, { passwordEnv: 'EDGEHEAD_PUSH_PASSWORD', defaultPrefix: D.broker.topicPrefix });
    const timeoutMs = Math.round(numberArg(values.timeout, 'timeout', 0.1, 3600, DEFAULT_STATUS_TIMEOUT_MS / 1000) * 1000);
    const devices = await fetchFleetStatus({ settings: conn.settings(), prefix: conn.prefix!, timeoutMs });
    process.stdout.write(values.json ? JSON.stringify({ devices }, null, 2) + '\n' : formatFleetTable(devices) + '\n');
    return 0;
  },
};
