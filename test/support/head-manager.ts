/**
 * A HeadManager wired as the agent wires it, with a minimal classifier port instead of the frame loop: collects
 * every head/state it emits, installs heads by disposing the replaced one. For unit tests and the head-swap bench.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Config } from '../../config/schema';
import { EventBus } from '../../agent/events';
import { HeadManager, startingHeads } from '../../agent/hot-swap/head-manager';
import type { HeadStore } from '../../agent/hot-swap/head-store';
import { DenseHead } from '../../agent/inference/dense-head';
import { decodeHead } from '../../protocol/head/format';
import type { HeadStateMessage } from '../../protocol/messages';

export interface TestHeadManager {
  manager: HeadManager;
  states: HeadStateMessage[];
  /** The head installed last (the active one). */
  current(): DenseHead;
  /** headChanged events, as "applied"/"promoted"/"rolled-back". */
  changes: string[];
}

export function testHeadManager(opts: {
  store: HeadStore;
  cfg: Config['head'];
  extractor: { id: string; fingerprint: string; featureDim: number };
  publicKeys?: string[];
  initialBytes: Uint8Array;
  lastFeatures?: () => Float32Array | undefined;
  deviceId?: string;
  topicPrefix?: string;
  /** Wall clock for notAfter and allowances. */
  now?: () => number;
}): TestHeadManager {
  const events = new EventBus();
  const states: HeadStateMessage[] = [];
  const changes: string[] = [];
  const initial = startingHeads(opts.store, { bytes: opts.initialBytes, head: decodeHead(opts.initialBytes, { maxBytes: opts.cfg.maxBytes }) });
  let current = DenseHead.fromFile(initial.active.head);
  const D = opts.extractor.featureDim;
  const manager = new HeadManager({
    store: opts.store,
    cfg: opts.cfg,
    extractor: opts.extractor,
    publicKeys: opts.publicKeys ?? [],
    deviceId: opts.deviceId ?? 'dev',
    topicPrefix: opts.topicPrefix ?? 'edgehead',
    events,
    initial,
    ...(opts.now ? { now: opts.now } : {}),
    classifier: {
      lastFeatures: opts.lastFeatures ?? (() => undefined),
      top1: (h, f) => tf.tidy(() => h.predict(tf.tensor2d(f, [1, D]), 1)[0]![0]!.label),
      install: (h) => {
        current.dispose();
        current = h;
      },
    },
  });
  events.on('headState', (s) => void states.push(s));
  events.on('headChanged', (c) => void changes.push(c.how));
  return { manager, states, current: () => current, changes };
}
