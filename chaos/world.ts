/** One scenario's world: a fresh Mosquitto, a ledger subscribed to the device's predictions, a state dir. */
import { Mosquitto } from '../test/support/mosquitto';
import { tmpDir } from '../test/support/cli';
import { type ChaosAgent, chaosConfig, Ledger, startAgent } from './harness';

export interface Outcome {
  published: number;
  received: number;
  lost: number;
  duplicates: number;
  peakRssMB: number;
  /** Scenario-specific facts for the summary line (e.g. "skipped 1 damaged record"). */
  notes: string[];
  /** Why the scenario failed its expectation; undefined = it held. */
  failure?: string;
}

export interface Scenario {
  name: string;
  /** What it proves, one line (docs/RELIABILITY.md). */
  proves: string;
  run(world: World, opts: { short: boolean }): Promise<Outcome>;
}

export class World {
  readonly stateDir = tmpDir('chaos-state-');
  readonly notes: string[] = [];
  private readonly agents: ChaosAgent[] = [];

  private constructor(
    readonly broker: Mosquitto,
    readonly ledger: Ledger,
  ) {}

  static async create(device = 'chaos1'): Promise<World> {
    const broker = await Mosquitto.start();
    const ledger = new Ledger(broker.url);
    await ledger.connect(device);
    return new World(broker, ledger);
  }

  config(over: Record<string, unknown> = {}): Record<string, unknown> {
    return chaosConfig(this.broker.url, this.stateDir, over);
  }

  agent(over: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = {}): ChaosAgent {
    const a = startAgent(this.ledger, this.config(over), env);
    this.agents.push(a);
    return a;
  }

  /** Every printed prediction delivered (or the guard passed), then the outcome with the ledger's counts. */
  async outcome(expect: { maxLost?: number; why?: string } = {}): Promise<Outcome> {
    await this.ledger.settle();
    const s = this.ledger.summary();
    const maxLost = expect.maxLost ?? 0;
    const failure = s.lost > maxLost ? `lost ${s.lost} > ${maxLost}${expect.why ? ` (${expect.why})` : ''}: ${this.ledger.missing().slice(0, 5).join(', ')}` : undefined;
    return { ...s, notes: this.notes, ...(failure ? { failure } : {}) };
  }

  async close(): Promise<void> {
    for (const a of this.agents) await a.stop('SIGKILL');
    await this.ledger.close();
    await this.broker.stop();
  }
}

/** Runs a scenario in a fresh world; an exception is a failed scenario with the counts so far. */
export async function runScenario(s: Scenario, opts: { short: boolean }): Promise<Outcome> {
  const world = await World.create();
  try {
    return await s.run(world, opts);
  } catch (e) {
    const partial = world.ledger.summary();
    return { ...partial, notes: world.notes, failure: (e as Error).message.split('\n')[0] };
  } finally {
    await world.close();
  }
}
