/** One telemetry message from the agent's counters and the machine's state. */
import * as tf from '@tensorflow/tfjs-core';
import type { BrokerStats } from '../../mqtt/broker';
import type { BackendSummary, Problem, TelemetryMessage } from '../../protocol/messages';
import type { SchedulerStats } from '../schedule/scheduler';
import type { QueueStats } from '../store/queue';
import type { FrameStats } from './stats';
import { cpuTemperatureC, diskFreeMB, loadAverage, memoryMB } from './system';
import { readThrottledSync } from './throttled';

export interface TelemetrySources {
  now: number;
  startedAt: number;
  deviceId: string;
  stateDir: string;
  frames: FrameStats;
  scheduler: SchedulerStats;
  queue: QueueStats;
  broker: BrokerStats;
  backend: BackendSummary;
  problems: Problem[];
  /** The get_throttled file (default: the Raspberry Pi firmware's in sysfs; tests point it elsewhere). */
  throttledFile?: string;
}

export function telemetrySnapshot(s: TelemetrySources): TelemetryMessage {
  return {
    ts: new Date(s.now).toISOString(),
    device: s.deviceId,
    uptimeSec: Math.max(0, Math.round((s.now - s.startedAt) / 1000)),
    frames: { ok: s.frames.ok, skipped: s.scheduler.skipped, failed: s.frames.failed, published: s.frames.published, suppressed: s.frames.suppressed, unchanged: s.frames.unchanged },
    latencyMs: s.frames.percentiles(),
    ...memoryMB(),
    tensors: tf.memory().numTensors,
    cpuTempC: cpuTemperatureC(),
    loadAvg: loadAverage(),
    diskFreeMB: diskFreeMB(s.stateDir),
    mqtt: { connected: s.broker.connected, reconnects: s.broker.reconnects },
    offlineQueue: { depth: s.queue.depth, bytes: s.queue.bytes, dropped: s.queue.dropped, skipped: s.queue.skipped },
    backend: s.backend,
    problems: s.problems,
    throttled: readThrottledSync(s.throttledFile),
  };
}
