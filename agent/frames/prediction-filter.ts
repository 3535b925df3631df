/**
 * Which predictions get published, and what the plain `state` topic shows.
 *
 * JSON predictions: predictions.minScore drops a frame whose top-1 score is lower; predictions.onlyOnChange publishes
 * only a change of the (debounced) top-1 label: a new label must be seen `debounce` frames in a row before it
 * replaces the current one. Low-score frames are invisible to that debounce (they neither count nor break a streak).
 * With onlyOnChange, a frame whose label is unchanged is published anyway (a heartbeat) once predictions.maxIntervalSec
 * has passed since the last published one: a live device that sees the same thing keeps speaking, a dead one falls
 * silent. The heartbeat is frame-driven on purpose: it only ever carries a frame classified just now, never an old
 * prediction re-sent by a timer while the camera is dead.
 *
 * Plain state: the top-1 label, or predictions.unknownLabel for a frame below minScore ("nothing recognised" is
 * visible). Without onlyOnChange it is each frame's label; with it, the label after the same debounce, where
 * unknownLabel counts as a label too (the JSON stream keeps today's filtering and never carries it).
 */
import type { Config } from '../../config/schema';

export type FilterSettings = Pick<Config['predictions'], 'minScore' | 'onlyOnChange' | 'debounce' | 'unknownLabel' | 'maxIntervalSec'>;

/** `state`: the plain label to show now (undefined while none has settled yet). `heartbeat`: published only because
 * maxIntervalSec passed. */
export type FilterDecision =
  | { publish: true; heartbeat?: true; state: string | undefined }
  | { publish: false; why: 'low score' | 'unchanged' | 'debouncing'; state: string | undefined };

/** A label replaces the current one after `need` frames in a row. */
class Debounce {
  stable: string | undefined;
  private candidate: string | undefined;
  private streak = 0;

  constructor(private readonly need: number) {}

  /** Feeds one frame's label; true when it just became the stable label. */
  see(label: string): boolean | 'debouncing' {
    if (label === this.candidate) this.streak++;
    else {
      this.candidate = label;
      this.streak = 1;
    }
    if (this.streak < this.need) return 'debouncing';
    if (this.candidate === this.stable) return false;
    this.stable = this.candidate;
    return true;
  }

  reset(): void {
    this.stable = this.candidate = undefined;
    this.streak = 0;
  }
}

export class PredictionFilter {
  private readonly published: Debounce;
  private readonly shown: Debounce;
  private lastPublishAt: number | undefined;

  /** `now` (ms) times the heartbeat: the agent's clock. */
  constructor(
    private readonly cfg: FilterSettings,
    private readonly now: () => number = Date.now,
  ) {
    this.published = new Debounce(cfg.debounce);
    this.shown = new Debounce(cfg.debounce);
  }

  /** The plain-state label of one prediction: its top-1 label, or unknownLabel below minScore. */
  plainLabel(top1: { label: string; score: number }): string {
    return top1.score < this.cfg.minScore ? this.cfg.unknownLabel : top1.label;
  }

  decide(top1: { label: string; score: number }): FilterDecision {
    const state = this.trackState(top1);
    const decision = this.decidePublish(top1, state);
    if (decision.publish) this.lastPublishAt = this.now();
    return decision;
  }

  private trackState(top1: { label: string; score: number }): string | undefined {
    const label = this.plainLabel(top1);
    if (!this.cfg.onlyOnChange) return label;
    this.shown.see(label);
    return this.shown.stable;
  }

  private decidePublish(top1: { label: string; score: number }, state: string | undefined): FilterDecision {
    if (top1.score < this.cfg.minScore) return { publish: false, why: 'low score', state };
    if (!this.cfg.onlyOnChange) return { publish: true, state };
    const seen = this.published.see(top1.label);
    if (seen === 'debouncing') return { publish: false, why: 'debouncing', state };
    if (seen) return { publish: true, state };
    if (this.heartbeatDue()) return { publish: true, heartbeat: true, state };
    return { publish: false, why: 'unchanged', state };
  }

  private heartbeatDue(): boolean {
    const every = this.cfg.maxIntervalSec * 1000;
    return every > 0 && this.lastPublishAt !== undefined && this.now() - this.lastPublishAt >= every;
  }

  /** After a head swap the labels may mean something else: start over. */
  reset(): void {
    this.published.reset();
    this.shown.reset();
  }
}
