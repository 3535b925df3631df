/** `edgehead fleet status`: the fleet table (or JSON) from the broker's retained messages. */
import { EdgeheadError } from '../../base/errors';
import { defaultFleetConfig } from '../../operator/fleet/config';
import { DEFAULT_STATUS_TIMEOUT_MS, fetchFleetStatus, formatFleetTable } from '../../operator/fleet/status';
import { type Command, numberArg, defineCommand } from '../args';
import type { CommandSpec } from '../spec';
import { BROKER_OPTIONS_WITH_PASSWORD, brokerArgs } from '../broker-args';

const D = defaultFleetConfig();
export const FLEET_STATUS_SPEC = {
  path: 'fleet status',
  purpose: 'the fleet table from the retained status and head/state topics',
  options: {
    ...BROKER_OPTIONS_WITH_PASSWORD,
    prefix: { ...BROKER_OPTIONS_WITH_PASSWORD.prefix, default: D.broker.topicPrefix },
    timeout: { type: 'string', arg: 'S', description: 'how long to wait for the retained messages, in seconds', default: DEFAULT_STATUS_TIMEOUT_MS / 1000 },
    json: { type: 'boolean', description: 'print {"devices": [...]} (the server\'s DeviceRow) on stdout' },
  },
  details: `Subscribes to <prefix>/+/status and <prefix>/+/head/state, waits until the broker has sent the retained messages
and prints one row per device: group, online, agent version, head id/version, the last head update and problems.
Live streams (telemetry, predictions) are not retained: latency, temperature and problems need \`fleet serve\`.
The password: --password-file F (its first line) or EDGEHEAD_PUSH_PASSWORD.
Exit 0 (also for an empty fleet); 1 when the broker cannot be reached.`,
  examples: ['edgehead fleet status --broker mqtt://broker.local:1883', 'edgehead fleet status --json --broker mqtts://broker:8883 --ca ca.pem'],
} as const satisfies CommandSpec;

export const fleetStatusCommand: Command = defineCommand(FLEET_STATUS_SPEC, async ({ values }) => {
  if (!values.broker) throw new EdgeheadError('BAD_ARGS', 'fleet status needs --broker URL (e.g. mqtt://broker.local:1883)');
  const conn = brokerArgs(values.broker, values, { passwordEnv: 'EDGEHEAD_PUSH_PASSWORD', defaultPrefix: D.broker.topicPrefix });
  const timeoutMs = Math.round(numberArg(values.timeout, 'timeout', 0.1, 3600, DEFAULT_STATUS_TIMEOUT_MS / 1000) * 1000);
  const devices = await fetchFleetStatus({ settings: conn.settings(), prefix: conn.prefix!, timeoutMs });
  process.stdout.write(values.json ? JSON.stringify({ devices }, null, 2) + '\n' : formatFleetTable(devices) + '\n');
  return 0;
});
