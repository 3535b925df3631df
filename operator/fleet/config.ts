/**
 * The fleet server's configuration (`edgehead fleet serve --config FILE`): its schema — the ONLY place its defaults are
 * written — and its loader. Same machinery as the agent's (config/load.ts, config/env.ts, config/docs.ts), run over
 * this schema through a ConfigSpec:
 *
 *   file (YAML or JSON, `version: 1`) -> EDGEHEAD_FLEET_* overrides -> command-line overrides -> schema defaults
 *   -> validation + cross-field checks -> relative paths resolved -> FleetConfig
 *
 * Every problem is reported at once in one BAD_CONFIG error (exit 2), one line each with its key path; secrets
 * (broker.password, auth.token) are printed as ***. docs/fleet-configuration.md is generated from here
 * (scripts/gen-fleet-config-docs.ts; test/unit/fleet-config.test.ts fails when it is stale).
 */
import * as os from 'node:os';
import { type Static, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { settingsTables, renderDefaultsYaml } from '../../config/docs';
import { listEnvVars } from '../../config/env';
import { type CheckOptions, checkWithSpec, ConfigError, type ConfigSpec, orderErrors, pairErrors } from '../../config/load';
import { logSection } from '../../config/schema';
import type { MqttSettings } from '../../mqtt/mqttjs-client';
import {
  HEAD_MAX_BYTES,
  ID_INVALID_CHARS_RE,
  ID_PATTERN,
  ID_RULE,
  MQTT_URL_PATTERN,
  MQTT_URL_RULE,
  TOPIC_PREFIX_PATTERN,
  TOPIC_PREFIX_RULE,
} from '../../protocol/patterns';

export const FLEET_CONFIG_VERSION = 1;
export const FLEET_ENV_PREFIX = 'EDGEHEAD_FLEET_';

const section = <T extends Parameters<typeof Type.Object>[0]>(props: T, description: string) =>
  Type.Object(props, { additionalProperties: false, default: {}, description });
const file = (description: string) => Type.Optional(Type.String({ minLength: 1, description }));

export const FleetBrokerSchema = section(
  {
    url: Type.String({
      pattern: MQTT_URL_PATTERN,
      patternMessage: MQTT_URL_RULE,
      default: 'mqtt://127.0.0.1:1883',
      description: 'Broker URL; mqtts:// and wss:// use TLS (broker.tls). The server speaks MQTT 5 (shared subscriptions).',
    }),
    username: Type.Optional(Type.String({ description: 'Broker user name.' })),
    password: Type.Optional(Type.String({ description: 'Broker password (better from EDGEHEAD_FLEET_BROKER_PASSWORD than in the file).', secret: true })),
    topicPrefix: Type.String({
      pattern: TOPIC_PREFIX_PATTERN,
      patternMessage: TOPIC_PREFIX_RULE,
      default: 'edgehead',
      description: "The devices' mqtt.topicPrefix.",
    }),
    clientId: Type.Optional(
      Type.String({ pattern: ID_PATTERN, patternMessage: ID_RULE, description: 'MQTT client id; must differ between replicas (the computed default does).' }),
    ),
    keepaliveSec: Type.Integer({ minimum: 5, maximum: 3600, default: 30, description: 'MQTT keepalive.' }),
    connectTimeoutMs: Type.Integer({ minimum: 1000, default: 10000, description: 'Give up on one connection attempt after this long.' }),
    reconnectMinMs: Type.Integer({ minimum: 100, default: 1000, description: 'First reconnect delay; doubles per failed attempt (with jitter).' }),
    reconnectMaxMs: Type.Integer({ minimum: 100, default: 30000, description: 'Longest reconnect delay.' }),
    tls: section(
      {
        ca: file('CA certificate file (PEM) that signed the broker certificate.'),
        cert: file('Client certificate file (PEM), for brokers that require one.'),
        key: file('Client private key file (PEM).'),
        rejectUnauthorized: Type.Boolean({ default: true, description: 'Verify the broker certificate. Never falls back to plaintext either way.' }),
        servername: Type.Optional(Type.String({ minLength: 1, description: 'TLS server name (SNI) if it differs from the URL host.' })),
      },
      'TLS for mqtts:// and wss:// brokers.',
    ),
  },
  'MQTT broker connection (a clean session: the fleet state is rebuilt from retained messages at every connection).',
);

export const FleetIngestSchema = section(
  {
    shared: Type.Boolean({
      default: true,
      description:
        'Subscribe to the non-retained streams (telemetry, predictions, cmd/reply, snapshot) as MQTT 5 shared subscriptions, so replicas split them; false: every replica gets every message.',
    }),
    shareGroup: Type.String({
      pattern: ID_PATTERN,
      patternMessage: ID_RULE,
      default: 'edgehead-fleet',
      description: 'The shared-subscription group: $share/<shareGroup>/<prefix>/+/telemetry ... (replicas of one fleet use the same).',
    }),
  },
  'Ingestion. Retained topics (status, head/state) are always subscribed plainly: every replica sees every device.',
);

export const FleetListenSchema = section(
  {
    host: Type.String({
      minLength: 1,
      default: '127.0.0.1',
      description: 'Address of the HTTP server (dashboard, API, /metrics). Anything but loopback (127.0.0.0/8, ::1, localhost) requires auth.',
    }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080, description: 'TCP port (0: any free port, printed at start).' }),
    tls: section(
      {
        cert: file('Server certificate (PEM): with tls.key, the server speaks HTTPS only.'),
        key: file('Server private key (PEM).'),
      },
      'HTTPS: both cert and key, or neither.',
    ),
  },
  'HTTP server.',
);

export const FleetAuthSchema = section(
  {
    token: Type.Optional(
      Type.String({
        minLength: 16,
        secret: true,
        description: 'Bearer token for the API and dashboard (Authorization: Bearer <token>). Set it by environment variable or file, never on the command line.',
      }),
    ),
    tokenFile: file('File whose first line is the bearer token (an alternative to auth.token).'),
    basicAuthFile: file(
      'HTTP basic auth users, one "user:password" per line: the password in clear, or "{SHA256}" + base64(sha256(password)) (`printf %s PASSWORD | openssl dgst -sha256 -binary | base64`); empty lines and lines starting with # are ignored.',
    ),
  },
  'Authentication of the HTTP server. Off when nothing is set, which only a loopback listen.host allows.',
);

export const FleetHistorySchema = section(
  {
    resolutionSec: Type.Integer({ minimum: 1, maximum: 3600, default: 60, description: 'Width of one history bucket.' }),
    retentionHours: Type.Integer({ minimum: 1, maximum: 24 * 14, default: 24, description: 'How far back the charts go (buckets = retentionHours * 3600 / resolutionSec).' }),
    maxDevices: Type.Integer({ minimum: 1, default: 10000, description: 'Devices tracked (table and history); messages of further new devices are counted and ignored.' }),
    maxLabels: Type.Integer({ minimum: 1, maximum: 256, default: 16, description: 'Labels with their own series in a device\'s history; the rest are summed as "(other)".' }),
  },
  'In-process history for the charts (memory per device: see operator/fleet/history.ts).',
);

export const FleetMetricsSchema = section(
  {
    maxLabelsPerHead: Type.Integer({
      minimum: 1,
      maximum: 1000,
      default: 50,
      description: 'Label values of edgehead_device_predictions_total per device and head; further labels are counted as "(other)".',
    }),
  },
  'Prometheus /metrics.',
);

export const FleetRolloutsSchema = section(
  {
    dataDir: Type.String({ minLength: 1, default: './edgehead-fleet', description: 'Writable folder of the rollout audit log (audit.jsonl) and rollout records.' }),
    maxUploadBytes: Type.Integer({ minimum: 1024, default: HEAD_MAX_BYTES, description: 'Largest head file accepted by an upload (the devices\' head.maxBytes default).' }),
    publicKeys: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description: 'Ed25519 public key files (.pub, PEM). When any is set, uploaded heads must be signed by one of them.',
    }),
    canaryPercent: Type.Number({ exclusiveMinimum: 0, maximum: 100, default: 10, description: 'Canary share of the target when a rollout names no canary devices (at least 1 device).' }),
    stageTimeoutSec: Type.Integer({ minimum: 1, default: 120, description: 'A stage halts when its devices have not all answered within this time.' }),
    minAgreement: Type.Number({ minimum: 0, maximum: 1, default: 0.9, description: 'Shadow-mode heads: the agreement each canary must reach before the rest.' }),
  },
  'Staged rollouts.',
);

export const FleetDatasetSchema = section(
  {
    dir: file(
      'The data folder `edgehead dataset pull --out DIR` fills (`DIR/unlabeled/`, `DIR/<class>/`): the dashboard\'s labelling page (`#/label`) lists its samples and moves them into class folders. Must exist. Unset: no labelling page (its API answers 404).',
    ),
    maxList: Type.Integer({ minimum: 1, maximum: 10000, default: 1000, description: 'Most samples the labelling page lists at once per folder (the rest are counted; label some to see more).' }),
  },
  'The labelling page (docs/data-loop.md).',
);

export const FleetLogSchema = logSection('Log level of the server (stderr).');

export const FleetConfigSchema = Type.Object(
  {
    version: Type.Literal(FLEET_CONFIG_VERSION, { default: FLEET_CONFIG_VERSION, description: 'Config file format version.' }),
    broker: FleetBrokerSchema,
    ingest: FleetIngestSchema,
    listen: FleetListenSchema,
    auth: FleetAuthSchema,
    history: FleetHistorySchema,
    metrics: FleetMetricsSchema,
    rollouts: FleetRolloutsSchema,
    dataset: FleetDatasetSchema,
    log: FleetLogSchema,
  },
  { additionalProperties: false },
);

export type FleetConfig = Static<typeof FleetConfigSchema>;

/** True for 127.0.0.0/8, ::1 (bracketed or not) and localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === '::ffff:127.0.0.1';
}

/** broker.clientId when none is configured: edgehead-fleet-<host>-<8 hex>, distinct per replica and per start. */
export function defaultFleetClientId(hostname: string = os.hostname(), random: () => number = Math.random): string {
  const rand = Math.floor(random() * 0x1_0000_0000).toString(16).padStart(8, '0');
  const host = hostname.replace(ID_INVALID_CHARS_RE, '-').slice(0, 64 - 'edgehead-fleet--'.length - 8) || 'host';
  return `edgehead-fleet-${host}-${rand}`;
}

export interface FleetLoadOptions {
  /** YAML or JSON file; without one: defaults, environment and overrides only. */
  file?: string;
  /** Environment for EDGEHEAD_FLEET_* (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** What command-line flags set, as a partial config (e.g. { broker: { url }, listen: { host, port } }). */
  overrides?: Record<string, unknown>;
  /** Check that the files named by the config exist (default true). */
  checkFiles?: boolean;
  /** Base of relative paths not from the file (default process.cwd()). */
  cwd?: string;
  /** For the broker.clientId default (default os.hostname(), Math.random). */
  hostname?: string;
  random?: () => number;
  /** Already parsed file contents instead of `file` (tests, docs). */
  data?: unknown;
  baseDir?: string;
}

function fleetCrossFieldErrors(_cfg: Record<string, unknown>, { at, got }: Parameters<NonNullable<ConfigSpec['crossFieldErrors']>>[1]): string[] {
  const errors = [...pairErrors(at, 'broker.tls.cert', 'broker.tls.key'), ...pairErrors(at, 'listen.tls.cert', 'listen.tls.key')];
  errors.push(...orderErrors(at, got, [['broker.reconnectMinMs', 'broker.reconnectMaxMs']]));
  const host = at('listen.host');
  const hasAuth = ['auth.token', 'auth.tokenFile', 'auth.basicAuthFile'].some((k) => at(k) !== undefined);
  if (typeof host === 'string' && host !== '' && !isLoopbackHost(host) && !hasAuth) {
    errors.push(
      `listen.host: ${JSON.stringify(host)} is not a loopback address, which requires auth (auth.token / EDGEHEAD_FLEET_AUTH_TOKEN, auth.tokenFile or auth.basicAuthFile) ${got(host, 'listen.host')}`,
    );
  }
  return errors;
}

const FILE_SETTINGS = ['broker.tls.ca', 'broker.tls.cert', 'broker.tls.key', 'listen.tls.cert', 'listen.tls.key', 'auth.tokenFile', 'auth.basicAuthFile', 'rollouts.publicKeys'];

/** The fleet server's ConfigSpec for config/load.ts and config/docs.ts. */
export const FLEET_CONFIG: ConfigSpec = {
  schema: FleetConfigSchema,
  prefix: FLEET_ENV_PREFIX,
  nonConfig: { EDGEHEAD_FLEET_CONFIG: 'Path of the config file when `edgehead fleet serve` gets no --config.' },
  listHint: 'see docs/fleet-configuration.md for the list',
  version: FLEET_CONFIG_VERSION,
  reader: 'this server',
  pathSettings: [...FILE_SETTINGS, 'rollouts.dataDir', 'dataset.dir'],
  existingFileSettings: FILE_SETTINGS,
  computedDefaults: {
    'broker.clientId': { label: 'edgehead-fleet-HOST-RANDOM', explanation: '"edgehead-fleet-", the host name (sanitised), "-" and 8 random hex digits, new at every start' },
  },
  fillComputed(cfg, opts) {
    const broker = cfg.broker as Record<string, unknown> | undefined;
    const o = opts as CheckOptions & { random?: () => number };
    if (broker && typeof broker === 'object' && broker.clientId === undefined) broker.clientId = defaultFleetClientId(o.hostname, o.random);
  },
  crossFieldErrors: fleetCrossFieldErrors,
};

/** Every problem at once, or the config. Unreadable files throw (BAD_CONFIG). */
export function checkFleetConfig(opts: FleetLoadOptions = {}): { config?: FleetConfig; errors: string[] } {
  const { config, errors } = checkWithSpec(FLEET_CONFIG, opts);
  return { config: config as FleetConfig | undefined, errors };
}

/** Loads and validates the server's config; throws a ConfigError (BAD_CONFIG, exit 2) listing every problem. */
export function loadFleetConfig(opts: FleetLoadOptions = {}): FleetConfig {
  const { config, errors } = checkFleetConfig(opts);
  if (errors.length > 0 || !config) throw new ConfigError(errors);
  return config;
}

/** Every setting at its schema default (broker.clientId, computed at load, is unset). */
export function defaultFleetConfig(): FleetConfig {
  return Value.Default(FleetConfigSchema, {}) as FleetConfig;
}

/** The MQTT connection settings of the server (clean session: state comes back from the retained topics). */
export function fleetBrokerSettings(cfg: FleetConfig): MqttSettings {
  const b = cfg.broker;
  return {
    url: b.url,
    username: b.username,
    password: b.password,
    keepaliveSec: b.keepaliveSec,
    cleanSession: true,
    connectTimeoutMs: b.connectTimeoutMs,
    reconnectMinMs: b.reconnectMinMs,
    reconnectMaxMs: b.reconnectMaxMs,
    tls: { ...b.tls },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// docs/fleet-configuration.md

const code = (s: string) => '`' + s + '`';

/** docs/fleet-configuration.md, generated by scripts/gen-fleet-config-docs.ts. */
export function renderFleetConfigDocs(): string {
  const vars = listEnvVars(FLEET_CONFIG);
  const example = (key: string) => vars.find((v) => v.key === key)!.name;
  const { errors } = checkFleetConfig({
    data: { version: 1, listen: { host: '0.0.0.0', port: 80800 }, broker: { url: 'tcp://broker:1883', password: 12345 } },
    env: { EDGEHEAD_FLEET_HISTORY_RETENTION_HOURS: 'forever' },
    checkFiles: false,
    hostname: 'ops',
    random: () => 0,
    cwd: '/',
  });
  return [
    '# Fleet server configuration',
    '',
    '<!-- Generated from operator/fleet/config.ts by `npx tsx scripts/gen-fleet-config-docs.ts`; do not edit by hand. -->',
    '',
    '`edgehead fleet serve --config FILE` reads one YAML or JSON file, loaded exactly like the agent\'s',
    '([configuration.md](configuration.md)): `version: 1` is required; `EDGEHEAD_FLEET_*` environment variables override',
    'the file; command-line flags (`--broker`, `--listen`, ...) override both; defaults fill the rest; every problem is',
    'reported at once, one line per problem with its key path, and the server does not start (exit 2). Secrets',
    `(${code('broker.password')}, ${code('auth.token')}) are printed as ${code('***')}. Relative paths in the file are relative to`,
    'its folder; from variables, flags or defaults, to the current directory.',
    '',
    'Checks across settings: `broker.tls.cert` and `broker.tls.key` go together, and so do `listen.tls.cert` and',
    '`listen.tls.key`; `broker.reconnectMinMs` <= `broker.reconnectMaxMs`; a `listen.host` that is not loopback',
    '(127.0.0.0/8, ::1, localhost) requires `auth.token`, `auth.tokenFile` or `auth.basicAuthFile`; the files named by',
    `${FILE_SETTINGS.map(code).join(', ')} must exist.`,
    '',
    '```text',
    '$ EDGEHEAD_FLEET_HISTORY_RETENTION_HOURS=forever edgehead fleet serve --config fleet.yaml',
    `edgehead: error: ${new ConfigError(errors).message}`,
    '```',
    '',
    '## Environment variables',
    '',
    `Every setting except \`version\` has one, derived from the schema: \`${FLEET_ENV_PREFIX}\` + the key path in upper snake`,
    `case (${code('listen.port')} is ${code(example('listen.port'))}, ${code('auth.token')} is ${code(example('auth.token'))}). Values are`,
    'parsed by the type of the setting as for the agent; lists take a JSON array. An unknown `EDGEHEAD_FLEET_*` variable',
    'is an error, except `EDGEHEAD_FLEET_CONFIG` (the config file when `--config` is not given). The agent ignores',
    '`EDGEHEAD_FLEET_*`, and the server ignores the agent\'s `EDGEHEAD_*` settings.',
    '',
    '## Settings',
    '',
    ...settingsTables(FLEET_CONFIG),
    '## All defaults',
    '',
    '```yaml',
    renderDefaultsYaml(FLEET_CONFIG, ' edgehead fleet server configuration: every setting at its default (docs/fleet-configuration.md).').trimEnd(),
    '```',
    '',
  ].join('\n');
}
