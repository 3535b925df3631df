/**
 * loadConfig(): the one way the agent reads its configuration.
 *
 *   file (YAML or JSON, `version: 1`) -> EDGEHEAD_* overrides -> schema defaults -> validation + cross-field checks
 *   -> relative paths resolved -> Config
 *
 * Every problem is collected and reported at once in one EdgeheadError('BAD_CONFIG') (a ConfigError), one line per
 * problem: `schedule.intervalMs: must be >= 50 (got 0)`, some with a hint (`... — write true (YAML 1.2: ...)`); each is
 * also a ConfigIssue {path, message, hint?} (`config check --json`). Nothing is repaired silently: a value of the wrong
 * type is an error, never coerced (only EDGEHEAD_* strings are parsed, by the type of their setting). Secret settings
 * are never printed: "(got ***)".
 *
 * Files named by the config (TLS files, head keys) are checked here too; for a config written for another machine
 * (checkFiles: 'warn', `config check --no-file-checks`) files missing or unreadable here are warnings instead.
 *
 * The same loader serves the fleet server's config (operator/fleet/config.ts): everything that depends on the schema
 * (version, env prefix, path settings, computed defaults, cross-field rules) is a ConfigSpec; checkConfig() and
 * loadConfig() are the agent's (AGENT_CONFIG), checkWithSpec() takes any spec.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { TSchema } from '@sinclair/typebox';
import { type ValueError, ValueErrorType, Value } from '@sinclair/typebox/value';
import YAML from 'yaml';
import { EdgeheadError } from '../base/errors';
import { ID_INVALID_CHARS_RE, ID_MAX_LENGTH, MQTT_URL_RE, RESERVED_DEVICE_IDS } from '../protocol/patterns';
import {
  AGENT_ENV,
  applyEnvOverrides,
  dottedPath,
  type EnvSpec,
  isSecret,
  kindNoun,
  kindOf,
  schemaAt,
  schemaLeaves,
  schemaSections,
  typeNoun,
} from './env';
import { extractorRefKind } from './extractor-ref';
import { regionOutside } from '../protocol/head/manifest';
import { closest } from './suggest';
import { isLoopbackUrl } from './loopback';
import { isInlinePem, publicKeyProblem } from './public-keys';
import { isPlainObject, maskSecrets, orderLikeSchema } from './present';
import { type Config, CONFIG_VERSION } from './schema';

/** Re-exported for callers that load and then show a config. */
export { maskSecrets, orderLikeSchema };

/**
 * Settings holding file or folder paths. Relative values written in the config file are resolved against the file's
 * folder; relative values from EDGEHEAD_* variables or defaults against the current directory.
 * extractor.ref only when it is a path (config/extractor-ref.ts).
 */
export const PATH_SETTINGS = ['stateDir', 'source.directory.path', 'mqtt.tls.ca', 'mqtt.tls.cert', 'mqtt.tls.key', 'head.file', 'head.publicKeys', 'extractor.ref'] as const;

/** Path settings naming files that must exist when the config is loaded (unless checkFiles is false). */
export const EXISTING_FILE_SETTINGS = ['mqtt.tls.ca', 'mqtt.tls.cert', 'mqtt.tls.key', 'head.publicKeys'] as const;

/** Defaults that depend on the machine, computed at load time (the docs show `label`). */
export const COMPUTED_DEFAULTS: Readonly<Record<string, { label: string; explanation: string }>> = {
  'device.id': { label: 'hostname', explanation: 'the host name, with every character outside A-Z a-z 0-9 _ . - replaced by "-" (at most 64)' },
};

/** device.id when none is configured: the host name, sanitised to an id (protocol/patterns.ts). */
export function hostnameDeviceId(hostname: string = os.hostname()): string {
  const id = hostname.replace(ID_INVALID_CHARS_RE, '-').slice(0, ID_MAX_LENGTH);
  if (RESERVED_DEVICE_IDS.includes(id)) return `edgehead-${id}`; // a host called "all" must not become the fleet topic
  return id || 'edgehead';
}

/** One problem (or warning) in a config: `path: message — hint`. */
export interface ConfigIssue {
  /** Dotted key path (`mqtt.tls.ca`, `head.publicKeys[0]`), an EDGEHEAD_* variable, or `FILE:LINE:COL` for syntax errors. */
  path: string;
  message: string;
  /** What to do about it, when there is more to say than the message. */
  hint?: string;
  /** A check of a file named by the config (exists, readable): machine-specific, see CheckOptions.checkFiles. */
  file?: boolean;
}

/** `path: message` lines (the form most checks produce) as issues; issues as they are. */
export function toIssue(e: string | ConfigIssue): ConfigIssue {
  if (typeof e !== 'string') return e;
  const i = e.indexOf(': ');
  return i < 0 ? { path: '', message: e } : { path: e.slice(0, i), message: e.slice(i + 2) };
}

/** One line: `path: message — hint`. */
export function formatIssue(i: ConfigIssue): string {
  return `${i.path ? `${i.path}: ` : ''}${i.message}${i.hint ? ` — ${i.hint}` : ''}`;
}

/** A BAD_CONFIG error listing every problem; main.ts prints the message and exits 2. */
export class ConfigError extends EdgeheadError {
  /** One line per problem, e.g. `schedule.intervalMs: must be >= 50 (got 0)`. */
  readonly errors: readonly string[];
  /** The same problems as {path, message, hint?}. */
  readonly issues: readonly ConfigIssue[];
  constructor(errors: readonly (string | ConfigIssue)[]) {
    const issues = errors.map(toIssue);
    super('BAD_CONFIG', formatConfigErrors(issues));
    this.name = 'ConfigError';
    this.issues = issues;
    this.errors = issues.map(formatIssue);
  }
}

/** The header and one line per problem; a hint shared by several problems is said once, after them. */
export function formatConfigErrors(errors: readonly (string | ConfigIssue)[]): string {
  const issues = errors.map(toIssue);
  const n = issues.length;
  const count = new Map<string, number>();
  for (const i of issues) if (i.hint) count.set(i.hint, (count.get(i.hint) ?? 0) + 1);
  const shared = [...count].filter(([, c]) => c > 1).map(([h]) => h);
  const lines = issues.map((i) => `  ${formatIssue(i.hint && shared.includes(i.hint) ? { ...i, hint: undefined } : i)}`);
  return [`invalid configuration (${n} error${n === 1 ? '' : 's'}):`, ...lines, ...shared.map((h) => `  hint: ${h}`)].join('\n');
}

/** Computed-default docs: key -> what the docs show as default, and how it is computed. */
export type ComputedDefaults = Readonly<Record<string, { label: string; explanation: string }>>;

/** What the loader needs to know about one config schema (the agent's: AGENT_CONFIG; the fleet server's in operator/). */
export interface ConfigSpec extends EnvSpec {
  /** `version:` this reader accepts. */
  version: number;
  /** Who reads the file, in messages: "this agent" -> `version: required (this agent reads version 1)`. */
  reader: string;
  /** Settings holding paths (strings or lists of strings): relative values from the file resolve against its folder. */
  pathSettings: readonly string[];
  /** Path settings naming files that must exist at load time (unless checkFiles is false). */
  existingFileSettings: readonly string[];
  computedDefaults: ComputedDefaults;
  /** A path setting's value that is not a path (e.g. extractor.ref naming a catalogue model): left as is. */
  isPathValue?(key: string, value: string): boolean;
  /**
   * What is wrong with the content of an existing-file setting (the file's text, or the value itself when it is not a
   * path, e.g. an inline PEM); undefined when it is fine. Only for settings that need more than an existing file.
   */
  contentProblem?(key: string, text: string): string | undefined;
  /** Fills the computed defaults into the defaulted config (before validation). */
  fillComputed?(cfg: Record<string, unknown>, opts: CheckOptions): void;
  /** Checks across settings, reported with the others (files are checked by the loader). */
  crossFieldErrors?(cfg: Record<string, unknown>, ctx: CrossFieldContext): (string | ConfigIssue)[];
}

export interface CrossFieldContext {
  /** The value at a dotted key path. */
  at(key: string): unknown;
  /** The setting was chosen: written in the file, or set by an EDGEHEAD_* variable or the command line (not a default). */
  isSet(key: string): boolean;
  /** `(got 5 from EDGEHEAD_X)` for a value at a key path. */
  got(value: unknown, key: string): string;
}

export interface LoadOptions {
  /** YAML (.yaml/.yml) or JSON (.json) file; other names are sniffed. Without one: defaults (and env) only. */
  file?: string;
  /** Environment to read EDGEHEAD_* overrides from (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /**
   * Check the files named by the config (mqtt.tls.*, head.publicKeys): true (default) = a missing or unreadable one is
   * an error; 'warn' = a warning (a config written for another machine; a file that is there must still be right);
   * false = not looked at.
   */
  checkFiles?: boolean | 'warn';
  /** Base of relative paths that do not come from the file (default: process.cwd()). */
  cwd?: string;
  /** Host name for the device.id default (default: os.hostname()). */
  hostname?: string;
  /** Settings given on the command line (a partial config), applied over the file and the environment. */
  overrides?: Record<string, unknown>;
}

export function loadConfig(opts: CheckOptions = {}): Config {
  const { config, errors } = checkConfig(opts);
  if (errors.length > 0 || !config) throw new ConfigError(errors);
  return config;
}

export interface CheckOptions extends LoadOptions {
  /** Already parsed file contents (instead of `file`); relative paths in it resolve against `baseDir`. */
  data?: unknown;
  baseDir?: string;
}

export interface CheckResult {
  /** The effective config, when there are no errors. */
  config?: Config;
  errors: string[];
  /** The same as {path, message, hint?}. */
  issues: ConfigIssue[];
  /** With checkFiles: 'warn': the files named by the config that are missing or unreadable here. */
  warnings: ConfigIssue[];
  /** Dotted key path -> EDGEHEAD_* variable that set it. */
  envSources: Map<string, string>;
}

/**
 * Like loadConfig, but returns the errors instead of throwing them. Files that cannot be read or parsed still throw
 * (a BAD_CONFIG EdgeheadError naming the file, line and column).
 */
export function checkConfig(opts: CheckOptions = {}): CheckResult {
  return checkWithSpec(AGENT_CONFIG, opts) as CheckResult;
}

/** Where settings from `overrides` came from, in error messages: `(got 0 from the command line)`. */
export const OVERRIDE_SOURCE = 'the command line';

/** checkConfig for any config schema. */
export function checkWithSpec(
  spec: ConfigSpec,
  opts: CheckOptions = {},
): { config?: unknown; errors: string[]; issues: ConfigIssue[]; warnings: ConfigIssue[]; envSources: Map<string, string> } {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  let fromFile: unknown;
  let baseDir = opts.baseDir ?? cwd;
  if (opts.file !== undefined) {
    const abs = path.resolve(cwd, opts.file);
    fromFile = readConfigFile(abs);
    baseDir = path.dirname(abs);
  } else if (opts.data !== undefined) {
    fromFile = opts.data;
  }

  const errors: (string | ConfigIssue)[] = [];
  let raw: Record<string, unknown> = {};
  if (opts.file !== undefined || opts.data !== undefined) {
    if (fromFile === null || fromFile === undefined) fromFile = {}; // an empty file: reported as missing version below
    if (!isPlainObject(fromFile)) {
      throw new ConfigError([`(top level): must be a mapping of settings (got ${Array.isArray(fromFile) ? 'a list' : formatGot(fromFile)})`]);
    }
    const version = fromFile.version;
    if (version === undefined) errors.push(`version: required (${spec.reader} reads version ${spec.version})`);
    else if (typeof version === 'number' && version !== spec.version) {
      // Another format: checking the rest against this schema would only produce noise.
      throw new ConfigError([`version: unsupported ${version} (${spec.reader} reads version ${spec.version})`]);
    }
    raw = structuredClone(fromFile);
  }
  const fileValues = structuredClone(raw);

  const { errors: envErrors, sources } = applyEnvOverrides(raw, env, spec);
  errors.push(...envErrors);
  if (opts.overrides) applyOverrides(raw, opts.overrides, [], sources);

  const cfg = Value.Default(spec.schema, raw) as Record<string, unknown>;
  spec.fillComputed?.(cfg, opts);

  const seen = new Set<string>();
  for (const e of Value.Errors(spec.schema, cfg)) {
    const issue = describeValueError(spec, e, cfg, sources);
    const line = formatIssue(issue);
    if (!seen.has(line)) errors.push(issue);
    seen.add(line);
  }

  resolvePaths(spec, cfg, fileValues, sources, baseDir, cwd);
  const ctx: CrossFieldContext = {
    at: (key) => getIn(cfg, key.split('.')),
    isSet: (key) => getIn(fileValues, key.split('.')) !== undefined || sources.has(key),
    got: (value, key) => got(value, undefined, key, sources),
  };
  errors.push(...(spec.crossFieldErrors?.(cfg, ctx) ?? []));
  const warnings: ConfigIssue[] = [];
  const checkFiles = opts.checkFiles ?? true;
  if (checkFiles !== false) {
    for (const f of fileErrors(spec, ctx)) (checkFiles === 'warn' && f.file ? warnings : errors).push(f);
  }

  const issues = errors.map(toIssue);
  const lines = issues.map(formatIssue);
  if (issues.length > 0) return { errors: lines, issues, warnings, envSources: sources };
  return { config: orderLikeSchema(cfg, spec.schema), errors: lines, issues, warnings, envSources: sources };
}

/** Deep-merges command-line settings into `target`; every leaf set is recorded as coming from the command line. */
function applyOverrides(target: Record<string, unknown>, overrides: Record<string, unknown>, at: string[], sources: Map<string, string>): void {
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) continue;
    const here = [...at, k];
    if (isPlainObject(v)) {
      if (!isPlainObject(target[k])) target[k] = {};
      applyOverrides(target[k] as Record<string, unknown>, v, here, sources);
    } else {
      target[k] = v;
      sources.set(here.join('.'), OVERRIDE_SOURCE);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Reading

/** Parses a config file; throws a BAD_CONFIG error naming the file (and line:column for syntax errors). */
export function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? 'it is a folder' : code === 'EACCES' ? 'permission denied' : (e as Error).message;
    throw new EdgeheadError('BAD_CONFIG', `cannot read config file ${file}: ${why}`);
  }
  const ext = path.extname(file).toLowerCase();
  const json = ext === '.json' || (ext !== '.yaml' && ext !== '.yml' && /^\s*[{[]/.test(text));
  const doc = YAML.parseDocument(text.replace(/^\uFEFF/, ''), { schema: json ? 'json' : 'core', uniqueKeys: true, prettyErrors: true });
  const where = (e: { linePos?: [{ line: number; col: number }, ...unknown[]] }) => (e.linePos ? `${file}:${e.linePos[0].line}:${e.linePos[0].col}` : file);
  if (doc.errors.length > 0) {
    // Only the first line of yaml's message: the rest quotes the source, which may hold a secret.
    const lines = doc.errors.map((e) => {
      const msg =
        e.code === 'TAG_RESOLVE_FAILED' && json
          ? 'not valid JSON (strings must be quoted; true, false and null are lowercase)'
          : (e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
      return `${where(e)}: ${json ? 'JSON' : 'YAML'} syntax error: ${msg}`;
    });
    throw new ConfigError(lines);
  }
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new ConfigError([`${file}: ${(e as Error).message.split('\n')[0]}`]);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Messages


function getIn(o: unknown, segs: readonly (string | number)[]): unknown {
  let v = o;
  for (const s of segs) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[s as string];
  }
  return v;
}

function setIn(o: Record<string, unknown>, segs: readonly string[], value: unknown): void {
  let v: Record<string, unknown> = o;
  for (const s of segs.slice(0, -1)) v = v[s] as Record<string, unknown>;
  v[segs[segs.length - 1]!] = value;
}

/** JSON pointer (/device/groups/1) -> segments with array indices as numbers (['device', 'groups', 1]). */
function pointerSegments(pointer: string, root: TSchema): (string | number)[] {
  if (pointer === '') return [];
  const out: (string | number)[] = [];
  for (const token of pointer.slice(1).split('/')) {
    const key = token.replace(/~1/g, '/').replace(/~0/g, '~');
    const parent = schemaAt(out, root);
    const kind = parent ? kindOf(parent) : '';
    out.push((kind === 'Array' || kind === 'Tuple') && /^\d+$/.test(key) ? Number(key) : key);
  }
  return out;
}

/** A value for "(got ...)": secrets as ***, strings quoted, long values cut. */
export function formatGot(value: unknown, schema?: TSchema): string {
  if (value === undefined) return 'nothing';
  if (schema && isSecret(schema)) return '***';
  if (typeof value === 'number') return String(value);
  if (ArrayBuffer.isView(value)) return 'binary data';
  if (Array.isArray(value)) {
    let end = value.length; // Value.Default pads short tuples with undefined; show what was written
    while (end > 0 && value[end - 1] === undefined) end--;
    value = value.slice(0, end);
  }
  const text = JSON.stringify(schema ? maskSecrets(value, schema) : value) ?? String(value);
  return text.length > 60 ? text.slice(0, 57) + '...' + (text.startsWith('"') ? '"' : '') : text;
}

function envSourceOf(dotted: string, sources: Map<string, string>): string | undefined {
  for (const [key, name] of sources) if (dotted === key || dotted.startsWith(key + '[') || dotted.startsWith(key + '.')) return name;
  return undefined;
}

function got(value: unknown, schema: TSchema | undefined, dotted: string, sources: Map<string, string>): string {
  const from = envSourceOf(dotted, sources);
  return `(got ${formatGot(value, schema)}${from ? ` from ${from}` : ''})`;
}

const allPathsCache = new WeakMap<TSchema, string[][]>();
function allPaths(root: TSchema): string[][] {
  let paths = allPathsCache.get(root);
  if (!paths) allPathsCache.set(root, (paths = [...schemaSections(root).slice(1), ...schemaLeaves(root)].map((s) => s.path)));
  return paths;
}

function unknownKeyHint(segs: readonly (string | number)[], root: TSchema): string {
  const ALL_PATHS = allPaths(root);
  const key = String(segs[segs.length - 1]);
  const parent = schemaAt(segs.slice(0, -1), root);
  const siblings = Object.keys(((parent as Record<string, unknown> | undefined)?.properties as object | undefined) ?? {});
  const sibling = closest(key, siblings);
  if (sibling) return ` (did you mean ${sibling}?)`;
  // A setting put in the wrong section: suggest it only when exactly one place has that name.
  const norm = (s: string) => s.toLowerCase().replace(/[_-]/g, '');
  const same = ALL_PATHS.filter((p) => norm(p[p.length - 1]!) === norm(key));
  const near = same.length > 0 ? same : ALL_PATHS.filter((p) => closest(key, [p[p.length - 1]!]) !== undefined);
  return near.length === 1 ? ` (did you mean ${dottedPath(near[0]!)}?)` : '';
}

/** YAML 1.1 booleans (yes/no/on/off, y/n) are strings in YAML 1.2: a boolean setting given one gets this hint. */
const YAML11_BOOLEANS: Readonly<Record<string, boolean>> = { yes: true, y: true, on: true, no: false, n: false, off: false };

function yaml11Hint(e: ValueError): string | undefined {
  if (e.type !== ValueErrorType.Boolean || typeof e.value !== 'string') return undefined;
  const b = YAML11_BOOLEANS[e.value.toLowerCase()];
  return b === undefined ? undefined : `write ${b} (YAML 1.2: yes/no/on/off are strings)`;
}

function describeValueError(spec: ConfigSpec, e: ValueError, cfg: unknown, sources: Map<string, string>): ConfigIssue {
  const root = spec.schema;
  let segs = pointerSegments(e.path, root);
  // Errors inside a fixed-length list (e.g. extractor.valueRange) are reported once, for the whole list.
  for (let i = 0; i < segs.length; i++) {
    const s = schemaAt(segs.slice(0, i), root);
    if (s && kindOf(s) === 'Tuple') {
      segs = segs.slice(0, i);
      const dotted = dottedPath(segs);
      return { path: dotted, message: `must be ${typeNoun(s)} ${got(getIn(cfg, segs), s, dotted, sources)}` };
    }
  }
  const dotted = dottedPath(segs);
  const hint = yaml11Hint(e);
  return { path: dotted, message: valueErrorMessage(spec, e, segs, dotted, sources), ...(hint ? { hint } : {}) };
}

/** The message for one schema error at a key path that is not inside a fixed-length list. */
function valueErrorMessage(spec: ConfigSpec, e: ValueError, segs: (string | number)[], dotted: string, sources: Map<string, string>): string {
  const root = spec.schema;
  const schema = (schemaAt(segs, root) ?? e.schema) as TSchema & Record<string, unknown>;
  if (kindOf(schema) === 'Tuple') return `must be ${typeNoun(schema)} ${got(e.value, schema, dotted, sources)}`;
  const n = (k: string) => (e.schema as Record<string, unknown>)[k];
  let expected: string;
  switch (e.type) {
    case ValueErrorType.ObjectAdditionalProperties:
      return `unknown key${unknownKeyHint(segs, root)}`;
    case ValueErrorType.ObjectRequiredProperty:
      return 'required';
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.NumberMinimum:
      expected = `must be >= ${n('minimum')}`;
      break;
    case ValueErrorType.IntegerMaximum:
    case ValueErrorType.NumberMaximum:
      expected = `must be <= ${n('maximum')}`;
      break;
    case ValueErrorType.IntegerExclusiveMinimum:
    case ValueErrorType.NumberExclusiveMinimum:
      expected = `must be > ${n('exclusiveMinimum')}`;
      break;
    case ValueErrorType.IntegerExclusiveMaximum:
    case ValueErrorType.NumberExclusiveMaximum:
      expected = `must be < ${n('exclusiveMaximum')}`;
      break;
    case ValueErrorType.StringMinLength:
      expected = n('minLength') === 1 ? 'must not be empty' : `must be at least ${n('minLength')} characters long`;
      break;
    case ValueErrorType.StringMaxLength:
      expected = `must be at most ${n('maxLength')} characters long`;
      break;
    case ValueErrorType.StringPattern:
      expected = typeof n('patternMessage') === 'string' ? String(n('patternMessage')) : `must match /${n('pattern')}/`;
      break;
    case ValueErrorType.Union:
    case ValueErrorType.Literal:
      expected = `must be ${typeNoun(e.schema)}`;
      break;
    case ValueErrorType.Integer:
    case ValueErrorType.Number:
    case ValueErrorType.String:
    case ValueErrorType.Boolean:
    case ValueErrorType.Object:
    case ValueErrorType.Array:
      expected = `must be ${kindNoun(e.schema)}`;
      break;
    default:
      expected = e.message.replace(/^Expected /, 'must be ').replace(/^./, (c) => c.toLowerCase());
  }
  return `${expected} ${got(e.value, schema, dotted, sources)}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Paths and cross-field checks

function resolvePaths(spec: ConfigSpec, cfg: Record<string, unknown>, fileValues: unknown, sources: Map<string, string>, baseDir: string, cwd: string): void {
  for (const key of spec.pathSettings) {
    const segs = key.split('.');
    const v = getIn(cfg, segs);
    const base = !sources.has(key) && getIn(fileValues, segs) !== undefined ? baseDir : cwd;
    const resolve = (p: unknown) => (typeof p !== 'string' || p === '' || (spec.isPathValue && !spec.isPathValue(key, p)) ? p : path.resolve(base, p));
    if (Array.isArray(v)) setIn(cfg, segs, v.map(resolve));
    else if (typeof v === 'string') setIn(cfg, segs, resolve(v));
  }
}

/** The agent's checks across settings (the files are checked by fileErrors). */
function agentCrossFieldErrors(_cfg: Record<string, unknown>, { at, isSet, got: gotAt }: CrossFieldContext): (string | ConfigIssue)[] {
  const errors: (string | ConfigIssue)[] = [];
  const sourceIssue = sourceChoiceIssue(at, isSet);
  if (sourceIssue) errors.push(sourceIssue);
  if (at('source.type') === 'http' && isPlainObject(at('source.http')) && at('source.http.url') === undefined) {
    errors.push('source.http.url: required when source.type is http');
  }
  errors.push(...pairErrors(at, 'mqtt.tls.cert', 'mqtt.tls.key'));
  const outside = regionOutside(at('preprocess.region'));
  if (outside) errors.push(`preprocess.region: ${outside}`);
  errors.push(...orderErrors(at, gotAt, [
    ['mqtt.reconnectMinMs', 'mqtt.reconnectMaxMs'],
    ['source.stream.restartMinMs', 'source.stream.restartMaxMs'],
  ]));
  return errors;
}

/**
 * The default source ("directory": the bundled sample photos) is for trying the agent on this machine (npm start, an
 * embedded or local broker). A config for a broker elsewhere must choose its source, or a real fleet would receive
 * sample photos as predictions.
 */
export const SOURCE_CHOICE_HINT = 'choose webcam, stream, rpicam, http or directory (docs/configuration.md)';

function sourceChoiceIssue(at: CrossFieldContext['at'], isSet: CrossFieldContext['isSet']): ConfigIssue | undefined {
  const url = at('mqtt.url');
  if (isSet('source.type') || typeof url !== 'string' || !MQTT_URL_RE.test(url) || isLoopbackUrl(url)) return undefined;
  const what = typeof at('source.directory.path') === 'string' ? 'the images of source.directory.path' : 'the bundled sample photos';
  return {
    path: 'source.type',
    message: `required when mqtt.url is a broker on another machine (the default "directory" would publish ${what})`,
    hint: SOURCE_CHOICE_HINT,
  };
}

/** Two settings that go together: `a: required when b is set` either way. */
export function pairErrors(at: CrossFieldContext['at'], a: string, b: string): string[] {
  const errors: string[] = [];
  const va = at(a);
  const vb = at(b);
  if (va !== undefined && vb === undefined) errors.push(`${b}: required when ${a} is set`);
  if (vb !== undefined && va === undefined) errors.push(`${a}: required when ${b} is set`);
  return errors;
}

/** Pairs [lo, hi] of numbers where lo must be <= hi. */
export function orderErrors(at: CrossFieldContext['at'], gotAt: CrossFieldContext['got'], pairs: readonly (readonly [string, string])[]): string[] {
  const errors: string[] = [];
  for (const [lo, hi] of pairs) {
    const a = at(lo);
    const b = at(hi);
    if (typeof a === 'number' && typeof b === 'number' && a > b) errors.push(`${lo}: must be <= ${hi}, which is ${b} ${gotAt(a, lo)}`);
  }
  return errors;
}

/**
 * The files named by existing-file settings: missing, not a file or unreadable (issues marked `file`: machine-specific),
 * then, for settings that say what the content must be (spec.contentProblem), the content.
 */
function fileErrors(spec: ConfigSpec, { at }: CrossFieldContext): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  for (const key of spec.existingFileSettings) {
    const value = at(key);
    const files = Array.isArray(value) ? value.map((f, i) => [`${key}[${i}]`, f] as const) : [[key, value] as const];
    for (const [where, file] of files) {
      if (typeof file !== 'string' || file === '') continue;
      if (spec.isPathValue && !spec.isPathValue(key, file)) {
        const problem = spec.contentProblem?.(key, file);
        if (problem) issues.push({ path: where, message: problem });
        continue;
      }
      const missing = (message: string): void => void issues.push({ path: where, message, file: true });
      let stat: fs.Stats;
      try {
        stat = fs.statSync(file);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        missing(code === 'ENOENT' || code === 'ENOTDIR' ? `file not found: ${file}` : `cannot read ${file} (${code})`);
        continue;
      }
      if (!stat.isFile()) {
        missing(`not a file: ${file}`);
        continue;
      }
      let text: string | undefined;
      try {
        if (spec.contentProblem) text = fs.readFileSync(file, 'utf8');
        else fs.accessSync(file, fs.constants.R_OK);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        missing(code === 'EACCES' || code === 'EPERM' || code === undefined ? `cannot read ${file} (permission denied)` : `cannot read ${file} (${code})`);
        continue;
      }
      const problem = text === undefined ? undefined : spec.contentProblem?.(key, text);
      if (problem) issues.push({ path: where, message: `${file}: ${problem}` });
    }
  }
  return issues;
}

/** The agent's config: config/schema.ts, EDGEHEAD_*. */
export const AGENT_CONFIG: ConfigSpec = {
  ...AGENT_ENV,
  version: CONFIG_VERSION,
  reader: 'this agent',
  pathSettings: PATH_SETTINGS,
  existingFileSettings: EXISTING_FILE_SETTINGS,
  computedDefaults: COMPUTED_DEFAULTS,
  isPathValue: (key, value) => (key === 'extractor.ref' ? extractorRefKind(value) === 'path' : key === 'head.publicKeys' ? !isInlinePem(value) : true),
  contentProblem: (key, text) => (key === 'head.publicKeys' ? publicKeyProblem(text) : undefined),
  fillComputed(cfg, opts) {
    const device = cfg.device;
    if (isPlainObject(device) && device.id === undefined) device.id = hostnameDeviceId(opts.hostname);
  },
  crossFieldErrors: agentCrossFieldErrors,
};
