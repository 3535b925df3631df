/** `edgehead head <subcommand>`: work with head files. */
import { commandGroup } from '../args';
import { headInspectCommand } from './head-inspect';
import { headTrainCommand } from './head-train';

export const headCommand = commandGroup('head', 'train and inspect head files', [headTrainCommand, headInspectCommand]);
