/** `edgehead fleet status`: the fleet table (or JSON) from the broker's retained messages. */
import { EdgeheadError } from '../../base/errors';
import { defaultFleetConfig } from '../../operator/fleet/config';
import { DEFAULT_STATUS_TIMEOUT_MS, fetchFleetStatus, formatFleetTable } from '../../operator/fleet/status';
import { pushSettings } from '../../operator/push';
import { TOPIC_PREFIX_RE, TOPIC_PREFIX_RULE } from '../../protocol/patterns';
import { type Command, help, numberArg, parseCommandArgs } from '../args';
import { pushPassword } from './head-push';

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
        broker: { type: 'string' },
        prefix: { type: 'string' },
        json: { type: 'boolean' },
        timeout: { type: 'string' },
        ca: { type: 'string' },
        cert: { type: 'string' },
        key: { type: 'string' },
        username: { type: 'string' },
        password: { type: 'string' },
        'password-file': { type: 'string' },
      },
      USAGE,
    );
    if (values.help) return help(USAGE);
    if (positionals.length > 0) throw new EdgeheadError('BAD_ARGS', `fleet status takes no arguments (got ${JSON.stringify(positionals[0])})`);
    if (!values.broker) throw new EdgeheadError('BAD_ARGS', 'fleet status needs --broker URL (e.g. mqtt://broker.local:1883)');
    const prefix = values.prefix ?? D.broker.topicPrefix;
    if (!TOPIC_PREFIX_RE.test(prefix)) throw new EdgeheadError('BAD_ARGS', `--prefix ${TOPIC_PREFIX_RULE} (got ${JSON.stringify(prefix)})`);
    const timeoutMs = Math.round(numberArg(values.timeout, 'timeout', 0.1, 3600, DEFAULT_STATUS_TIMEOUT_MS / 1000) * 1000);
    const password = pushPassword(values.password, values['password-file'], process.env.EDGEHEAD_PUSH_PASSWORD);
    if (password !== undefined && values.username === undefined) {
      throw new EdgeheadError('BAD_ARGS', 'a password (--password, --password-file or EDGEHEAD_PUSH_PASSWORD) needs --username');
    }
    const settings = pushSettings({ broker: values.broker, username: values.username, password, tls: { ca: values.ca, cert: values.cert, key: values.key } });
    const devices = await fetchFleetStatus({ settings, prefix, timeoutMs });
    process.stdout.write(values.json ? JSON.stringify({ devices }, null, 2) + '\n' : formatFleetTable(devices) + '\n');
    return 0;
  },
};
