/** `edgehead head push`: publish a head file to a device, a group or the fleet and report each device's answer. */
import { readHeadPayload } from '../../protocol/head/files';
import { defaultConfig } from '../../config/defaults';
import { DEFAULT_PUSH_TIMEOUT_MS, formatPushResult, pushHead, type PushTarget } from '../../operator/push';
import { EdgeheadError } from '../../base/errors';
import { type Command, help, intArg, numberArg, parseSpecArgs } from '../args';
import { renderHelp, usageLines } from '../help';
import type { CommandSpec } from '../spec';
import { BROKER_OPTIONS_WITH_PASSWORD, brokerArgs } from '../broker-args';

const D = defaultConfig();
export const HEAD_PUSH_SPEC = {
  path: 'head push',
  purpose: 'publish a head to a device, a group or the fleet and wait for the answers',
  positionals: [{ name: 'HEAD', description: 'the head file (validated locally first)' }],
  synopsis: ['--broker URL (--device ID | --group G | --all) [options] HEAD'],
  options: {
    ...BROKER_OPTIONS_WITH_PASSWORD,
    device: { type: 'string', arg: 'ID', description: 'push to one device: <prefix>/ID/head/set (not retained)' },
    group: { type: 'string', arg: 'G', description: 'push to a group: <prefix>/groups/G/head/set (retained)' },
    all: { type: 'boolean', description: 'push to the fleet: <prefix>/all/head/set (retained)' },
    'wait-acks': { type: 'string', arg: 'N', description: 'with --group/--all: stop waiting once N devices answered' },
    timeout: { type: 'string', arg: 'S', description: 'how long to wait for answers, in seconds', default: DEFAULT_PUSH_TIMEOUT_MS / 1000 },
    'no-retain': { type: 'boolean', description: 'do not retain a group/fleet push' },
    json: { type: 'boolean', description: 'the result as one JSON object on stdout' },
  },
  details: `Validates HEAD locally, subscribes to <prefix>/+/head/state, publishes HEAD (QoS 1) to
  --device ID  <prefix>/ID/head/set              (not retained)
  --group G    <prefix>/groups/G/head/set        (retained: devices that connect later get it too)
  --all        <prefix>/all/head/set             (retained)
and prints each device's answer (the first head/state carrying the payload's correlation id): applied, duplicate,
shadow or rejected with the reason, and the latency from the publish.
Without --wait-acks, a group/fleet push expects the devices whose retained status (<prefix>/+/status) says they
are online and in the group (--all: online); with none, it says so, publishes nothing and exits 1.
Waits until the device answered (--device), N devices answered (--wait-acks N), every expected device answered,
or --timeout S (default ${DEFAULT_PUSH_TIMEOUT_MS / 1000}) passed; an expected device that did not answer is a "no answer" row.
Exit 0 when every expected device applied it (applied, duplicate or shadow); 1 on a rejection, a missing answer
or a connection failure. Defaults: --prefix ${D.mqtt.topicPrefix}.
The broker password: --password-file F (the first line of F), or the environment variable
EDGEHEAD_PUSH_PASSWORD. --password P also works but every user of the machine can read it in \`ps\`.
A password inside the --broker URL (mqtt://user:pass@host) is never printed.`,
  examples: [
    'edgehead head push --broker mqtt://127.0.0.1:1883 --device pi-kitchen1 shop.head',
    'edgehead head push --broker mqtts://broker:8883 --ca ca.pem --group kitchens --wait-acks 12 shop.head',
  ],
} as const satisfies CommandSpec;
const USAGE = usageLines(HEAD_PUSH_SPEC).join('\n');

export const headPushCommand: Command = {
  name: 'push',
  summary: HEAD_PUSH_SPEC.purpose,
  spec: HEAD_PUSH_SPEC,
  help: () => renderHelp(HEAD_PUSH_SPEC),
  async run(argv) {
    const { values, positionals } = parseSpecArgs(argv, HEAD_PUSH_SPEC);
    if (values.help) return help(HEAD_PUSH_SPEC);
    if (positionals.length !== 1) throw new EdgeheadError('BAD_ARGS', 'head push takes exactly one head file', { hint: `usage: ${USAGE.split('\n')[0]}` });
    if (!values.broker) throw new EdgeheadError('BAD_ARGS', 'head push needs --broker URL (e.g. mqtt://broker.local:1883)');
    const chosen = [values.device !== undefined, values.group !== undefined, values.all === true].filter(Boolean).length;
    if (chosen !== 1) throw new EdgeheadError('BAD_ARGS', 'head push needs exactly one of --device ID, --group G or --all');
    const target: PushTarget =
      values.device !== undefined ? { kind: 'device', device: values.device } : values.group !== undefined ? { kind: 'group', group: values.group } : { kind: 'all' };
    if (values['wait-acks'] !== undefined && target.kind === 'device') {
      throw new EdgeheadError('BAD_ARGS', '--wait-acks applies to --group and --all (a --device push waits for that device)');
    }
    const waitAcks = values['wait-acks'] === undefined ? undefined : intArg(values['wait-acks'], 'wait-acks', 1, 1);
    const timeoutMs = Math.round(numberArg(values.timeout, 'timeout', 0.1, 86_400, DEFAULT_PUSH_TIMEOUT_MS / 1000) * 1000);
    const { connection } = brokerArgs(values.broker, values, { passwordEnv: 'EDGEHEAD_PUSH_PASSWORD' });

    const file = positionals[0]!;
    const maxBytes = D.head.maxBytes;
    const payload = readHeadPayload(file, maxBytes);

    const say = (s: string) => values.json || process.stderr.write(s + '\n');
    let result;
    try {
      result = await pushHead({
        ...connection,
        target,
        payload,
        prefix: values.prefix ?? D.mqtt.topicPrefix,
        retain: values['no-retain'] ? false : undefined,
        waitAcks,
        timeoutMs,
        maxBytes,
        onPublished: ({ topic, expected }) =>
          say(
            expected === null
              ? `published to ${topic}; waiting up to ${timeoutMs / 1000} s for answers...`
              : `published to ${topic}; waiting up to ${timeoutMs / 1000} s for the ${expected.length} online device${expected.length === 1 ? '' : 's'} of the ${target.kind === 'group' ? `group (${expected.join(', ')})` : `fleet (${expected.join(', ')})`}...`,
          ),
      });
    } catch (e) {
      if (e instanceof EdgeheadError && e.code === 'BAD_HEAD') throw new EdgeheadError('BAD_HEAD', `${file}: ${e.message}`, { hint: e.hint });
      throw e;
    }
    process.stdout.write(values.json ? JSON.stringify(result, null, 2) + '\n' : formatPushResult(result) + '\n');
    return result.ok ? 0 : 1;
  },
};

