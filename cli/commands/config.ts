/**
 * `edgehead config check|defaults|env`: validate a config file, print the defaults, list the environment variables.
 * All three are derived from config/schema.ts (see docs/configuration.md).
 */
import * as path from 'node:path';
import YAML from 'yaml';
import { defaultConfig } from '../../config/defaults';
import { renderDefaultsYaml } from '../../config/docs';
import { listEnvVars, NON_CONFIG_ENV_VARS } from '../../config/env';
import { checkConfig, ConfigError } from '../../config/load';
import { maskSecrets, orderLikeSchema } from '../../config/present';
import { EdgeheadError } from '../../base/errors';
import { type Command, commandGroup, help, parseCommandArgs } from '../args';

const CHECK_USAGE = `edgehead config check [FILE] [--json]
  Validates FILE (default: $EDGEHEAD_CONFIG) together with the EDGEHEAD_* environment overrides. Valid: prints the
  effective configuration (defaults, overrides and resolved paths applied; secrets as ***) as YAML (--json: JSON),
  exit 0. Invalid: prints every error, one per line, exit 2.`;

const DEFAULTS_USAGE = `edgehead config defaults [--json]
  Prints the full default configuration as YAML (--json: JSON). The YAML is itself a valid config file.`;

const ENV_USAGE = `edgehead config env [--json]
  Lists the EDGEHEAD_* environment variables: one per setting, plus the few that are not settings.`;

const checkCommand: Command = {
  name: 'check',
  summary: 'validate a config file and print the effective config',
  usage: CHECK_USAGE,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, { json: { type: 'boolean' } }, CHECK_USAGE);
    if (values.help) return help(CHECK_USAGE);
    if (positionals.length > 1) throw new EdgeheadError('BAD_ARGS', `config check takes one FILE (got ${positionals.length})`, { hint: `usage: ${CHECK_USAGE.split('\n')[0]}` });
    const file = positionals[0] ?? process.env.EDGEHEAD_CONFIG;
    if (!file) throw new EdgeheadError('BAD_ARGS', 'config check needs a FILE (or EDGEHEAD_CONFIG)', { hint: `usage: ${CHECK_USAGE.split('\n')[0]}` });
    const { config, errors, envSources } = checkConfig({ file });
    if (!config) throw new ConfigError(errors);
    const shown = maskSecrets(config);
    if (values.json) {
      process.stdout.write(JSON.stringify(shown, null, 2) + '\n');
      return 0;
    }
    const doc = new YAML.Document(shown);
    doc.commentBefore = ` ${path.resolve(file)} is valid. Effective configuration: defaults, EDGEHEAD_* overrides and resolved paths applied; secrets masked.`;
    for (const [key, name] of envSources) markFromEnv(doc, key.split('.'), name);
    process.stdout.write(doc.toString({ lineWidth: 0 }));
    return 0;
  },
};

/** `url: mqtts://... # from EDGEHEAD_MQTT_URL` (for lists: a comment line above the key). */
function markFromEnv(doc: YAML.Document, keyPath: string[], name: string): void {
  const parent = keyPath.length === 1 ? doc.contents : doc.getIn(keyPath.slice(0, -1), true);
  if (!YAML.isMap(parent)) return;
  const pair = parent.items.find((p) => YAML.isScalar(p.key) && p.key.value === keyPath[keyPath.length - 1]);
  if (!pair) return;
  if (YAML.isScalar(pair.value)) pair.value.comment = ` from ${name}`;
  else if (YAML.isScalar(pair.key)) pair.key.commentBefore = ` from ${name}`;
}

const defaultsCommand: Command = {
  name: 'defaults',
  summary: 'print the full default config',
  usage: DEFAULTS_USAGE,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, { json: { type: 'boolean' } }, DEFAULTS_USAGE);
    if (values.help) return help(DEFAULTS_USAGE);
    if (positionals.length > 0) throw new EdgeheadError('BAD_ARGS', `unexpected argument "${positionals[0]}"`, { hint: `usage: ${DEFAULTS_USAGE.split('\n')[0]}` });
    process.stdout.write(values.json ? JSON.stringify(orderLikeSchema(defaultConfig()), null, 2) + '\n' : renderDefaultsYaml());
    return 0;
  },
};

const envCommand: Command = {
  name: 'env',
  summary: 'list the EDGEHEAD_* environment variables',
  usage: ENV_USAGE,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, { json: { type: 'boolean' } }, ENV_USAGE);
    if (values.help) return help(ENV_USAGE);
    if (positionals.length > 0) throw new EdgeheadError('BAD_ARGS', `unexpected argument "${positionals[0]}"`, { hint: `usage: ${ENV_USAGE.split('\n')[0]}` });
    const vars = listEnvVars();
    if (values.json) {
      const settings = vars.map(({ name, key, type, format, secret }) => ({ name, key, type, format, secret, set: process.env[name] !== undefined }));
      const other = Object.entries(NON_CONFIG_ENV_VARS).map(([name, meaning]) => ({ name, meaning, set: process.env[name] !== undefined }));
      process.stdout.write(JSON.stringify({ settings, other }, null, 2) + '\n');
      return 0;
    }
    const w1 = Math.max(...vars.map((v) => v.name.length));
    const w2 = Math.max(...vars.map((v) => v.key.length));
    const lines = ['Settings (EDGEHEAD_<KEY PATH>; * = set in this environment):'];
    for (const v of vars) {
      const fmt = v.format === 'as is' || v.format.startsWith('true') ? '' : ` [${v.format}]`;
      lines.push(`${process.env[v.name] !== undefined ? '*' : ' '} ${v.name.padEnd(w1)}  ${v.key.padEnd(w2)}  ${v.type}${fmt}${v.secret ? ' (secret)' : ''}`);
    }
    lines.push('', 'Not settings:');
    const w3 = Math.max(...Object.keys(NON_CONFIG_ENV_VARS).map((k) => k.length));
    for (const [name, meaning] of Object.entries(NON_CONFIG_ENV_VARS)) lines.push(`${process.env[name] !== undefined ? '*' : ' '} ${name.padEnd(w3)}  ${meaning}`);
    process.stdout.write(lines.join('\n') + '\n');
    return 0;
  },
};

export const configCommand = commandGroup('config', 'check a config file, print the defaults, list the environment variables', [checkCommand, defaultsCommand, envCommand], ['Settings: docs/configuration.md']);
