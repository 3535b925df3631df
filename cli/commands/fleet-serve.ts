/**
 * `edgehead fleet serve`: the fleet server (operator/fleet/serve.ts) until SIGTERM/SIGINT. Settings come from the
 * fleet config schema (operator/fleet/config.ts: file, EDGEHEAD_FLEET_* variables); the few flags here override them.
 */
import { configureLogging, createLogger } from '../../base/log';
import { EdgeheadError } from '../../base/errors';
import { parseHostPort } from '../../base/http-server';
import { loadFleetConfig } from '../../operator/fleet/config';
import { type FleetServer, startFleetServer } from '../../operator/fleet/serve';
import { type Command, help, parseCommandArgs } from '../args';
import { stopOnSignals } from '../signals';

const log = createLogger('fleet');

const USAGE = `edgehead fleet serve [--broker URL] [--listen HOST:PORT] [--config FILE] [--prefix P]
  Runs the fleet server beside the broker: the fleet table and device pages in the browser (http://HOST:PORT/),
  Prometheus metrics on /metrics, a JSON API under /api, staged rollouts with an audit log.
  FILE: YAML or JSON (docs/fleet-configuration.md); also EDGEHEAD_FLEET_CONFIG. Every setting can be overridden by an
  environment variable EDGEHEAD_FLEET_<PATH> (e.g. EDGEHEAD_FLEET_BROKER_URL). Flags override both.
  Listening on anything but loopback needs auth.tokenFile or auth.basicAuthFile (never a secret on the command line).`;

export const fleetServeCommand: Command = {
  name: 'serve',
  summary: 'run the fleet server: dashboard, /metrics, JSON API, staged rollouts',
  usage: USAGE,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      argv,
      { broker: { type: 'string' }, listen: { type: 'string' }, config: { type: 'string', short: 'c' }, prefix: { type: 'string' } },
      USAGE,
    );
    if (values.help) return help(USAGE);
    if (positionals.length > 0) throw new EdgeheadError('BAD_ARGS', `fleet serve takes no arguments (got "${positionals[0]}")`, { hint: `usage: ${USAGE.split('\n')[0]}` });
    const overrides: Record<string, Record<string, unknown>> = {};
    if (values.broker !== undefined) (overrides.broker ??= {}).url = values.broker;
    if (values.prefix !== undefined) (overrides.broker ??= {}).topicPrefix = values.prefix;
    if (values.listen !== undefined) overrides.listen = parseHostPort(values.listen, '--listen', 'BAD_ARGS');
    const config = loadFleetConfig({ file: values.config ?? process.env.EDGEHEAD_FLEET_CONFIG, env: process.env, overrides });
    configureLogging({ level: config.log.level, format: config.log.format });

    let server: FleetServer | undefined;
    stopOnSignals('the fleet server', log, () => server?.stop() ?? Promise.resolve());

    server = await startFleetServer(config);
    process.stderr.write(`edgehead: fleet server on ${server.url} (metrics ${server.url}metrics), broker ${server.brokerUrl}\n`);
    await new Promise<never>(() => undefined);
    return 0;
  },
};
