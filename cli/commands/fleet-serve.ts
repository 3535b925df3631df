/**
 * `edgehead fleet serve`: the fleet server (operator/fleet/serve.ts) until SIGTERM/SIGINT. Settings come from the
 * fleet config schema (operator/fleet/config.ts: file, EDGEHEAD_FLEET_* variables); the few flags here override them.
 */
import { configureLogging, createLogger } from '../../base/log';
import { parseHostPort } from '../../base/http-server';
import { defaultFleetConfig, loadFleetConfig } from '../../operator/fleet/config';
import { type FleetServer, startFleetServer } from '../../operator/fleet/serve';
import { type Command, defineCommand } from '../args';
import type { CommandSpec } from '../spec';
import { stopOnSignals } from '../signals';

const log = createLogger('fleet');

const FD = defaultFleetConfig();

export const FLEET_SERVE_SPEC = {
  path: 'fleet serve',
  purpose: 'run the fleet server: dashboard, /metrics, JSON API, staged rollouts',
  options: {
    broker: { type: 'string', arg: 'URL', description: 'the MQTT broker (overrides broker.url)' },
    listen: { type: 'string', arg: 'HOST:PORT', description: 'where to serve HTTP (overrides listen)', default: `${FD.listen.host}:${FD.listen.port}` },
    config: { type: 'string', short: 'c', arg: 'FILE', description: 'the fleet config, YAML or JSON (docs/fleet-configuration.md); also EDGEHEAD_FLEET_CONFIG' },
    prefix: { type: 'string', arg: 'P', description: 'topic prefix (overrides broker.topicPrefix)', default: FD.broker.topicPrefix },
  },
  details: `Runs the fleet server beside the broker until SIGTERM/SIGINT: the fleet table and device pages in the browser
(http://HOST:PORT/), Prometheus metrics on /metrics, a JSON API under /api, staged rollouts with an audit log.
Every setting can be overridden by an environment variable EDGEHEAD_FLEET_<PATH> (e.g. EDGEHEAD_FLEET_BROKER_URL).
Flags override both. Listening on anything but loopback needs auth.tokenFile or auth.basicAuthFile (never a secret
on the command line).`,
  examples: ['edgehead fleet serve --broker mqtt://broker.local:1883', 'edgehead fleet serve --config /etc/edgehead/fleet.yaml --listen 0.0.0.0:8080'],
} as const satisfies CommandSpec;

export const fleetServeCommand: Command = defineCommand(FLEET_SERVE_SPEC, async ({ values }) => {
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
});
