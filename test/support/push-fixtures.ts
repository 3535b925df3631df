/** Fixtures shared by the head-push tests: a tiny 2-class head and the head/state message a device answers with. */
import { createHash } from 'node:crypto';
import { type HeadFile, makeHeadFile } from '../../protocol/head/format';
import type { BirthMessage, HeadStateMessage, HeadUpdateStatus } from '../../protocol/messages';

/** Head "kitchen" (cat/dog, 3-d features, one test vector) at the given version. */
export function kitchenHead(version: number, createdAt?: Date): HeadFile {
  return makeHeadFile({
    id: 'kitchen',
    version,
    classes: ['cat', 'dog'],
    extractor: { id: 'mobilenet_v2_140', fingerprint: createHash('sha256').update('m').digest('hex') },
    kernel: new Float32Array([0.5, -0.5, 1, 2, -1, 0.25]),
    bias: new Float32Array([0.1, -0.1]),
    ...(createdAt ? { createdAt } : {}),
    testVectors: [{ features: [1, 0, 0], logits: [0.6, -0.6] }],
  });
}

/** The retained head/state JSON a (fake) device publishes in answer to a payload. */
export function headStateJson(device: string, status: HeadUpdateStatus, correlationId: string, opts: { via: string; reason?: string; at: string }): string {
  const ref = { id: 'kitchen', version: 1, sha256: '0'.repeat(64), appliedAt: opts.at };
  const msg: HeadStateMessage = {
    device,
    active: ref,
    previous: null,
    lastUpdate: { status, correlationId, via: opts.via, receivedAt: opts.at, ...(opts.reason ? { reason: opts.reason } : {}) },
    shadow: null,
  };
  return JSON.stringify(msg);
}

/** The retained birth a (fake) device publishes on <prefix>/<device>/status: online, in `groups`. */
export function birthJson(device: string, groups: string[]): string {
  const msg: BirthMessage = {
    status: 'online',
    device,
    groups,
    version: '0.0.0-test',
    startedAt: '2024-05-01T12:00:00.000Z',
    extractor: { id: 'mobilenet_v2_140', fingerprint: createHash('sha256').update('m').digest('hex') },
    head: { id: 'kitchen', version: 1, sha256: '0'.repeat(64) },
    backend: { name: 'wasm', simd: true, threads: 1 },
  };
  return JSON.stringify(msg);
}

/** The retained last will a (fake) device leaves on <prefix>/<device>/status. */
export function offlineJson(device: string, reason: 'connection lost' | 'shutdown' = 'connection lost'): string {
  return JSON.stringify({ status: 'offline', device, reason });
}
