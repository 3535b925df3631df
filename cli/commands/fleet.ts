/** `edgehead fleet <serve|status|simulate|rollout>`: the operator's side of the fleet (operator/fleet/). */
import { commandGroup } from '../args';
import { fleetRolloutCommand } from './fleet-rollout';
import { fleetServeCommand } from './fleet-serve';
import { fleetSimulateCommand } from './fleet-simulate';
import { fleetStatusCommand } from './fleet-status';

export const fleetCommand = commandGroup('fleet', 'the fleet server, the fleet table, rollouts and a device simulator', [
  fleetServeCommand,
  fleetStatusCommand,
  fleetRolloutCommand,
  fleetSimulateCommand,
], ['', 'docs/fleet.md is the operator guide: serve, watch, roll out, roll back, scale.']);
