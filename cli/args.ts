/**
 * Commands from their specs (cli/spec.ts): parsing on node:util parseArgs (every mistake a one-line BAD_ARGS error
 * naming the problem), --help from the spec, command groups (`edgehead head train`) and value checks (intArg...).
 */
import { parseArgs } from 'node:util';
import { EdgeheadError, isEdgeheadError } from '../base/errors';
import { globalOptionsSection, renderHelp, usageLines } from './help';
import { type CommandSpec, GLOBAL_OPTIONS, type OptionDef, type OptionDefs, type OptionValues } from './spec';
import { closest, didYouMean } from './suggest';

export interface Command {
  /** The last word of the command's path ('train' for `edgehead head train`). */
  name: string;
  /** One line. */
  summary: string;
  /** A leaf command's spec. */
  spec?: CommandSpec;
  /** A group's commands. */
  subcommands?: Command[];
  help(): string;
  run(argv: string[]): Promise<number>;
}

export interface ParsedArgs<O extends OptionDefs> {
  values: OptionValues<O> & { help?: boolean };
  positionals: string[];
}

/** argv checked against the spec's options (types, names; positionals when the spec takes none). */
export function parseSpecArgs<O extends OptionDefs>(argv: string[], spec: CommandSpec<O>): ParsedArgs<O> {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [name, o] of Object.entries<OptionDef>({ ...GLOBAL_OPTIONS, ...spec.options })) {
    options[name] = { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) };
  }
  const usage = `usage: ${usageLines(spec)[0]} (edgehead ${spec.path} --help)`;
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    const message = (e as Error).message.split('\n')[0]!;
    const unknown = /^Unknown option '(-{1,2})([^']*)'/.exec(message);
    if (unknown) {
      const known = Object.keys(options).filter((k) => !spec.options[k]?.hidden);
      const near = closest(unknown[2]!, known);
      throw new EdgeheadError('BAD_ARGS', `Unknown option '${unknown[1]}${unknown[2]}'${near === undefined ? '' : ` — did you mean '--${near}'?`}`, { hint: usage });
    }
    throw new EdgeheadError('BAD_ARGS', message.replace(/\. To specify .*$/, ''), { hint: usage });
  }
  const { verbose: _verbose, ...values } = parsed.values as Record<string, unknown>;
  if (!values.help && !spec.positionals?.length && parsed.positionals.length > 0) {
    throw new EdgeheadError('BAD_ARGS', `${spec.path} takes no arguments (got ${JSON.stringify(parsed.positionals[0])})`, { hint: usage });
  }
  return { values: values as ParsedArgs<O>['values'], positionals: parsed.positionals };
}

/** A leaf command: parses argv with the spec, answers --help, then runs. `out` prints the help (tests inject it). */
export function defineCommand<O extends OptionDefs>(
  spec: CommandSpec<O>,
  run: (args: ParsedArgs<O>) => Promise<number>,
  out: (text: string) => void = (text) => process.stdout.write(text + '\n'),
): Command {
  const help = () => renderHelp(spec);
  return {
    name: spec.path.split(' ').at(-1)!,
    summary: spec.purpose,
    spec,
    help,
    async run(argv) {
      try {
        const args = parseSpecArgs(argv, spec);
        if (args.values.help) {
          out(help());
          return 0;
        }
        return await run(args);
      } catch (e) {
        if (spec.jsonErrors && argv.includes('--json')) process.stdout.write(JSON.stringify({ error: jsonError(e) }) + '\n');
        throw e;
      }
    },
  };
}

/** Prints a command's help for --help (for commands that parse with parseSpecArgs themselves); returns exit code 0. */
export function help(spec: CommandSpec): number {
  process.stdout.write(renderHelp(spec) + '\n');
  return 0;
}

/** An error as --json prints it: {code, message, hint?}. */
export function jsonError(e: unknown): { code: string; message: string; hint?: string } {
  if (isEdgeheadError(e)) return { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) };
  return { code: 'ERROR', message: e instanceof Error ? e.message.split('\n')[0]! : String(e) };
}

/** A command made of subcommands (`edgehead head train`, `edgehead config check`). */
export function commandGroup(path: string, summary: string, subcommands: Command[], footer: string[] = []): Command {
  const width = Math.max(...subcommands.map((c) => c.name.length));
  const help = () =>
    [
      `edgehead ${path}: ${summary}`,
      '',
      `usage: edgehead ${path} <subcommand> [options]`,
      '',
      'subcommands:',
      ...subcommands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
      '',
      ...globalOptionsSection(),
      '',
      'examples:',
      ...subcommands.slice(0, 4).map((c) => `  ${c.spec?.examples[0] ?? `edgehead ${path} ${c.name} --help`}`),
      '',
      `Run \`edgehead ${path} <subcommand> --help\` (or \`edgehead help ${path} <subcommand>\`) for its options.`,
      ...footer,
    ].join('\n');
  return {
    name: path.split(' ').at(-1)!,
    summary: `${summary} (${subcommands.map((c) => c.name).join(', ')})`,
    subcommands,
    help,
    async run(argv) {
      const flags: string[] = [];
      let i = 0;
      while (i < argv.length && argv[i]!.startsWith('-')) flags.push(argv[i++]!);
      const [sub, ...rest] = argv.slice(i);
      const wantsHelp = flags.includes('--help') || flags.includes('-h');
      if (!sub) {
        process.stdout.write(help() + '\n');
        return wantsHelp ? 0 : 2;
      }
      if (sub === 'help') {
        const target = rest.length ? findCommand(subcommands, rest, path) : undefined;
        process.stdout.write((target ? target.help() : help()) + '\n');
        return 0;
      }
      const cmd = findCommand(subcommands, [sub], path);
      return cmd.run([...flags, ...rest]);
    },
  };
}

/** The command at `words` (e.g. ['head', 'train']) among `commands`; an unknown word is a usage error with a suggestion. */
export function findCommand(commands: Command[], words: string[], parent?: string): Command {
  const [word, ...more] = words;
  const cmd = commands.find((c) => c.name === word);
  if (!cmd) {
    const names = commands.map((c) => c.name);
    const what = parent ? `unknown ${parent} subcommand` : 'unknown command';
    throw new EdgeheadError('BAD_ARGS', `${what} "${word}"${didYouMean(word ?? '', names)}`, {
      hint: parent ? names.map((n) => `edgehead ${parent} ${n}`).join('; ') : 'run `edgehead --help` for the commands',
    });
  }
  if (more.length === 0) return cmd;
  if (!cmd.subcommands) throw new EdgeheadError('BAD_ARGS', `${parent ? `${parent} ` : ''}${cmd.name} has no subcommand "${more[0]}"`);
  return findCommand(cmd.subcommands, more, parent ? `${parent} ${cmd.name}` : cmd.name);
}

/** Every leaf command under `commands`, with its path. */
export function leafCommands(commands: Command[]): Command[] {
  return commands.flatMap((c) => (c.subcommands ? leafCommands(c.subcommands) : [c]));
}

export function intArg(value: string | undefined, name: string, min: number, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new EdgeheadError('BAD_ARGS', `--${name} must be an integer >= ${min} (got "${value}")`);
  return n;
}

export function numberArg(value: string | undefined, name: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || n > max) {
    throw new EdgeheadError('BAD_ARGS', `--${name} must be a number in [${min}, ${max}] (got "${value}")`);
  }
  return n;
}

export function choiceArg<T extends string>(value: string | undefined, name: string, choices: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!(choices as readonly string[]).includes(value)) {
    throw new EdgeheadError('BAD_ARGS', `--${name} must be one of ${choices.join(', ')} (got "${value}")`);
  }
  return value as T;
}

/** A usage error: the message, and the command's usage line as the hint. */
export function usageError(spec: CommandSpec, message: string): EdgeheadError {
  return new EdgeheadError('BAD_ARGS', message, { hint: `usage: ${usageLines(spec)[0]}` });
}
