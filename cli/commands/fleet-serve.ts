/**
 * `edgehead fleet serve`: the fleet server (operator/fleet/serve.ts) until SIGTERM/SIGINT. Settings come from the
 * fleet config schema (operator/fleet/config.ts: file, EDGEHEAD_FLEET_* variables); the few flags here override them.
 */
import { configureLogging, createLogger } from '../../base/log';
import { describeError, EdgeheadError } from '../../base/errors';
import { loadFleetConfig } from '../../operator/fleet/config';
import { type FleetServer, startFleetServer } from '../../operator/fleet/serve';
import { type Command, help, parseCommandArgs } from '../args';
import { reportFatal } from '../report';

const log = createLogger('fleet');
const FORCED_EXIT_MS = 5000;

const USAGE = `edgehead fleet serve [--broker URL] [--listen HOST:PORT] [--config FILE] [--prefix P]
  Runs the fleet server beside the broker: the fleet table and device pages in the browser (http://HOST:PORT/),
  Prometheus metrics on /metrics, a JSON API under /api, staged rollouts with an audit log.
  FILE: YAML or JSON (docs/fleet-configuration.md); also EDGEHEAD_FLEET_CONFIG. Every setting can be overridden by an
  environment variable EDGEHEAD_FLEET_<PATH> (e.g. EDGEHEAD_FLEET_BROKER_URL). Flags override both.
  Listening on anything but loopback needs auth.tokenFile or auth.basicAuthFile (never a secret on the command line).`;

/** "HOST:PORT", "[::1]:PORT" or ":PORT" -> host and port. */
export function parseListen(value: string): { host?: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) throw new EdgeheadError('BAD_ARGS', `--listen must be HOST:PORT, e.g. 127.0.0.1:8080 (got "${value}")`);
  const host = m[1] ?? m[2];
  return { ...(host ? { host } : {}), port };
}

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
    if (values.listen !== undefined) overrides.listen = parseListen(values.listen);
    const config = loadFleetConfig({ file: values.config ?? process.env.EDGEHEAD_FLEET_CONFIG, env: process.env, overrides });
    configureLogging({ level: config.log.level, format: config.log.format });

    let server: FleetServer | undefined;
    let stopping = false;
    const shutdown = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info('stopping', { signal });
      setTimeout(() => {
        process.stderr.write(`edgehead: fleet server did not stop within ${FORCED_EXIT_MS / 1000} s; forcing exit\n`);
        process.exit(1);
      }, FORCED_EXIT_MS).unref();
      (server?.stop() ?? Promise.resolve()).then(
        () => process.exit(0),
        (e) => {
          reportFatal(e);
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGINT', () => shutdown('SIGINT'));
    process.on('unhandledRejection', (e) => log.error('unhandled rejection (continuing)', { error: describeError(e) }));

    server = await startFleetServer(config);
    process.stderr.write(`edgehead: fleet server on ${server.url} (metrics ${server.url}metrics), broker ${server.brokerUrl}\n`);
    await new Promise<never>(() => undefined);
    return 0;
  },
};
