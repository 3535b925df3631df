/**
 * `backend.threads: auto` at run time: after each frame's extractor pass, the policy (thread-policy.ts) may move the
 * next frame to the other thread count, which the pool switch (pool-switch.ts) applies with one store. One per
 * process, like the WASM module; installed by wasm.ts when the threaded start succeeded and the switch was found.
 * Every caller of extractFeatures (the agent, classify, head train, the bench) feeds it.
 */
import { createLogger } from '../../base/log';
import { OtherCpuLoad } from '../telemetry/cpu-time';
import type { PoolSwitch } from './pool-switch';
import { describeDecision, type ThreadDecision, ThreadPolicy, type ThreadPolicyOptions } from './thread-policy';

const log = createLogger('backend');

export interface ThreadsStatus {
  /** 'fixed': a count was configured (or only one is possible); 'adaptive': auto, switching between 1 and max. */
  policy: 'fixed' | 'adaptive';
  /** The count frames run with now (between probes). */
  threads: number;
  /** The pool's threads. */
  max: number;
  /** The last decision, in words. */
  reason?: string;
}

export class AdaptiveThreads {
  private readonly policy: ThreadPolicy;
  private lastChosen: number;
  private logged: ThreadDecision | undefined;

  constructor(
    private readonly pool: PoolSwitch,
    private readonly load: { sample(): number | undefined } = new OtherCpuLoad(),
    options?: ThreadPolicyOptions,
  ) {
    this.policy = new ThreadPolicy(1, pool.poolThreads, options);
    this.lastChosen = this.policy.chosen;
    pool.use(this.policy.threads);
  }

  /** One extractor pass took `ms` at the current count. */
  observe(ms: number): void {
    const next = this.policy.observe(ms, this.load.sample());
    if (next !== this.pool.current()) this.pool.use(next);
    const d = this.policy.decision;
    if (d && d !== this.logged) {
      this.logged = d;
      // A change is worth a line at the default level; a confirmation only in debug.
      if (d.threads !== this.lastChosen) log.info(`WASM threads: now ${describeDecision(d)}`);
      else log.debug(`WASM threads: kept ${describeDecision(d)}`);
      this.lastChosen = d.threads;
    }
  }

  status(): ThreadsStatus {
    const d = this.policy.decision;
    return { policy: 'adaptive', threads: this.policy.chosen, max: this.pool.poolThreads, ...(d ? { reason: describeDecision(d) } : {}) };
  }
}

let active: AdaptiveThreads | undefined;

/** Installed by wasm.ts (undefined: fixed thread count). */
export function setAdaptiveThreads(a: AdaptiveThreads | undefined): void {
  active = a;
}

export function adaptiveThreads(): AdaptiveThreads | undefined {
  return active;
}

/** Called after every extractor pass (features.ts). */
export function observeExtractMs(ms: number): void {
  active?.observe(ms);
}
