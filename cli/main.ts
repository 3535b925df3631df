/**
 * The `edgehead` command line. Each subcommand lives in cli/commands/<name>.ts; failures are reported by
 * cli/report.ts (also used by `run`, which reports its own late failures).
 * Exit codes: 0 ok; 1 failed (bad input, runtime error); 2 bad arguments or configuration.
 */
import { EdgeheadError } from '../base/errors';
import { configureLogging } from '../base/log';
import { agentVersion } from '../base/version';
import type { Command } from './args';
import { classifyCommand } from './commands/classify';
import { configCommand } from './commands/config';
import { datasetCommand } from './commands/dataset';
import { doctorCommand } from './commands/doctor';
import { fleetCommand } from './commands/fleet';
import { headCommand } from './commands/head';
import { runCommand } from './commands/run';
import { summaryCommand } from './commands/summary';
import { exitCodeFor, reportFatal } from './report';

export const COMMANDS: Command[] = [runCommand, classifyCommand, headCommand, summaryCommand, doctorCommand, configCommand, fleetCommand, datasetCommand];

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
