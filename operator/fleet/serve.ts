/**
 * The composition root of `edgehead fleet serve`: builds every part of the fleet server from its config, starts
 * them in order and stops them in reverse. It composes; the parts act:
 *
 *   MqttJsClient (MQTT 5) -> FleetIngest -> FleetState (+ FleetHistory)
 *                                               |-> Rollouts (publishes heads and commands, AuditLog)
 *                                               |-> metrics (prom-client, read at scrape time)
 *                                               '-> HTTP server (dashboard, JSON API, SSE, /metrics)
 *   DatasetLabels (dataset.dir, when set) ---------------'  the labelling page's folder of pulled samples
 *
 * The server keeps no state the broker does not hold, apart from the history and the audit log: at start the
 * retained status and head/state topics rebuild the fleet table, so a restart or a second replica converges.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Clock, systemClock } from '../../base/clock';
import { EdgeheadError } from '../../base/errors';
import { createLogger } from '../../base/log';
import { redactUrl } from '../../base/redact';
import { MqttJsClient } from '../../mqtt/mqttjs-client';
import { AuditLog } from './audit';
import { defaultFleetClientId, type FleetConfig, fleetBrokerSettings } from './config';
import { FleetHistory } from './history';
import { createFleetHttpServer, type FleetHttpOptions } from './http/server';
import { readBasicAuthFile } from './http/auth';
import { FleetIngest } from './ingest';
import { DatasetLabels } from './labels';
import { createFleetMetrics } from './metrics';
import { Rollouts } from './rollout';
import { FleetState } from './state';
import { loadWebAssets } from './web/build';

const log = createLogger('fleet');

export interface FleetServer {
  /** The dashboard's URL, e.g. http://127.0.0.1:8080/ */
  readonly url: string;
  readonly brokerUrl: string;
  readonly state: FleetState;
  readonly rollouts: Rollouts;
  stop(): Promise<void>;
}

function readSecretFile(file: string, setting: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new EdgeheadError('BAD_CONFIG', `${setting}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const first = text.split(/\r?\n/)[0]!.trim();
  if (!first) throw new EdgeheadError('BAD_CONFIG', `${setting}: ${file} is empty (the token is its first line)`);
  return first;
}

function readPublicKeys(files: readonly string[]): string[] {
  return files.map((f) => {
    try {
      return fs.readFileSync(f, 'utf8');
    } catch (e) {
      throw new EdgeheadError('BAD_CONFIG', `rollouts.publicKeys: cannot read ${f}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  });
}

export async function startFleetServer(cfg: FleetConfig, opts: { clock?: Clock } = {}): Promise<FleetServer> {
  const clock = opts.clock ?? systemClock;
  const prefix = cfg.broker.topicPrefix;
  const token = cfg.auth.token ?? (cfg.auth.tokenFile ? readSecretFile(cfg.auth.tokenFile, 'auth.tokenFile') : undefined);
  const basic = cfg.auth.basicAuthFile ? readBasicAuthFile(cfg.auth.basicAuthFile) : undefined;
  const publicKeys = readPublicKeys(cfg.rollouts.publicKeys);
  const dataset = cfg.dataset.dir ? new DatasetLabels({ dir: cfg.dataset.dir, maxList: cfg.dataset.maxList }) : undefined;

  const history = new FleetHistory({ ...cfg.history, clock });
  const state = new FleetState({ prefix, clock, history, maxDevices: cfg.history.maxDevices, maxLabelsPerHead: cfg.metrics.maxLabelsPerHead });
  const broker = new MqttJsClient({
    cfg: fleetBrokerSettings(cfg),
    clientId: cfg.broker.clientId ?? defaultFleetClientId(),
    protocolVersion: 5,
    settingName: (k) => `broker.tls.${k}`,
  });
  const ingest = new FleetIngest({ broker, state, prefix, shared: cfg.ingest.shared, shareGroup: cfg.ingest.shareGroup });
  fs.mkdirSync(cfg.rollouts.dataDir, { recursive: true, mode: 0o700 });
  const audit = new AuditLog(path.join(cfg.rollouts.dataDir, 'audit.jsonl'));
  const rollouts = new Rollouts({
    fleet: state,
    broker,
    prefix,
    clock,
    audit,
    publicKeys,
    maxUploadBytes: cfg.rollouts.maxUploadBytes,
    defaults: { canaryPercent: cfg.rollouts.canaryPercent, stageTimeoutSec: cfg.rollouts.stageTimeoutSec, minAgreement: cfg.rollouts.minAgreement },
  });
  const metrics = createFleetMetrics({ state, rollouts: () => rollouts.list(), clock, maxLabelsPerHead: cfg.metrics.maxLabelsPerHead });
  const assets = await loadWebAssets();
  const httpOptions: FleetHttpOptions = {
    fleet: state,
    history,
    rollouts,
    metrics,
    health: () => ({ ok: broker.connected, broker: { connected: broker.connected } }),
    listen: { host: cfg.listen.host, port: cfg.listen.port, ...(cfg.listen.tls.cert && cfg.listen.tls.key ? { tls: { cert: cfg.listen.tls.cert, key: cfg.listen.tls.key } } : {}) },
    auth: token || basic ? { ...(token ? { token } : {}), ...(basic ? { basic } : {}) } : undefined,
    maxUploadBytes: cfg.rollouts.maxUploadBytes,
    assets,
    ...(dataset ? { dataset } : {}),
  };
  const http = createFleetHttpServer(httpOptions);

  ingest.start();
  broker.start();
  let url: string;
  try {
    ({ url } = await http.listen());
  } catch (e) {
    rollouts.stop();
    await broker.stop(undefined, 1000);
    throw e;
  }
  const brokerUrl = redactUrl(cfg.broker.url);
  log.info('fleet server started', { url, broker: brokerUrl, prefix, shared: cfg.ingest.shared ? cfg.ingest.shareGroup : false });
  return {
    url,
    brokerUrl,
    state,
    rollouts,
    async stop() {
      rollouts.stop();
      await http.close();
      await broker.stop(undefined, 2000);
    },
  };
}
