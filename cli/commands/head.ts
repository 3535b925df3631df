/** `edgehead head <subcommand>`: work with head files. */
import { commandGroup } from '../args';
import { headEvalCommand } from './head-eval';
import { headInspectCommand } from './head-inspect';
import { headKeygenCommand } from './head-keygen';
import { headPushCommand } from './head-push';
import { headSignCommand } from './head-sign';
import { headTrainCommand } from './head-train';

export const headCommand = commandGroup('head', 'train, evaluate, sign, inspect and push head files', [
  headTrainCommand,
  headEvalCommand,
  headInspectCommand,
  headKeygenCommand,
  headSignCommand,
  headPushCommand,
]);
