/** Argument parsing for subcommands on node:util parseArgs; every mistake becomes a one-line BAD_ARGS error. */
import { parseArgs } from 'node:util';
import { EdgeheadError } from '../base/errors';

export type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

export interface Command {
  name: string;
  summary: string;
  usage: string;
  run(argv: string[]): Promise<number>;
}

export function parseCommandArgs<O extends OptionSpec>(argv: string[], options: O, usage: string) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (e) {
    throw new EdgeheadError('BAD_ARGS', (e as Error).message.split('\n')[0]!, { hint: `usage: ${usage.split('\n')[0]}` });
  }
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

/** Prints a command's usage for --help. */
export function help(usage: string): number {
  process.stdout.write(usage + '\n');
  return 0;
}

/** A command made of subcommands (`edgehead head train`, `edgehead config check`). */
export function commandGroup(name: string, summary: string, subcommands: Command[], footer: string[] = []): Command {
  const usage = [`edgehead ${name} <subcommand>`, ...subcommands.map((c) => `  ${c.name.padEnd(8)} ${c.summary}`), ...footer].join('\n');
  return {
    name,
    summary: `${summary} (${subcommands.map((c) => c.name).join(', ')})`,
    usage,
    async run(argv) {
      const [sub, ...rest] = argv;
      if (!sub || sub === '--help' || sub === '-h') {
        process.stdout.write(usage + '\n');
        return sub ? 0 : 2;
      }
      const cmd = subcommands.find((c) => c.name === sub);
      if (!cmd) {
        throw new EdgeheadError('BAD_ARGS', `unknown ${name} subcommand "${sub}"`, { hint: subcommands.map((c) => `edgehead ${name} ${c.name}`).join('; ') });
      }
      return cmd.run(rest);
    },
  };
}
