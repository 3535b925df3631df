/**
 * `edgehead config check|defaults|env`: validate a config file, print the defaults, list the environment variables.
 * All three are derived from config/schema.ts (see docs/configuration.md).
 */
import * as path from 'node:path';
import YAML from 'yaml';
import { defaultConfig } from '../../config/defaults';
import { renderDefaultsYaml } from '../../config/docs';
import { listEnvVars, NON_CONFIG_ENV_VARS } from '../../config/env';
import { checkConfig, ConfigError, type ConfigIssue, formatIssue } from '../../config/load';
import { maskSecrets, orderLikeSchema } from '../../config/present';
import { describeError } from '../../base/errors';
import { stderrPrefix } from '../../base/log';
import { type Command, commandGroup, defineCommand, usageError } from '../args';
import type { CommandSpec } from '../spec';

/** Said with every file check that fails: the way to validate a config written for another machine. */
export const NO_FILE_CHECKS_HINT = 'a config for another machine? `edgehead config check --no-file-checks FILE` reports files missing here as warnings';

export const CONFIG_CHECK_SPEC = {
  path: 'config check',
  purpose: 'validate a config file and print the effective config',
  options: {
    json: { type: 'boolean', description: 'one JSON object on stdout: {ok, errors: [{path, message, hint?}], warnings, config?}' },
    'no-file-checks': {
      type: 'boolean',
      description: 'files named by the config (TLS, head keys) that are missing or unreadable here are warnings, not errors',
    },
  },
  positionals: [{ name: 'FILE', description: 'YAML or JSON config (default: $EDGEHEAD_CONFIG)', optional: true }],
  details: `Validates FILE together with the EDGEHEAD_* environment overrides. Valid: prints the effective configuration
(defaults, overrides and resolved paths applied; secrets as ***) as YAML, exit 0. Invalid: prints every error, one
per line with its key path, exit 2. --no-file-checks validates a config written for another machine (e.g. a
device's, on a laptop): the files it names that are not here are listed as warnings, exit 0.`,
  examples: [
    'edgehead config check /etc/edgehead/config.yaml',
    'edgehead config check --no-file-checks config/examples/production.yaml   # written for a Pi: files missing here are warnings',
    'edgehead config check --json config.yaml',
  ],
} as const satisfies CommandSpec;

export const CONFIG_DEFAULTS_SPEC = {
  path: 'config defaults',
  purpose: 'print the full default config',
  options: { json: { type: 'boolean', description: 'JSON instead of YAML' } },
  details: 'Prints the full default configuration as YAML (--json: JSON). The YAML is itself a valid config file.',
  examples: ['edgehead config defaults > config.yaml', 'edgehead config defaults --json'],
} as const satisfies CommandSpec;

export const CONFIG_ENV_SPEC = {
  path: 'config env',
  purpose: 'list the EDGEHEAD_* environment variables',
  options: { json: { type: 'boolean', description: 'one JSON object: {settings, other}' } },
  details: 'Lists the EDGEHEAD_* environment variables: one per setting, plus the few that are not settings.',
  examples: ['edgehead config env', 'edgehead config env --json'],
} as const satisfies CommandSpec;

/** The --json report of `config check`. */
export interface CheckReport {
  ok: boolean;
  errors: ConfigIssue[];
  warnings: ConfigIssue[];
  /** The effective config (secrets masked), when ok. */
  config?: unknown;
}

/** An issue as JSON shows it: {path, message, hint?}. */
function plain(i: ConfigIssue): ConfigIssue {
  return { path: i.path, message: i.message, ...(i.hint ? { hint: i.hint } : {}) };
}

const checkCommand: Command = defineCommand(CONFIG_CHECK_SPEC, async ({ values, positionals }) => {
  const json = values.json === true;
  const fail = (e: unknown): never => {
    if (json) {
      const errors = e instanceof ConfigError ? e.issues.map(plain) : [{ path: '', message: describeError(e) }];
      process.stdout.write(JSON.stringify({ ok: false, errors, warnings: [] } satisfies CheckReport, null, 2) + '\n');
    }
    throw e;
  };
  if (positionals.length > 1) fail(usageError(CONFIG_CHECK_SPEC, `config check takes one FILE (got ${positionals.length})`));
  const file = positionals[0] ?? process.env.EDGEHEAD_CONFIG;
  if (!file) fail(usageError(CONFIG_CHECK_SPEC, 'config check needs a FILE (or EDGEHEAD_CONFIG)'));
  let result: ReturnType<typeof checkConfig>;
  try {
    result = checkConfig({ file: file!, checkFiles: values['no-file-checks'] ? 'warn' : true });
  } catch (e) {
    return fail(e);
  }
  const { config, issues, warnings, envSources } = result;
  const errors = issues.map((i) => (i.file && !i.hint ? { ...i, hint: NO_FILE_CHECKS_HINT } : i));
  if (json) {
    const report: CheckReport = { ok: !!config, errors: errors.map(plain), warnings: warnings.map(plain), ...(config ? { config: maskSecrets(config) } : {}) };
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  } else {
    for (const w of warnings) process.stderr.write(`${stderrPrefix('warn')}edgehead: warning: ${formatIssue(w)}\n`);
  }
  if (!config) throw new ConfigError(errors);
  if (json) return 0;
  const doc = new YAML.Document(maskSecrets(config));
  const here = warnings.length > 0 ? ` (${warnings.length} file${warnings.length === 1 ? '' : 's'} it names not checked here: see the warnings)` : '';
  doc.commentBefore = ` ${path.resolve(file!)} is valid${here}. Effective configuration: defaults, EDGEHEAD_* overrides and resolved paths applied; secrets masked.`;
  for (const [key, name] of envSources) markFromEnv(doc, key.split('.'), name);
  process.stdout.write(doc.toString({ lineWidth: 0 }));
  return 0;
});

/** `url: mqtts://... # from EDGEHEAD_MQTT_URL` (for lists: a comment line above the key). */
function markFromEnv(doc: YAML.Document, keyPath: string[], name: string): void {
  const parent = keyPath.length === 1 ? doc.contents : doc.getIn(keyPath.slice(0, -1), true);
  if (!YAML.isMap(parent)) return;
  const pair = parent.items.find((p) => YAML.isScalar(p.key) && p.key.value === keyPath[keyPath.length - 1]);
  if (!pair) return;
  if (YAML.isScalar(pair.value)) pair.value.comment = ` from ${name}`;
  else if (YAML.isScalar(pair.key)) pair.key.commentBefore = ` from ${name}`;
}

const defaultsCommand: Command = defineCommand(CONFIG_DEFAULTS_SPEC, async ({ values }) => {
  process.stdout.write(values.json ? JSON.stringify(orderLikeSchema(defaultConfig()), null, 2) + '\n' : renderDefaultsYaml());
  return 0;
});

const envCommand: Command = defineCommand(CONFIG_ENV_SPEC, async ({ values }) => {
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
});

export const configCommand = commandGroup('config', 'check a config file, print the defaults, list the environment variables', [checkCommand, defaultsCommand, envCommand], ['Settings: docs/configuration.md']);
