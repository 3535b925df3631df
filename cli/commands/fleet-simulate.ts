/**
 * `edgehead fleet simulate`: N simulated devices (operator/fleet/simulate.ts) on a loopback broker until --duration
 * or SIGINT/SIGTERM, with a progress line on stderr every --stats-interval seconds and a summary at the end; with
 * --json-stats the same figures as one JSON object per line on stdout (the fleet benchmark reads them).
 */
import * as fs from 'node:fs';
import { describeError, EdgeheadError } from '../../base/errors';
import { configureLogging, createLogger } from '../../base/log';
import { MAX_SIMULATED_DEVICES, SimulatedFleet, type SimStats } from '../../operator/fleet/simulate';
import { type Command, intArg, numberArg, defineCommand } from '../args';
import type { CommandSpec } from '../spec';
import { BROKER_OPTIONS, brokerArgs } from '../broker-args';

const log = createLogger('simulate');
const DEFAULT_DURATION_SEC = 600;
const MAX_DURATION_SEC = 86_400;
const FORCED_EXIT_MS = 15_000;

export const FLEET_SIMULATE_SPEC = {
  path: 'fleet simulate',
  purpose: 'simulated devices on a loopback broker (tests, benchmarks)',
  options: {
    ...BROKER_OPTIONS,
    broker: { ...BROKER_OPTIONS.broker, description: 'the MQTT broker: loopback only (127.0.0.1, ::1, localhost)' },
    devices: { type: 'string', arg: 'N', required: true, description: `how many devices (1 to ${MAX_SIMULATED_DEVICES}; ids: <id-prefix><number>)` },
    duration: { type: 'string', arg: 'S', description: `run for S seconds (at most ${MAX_DURATION_SEC})`, default: DEFAULT_DURATION_SEC },
    'id-prefix': { type: 'string', arg: 'P', description: 'device id prefix', default: 'sim-' },
    'telemetry-interval': { type: 'string', arg: 'S', description: 'telemetry every S seconds', default: 5 },
    'prediction-interval': { type: 'string', arg: 'S', description: 'a prediction every S seconds', default: 1 },
    group: { type: 'string', multiple: true, arg: 'G', description: "the devices' group; several --group spread the devices over them in turn", default: 'sim' },
    'public-key': { type: 'string', multiple: true, arg: 'F', description: 'trusted Ed25519 public key (PEM): devices reject unsigned heads' },
    reject: { type: 'string', multiple: true, arg: 'ID', description: 'this device answers "rejected" to every head' },
    'shadow-agreement': { type: 'string', arg: 'X', description: 'share of frames on which a shadow candidate agrees', default: 0.95 },
    seed: { type: 'string', arg: 'N', description: 'random seed', default: 1 },
    'stats-interval': { type: 'string', arg: 'S', description: 'a progress line on stderr every S seconds', default: 10 },
    'json-stats': { type: 'boolean', description: 'also print the figures as one JSON object per line on stdout' },
  },
  details: `Simulated devices speaking the real protocol, each its own MQTT connection with a retained last will: birth and
head/state (retained), telemetry and predictions. They answer head pushes by validating the head like a device
(format, signature with --public-key, duplicate, downgrade, shadow mode; not the extractor fingerprint, feature
dimension or test vectors: they have no extractor) and answer commands (status, rollback, promote, discard...).
Runs for --duration or until SIGINT/SIGTERM, then publishes each device's retained offline "shutdown".
The broker password: --password-file F or EDGEHEAD_SIM_PASSWORD.`,
  examples: ['edgehead fleet simulate --broker mqtt://127.0.0.1:1883 --devices 100', 'edgehead fleet simulate --broker mqtt://127.0.0.1:1883 --devices 20 --group kitchens --group halls --reject sim-3 --duration 60'],
} as const satisfies CommandSpec;

export const fleetSimulateCommand: Command = defineCommand(FLEET_SIMULATE_SPEC, async ({ values }) => {
  if (!values.broker) throw new EdgeheadError('BAD_ARGS', 'fleet simulate needs --broker URL (e.g. mqtt://127.0.0.1:1883)');
  if (values.devices === undefined) throw new EdgeheadError('BAD_ARGS', `fleet simulate needs --devices N (1 to ${MAX_SIMULATED_DEVICES})`);
  const devices = intArg(values.devices, 'devices', 1, 1);
  if (devices > MAX_SIMULATED_DEVICES) throw new EdgeheadError('BAD_ARGS', `--devices must be at most ${MAX_SIMULATED_DEVICES} (got ${devices})`);
  const durationSec = numberArg(values.duration, 'duration', 1, MAX_DURATION_SEC, DEFAULT_DURATION_SEC);
  const telemetrySec = numberArg(values['telemetry-interval'], 'telemetry-interval', 0.01, 3600, FLEET_SIMULATE_SPEC.options['telemetry-interval'].default);
  const predictionSec = numberArg(values['prediction-interval'], 'prediction-interval', 0.01, 3600, FLEET_SIMULATE_SPEC.options['prediction-interval'].default);
  const statsSec = numberArg(values['stats-interval'], 'stats-interval', 0.1, 3600, FLEET_SIMULATE_SPEC.options['stats-interval'].default);
  const shadowAgreement = numberArg(values['shadow-agreement'], 'shadow-agreement', 0, 1, FLEET_SIMULATE_SPEC.options['shadow-agreement'].default);
  const seed = intArg(values.seed, 'seed', 0, FLEET_SIMULATE_SPEC.options.seed.default);
  const groups = values.group && values.group.length > 0 ? values.group : [FLEET_SIMULATE_SPEC.options.group.default];
  const publicKeys = (values['public-key'] ?? []).map((f) => {
    try {
      return fs.readFileSync(f, 'utf8');
    } catch (e) {
      throw new EdgeheadError('BAD_ARGS', `--public-key: cannot read ${f}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  });
  const { connection } = brokerArgs(values.broker, values, { passwordEnv: 'EDGEHEAD_SIM_PASSWORD', passwordFlag: false });
  if (process.env.EDGEHEAD_LOG_LEVEL === undefined) configureLogging({ level: 'warn' });

  const fleet = new SimulatedFleet({
    ...connection,
    prefix: values.prefix,
    devices,
    idPrefix: values['id-prefix'],
    groups: (i) => [groups[i % groups.length]!],
    telemetryIntervalMs: telemetrySec * 1000,
    predictionIntervalMs: predictionSec * 1000,
    publicKeys,
    rejectDevices: values.reject,
    shadowAgreement,
    seed,
    durationMs: durationSec * 1000,
  });

  const json = values['json-stats'] === true;
  const t0 = Date.now();
  let last = { at: t0, total: 0 };
  const report = (final: boolean) => {
    const s = fleet.stats();
    const now = Date.now();
    // Progress: the rate since the previous line; the summary: the average over the whole run.
    const from = final ? { at: t0, total: 0 } : last;
    const rate = now > from.at ? ((s.published.total - from.total) * 1000) / (now - from.at) : 0;
    last = { at: now, total: s.published.total };
    process.stderr.write(`${progressLine(s, (now - t0) / 1000, rate, final)}\n`);
    if (json) process.stdout.write(JSON.stringify({ event: final ? 'summary' : 'progress', elapsedSec: round1((now - t0) / 1000), msgsPerSec: round1(rate), ...s }) + '\n');
  };

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) {
      process.stderr.write(`edgehead: ${signal} again; exiting without the shutdown messages\n`);
      process.exit(1);
    }
    stopping = true;
    log.info('stopping', { signal });
    setTimeout(() => {
      process.stderr.write(`edgehead: the simulated devices did not stop within ${FORCED_EXIT_MS / 1000} s; forcing exit\n`);
      process.exit(1);
    }, FORCED_EXIT_MS).unref();
    void fleet.stop();
  };
  const onTerm = () => shutdown('SIGTERM');
  const onInt = () => shutdown('SIGINT');
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  const ticker = setInterval(() => report(false), statsSec * 1000);
  try {
    await fleet.start();
    process.stderr.write(`edgehead: ${devices} simulated devices connected to ${values.broker} (${fleet.ids[0]} ... ${fleet.ids[devices - 1]}, group${groups.length > 1 ? 's' : ''} ${groups.join(', ')}); stopping in ${durationSec} s or on Ctrl-C\n`);
    await fleet.done;
    report(true);
    return 0;
  } catch (e) {
    if (stopping) {
      // Connecting was interrupted by a signal: not a failure of the simulator.
      log.debug('start interrupted', { error: describeError(e) });
      report(true);
      return 0;
    }
    throw e;
  } finally {
    clearInterval(ticker);
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
  }
});

const round1 = (x: number) => Math.round(x * 10) / 10;

/** `simulate: 1000/1000 connected, 1203 msg/s, 72,180 published (...), heads: 1000 applied` */
export function progressLine(s: SimStats, elapsedSec: number, msgsPerSec: number, final: boolean): string {
  const p = s.published;
  const heads = Object.entries(s.headAnswers)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${n} ${k}`)
    .join(', ');
  const kinds = `telemetry ${p.telemetry}, predictions ${p.predictions}, head/state ${p.headState}, birth ${p.birth}${p.cmdReply ? `, replies ${p.cmdReply}` : ''}${p.offline ? `, offline ${p.offline}` : ''}`;
  const secs = elapsedSec < 10 ? elapsedSec.toFixed(1) : String(Math.round(elapsedSec));
  const what = final ? `done after ${secs} s` : `${secs} s`;
  return `simulate ${what}: ${s.connected}/${s.devices} connected, ${Math.round(msgsPerSec)} msg/s, ${p.total} published (${kinds})${s.publishFailed ? `, ${s.publishFailed} not published` : ''}${heads ? `; heads: ${heads}` : ''}`;
}
