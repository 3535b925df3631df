/** The device's command handlers, one per command of protocol/commands.ts, over the services they drive. */
import { EdgeheadError } from '../../base/errors';
import { COLLECT_DISABLED } from '../../protocol/commands';
import type { BirthMessage, HeadStateMessage, PredictionMessage, TelemetryMessage } from '../../protocol/messages';
import type { SampleStore } from '../collect/store';
import type { FrameLoop } from '../frames/frame-loop';
import type { HeadManager } from '../hot-swap/head-manager';
import type { Snapshots } from '../frames/snapshot';
import type { Scheduler } from '../schedule/scheduler';
import type { CommandHandlers } from './command-router';

/** How often `capture` waits for a scheduled frame in flight to finish before it gives up. */
const CAPTURE_ATTEMPTS = 3;

export interface CommandTargets {
  frames: Pick<FrameLoop, 'capture'>;
  scheduler: Pick<Scheduler, 'runNow' | 'idle' | 'pause' | 'resume'>;
  /** The schedule was paused or resumed: publish its retained state. */
  scheduleChanged: (paused: boolean) => Promise<void>;
  heads: Pick<HeadManager, 'rollback' | 'allow' | 'promote' | 'discard' | 'armShadow'>;
  status: () => { birth: BirthMessage; telemetry: TelemetryMessage; head: HeadStateMessage };
  snapshots: Pick<Snapshots, 'take'>;
  /** The collected samples; undefined when collect.enabled is false (the collect commands then fail). */
  samples?: Pick<SampleStore, 'fetch' | 'ack' | 'status'>;
}

/** The error of a collect command on a device that does not collect. */
export const collectDisabled = (): EdgeheadError => new EdgeheadError('BAD_CONFIG', COLLECT_DISABLED);

export function deviceCommandHandlers(t: CommandTargets): CommandHandlers {
  const samples = (): NonNullable<CommandTargets['samples']> => {
    if (!t.samples) throw collectDisabled();
    return t.samples;
  };
  return {
    // The reply is this frame's prediction, or this frame's error: never an older frame's.
    async capture(): Promise<PredictionMessage> {
      for (let attempt = 0; attempt < CAPTURE_ATTEMPTS; attempt++) {
        const ran = await t.scheduler.runNow(() => t.frames.capture());
        if (ran) return ran.value;
        await t.scheduler.idle(); // a scheduled frame is in flight: take the next turn
      }
      throw new EdgeheadError('CAPTURE', 'frames are still in flight; try again');
    },
    status: async () => t.status(),
    async pause() {
      const changed = t.scheduler.pause();
      await t.scheduleChanged(true);
      return { schedule: 'paused', changed };
    },
    async resume() {
      const changed = t.scheduler.resume();
      await t.scheduleChanged(false);
      return { schedule: 'running', changed };
    },
    // Published on snapshot (JPEG); the reply says where, how big and how wide (agent/frames/snapshot.ts).
    snapshot: () => t.snapshots.take(),
    rollback: () => t.heads.rollback(),
    // One older or equal version of a head past the high-water mark, once (agent/hot-swap/high-water.ts).
    allow: (args) => t.heads.allow(args),
    promote: () => t.heads.promote(),
    discard: () => t.heads.discard(),
    async shadow(args) {
      t.heads.armShadow(args.frames, args.autoPromoteAgreement);
      return { armed: true, frames: args.frames, note: 'the next head received runs in shadow mode' };
    },
    // The data loop (agent/collect/): samples leave the device only by fetch, and are deleted only once acknowledged.
    'collect-fetch': async (args) => samples().fetch(args.after, args.maxBytes),
    'collect-ack': async (args) => ({ deleted: samples().ack(args.ids) }),
    'collect-status': async () => samples().status(),
  };
}
