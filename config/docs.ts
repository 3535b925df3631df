/**
 * docs/configuration.md and the default config file, generated from config/schema.ts.
 * scripts/gen-config-docs.ts writes the docs; test/unit/config-docs.test.ts fails when they are stale.
 * The settings tables and the defaults YAML take a ConfigSpec (default: the agent's), so the fleet server's page
 * (docs/fleet-configuration.md, operator/fleet/config.ts) is rendered by the same code.
 */
import type { TSchema } from '@sinclair/typebox';
import YAML from 'yaml';
import { dottedPath, envVarName, isSecret, isSection, listEnvVars, NON_CONFIG_ENV_VARS, schemaSections, typeNoun } from './env';
import { Value } from '@sinclair/typebox/value';
import { AGENT_CONFIG, checkConfig, type ConfigSpec, EXISTING_FILE_SETTINGS, formatConfigErrors, PATH_SETTINGS } from './load';
import { orderLikeSchema } from './present';
import { CONFIG_VERSION } from './schema';

type Schema = TSchema & Record<string, unknown>;

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const code = (s: string) => '`' + s + '`';

function defaultCell(spec: ConfigSpec, key: string, schema: Schema): string {
  if (spec.computedDefaults[key]) return spec.computedDefaults[key].label;
  if (schema.default === undefined) return '—';
  return code(JSON.stringify(schema.default));
}

function descriptionCell(spec: ConfigSpec, key: string, schema: Schema): string {
  let d = String(schema.description ?? '');
  const computed = spec.computedDefaults[key];
  if (computed) d += ` Computed default: ${computed.explanation}.`;
  if (isSecret(schema)) d += ' Secret: printed as `***`, never in clear.';
  if (spec.pathSettings.includes(key)) {
    d += key === 'extractor.ref' ? ' A relative folder path is relative to the config file.' : ' A relative path is relative to the config file.';
  }
  if (spec.existingFileSettings.includes(key)) d += ` The file${Array.isArray(schema.default) ? 's' : ''} must exist when the config is loaded.`;
  return cell(d.trim());
}

function typeCell(schema: Schema): string {
  return cell(typeNoun(schema).replace(/^an? /, ''));
}

/** One table per section: key, type, default, environment variable, description. */
export function settingsTables(spec: ConfigSpec = AGENT_CONFIG): string[] {
  const out: string[] = [];
  for (const section of schemaSections(spec.schema)) {
    const props = ((section.schema as Schema).properties ?? {}) as Record<string, Schema>;
    const leaves = Object.entries(props).filter(([, s]) => !isSection(s));
    if (leaves.length === 0) continue;
    const title = section.path.length === 0 ? 'Top level' : code(dottedPath(section.path));
    out.push(`### ${title}`, '');
    if (section.path.length > 0) out.push(String((section.schema as Schema).description ?? ''), '');
    out.push('| key | type | default | environment variable | description |', '|---|---|---|---|---|');
    for (const [name, schema] of leaves) {
      const path = [...section.path, name];
      const key = dottedPath(path);
      const env = key === 'version' ? '— (file only)' : code(envVarName(path, spec.prefix));
      out.push(`| ${code(key)} | ${typeCell(schema)} | ${defaultCell(spec, key, schema)} | ${env} | ${descriptionCell(spec, key, schema)} |`);
    }
    out.push('');
  }
  return out;
}

/**
 * The default configuration as a YAML file: every setting with a default, and the optional ones (secrets included,
 * without values) as comments. It is itself a valid config file.
 */
export function renderDefaultsYaml(spec: ConfigSpec = AGENT_CONFIG, header = ' edgehead configuration: every setting at its default (docs/configuration.md).'): string {
  const doc = new YAML.Document(orderLikeSchema(Value.Default(spec.schema, {}), spec.schema));
  doc.commentBefore = header;
  for (const section of schemaSections(spec.schema)) {
    const map = (section.path.length === 0 ? doc.contents : doc.getIn(section.path, true)) as YAML.YAMLMap<YAML.Scalar, unknown> | undefined;
    if (!YAML.isMap(map)) continue;
    const props = Object.entries(((section.schema as Schema).properties ?? {}) as Record<string, Schema>);
    props.forEach(([name, schema], i) => {
      if (schema.default !== undefined) return;
      const key = dottedPath([...section.path, name]);
      const computed = spec.computedDefaults[key];
      const note = computed ? `default: ${computed.label}` : isSecret(schema) ? 'secret, not set' : 'not set';
      const line = ` ${name}: (${note})`;
      const next = props.slice(i + 1).find(([n]) => map.has(n));
      const pair = next ? map.items.find((p) => (p.key as YAML.Scalar).value === next[0]) : undefined;
      if (pair) {
        const k = pair.key as YAML.Scalar;
        k.commentBefore = k.commentBefore ? `${k.commentBefore}\n${line}` : line;
      } else {
        if (map.items.length === 0) map.flow = true; // `directory: {} # path: (not set)`
        map.comment = map.comment ? `${map.comment}\n${line}` : line;
      }
    });
  }
  return doc.toString({ lineWidth: 0 });
}

const ERROR_EXAMPLE_FILE = `version: 1
mqtt:
  urll: mqtts://broker.example:8883
  password: 12345
  reconnectMinMs: 90000
schedule:
  intervalMs: 0
backend:
  threads: many
`;
const ERROR_EXAMPLE_ENV = { EDGEHEAD_PREDICTIONS_TOP_K: 'lots' };

function errorExample(): string[] {
  const { errors } = checkConfig({ data: YAML.parse(ERROR_EXAMPLE_FILE), env: ERROR_EXAMPLE_ENV, baseDir: '/etc/edgehead', cwd: '/', hostname: 'pi', checkFiles: false });
  return [
    'With this `/etc/edgehead/config.yaml`:',
    '',
    '```yaml',
    ERROR_EXAMPLE_FILE.trimEnd(),
    '```',
    '',
    '```text',
    ...Object.entries(ERROR_EXAMPLE_ENV).map(([k, v]) => `$ ${k}=${v} edgehead config check /etc/edgehead/config.yaml`),
    `edgehead: error: ${formatConfigErrors(errors)}`,
    '$ echo $?',
    '2',
    '```',
  ];
}

function envSection(): string[] {
  const vars = listEnvVars();
  const example = (key: string) => vars.find((v) => v.key === key)!;
  const lists = vars.filter((v) => v.format.startsWith('comma')).map((v) => code(v.name));
  const jsonOnly = vars.filter((v) => v.format.startsWith('JSON')).map((v) => code(v.name));
  return [
    'Every setting except `version` can be overridden by an environment variable; the variables are derived from the',
    'schema, not listed by hand: `EDGEHEAD_` + the key path in upper snake case, `_` between levels and camelCase split.',
    `${code(example('schedule.intervalMs').key)} is ${code(example('schedule.intervalMs').name)}, ${code(example('mqtt.tls.rejectUnauthorized').key)} is`,
    `${code(example('mqtt.tls.rejectUnauthorized').name)}. They are applied over the file, before the defaults, and`,
    'validated like the file; an error on an overridden setting names the variable: `(got 0 from EDGEHEAD_SCHEDULE_INTERVAL_MS)`.',
    '',
    'Values are parsed by the type of the setting, never guessed:',
    '',
    '- integers and numbers: plain decimal notation (`1000`, `0.5`); anything else is an error, e.g.',
    '  `EDGEHEAD_SCHEDULE_INTERVAL_MS: must be an integer (got "fast") — sets schedule.intervalMs`;',
    '- booleans: `true`, `false`, `1` or `0`;',
    '- one-of settings: one of the listed values (`EDGEHEAD_PREDICTIONS_QOS=2`, `EDGEHEAD_BACKEND_THREADS=auto` or `4`);',
    '- strings: the value as is (an empty value is an empty string, which most settings refuse);',
    `- lists: a JSON array (\`["a","b"]\`); ${lists.join(', ')} also ${lists.length === 1 ? 'takes' : 'take'} a comma-separated list (\`kitchen,floor-1\`, empty = no groups);`,
    `  ${jsonOnly.join(', ')} only a JSON array.`,
    '',
    'Relative paths from variables are relative to the current directory. An `EDGEHEAD_*` variable that is not a setting',
    'is an error (`EDGEHEAD_SCHEDULE_INTERVAL: unknown setting (did you mean EDGEHEAD_SCHEDULE_INTERVAL_MS?)`), except',
    'these, which are not config settings:',
    '',
    '| variable | meaning |',
    '|---|---|',
    ...Object.entries(NON_CONFIG_ENV_VARS).map(([k, v]) => `| ${code(k)} | ${cell(v)} |`),
    '',
    '`edgehead config env` lists every variable with its setting and type.',
  ];
}

/** docs/configuration.md */
export function renderConfigDocs(): string {
  const paths = PATH_SETTINGS.map(code).join(', ');
  return [
    '# Configuration',
    '',
    '<!-- Generated from config/schema.ts by `npx tsx scripts/gen-config-docs.ts`; do not edit by hand. -->',
    '',
    'The agent reads one YAML or JSON file: `edgehead run --config FILE` (or `EDGEHEAD_CONFIG=FILE`). Without a file it',
    'runs on the defaults below. `config/schema.ts` is the only place settings and defaults are written; this page, the',
    'validation and the environment variables are all derived from it.',
    '',
    '<!-- doctest -->',
    '```sh',
    '# validate; print the effective config (secrets masked); exit 0, or 2 with every error and its key path',
    'edgehead config check config/examples/minimal.yaml',
    'edgehead config check --json config/examples/minimal.yaml > check.json   # the same as one JSON object',
    '# a config for another machine: files it names that are missing here are warnings (exit 0)',
    'edgehead config check --no-file-checks config/examples/production.yaml',
    'edgehead config defaults > defaults.yaml   # the full default config as YAML (a valid config file)',
    'edgehead config env                        # every EDGEHEAD_* variable',
    '```',
    '',
    '<!-- doctest: output -->',
    '```text',
    '# .../config/examples/production.yaml is valid (4 files it names not checked here: see the warnings). ...',
    '```',
    '',
    'Examples: [minimal](../config/examples/minimal.yaml), [production Pi](../config/examples/production.yaml),',
    '[rpicam-vid stream](../config/examples/stream.yaml).',
    '',
    '## How a config is loaded',
    '',
    '1. The file is parsed: `.yaml`/`.yml` as YAML 1.2 (`yes`/`on` are strings, not booleans), `.json` as JSON, other',
    '   names by their first character. Syntax errors name the file, line and column; duplicate keys are errors.',
    `2. \`version: ${CONFIG_VERSION}\` is required: it lets later releases migrate old files. A file without it is refused`,
    `   (\`version: required (this agent reads version ${CONFIG_VERSION})\`), and so is any other version`,
    `   (\`version: unsupported 2 (this agent reads version ${CONFIG_VERSION})\`).`,
    '3. `EDGEHEAD_*` environment variables override settings of the file (see below).',
    '4. Defaults fill every setting left out.',
    '5. Everything is validated, and every problem is reported at once; the agent does not start on a bad config and',
    '   never repairs one (a number written as `"abc"` stays an error). Checks across settings are reported with the',
    '   others: `source.type: http` needs `source.http.url`; `mqtt.tls.cert` and `mqtt.tls.key` go together;',
    '   `mqtt.reconnectMinMs` <= `mqtt.reconnectMaxMs`; `source.stream.restartMinMs` <= `source.stream.restartMaxMs`;',
    `   the files named by ${EXISTING_FILE_SETTINGS.map(code).join(', ')} must exist and be readable (a`,
    '   `head.publicKeys` entry, a file or an inline PEM, must be an Ed25519 public key). To validate a config written for',
    '   another machine, `edgehead config check --no-file-checks FILE` lists the files missing here as warnings (exit 0).',
    '   A broker on another machine (`mqtt.url` not on a loopback address) needs `source.type` chosen, in the file or',
    '   with `EDGEHEAD_SOURCE_TYPE`: the default, `directory`, replays the bundled sample photos, which is right for',
    '   trying the agent (`npm start`, a local or embedded broker) and wrong for a fleet.',
    `6. Relative paths (${paths} when it is a folder; inline PEM keys stay as they are) written in the file are`,
    "   relative to the file's folder; those from environment variables or defaults to the current directory.",
    '   `edgehead config check` prints them resolved.',
    '',
    '## Errors',
    '',
    'One line per problem, `<key path>: <what is expected> (got <value>)`, secrets shown as `***`, some followed by a hint',
    '(`mqtt.cleanSession: must be true or false (got "yes") — write true (YAML 1.2: yes/no/on/off are strings)`); exit',
    'code 2. `edgehead config check --json` prints `{ok, errors: [{path, message, hint?}], warnings, config?}` instead.',
    '',
    ...errorExample(),
    '',
    '## Environment variables',
    '',
    ...envSection(),
    '',
    '## Settings',
    '',
    ...settingsTables(),
    '## All defaults',
    '',
    'The output of `edgehead config defaults`: every setting with its default; optional settings as comments.',
    '',
    '```yaml',
    renderDefaultsYaml().trimEnd(),
    '```',
    '',
  ].join('\n');
}
