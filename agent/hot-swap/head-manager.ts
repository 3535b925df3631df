/**
 * Head hot-swap on the device: receive -> validate -> persist atomically -> warm up on the cached features of the
 * last frame -> swap between frames (through the HeadPort: the frame loop) -> emit headState and headChanged (the
 * composition root turns them into head/state, a new retained birth and a re-prediction of the last frame).
 * A rejected payload changes nothing: an excerpt is kept aside with its reason. Also rollback, and shadow mode (a
 * candidate runs beside the active head for N frames; promote/discard, or automatic promotion above an agreement
 * rate). Every head that becomes active raises the high-water mark of its id (high-water.ts): older or equal
 * versions of any id ever applied are refused, unless the operator allowed one with the `allow` command.
 * Payloads are processed one at a time, in arrival order.
 */
import { EdgeheadError } from '../../base/errors';
import { sha256Hex } from '../../base/hash';
import { createLogger } from '../../base/log';
import type { Config } from '../../config/schema';
import type { HeadFile } from '../../protocol/head/format';
import { correlationIdOf, type HeadRef, type HeadStateMessage, type HeadUpdate, type HeadUpdateStatus } from '../../protocol/messages';
import { headScopeOf, scopeRank } from '../../protocol/topics';
import type { EventBus } from '../events';
import type { ExtractorInfo } from '../extractors/extractor';
import { DenseHead } from '../inference/dense-head';
import { type HeadStore, type StoredHead } from './head-store';
import { type Allowance, HighWaterMarks } from './high-water';
import { validatePayload } from './validate';

const log = createLogger('heads');

/** What the manager needs from the classifier: nothing more. */
export interface HeadPort {
  /** Features of the last classified frame (warm-up and shadow comparisons), if any. */
  lastFeatures(): Float32Array | undefined;
  /** Top-1 label of `head` for these features. */
  top1(head: DenseHead, features: Float32Array): string;
  /** Installs `head` for the next frame; the port disposes the replaced head once no frame in flight uses it. */
  install(head: DenseHead): void;
}

export interface HeadManagerDeps {
  store: HeadStore;
  cfg: Config['head'];
  extractor: Pick<ExtractorInfo, 'id' | 'fingerprint' | 'featureDim'>;
  publicKeys: string[];
  deviceId: string;
  /** The heads to start with (startingHeads()). */
  initial: StartingHeads;
  /** mqtt.topicPrefix: to tell a head's scope (device, group, fleet) from the topic it came on. */
  topicPrefix: string;
  classifier: HeadPort;
  /** headState after every head event, headChanged when another head became active. */
  events: EventBus;
  /** Wall clock for notAfter and allowances (default Date.now). */
  now?: () => number;
}

export interface StartingHeads {
  active: StoredHead;
  previous?: StoredHead;
}

/**
 * The heads to start with: the persisted active one (or the previous one, if a crash left no active), else
 * `fallback` (head.file or the demo head). A shadow run does not survive a restart: its candidate is removed.
 */
export function startingHeads(store: HeadStore, fallback: { bytes: Uint8Array; head: HeadFile }): StartingHeads {
  const active = store.read('active');
  const previous = store.read('previous');
  store.removeCandidate();
  if (active) {
    log.info('persisted head loaded', { id: active.head.manifest.id, version: active.head.manifest.version });
    return { active, ...(previous ? { previous } : {}) };
  }
  if (previous) {
    // A crash between "active -> previous" and "incoming -> active": the previous head is the last good one.
    log.warn('no valid active head on disk; starting from the previous one', { id: previous.head.manifest.id, version: previous.head.manifest.version });
    return { active: previous };
  }
  return { active: { ...fallback, appliedAt: new Date().toISOString() } };
}

interface Shadow {
  stored: StoredHead;
  head: DenseHead;
  frames: number;
  seen: number;
  agree: number;
  autoPromoteAgreement?: number;
  /** The topic the candidate came on. */
  via: string;
}

export class HeadManager {
  private active: StoredHead;
  private previous: StoredHead | undefined;
  private shadow: Shadow | undefined;
  private armedShadow: { frames: number; autoPromoteAgreement?: number } | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly marks: HighWaterMarks;

  private readonly store: HeadStore;
  private readonly cfg: Config['head'];
  private readonly classifier: HeadPort;
  private readonly events: EventBus;

  constructor(private readonly deps: HeadManagerDeps) {
    this.store = deps.store;
    this.cfg = deps.cfg;
    this.classifier = deps.classifier;
    this.events = deps.events;
    this.active = deps.initial.active;
    this.previous = deps.initial.previous;
    this.marks = new HighWaterMarks(this.store.dir, deps.now);
    // The heads on disk count as applied: this also migrates a state dir from before the marks existed.
    for (const h of [this.previous, this.active]) if (h) this.marks.record(h.head.manifest, h.appliedAt);
  }

  /** Precedence of the topic a head came on (device > group > fleet); 0 for the initial head. */
  private rank(topic: string | undefined): number {
    return topic === undefined ? 0 : scopeRank(headScopeOf(this.deps.topicPrefix, topic));
  }

  /** Serializes head operations. */
  private run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  handlePayload(topic: string, bytes: Uint8Array, retained: boolean): Promise<void> {
    return this.run(() => this.process(topic, bytes, retained));
  }

  private async process(topic: string, bytes: Uint8Array, retained: boolean): Promise<void> {
    const receivedAt = new Date();
    const t0 = performance.now();
    const sha = sha256Hex(bytes);
    const correlationId = correlationIdOf(sha);
    const state = this.store.readState();
    if (retained && state.processed[topic] === sha) {
      log.debug('retained head already processed; ignoring', { topic, correlationId });
      return;
    }
    this.store.updateState((s) => ({ ...s, processed: { ...s.processed, [topic]: sha } }));
    const update = (status: HeadUpdateStatus, head: HeadFile | undefined, reason?: string): HeadUpdate => ({
      status,
      ...(reason ? { reason } : {}),
      correlationId,
      via: topic,
      head: head ? { id: head.manifest.id, version: head.manifest.version } : null,
      receivedAt: receivedAt.toISOString(),
      latencyMs: Math.round((performance.now() - t0) * 10) / 10,
    });
    const verdict = validatePayload(bytes, {
      maxBytes: this.cfg.maxBytes,
      extractor: this.deps.extractor,
      publicKeys: this.deps.publicKeys,
      active: this.active.head.manifest,
      testVectorTolerance: this.cfg.testVectorTolerance,
      highest: (id) => this.marks.highest(id),
      allowed: (m) => this.marks.allows(m),
      now: (this.deps.now ?? Date.now)(),
    });
    if (verdict.kind === 'reject') {
      log.warn('head rejected', { topic, correlationId, reason: verdict.reason });
      this.store.keepRejected(bytes, { correlationId, sha256: sha, reason: verdict.reason, topic, receivedAt: receivedAt.toISOString() });
      await this.publish(update('rejected', verdict.file, verdict.reason));
      return;
    }
    if (verdict.kind === 'duplicate') {
      await this.publish(update('duplicate', verdict.file, verdict.reason));
      return;
    }
    const activeVia = state.via?.active;
    if (verdict.file.manifest.id !== this.active.head.manifest.id && this.rank(topic) < this.rank(activeVia)) {
      verdict.head.dispose();
      const reason = `lower precedence: the active head ${this.active.head.manifest.id} came on ${activeVia}; a head on ${topic} does not replace it (push to the device topic, or roll back first)`;
      log.warn('head not applied', { topic, correlationId, reason });
      await this.publish(update('rejected', verdict.file, reason));
      return;
    }
    if (verdict.allowed) this.marks.consume(verdict.file.manifest);
    const shadowCfg = this.armedShadow ?? verdict.file.manifest.shadow;
    if (shadowCfg && shadowCfg.frames > 0) {
      this.armedShadow = undefined;
      this.endShadow();
      await this.store.writeCandidate(bytes);
      this.shadow = { stored: { bytes, head: verdict.file, appliedAt: receivedAt.toISOString() }, head: verdict.head, frames: shadowCfg.frames, seen: 0, agree: 0, autoPromoteAgreement: shadowCfg.autoPromoteAgreement, via: topic };
      log.info('head in shadow mode', { id: verdict.file.manifest.id, version: verdict.file.manifest.version, frames: shadowCfg.frames });
      await this.publish(update('shadow', verdict.file, `running beside the active head for ${shadowCfg.frames} frames`));
      return;
    }
    await this.apply({ bytes, head: verdict.file, appliedAt: '' }, verdict.head, topic);
    log.info('head applied', { id: verdict.file.manifest.id, version: verdict.file.manifest.version, correlationId, ms: update('applied', undefined).latencyMs });
    await this.publish(update('applied', verdict.file));
    await this.events.emit('headChanged', { active: verdict.file.manifest, how: 'applied' });
  }

  /** Persist, warm up, swap, dispose. */
  private async apply(next: StoredHead, head: DenseHead, via: string): Promise<void> {
    const appliedAt = new Date().toISOString();
    try {
      await this.store.activate(next.bytes, this.active, appliedAt, via);
      const features = this.classifier.lastFeatures();
      if (features) this.classifier.top1(head, features); // warm-up on the last frame's features
    } catch (e) {
      head.dispose();
      throw e;
    }
    this.marks.record(next.head.manifest, appliedAt);
    this.previous = this.active;
    this.active = { ...next, appliedAt };
    this.classifier.install(head);
  }

  /**
   * The `allow` command: lets the next head with this id and version (and sha256, if given) through the version
   * rules once, within `minutes` (default 60). Only an id applied here before, at a version not above its mark.
   */
  allow(args: { id: string; version: number; sha256?: string; minutes?: number }): Promise<{ allowed: Allowance }> {
    return this.run(async () => ({ allowed: this.marks.allow(args) }));
  }

  rollback(): Promise<HeadRef> {
    return this.run(async () => {
      const prev = this.previous ?? this.store.read('previous');
      if (!prev) throw new EdgeheadError('BAD_ARGS', 'no previous head to roll back to');
      const head = DenseHead.fromFile(prev.head);
      const now = new Date().toISOString();
      if (this.store.read('active')) this.store.swapActivePrevious(now);
      else await this.store.activate(prev.bytes, undefined, now);
      const old = this.active;
      this.active = { ...prev, appliedAt: now };
      this.previous = old;
      this.classifier.install(head);
      await this.publish({ status: 'rolled-back', correlationId: null, via: 'cmd', head: { id: prev.head.manifest.id, version: prev.head.manifest.version }, receivedAt: now });
      await this.events.emit('headChanged', { active: prev.head.manifest, how: 'rolled-back' });
      return this.ref(this.active);
    });
  }

  armShadow(frames: number, autoPromoteAgreement?: number): void {
    if (!Number.isInteger(frames) || frames < 1) throw new EdgeheadError('BAD_ARGS', 'shadow: args.frames must be an integer >= 1');
    if (autoPromoteAgreement !== undefined && !(autoPromoteAgreement >= 0 && autoPromoteAgreement <= 1)) {
      throw new EdgeheadError('BAD_ARGS', 'shadow: args.autoPromoteAgreement must be in [0, 1]');
    }
    this.armedShadow = { frames, ...(autoPromoteAgreement !== undefined ? { autoPromoteAgreement } : {}) };
  }

  /** Called after every classified frame with its features and the active head's top-1 label. */
  onFrame(features: Float32Array, activeTop1: string): void {
    const s = this.shadow;
    if (!s || s.seen >= s.frames) return;
    s.seen++;
    if (this.classifier.top1(s.head, features) === activeTop1) s.agree++;
    if (s.seen === s.frames) {
      const agreement = s.agree / s.seen;
      log.info('shadow run complete', { agreement, frames: s.frames });
      if (s.autoPromoteAgreement !== undefined && agreement >= s.autoPromoteAgreement) void this.promote(`agreement ${agreement.toFixed(3)} >= ${s.autoPromoteAgreement}`);
      else void this.run(() => this.publish({ status: 'shadow', reason: `shadow run complete: agreement ${agreement.toFixed(3)}; promote or discard`, correlationId: correlationIdOf(sha256Hex(s.stored.bytes)), via: 'shadow', head: this.headId(s.stored), receivedAt: new Date().toISOString() }));
    }
  }

  promote(reason = 'promote command'): Promise<HeadRef> {
    return this.run(async () => {
      const s = this.shadow;
      if (!s) throw new EdgeheadError('BAD_ARGS', 'no head in shadow mode');
      this.shadow = undefined;
      await this.apply(s.stored, s.head, s.via);
      this.store.removeCandidate();
      await this.publish({ status: 'promoted', reason, correlationId: correlationIdOf(sha256Hex(s.stored.bytes)), via: 'cmd', head: this.headId(s.stored), receivedAt: new Date().toISOString() });
      await this.events.emit('headChanged', { active: s.stored.head.manifest, how: 'promoted' });
      return this.ref(this.active);
    });
  }

  discard(): Promise<{ discarded: { id: string; version: number } }> {
    return this.run(async () => {
      const s = this.shadow;
      if (!s) throw new EdgeheadError('BAD_ARGS', 'no head in shadow mode');
      this.endShadow();
      await this.publish({ status: 'discarded', correlationId: correlationIdOf(sha256Hex(s.stored.bytes)), via: 'cmd', head: this.headId(s.stored), receivedAt: new Date().toISOString() });
      return { discarded: this.headId(s.stored) };
    });
  }

  private endShadow(): void {
    if (!this.shadow) return;
    this.shadow.head.dispose();
    this.shadow = undefined;
    this.store.removeCandidate();
  }

  private headId(h: StoredHead): { id: string; version: number } {
    return { id: h.head.manifest.id, version: h.head.manifest.version };
  }

  private ref(h: StoredHead): HeadRef {
    return { ...this.headId(h), sha256: h.head.manifest.sha256, appliedAt: h.appliedAt };
  }

  stateMessage(): HeadStateMessage {
    const s = this.shadow;
    return {
      device: this.deps.deviceId,
      active: this.ref(this.active),
      previous: this.previous ? this.ref(this.previous) : null,
      lastUpdate: this.store.readState().lastUpdate ?? { status: 'applied', reason: 'initial head', correlationId: null, via: 'startup', head: this.headId(this.active), receivedAt: this.active.appliedAt },
      shadow: s
        ? { candidate: { ...this.headId(s.stored), sha256: s.stored.head.manifest.sha256 }, frames: s.frames, seen: s.seen, agreement: s.seen ? s.agree / s.seen : null, ...(s.autoPromoteAgreement !== undefined ? { autoPromoteAgreement: s.autoPromoteAgreement } : {}) }
        : null,
    };
  }

  private async publish(lastUpdate: HeadUpdate): Promise<void> {
    this.store.updateState((st) => ({ ...st, lastUpdate }));
    await this.events.emit('headState', this.stateMessage());
  }

  dispose(): void {
    this.endShadow();
  }
}
