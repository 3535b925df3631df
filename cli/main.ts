/**
 * The `edgehead` command line. Each subcommand lives in agent/cli/commands/<name>.ts.
 * Exit codes: 0 ok; 1 failed (bad input, runtime error); 2 bad arguments or configuration.
 */
import { describeError, EdgeheadError, isEdgeheadError } from '../base/errors';
import { configureLogging, logLevel } from '../base/log';
import { agentVersion } from '../base/version';
import type { Command } from './args';
import { classifyCommand } from './commands/classify';
import { configCommand } from './commands/config';
import { doctorCommand } from './commands/doctor';
import { headCommand } from './commands/head';
import { runCommand } from './commands/run';
import { summaryCommand } from './commands/summary';

export const COMMANDS: Command[] = [runCommand, classifyCommand, headCommand, summaryCommand, doctorCommand, configCommand];

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'usage: edgehead <command> [options]',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `edgehead <command> --help` for its options. EDGEHEAD_LOG_LEVEL=debug shows details and stack traces.',
  ].join('\n');
}

export function exitCodeFor(e: unknown): number {
  return isEdgeheadError(e) && (e.code === 'BAD_ARGS' || e.code === 'BAD_CONFIG') ? 2 : 1;
}

export async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (argv.includes('--verbose')) configureLogging({ level: 'debug' });
  const args = rest.filter((a) => a !== '--verbose');
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    process.exitCode = name ? 0 : 2;
    return;
  }
  if (name === '--version' || name === 'version') {
    process.stdout.write(`${agentVersion()}\n`);
    return;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  try {
    if (!cmd) throw new EdgeheadError('BAD_ARGS', `unknown command "${name}"`, { hint: 'run `edgehead --help`' });
    process.exitCode = await cmd.run(args);
  } catch (e) {
    reportFatal(e);
    process.exitCode = exitCodeFor(e);
  }
}

export function reportFatal(e: unknown): void {
  process.stderr.write(`edgehead: error: ${describeError(e)}\n`);
  if (!isEdgeheadError(e) || logLevel() === 'debug') {
    if (logLevel() === 'debug') process.stderr.write(`${(e as Error)?.stack ?? e}\n`);
    else process.stderr.write('edgehead: (unexpected error; rerun with --verbose for the stack trace)\n');
  }
}
