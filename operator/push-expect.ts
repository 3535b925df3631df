/**
 * Which devices a group or fleet head push should hear from: read from the devices' retained status messages
 * (<prefix>/<device>/status: the birth carries `groups`, the last will / shutdown says offline).
 *
 * A status delivered with the retain flag was on the broker before our subscription: an online one in the target
 * scope makes the device expected (even when it arrives after the publish: a broker may still be sending the retained
 * burst). A live status (no retain flag) is a change during the push: a device going offline will not answer (its
 * row says so, and the push need not wait for it); a device coming online is not expected, but it gets the retained
 * head and its answer is reported.
 */
import { BirthMessageSchema, OfflineMessageSchema } from '../protocol/messages';
import { STATE_MAX_BYTES } from '../protocol/patterns';
import type { HeadScope } from '../protocol/topics';
import { parseJsonPayload } from '../protocol/validate';

export interface OfflineDevice {
  device: string;
  /** "connection lost" or "shutdown"; null for an unreadable status. */
  reason: string | null;
  at: string | null;
}

export class ExpectedDevices {
  private readonly expectedSet = new Set<string>();
  /** Expected devices that went offline during the push, with the reason. */
  private readonly wentOffline = new Map<string, string>();
  private readonly offlineInScope = new Map<string, OfflineDevice>();
  /** Devices with a retained status, in any group. */
  private readonly known = new Set<string>();

  constructor(readonly scope: Exclude<HeadScope, { kind: 'device' }>) {}

  /** A message on <prefix>/<device>/status. Returns true when it made a device expected. */
  handle(device: string, payload: Buffer, retained: boolean): boolean {
    const birth = parseJsonPayload(BirthMessageSchema, payload, 'status', STATE_MAX_BYTES);
    if (birth.ok && birth.value.device !== device) return false;
    if (retained) this.known.add(device);
    if (birth.ok) {
      this.wentOffline.delete(device);
      if (!retained || !this.inScope(birth.value.groups)) return false;
      this.offlineInScope.delete(device);
      this.expectedSet.add(device);
      return true;
    }
    const off = parseJsonPayload(OfflineMessageSchema, payload, 'status', STATE_MAX_BYTES);
    const reason = off.ok ? off.value.reason : null;
    if (this.expectedSet.has(device) && !retained) {
      this.wentOffline.set(device, reason ?? 'status cleared');
    } else if (retained && !this.expectedSet.has(device) && this.scope.kind === 'all') {
      // An offline device's groups are unknown (the will carries none): listed for the fleet only.
      this.offlineInScope.set(device, { device, reason, at: off.ok ? (off.value.at ?? null) : null });
    }
    return false;
  }

  private inScope(groups: readonly string[]): boolean {
    return this.scope.kind === 'all' || groups.includes(this.scope.group);
  }

  /** Sorted. */
  expected(): string[] {
    return [...this.expectedSet].sort();
  }

  has(device: string): boolean {
    return this.expectedSet.has(device);
  }

  /** Why an expected device will not answer (it went offline during the push), or undefined. */
  offlineReason(device: string): string | undefined {
    return this.wentOffline.get(device);
  }

  /** Offline devices of the fleet (--all only: an offline status carries no groups). */
  offline(): OfflineDevice[] {
    return [...this.offlineInScope.values()].sort((a, b) => (a.device < b.device ? -1 : 1));
  }

  /** How many devices have a retained status under the prefix (any group, online or not). */
  knownCount(): number {
    return this.known.size;
  }
}
