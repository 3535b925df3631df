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
import { type Command, help, parseCommandArgs } from '../args';
import { stopOnSignals } from '../signals';

const log = createLogger('run');

const USAGE = `edgehead run [--config FILE]
  Runs the agent. FILE: YAML or JSON (docs/configuration.md); also EDGEHEAD_CONFIG. Every setting can be
  overridden by an environment variable EDGEHEAD_<PATH> (e.g. EDGEHEAD_MQTT_URL). SIGTERM/SIGINT stop it cleanly.`;

export const runCommand: Command = {
  name: 'run',
  summary: 'run the agent: frames on a schedule, predictions and telemetry over MQTT',
  usage: USAGE,
  async run(argv) {
    const { values } = parseCommandArgs(argv, { config: { type: 'string', short: 'c' } }, USAGE);
    if (values.help) return help(USAGE);
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
  },
};
