/**
 * The broker connection flags shared by `head push`, `fleet status` and `fleet simulate`: --broker, --prefix,
 * --ca/--cert/--key, --username and the password (--password-file F, an environment variable, and for some
 * commands --password P), their option spec and the checks that turn them into a connection.
 */
import * as fs from 'node:fs';
import { EdgeheadError } from '../base/errors';
import { defaultConfig } from '../config/defaults';
import type { MqttSettings } from '../mqtt/mqttjs-client';
import { pushSettings } from '../operator/push';
import { TOPIC_PREFIX_RE, TOPIC_PREFIX_RULE } from '../protocol/patterns';
import type { OptionDefs } from './spec';

/** --broker, --prefix, --ca/--cert/--key, --username and --password-file: spread into a command spec's options. */
export const BROKER_OPTIONS = {
  broker: { type: 'string', arg: 'URL', required: true, description: 'the MQTT broker: mqtt://host:1883, mqtts://host:8883, ws(s)://...' },
  prefix: { type: 'string', arg: 'P', description: 'topic prefix', default: defaultConfig().mqtt.topicPrefix },
  ca: { type: 'string', arg: 'F', description: 'CA certificate (PEM) for mqtts/wss' },
  cert: { type: 'string', arg: 'F', description: 'client certificate (PEM)' },
  key: { type: 'string', arg: 'F', description: 'client private key (PEM)' },
  username: { type: 'string', arg: 'U', description: 'broker user name' },
  'password-file': { type: 'string', arg: 'F', description: 'the broker password is the first line of F' },
} as const satisfies OptionDefs;

/** BROKER_OPTIONS and --password P (visible in `ps`; `fleet simulate` does not take it). */
export const BROKER_OPTIONS_WITH_PASSWORD = {
  ...BROKER_OPTIONS,
  password: { type: 'string', arg: 'P', description: 'the broker password (every user of the machine can read it in `ps`: prefer --password-file)' },
} as const satisfies OptionDefs;

/** The parsed values of BROKER_OPTIONS (and --password). */
export interface BrokerValues {
  prefix?: string;
  ca?: string;
  cert?: string;
  key?: string;
  username?: string;
  password?: string;
  'password-file'?: string;
}

export interface BrokerArgsRules {
  /** The environment variable that may hold the password (EDGEHEAD_PUSH_PASSWORD, EDGEHEAD_SIM_PASSWORD). */
  passwordEnv: string;
  /** Whether the command takes --password P (default true); it only changes the wording of the --username error. */
  passwordFlag?: boolean;
  /**
   * The topic prefix without --prefix; given, the prefix is checked here (a `--prefix ...` error). Left out, `prefix`
   * is --prefix as given and the callee applies its default and checks it (pushHead, SimulatedFleet).
   */
  defaultPrefix?: string;
}

/** What the broker flags come to. */
export interface BrokerArgs {
  /** --prefix, or the default (checked) when BrokerArgsRules.defaultPrefix was given. */
  prefix: string | undefined;
  /** The connection as pushHead and SimulatedFleet take it (spread it into their options). */
  connection: { broker: string; username: string | undefined; password: string | undefined; tls: { ca?: string; cert?: string; key?: string } };
  /** The MQTT settings for the connection (pushSettings: checks the broker URL and that TLS files go with mqtts/wss). */
  settings(): MqttSettings;
}

/** Checks the broker flags (the password at most once, a password needs --username) and collects the connection. */
export function brokerArgs(broker: string, values: BrokerValues, rules: BrokerArgsRules): BrokerArgs {
  let prefix = values.prefix;
  if (rules.defaultPrefix !== undefined) {
    prefix ??= rules.defaultPrefix;
    if (!TOPIC_PREFIX_RE.test(prefix)) throw new EdgeheadError('BAD_ARGS', `--prefix ${TOPIC_PREFIX_RULE} (got ${JSON.stringify(prefix)})`);
  }
  const password = pushPassword(values.password, values['password-file'], process.env[rules.passwordEnv]);
  if (password !== undefined && values.username === undefined) {
    const sources = rules.passwordFlag === false ? '--password-file' : '--password, --password-file';
    throw new EdgeheadError('BAD_ARGS', `a password (${sources} or ${rules.passwordEnv}) needs --username`);
  }
  const connection = { broker, username: values.username, password, tls: { ca: values.ca, cert: values.cert, key: values.key } };
  return { prefix, connection, settings: () => pushSettings(connection) };
}

/** The broker password from --password, --password-file (its first line) or the environment; at most one. */
export function pushPassword(flag: string | undefined, file: string | undefined, env: string | undefined): string | undefined {
  if (flag !== undefined && file !== undefined) throw new EdgeheadError('BAD_ARGS', 'give --password or --password-file, not both');
  if (file !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new EdgeheadError('BAD_ARGS', `--password-file: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const first = text.split(/\r?\n/)[0]!;
    if (first === '') throw new EdgeheadError('BAD_ARGS', `--password-file: ${file} is empty (the password is its first line)`);
    return first;
  }
  return flag ?? (env === undefined || env === '' ? undefined : env);
}
