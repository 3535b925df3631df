/** `edgehead dataset pull`: collected samples from devices into a data folder (operator/dataset/; docs/data-loop.md). */
import { EdgeheadError } from '../../base/errors';
import { MqttJsClient } from '../../mqtt/mqttjs-client';
import { defaultFleetConfig } from '../../operator/fleet/config';
import { fetchFleetStatus } from '../../operator/fleet/status';
import { DEFAULT_PULL_TIMEOUT_MS, pullSamples, pullSummary } from '../../operator/dataset/pull';
import { COLLECT_REPLY_MAX_BYTES } from '../../protocol/commands';
import { DEVICE_ID_RE, DEVICE_ID_RULE, ID_RE, ID_RULE } from '../../protocol/patterns';
import { type Command, commandGroup, numberArg, defineCommand } from '../args';
import type { CommandSpec } from '../spec';
import { BROKER_OPTIONS_WITH_PASSWORD, brokerArgs } from '../broker-args';

const D = defaultFleetConfig();
export const DATASET_PULL_SPEC = {
  path: 'dataset pull',
  purpose: 'collected samples from devices into DIR/unlabeled/',
  synopsis: ['--broker URL (--device ID | --group G) --out DIR [options]'],
  options: {
    ...BROKER_OPTIONS_WITH_PASSWORD,
    prefix: { ...BROKER_OPTIONS_WITH_PASSWORD.prefix, default: D.broker.topicPrefix },
    device: { type: 'string', arg: 'ID', description: 'pull from this device' },
    group: { type: 'string', arg: 'G', description: 'pull from the group\'s devices (from their retained status; offline ones are skipped and reported)' },
    out: { type: 'string', arg: 'DIR', required: true, description: 'the data folder: samples go to DIR/unlabeled/' },
    timeout: { type: 'string', arg: 'S', description: 'how long each request waits for the device, in seconds', default: DEFAULT_PULL_TIMEOUT_MS / 1000 },
  },
  details: `Fetches the samples the devices collected (collect.enabled; docs/data-loop.md) with the collect-fetch command, in
chunks, and writes each into DIR/unlabeled/<device>-<id>.json (+ .jpg when the device keeps images); then tells
the device to delete the samples written (collect-ack). A sample already anywhere in DIR is not written again.
Label by moving both files of a sample into DIR/<class>/, then \`edgehead head train --data DIR\`.
The password: --password-file F (its first line) or EDGEHEAD_PUSH_PASSWORD.
Progress on stderr, a summary line on stdout. Exit 0 when every device was pulled; 1 when one was skipped.`,
  examples: ['edgehead dataset pull --broker mqtt://broker.local:1883 --device pi-kitchen1 --out photos/', 'edgehead dataset pull --broker mqtt://broker.local:1883 --group kitchens --out photos/'],
} as const satisfies CommandSpec;

export const pullCommand: Command = defineCommand(DATASET_PULL_SPEC, async ({ values }) => {
  if (!values.broker) throw new EdgeheadError('BAD_ARGS', 'dataset pull needs --broker URL (e.g. mqtt://broker.local:1883)');
  if ((values.device === undefined) === (values.group === undefined)) throw new EdgeheadError('BAD_ARGS', 'dataset pull needs either --device ID or --group G');
  if (values.device !== undefined && !DEVICE_ID_RE.test(values.device)) throw new EdgeheadError('BAD_ARGS', `--device ${DEVICE_ID_RULE} (got ${JSON.stringify(values.device)})`);
  if (values.group !== undefined && !ID_RE.test(values.group)) throw new EdgeheadError('BAD_ARGS', `--group ${ID_RULE} (got ${JSON.stringify(values.group)})`);
  if (!values.out) throw new EdgeheadError('BAD_ARGS', 'dataset pull needs --out DIR (the data folder)');
  const conn = brokerArgs(values.broker, values, { passwordEnv: 'EDGEHEAD_PUSH_PASSWORD', defaultPrefix: D.broker.topicPrefix });
  const timeoutMs = Math.round(numberArg(values.timeout, 'timeout', 0.1, 3600, DEFAULT_PULL_TIMEOUT_MS / 1000) * 1000);
  const progress = (line: string) => process.stderr.write(line + '\n');
  const prefix = conn.prefix!;

  let devices = values.device !== undefined ? [values.device] : [];
  let offline: string[] = [];
  if (values.group !== undefined) {
    const rows = (await fetchFleetStatus({ settings: conn.settings(), prefix })).filter((r) => r.groups.includes(values.group!));
    devices = rows.filter((r) => r.online !== false).map((r) => r.device);
    offline = rows.filter((r) => r.online === false).map((r) => r.device);
    progress(`group ${values.group}: ${rows.length} device${rows.length === 1 ? '' : 's'} (${offline.length} offline${offline.length ? `: ${offline.join(', ')}` : ''})`);
    if (rows.length === 0) throw new EdgeheadError('BAD_ARGS', `no device of group ${values.group} has a retained status under ${prefix}/`);
  }

  const client = new MqttJsClient({
    cfg: conn.settings(),
    clientId: `edgehead-pull-${Math.random().toString(16).slice(2, 10)}`,
    reconnect: false,
    settingName: (k) => `--${k}`,
    maxPayloadBytes: () => COLLECT_REPLY_MAX_BYTES,
  });
  await client.open();
  let results;
  try {
    results = await pullSamples({ broker: client, prefix, devices, out: values.out, timeoutMs, progress });
  } finally {
    await client.stop(undefined, 1000);
  }
  const all = [...results, ...offline.map((device) => ({ device, ok: false, written: 0, images: 0, known: 0, deleted: 0, error: 'offline' }))];
  process.stdout.write(pullSummary(all, values.out) + '\n');
  return all.every((r) => r.ok) ? 0 : 1;
});

export const datasetCommand = commandGroup('dataset', 'training data from the devices', [pullCommand], ['', 'docs/data-loop.md: collect -> pull -> label -> train -> eval -> push.']);
