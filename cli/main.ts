/**
 * The `edgehead` command line. Each subcommand lives in cli/commands/<name>.ts; failures are reported by
 * cli/report.ts (also used by `run`, which reports its own late failures).
 * Exit codes: 0 ok; 1 failed (bad input, runtime error); 2 bad arguments or configuration.
 */
import { EdgeheadError } from '../base/errors';
import { configureLogging, stderrPrefix } from '../base/log';
import { agentVersion } from '../base/version';
import { type Command, findCommand } from './args';
import { globalOptionsSection } from './help';
import { didYouMean } from './suggest';
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

export function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'usage: edgehead [--verbose] <command> [options]',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    ...globalOptionsSection([], [['--version', 'print the version and exit']]),
    '',
    'examples:',
    '  edgehead classify assets/samples/fish/fish1.jpg',
    '  edgehead help head train',
    '',
    'Run `edgehead <command> --help` or `edgehead help <command>` for its options; docs/cli.md has them all.',
  ].join('\n');
}

/** Flags that mean the same wherever they are: --verbose is taken out, --help and --json go to the command. */
const LEADING_FLAGS = new Set(['--verbose', '--help', '-h', '--json', '--version']);

export async function main(argv: string[]): Promise<void> {
  const end = argv.indexOf('--');
  const before = end < 0 ? argv : argv.slice(0, end);
  if (before.includes('--verbose')) configureLogging({ level: 'debug' });
  const args = [...before.filter((a) => a !== '--verbose'), ...(end < 0 ? [] : argv.slice(end))];
  const leading: string[] = [];
  while (args.length > 0 && LEADING_FLAGS.has(args[0]!)) leading.push(args.shift()!);
  const [name, ...rest] = args;
  try {
    if (leading.includes('--version') || name === 'version') {
      process.stdout.write(`${agentVersion()}\n`);
      return;
    }
    const wantsHelp = leading.includes('--help') || leading.includes('-h');
    if (!name || name === 'help') {
      const target = name === 'help' && rest.length > 0 ? findCommand(COMMANDS, rest) : undefined;
      process.stdout.write((target ? target.help() : usage()) + '\n');
      process.exitCode = name || wantsHelp ? 0 : 2;
      return;
    }
    if (name.startsWith('-')) throw new EdgeheadError('BAD_ARGS', `unknown option "${name}" before the command`, { hint: 'run `edgehead --help`' });
    const cmd = COMMANDS.find((c) => c.name === name);
    if (!cmd) {
      process.stderr.write(`${stderrPrefix('error')}edgehead: unknown command "${name}"${didYouMean(name, COMMANDS.map((c) => c.name)) || ' (run `edgehead --help` for the commands)'}\n`);
      process.exitCode = 2;
      return;
    }
    process.exitCode = await cmd.run([...leading, ...rest]);
  } catch (e) {
    reportFatal(e);
    process.exitCode = exitCodeFor(e);
  }
}
