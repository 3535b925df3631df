/**
 * `edgehead run [--config FILE]`: the long-running agent. Without a config file it runs on embedded defaults:
 * an embedded broker on 127.0.0.1:1883 (or the one already there), the bundled sample frames, the default extractor
 * and the demo head, with predictions printed to the console as well as published.
 */
import { loadConfig } from '../../config/load';
import { type Agent, createAgent } from '../../agent/agent';
import { loopbackTarget } from '../../mqtt/embedded-broker';
import { redactUrl } from '../../base/redact';
import { configureLogging, createLogger, flushLogRepeats, stderrPrefix } from '../../base/log';
import { type Command, defineCommand } from '../args';
import type { CommandSpec } from '../spec';
import { stopOnSignals } from '../signals';

const log = createLogger('run');

export const RUN_SPEC = {
  path: 'run',
  purpose: 'run the agent: frames on a schedule, predictions and telemetry over MQTT',
  options: {
    config: { type: 'string', short: 'c', arg: 'FILE', description: 'the config file, YAML or JSON (docs/configuration.md); also EDGEHEAD_CONFIG', default: 'embedded defaults' },
  },
  details: `Runs the agent until SIGTERM/SIGINT, which stop it cleanly. Every setting can be overridden by an environment
variable EDGEHEAD_<PATH> (e.g. EDGEHEAD_MQTT_URL). Without a config: an embedded broker on 127.0.0.1:1883 (or the
one already there), the bundled sample frames, the default extractor and the demo head.`,
  examples: ['edgehead run', 'edgehead run --config /etc/edgehead/config.yaml', 'EDGEHEAD_MQTT_URL=mqtt://broker.local:1883 edgehead run -c config.yaml'],
} as const satisfies CommandSpec;

export const runCommand: Command = defineCommand(RUN_SPEC, async ({ values }) => {
  const file = values.config ?? process.env.EDGEHEAD_CONFIG;
  const config = loadConfig({ file });
  configureLogging({ level: config.log.level, format: config.log.format }); // EDGEHEAD_LOG_LEVEL is log.level's env override

  let agent: Agent | undefined; // undefined while it is being built (a signal then just exits)
  // flush: the "repeated N times" counts of the last window
  const shutdown = stopOnSignals('the agent', log, () => agent?.stop() ?? Promise.resolve(), flushLogRepeats);

  agent = await createAgent({
    config,
    consoleAuto: file === undefined || process.stdout.isTTY === true,
    onBroken: () => shutdown('the WebAssembly runtime keeps trapping', 1), // systemd's Restart=always starts a new process
  });
  try {
    await agent.start();
  } catch (e) {
    await agent.stop().catch(() => undefined);
    throw e;
  }
  const target = loopbackTarget(config.mqtt.url);
  const sub = target
    ? `mosquitto_sub -h ${target.host} -p ${target.port} -t '${config.mqtt.topicPrefix}/#' -v`
    : `mosquitto_sub -L '${redactUrl(config.mqtt.url)}/${config.mqtt.topicPrefix}/#' -v`;
  process.stderr.write(`${stderrPrefix('info')}edgehead: device ${agent.deviceId} running; watch it with: ${sub}\n`);
  await new Promise<never>(() => undefined); // runs until a signal
  return 0;
});
