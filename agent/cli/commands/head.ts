/** `edgehead head <subcommand>`: work with head files. */
import { EdgeheadError } from '../../util/errors';
import type { Command } from '../args';
import { headInspectCommand } from './head-inspect';
import { headTrainCommand } from './head-train';

const SUBCOMMANDS: Command[] = [headTrainCommand, headInspectCommand];
const USAGE = ['edgehead head <subcommand>', ...SUBCOMMANDS.map((c) => `  ${c.name.padEnd(8)} ${c.summary}`)].join('\n');

export const headCommand: Command = {
  name: 'head',
  summary: 'train and inspect head files (' + SUBCOMMANDS.map((c) => c.name).join(', ') + ')',
  usage: USAGE,
  async run(argv) {
    const [name, ...rest] = argv;
    if (!name || name === '--help' || name === '-h') {
      process.stdout.write(USAGE + '\n');
      return name ? 0 : 2;
    }
    const sub = SUBCOMMANDS.find((c) => c.name === name);
    if (!sub) throw new EdgeheadError('BAD_ARGS', `unknown head subcommand "${name}"`, { hint: USAGE.split('\n').slice(1).join(';') });
    return sub.run(rest);
  },
};
