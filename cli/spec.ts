/**
 * The declarative description of a command: purpose, options (type, default, description), positional arguments
 * and examples. Help text (cli/help.ts), argument parsing (cli/args.ts) and docs/cli.md (scripts/gen-cli-docs.ts)
 * are all derived from it, so they cannot disagree.
 */

export interface OptionDef {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** The value's placeholder in help (FILE, N, URL); string options only. */
  arg?: string;
  /** The default as shown in help (the command applies it; parsing does not). */
  default?: string | number;
  /** Needed by the command (shown in the usage line; the command checks it with its own message). */
  required?: boolean;
  /** One line. */
  description: string;
  /** Accepted but not documented (obsolete flags kept so old scripts run). */
  hidden?: boolean;
}

export type OptionDefs = Record<string, OptionDef>;

export interface PositionalDef {
  name: string;
  description: string;
  optional?: boolean;
  variadic?: boolean;
}

export interface CommandSpec<O extends OptionDefs = OptionDefs> {
  /** The words after `edgehead`: 'classify', 'head train'. */
  path: string;
  /** One line: what the command does. */
  purpose: string;
  options: O;
  /** Positional arguments; none means the command takes none (any given is a usage error). */
  positionals?: PositionalDef[];
  /** Usage lines (without `edgehead `) when the generated one cannot say it (alternatives, exclusive flags). */
  synopsis?: string[];
  /** More about the command: paragraphs, already wrapped. */
  details?: string;
  /** Command lines (starting with `edgehead `), optionally followed by `  # comment`. At least one. */
  examples: string[];
  /** With --json, a failure is also printed as {"error": {...}} on stdout. */
  jsonErrors?: boolean;
}

/** The parsed values of an option table. */
export type OptionValues<O extends OptionDefs> = {
  [K in keyof O]?: O[K]['type'] extends 'boolean' ? (O[K]['multiple'] extends true ? boolean[] : boolean) : O[K]['multiple'] extends true ? string[] : string;
};

/** The flags every command takes, wherever they are on the command line. */
export const GLOBAL_OPTIONS = {
  verbose: { type: 'boolean', description: 'debug logging; errors add details and stack traces (also EDGEHEAD_LOG_LEVEL=debug)' },
  help: { type: 'boolean', short: 'h', description: 'print this help and exit' },
} as const satisfies OptionDefs;

/** The description of --json where a command offers it (its own text, when given, wins). */
export const JSON_DESCRIPTION = 'machine-readable output: JSON on stdout';
