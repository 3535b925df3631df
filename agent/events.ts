/**
 * Typed events between the agent's services (the frame loop, the head manager, presence). A service emits what
 * happened; whoever cares subscribes in the composition root (agent/agent.ts). Listeners run one after the other
 * in subscription order and are awaited; a failing listener is logged and does not stop the others.
 */
import { describeError } from '../base/errors';
import { createLogger } from '../base/log';
import type { HeadManifest } from '../protocol/head/format';
import type { HeadStateMessage } from '../protocol/messages';

const log = createLogger('events');

export interface AgentEvents {
  /** A frame was classified by the active head (not a pinned, already replaced one). */
  frameClassified: { features: Float32Array; top1: string };
  /** The plain top-1 label to show now (after minScore -> unknownLabel and debounce), once per frame: the retained
   * `state` topic (agent/frames/plain-state.ts) publishes it when it differs. */
  plainState: { label: string };
  /** The head state changed (any head event): publish it. */
  headState: HeadStateMessage;
  /** Another head became active (applied, promoted, rolled back). */
  headChanged: { active: HeadManifest; how: 'applied' | 'promoted' | 'rolled-back' };
}

type Listener<T> = (payload: T) => void | Promise<void>;

export class EventBus<E extends object = AgentEvents> {
  private readonly listeners = new Map<keyof E, Listener<never>[]>();

  on<K extends keyof E>(event: K, fn: Listener<E[K]>): void {
    this.listeners.set(event, [...(this.listeners.get(event) ?? []), fn as Listener<never>]);
  }

  async emit<K extends keyof E>(event: K, payload: E[K]): Promise<void> {
    for (const fn of this.listeners.get(event) ?? []) {
      try {
        await (fn as Listener<E[K]>)(payload);
      } catch (e) {
        log.warn(`${String(event)} listener failed`, { error: describeError(e) });
      }
    }
  }
}
