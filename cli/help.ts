/** Help text from a CommandSpec: purpose, usage, details, options with defaults, global options, examples. */
import { type CommandSpec, GLOBAL_OPTIONS, type OptionDef } from './spec';

/** `--name ARG` / `-c, --config FILE` as help shows it. */
export function optionLabel(name: string, o: OptionDef): string {
  const long = `--${name}${o.type === 'string' ? ` ${o.arg ?? 'VALUE'}` : ''}`;
  return o.short ? `-${o.short}, ${long}` : long;
}

function optionText(o: OptionDef): string {
  const notes: string[] = [];
  if (o.required) notes.push('required');
  if (o.default !== undefined) notes.push(`default: ${o.default}`);
  if (o.multiple) notes.push('repeatable');
  return notes.length ? `${o.description} (${notes.join('; ')})` : o.description;
}

/** The generated usage line: required options, [options], positionals. */
export function usageLines(spec: CommandSpec): string[] {
  if (spec.synopsis) return spec.synopsis.map((s) => `edgehead ${spec.path} ${s}`.trimEnd());
  const required = Object.entries(spec.options)
    .filter(([, o]) => o.required && !o.hidden)
    .map(([name, o]) => optionLabel(name, { ...o, short: undefined }));
  const positionals = (spec.positionals ?? []).map((p) => {
    const n = `${p.name}${p.variadic ? '...' : ''}`;
    return p.optional ? `[${n}]` : n;
  });
  return [['edgehead', spec.path, ...required, '[options]', ...positionals].join(' ')];
}

function table(rows: [string, string][]): string[] {
  const width = Math.min(28, Math.max(...rows.map(([l]) => l.length)));
  return rows.map(([l, r]) => (l.length > width ? `  ${l}\n  ${' '.repeat(width)}  ${r}` : `  ${l.padEnd(width)}  ${r}`));
}

/** "global options" and the flags every command takes (after `first`, e.g. the command's --json). */
export function globalOptionsSection(first: [string, string][] = [], last: [string, string][] = []): string[] {
  const globals = Object.entries(GLOBAL_OPTIONS).map(([name, o]): [string, string] => [optionLabel(name, o), o.description]);
  return ['global options (before or after the command):', ...table([...first, ...globals, ...last])];
}

/** The whole help of one command. */
export function renderHelp(spec: CommandSpec): string {
  const [first, ...more] = usageLines(spec);
  const out = [`edgehead ${spec.path}: ${spec.purpose}`, '', `usage: ${first}`, ...more.map((l) => `       ${l}`)];
  if (spec.details) out.push('', ...spec.details.split('\n').map((l) => (l ? `  ${l}` : '')));
  if (spec.positionals?.length) {
    out.push('', 'arguments:', ...table(spec.positionals.map((p) => [p.name, p.description])));
  }
  const own = Object.entries(spec.options).filter(([name, o]) => !o.hidden && name !== 'json');
  if (own.length) out.push('', 'options:', ...table(own.map(([name, o]) => [optionLabel(name, o), optionText(o)])));
  out.push('', ...globalOptionsSection(spec.options.json ? [['--json', optionText(spec.options.json)]] : []));
  out.push('', 'examples:', ...spec.examples.map((e) => `  ${e}`));
  return out.join('\n');
}
