/**
 * Environment overrides, derived from config/schema.ts by walking it (no setting is listed here by hand):
 * every leaf setting except `version` is EDGEHEAD_<PATH>, where PATH is the key path upper-snake-cased with "_"
 * between levels and camelCase split: schedule.intervalMs -> EDGEHEAD_SCHEDULE_INTERVAL_MS.
 *
 * Values are strings, parsed by the target schema type (integers, numbers, booleans "true/false/1/0", strings,
 * one-of values, lists as a JSON array or — when no item can contain a comma — comma-separated). A value that
 * cannot be parsed is reported as `EDGEHEAD_X: must be ... (got "...") — sets a.b`. Unknown EDGEHEAD_* variables
 * are errors too, except the few non-config variables in NON_CONFIG_ENV_VARS.
 *
 * The same machinery serves a second schema (the fleet server's, operator/fleet/config.ts, prefix EDGEHEAD_FLEET_):
 * every function that depends on the schema takes an EnvSpec, by default the agent's (AGENT_ENV).
 *
 * This file also holds the small schema-walking helpers shared by config/load.ts and config/docs.ts.
 */
import { Kind, type TSchema } from '@sinclair/typebox';
import { ConfigSchema } from './schema';
import { editDistance } from './suggest';

export const ENV_PREFIX = 'EDGEHEAD_';

/**
 * EDGEHEAD_* variables that are not config settings (read elsewhere, before any config is loaded).
 * EDGEHEAD_LOG_LEVEL and EDGEHEAD_LOG_FORMAT are read by base/log.ts at start-up for every command; they are
 * also exactly the derived names of log.level and log.format, so when a config is loaded they override those too.
 */
export const NON_CONFIG_ENV_VARS: Readonly<Record<string, string>> = {
  EDGEHEAD_CONFIG: 'Path of the config file when none is given on the command line.',
  EDGEHEAD_HOME: 'Folder holding the bundled resources (models, sample frames, demo head).',
  EDGEHEAD_WASM_DIR: 'Folder holding the tfjs-backend-wasm*.wasm binaries.',
  EDGEHEAD_CODE_CACHE: 'The bundle: folder of its V8 code cache, or "off" (default: $CACHE_DIRECTORY, else ~/.cache/edgehead/code).',
  EDGEHEAD_LOG_LEVEL: 'Log level of every command, read at start-up (also overrides log.level).',
  EDGEHEAD_LOG_FORMAT: 'Log format of every command, read at start-up (also overrides log.format).',
  EDGEHEAD_PUSH_PASSWORD: '`edgehead head push`: the broker password (instead of --password, which other users can see in ps).',
  EDGEHEAD_TEST_PERSIST_PAUSE_MS: 'Tests only: pause between the two renames that make a new head active (kill -9 tests).',
};

/** Which schema the variables are derived from and how they are named. */
export interface EnvSpec {
  schema: TSchema;
  /** e.g. EDGEHEAD_ or EDGEHEAD_FLEET_ */
  prefix: string;
  /** Variables under the prefix that are not settings (not errors either). */
  nonConfig: Readonly<Record<string, string>>;
  /** Prefixes under ours that belong to another config: skipped, not reported as unknown. */
  otherPrefixes?: readonly string[];
  /** Where the user finds the list of variables, in the "unknown setting" error. */
  listHint: string;
}

/** The agent's variables: EDGEHEAD_* over config/schema.ts. EDGEHEAD_FLEET_* belong to the fleet server. */
export const AGENT_ENV: EnvSpec = {
  schema: ConfigSchema,
  prefix: ENV_PREFIX,
  nonConfig: NON_CONFIG_ENV_VARS,
  otherPrefixes: ['EDGEHEAD_FLEET_'],
  listHint: 'run "edgehead config env" for the list',
};

// ---------------------------------------------------------------------------------------------------------------
// Schema helpers

type Schema = TSchema & Record<string, unknown>;

export function kindOf(schema: TSchema): string {
  return String((schema as Schema)[Kind] ?? '');
}

export function isSection(schema: TSchema): boolean {
  return kindOf(schema) === 'Object';
}

export function isSecret(schema: TSchema | undefined): boolean {
  return (schema as Schema | undefined)?.secret === true;
}

/** Dotted key path as users read it: ['device', 'groups', 1] -> device.groups[1]. */
export function dottedPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out || '(top level)';
}

export interface Leaf {
  /** Key path, e.g. ['mqtt', 'tls', 'ca']. */
  path: string[];
  schema: TSchema;
  /** True unless the key is Optional in its section. */
  required: boolean;
}

/** Every setting (non-section property) of the schema, depth first in schema order. */
export function schemaLeaves(schema: TSchema = ConfigSchema, prefix: string[] = []): Leaf[] {
  const out: Leaf[] = [];
  const props = ((schema as Schema).properties ?? {}) as Record<string, TSchema>;
  const required = new Set(((schema as Schema).required as string[] | undefined) ?? []);
  for (const [key, child] of Object.entries(props)) {
    if (isSection(child)) out.push(...schemaLeaves(child, [...prefix, key]));
    else out.push({ path: [...prefix, key], schema: child, required: required.has(key) });
  }
  return out;
}

/** The sections (objects) of the schema, depth first, the root first (path []). */
export function schemaSections(schema: TSchema = ConfigSchema, prefix: string[] = []): { path: string[]; schema: TSchema }[] {
  const out = [{ path: prefix, schema }];
  const props = ((schema as Schema).properties ?? {}) as Record<string, TSchema>;
  for (const [key, child] of Object.entries(props)) if (isSection(child)) out.push(...schemaSections(child, [...prefix, key]));
  return out;
}

/** The schema at a key path (object properties, array items, tuple items); undefined when the path leaves it. */
export function schemaAt(path: readonly (string | number)[], root: TSchema = ConfigSchema): TSchema | undefined {
  let s: Schema | undefined = root as Schema;
  for (const seg of path) {
    if (!s) return undefined;
    const kind = kindOf(s);
    if (kind === 'Object') s = ((s.properties as Record<string, Schema>) ?? {})[String(seg)];
    else if (kind === 'Array') s = s.items as Schema;
    else if (kind === 'Tuple') s = ((s.items as Schema[] | undefined) ?? [])[Number(seg)];
    else return undefined;
  }
  return s;
}

const fmtLiteral = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

function range(s: Schema, unit = ''): string {
  const { minimum: min, maximum: max, exclusiveMinimum: xmin, exclusiveMaximum: xmax } = s as Record<string, number | undefined>;
  if (min !== undefined && max !== undefined) return ` from ${min} to ${max}${unit}`;
  const parts: string[] = [];
  if (min !== undefined) parts.push(`>= ${min}`);
  if (xmin !== undefined) parts.push(`> ${xmin}`);
  if (max !== undefined) parts.push(`<= ${max}`);
  if (xmax !== undefined) parts.push(`< ${xmax}`);
  return parts.length ? ' ' + parts.join(' and ') : '';
}

/** The bare type of a schema: "an integer", "a string", "a list", ... (no constraints). */
export function kindNoun(schema: TSchema): string {
  const s = schema as Schema;
  switch (kindOf(s)) {
    case 'Integer':
      return 'an integer';
    case 'Number':
      return 'a number';
    case 'String':
      return 'a string';
    case 'Boolean':
      return 'true or false';
    case 'Object':
      return 'a mapping of settings';
    case 'Array':
      return 'a list';
    case 'Tuple':
      return tupleNoun(s);
    case 'Literal':
      return JSON.stringify(s.const);
    case 'Union':
      return unionNoun(s);
    default:
      return 'a valid value';
  }
}

function tupleNoun(s: Schema): string {
  const items = (s.items as Schema[] | undefined) ?? [];
  const kinds = [...new Set(items.map((i) => kindOf(i)))];
  if (kinds.length === 1 && (kinds[0] === 'Number' || kinds[0] === 'Integer')) {
    return `a list of ${items.length} ${kinds[0] === 'Number' ? 'numbers' : 'integers'}`;
  }
  return `a list of ${items.length} items`;
}

function unionNoun(s: Schema): string {
  const members = (s.anyOf as Schema[] | undefined) ?? [];
  if (members.length > 0 && members.every((m) => kindOf(m) === 'Literal')) return 'one of: ' + members.map((m) => fmtLiteral(m.const)).join(', ');
  const nouns = members.map((m) => typeNoun(m));
  return nouns.length <= 2 ? nouns.join(' or ') : nouns.slice(0, -1).join(', ') + ' or ' + nouns[nouns.length - 1];
}

/** What a value must be, with its constraints: "an integer >= 50", "one of: wasm, cpu", "a list of strings". */
export function typeNoun(schema: TSchema): string {
  const s = schema as Schema;
  switch (kindOf(s)) {
    case 'Integer':
      return 'an integer' + range(s);
    case 'Number':
      return 'a number' + range(s);
    case 'String': {
      let noun = s.minLength === 1 ? 'a non-empty string' : 'a string';
      if (typeof s.minLength === 'number' && s.minLength > 1) noun += ` of at least ${s.minLength} characters`;
      if (typeof s.pattern === 'string') noun += typeof s.patternMessage === 'string' ? ` that ${s.patternMessage}` : ` matching /${s.pattern}/`;
      return noun;
    }
    case 'Array': {
      const item = s.items as Schema | undefined;
      if (!item) return 'a list';
      const noun = typeNoun(item);
      const plural = noun.replace(/^an? /, '').replace(/^(integer|number|string|non-empty string)\b/, '$1s');
      return `a list of ${plural}`;
    }
    default:
      return kindNoun(s);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Names

/** EDGEHEAD_<PATH>: ['schedule', 'intervalMs'] -> EDGEHEAD_SCHEDULE_INTERVAL_MS (another prefix for another config). */
export function envVarName(path: string[], prefix: string = ENV_PREFIX): string {
  const seg = (s: string) =>
    s
      .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
      .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
      .replace(/[^A-Za-z0-9]+/g, '_')
      .toUpperCase();
  return prefix + path.map(seg).join('_');
}

export interface EnvVar {
  /** EDGEHEAD_SCHEDULE_INTERVAL_MS */
  name: string;
  /** ['schedule', 'intervalMs'] */
  path: string[];
  /** Dotted key path: schedule.intervalMs */
  key: string;
  /** What the setting must be, e.g. "an integer >= 50". */
  type: string;
  /** How to write the value in the variable, e.g. "comma-separated list or JSON array". */
  format: string;
  secret: boolean;
  schema: TSchema;
}

/** Settings that only the config file can set. */
const FILE_ONLY = new Set(['version']);

const cache = new WeakMap<EnvSpec, EnvVar[]>();

/** Every config environment variable, in schema order. */
export function listEnvVars(spec: EnvSpec = AGENT_ENV): EnvVar[] {
  const cached = cache.get(spec);
  if (cached) return cached;
  const vars = schemaLeaves(spec.schema)
    .filter((l) => !FILE_ONLY.has(l.path.join('.')))
    .map((l) => ({
      name: envVarName(l.path, spec.prefix),
      path: l.path,
      key: dottedPath(l.path),
      type: typeNoun(l.schema),
      format: envFormat(l.schema),
      secret: isSecret(l.schema),
      schema: l.schema,
    }));
  const seen = new Map<string, string>();
  for (const v of vars) {
    const other = seen.get(v.name);
    if (other) throw new Error(`config schema: ${other} and ${v.key} both map to ${v.name}`);
    seen.set(v.name, v.key);
  }
  cache.set(spec, vars);
  return vars;
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing

/** Lists whose items can never contain a comma (their pattern rejects it) may be written comma-separated. */
function commaListAllowed(schema: TSchema): boolean {
  const item = (schema as Schema).items as Schema | undefined;
  if (!item || kindOf(schema) !== 'Array') return false;
  if (kindOf(item) === 'Integer' || kindOf(item) === 'Number') return true;
  return kindOf(item) === 'String' && typeof item.pattern === 'string' && !new RegExp(item.pattern as string).test('a,b');
}

function envFormat(schema: TSchema): string {
  switch (kindOf(schema)) {
    case 'Boolean':
      return 'true, false, 1 or 0';
    case 'Array':
      return commaListAllowed(schema) ? 'comma-separated list or JSON array' : 'JSON array, e.g. ["a", "b"]';
    case 'Tuple':
      return 'JSON array, e.g. [0, 1]';
    default:
      return 'as is';
  }
}

type Parsed = { ok: true; value: unknown } | { ok: false; expected: string };

const INTEGER = /^[+-]?\d+$/;
const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/** Parses one environment string by the schema of its setting. Never coerces beyond the type's plain spelling. */
export function parseEnvValue(schema: TSchema, raw: string): Parsed {
  const s = schema as Schema;
  const text = raw.trim();
  switch (kindOf(s)) {
    case 'Integer':
      return INTEGER.test(text) ? { ok: true, value: Number(text) } : { ok: false, expected: 'an integer' };
    case 'Number':
      return NUMBER.test(text) ? { ok: true, value: Number(text) } : { ok: false, expected: 'a number' };
    case 'Boolean': {
      const t = text.toLowerCase();
      if (t === 'true' || t === '1') return { ok: true, value: true };
      if (t === 'false' || t === '0') return { ok: true, value: false };
      return { ok: false, expected: 'true or false (or 1 or 0)' };
    }
    case 'String':
      return { ok: true, value: raw };
    case 'Literal':
      return String(s.const) === text ? { ok: true, value: s.const } : { ok: false, expected: JSON.stringify(s.const) };
    case 'Union': {
      const members = (s.anyOf as Schema[] | undefined) ?? [];
      const literal = members.find((m) => kindOf(m) === 'Literal' && String(m.const) === text);
      if (literal) return { ok: true, value: literal.const };
      for (const m of members) {
        if (kindOf(m) === 'Literal') continue;
        const r = parseEnvValue(m, raw);
        if (r.ok) return r;
      }
      return { ok: false, expected: unionNoun(s) };
    }
    case 'Array':
    case 'Tuple': {
      const noun = kindOf(s) === 'Array' ? typeNoun(s) : tupleNoun(s);
      if (text.startsWith('[')) {
        try {
          const v: unknown = JSON.parse(text);
          if (Array.isArray(v)) return { ok: true, value: v };
        } catch {
          // reported below
        }
        return { ok: false, expected: 'a valid JSON array' };
      }
      if (!commaListAllowed(s)) return { ok: false, expected: `${noun} as a JSON array, e.g. ${kindOf(s) === 'Tuple' ? '[0, 1]' : '["a", "b"]'}` };
      const item = s.items as Schema;
      const out: unknown[] = [];
      for (const part of text.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
        const r = parseEnvValue(item, part);
        if (!r.ok) return { ok: false, expected: `${noun} (comma-separated or a JSON array)` };
        out.push(r.value);
      }
      return { ok: true, value: out };
    }
    default:
      return { ok: false, expected: typeNoun(s) };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Applying

export interface EnvResult {
  /** Lines like `EDGEHEAD_SCHEDULE_INTERVAL_MS: must be an integer (got "fast") — sets schedule.intervalMs`. */
  errors: string[];
  /** Dotted key path -> the variable that set it. */
  sources: Map<string, string>;
}

function setIn(target: Record<string, unknown>, path: string[], value: unknown): boolean {
  let o: Record<string, unknown> = target;
  for (const key of path.slice(0, -1)) {
    const next = o[key];
    if (next === undefined) o[key] = {};
    else if (next === null || typeof next !== 'object' || Array.isArray(next)) return false; // the file's own error is reported
    o = o[key] as Record<string, unknown>;
  }
  o[path[path.length - 1]!] = value;
  return true;
}

/**
 * Applies EDGEHEAD_* overrides to `target` (the parsed file, mutated). Unknown EDGEHEAD_* variables and values that
 * cannot be parsed become errors; the setting then keeps its file value.
 */
export function applyEnvOverrides(target: Record<string, unknown>, env: NodeJS.ProcessEnv, spec: EnvSpec = AGENT_ENV): EnvResult {
  const errors: string[] = [];
  const sources = new Map<string, string>();
  const vars = listEnvVars(spec);
  const byName = new Map(vars.map((v) => [v.name, v]));
  for (const name of Object.keys(env).sort()) {
    const raw = env[name];
    if (!name.startsWith(spec.prefix) || raw === undefined) continue;
    const v = byName.get(name);
    if (!v) {
      if (name in spec.nonConfig || spec.otherPrefixes?.some((p) => name.startsWith(p))) continue;
      const known = [...vars.map((x) => x.name), ...Object.keys(spec.nonConfig)];
      const guess = closestEnvVar(name, known, spec.prefix);
      errors.push(`${name}: unknown setting (${guess ? `did you mean ${guess}?` : spec.listHint})`);
      continue;
    }
    const parsed = parseEnvValue(v.schema, raw);
    if (!parsed.ok) {
      const got = v.secret ? '***' : JSON.stringify(raw);
      errors.push(`${name}: must be ${parsed.expected} (got ${got}) — sets ${v.key}`);
      continue;
    }
    if (setIn(target, v.path, parsed.value)) sources.set(v.key, name);
  }
  return { errors, sources };
}

function closestEnvVar(name: string, known: string[], prefix: string): string | undefined {
  const body = (s: string) => s.slice(prefix.length);
  const byBody = new Map(known.map((k) => [body(k), k]));
  const b = body(name);
  // A truncated name (EDGEHEAD_SCHEDULE_INTERVAL) or one with an extra part: prefer the single prefix match.
  const prefixed = [...byBody.keys()].filter((k) => k.startsWith(b + '_') || b.startsWith(k + '_'));
  if (prefixed.length === 1) return byBody.get(prefixed[0]!);
  const norm = (s: string) => s.toLowerCase().replace(/_/g, '');
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of byBody.keys()) {
    const d = editDistance(norm(b), norm(k));
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(b.length / 4)) ? byBody.get(best) : undefined;
}
