/**
 * Home Assistant discovery on the device: publishes the retained entity configs (protocol/home-assistant.ts) on
 * every connection, again when the active head changes (the label sensor's options are its classes) and when Home
 * Assistant announces itself `online` on <haPrefix>/status (it may have lost its retained state). With
 * homeassistant.enabled false it publishes empty retained payloads on the same topics instead, which removes the
 * entities this device created: the topics follow from the device id, so nothing needs remembering.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describeError } from '../../base/errors';
import { createLogger } from '../../base/log';
import { type BrokerClient, RETAINED } from '../../mqtt/broker';
import {
  HA_ONLINE,
  type HaDevice,
  type HaOrigin,
  haConfigTopics,
  haDiscoveryMessages,
  haStatusTopic,
} from '../../protocol/home-assistant';
import type { DeviceTopics } from '../../protocol/topics';

const log = createLogger('homeassistant');

export interface HomeAssistantDeps {
  broker: BrokerClient;
  enabled: boolean;
  /** Home Assistant's discovery prefix (homeassistant.prefix). */
  haPrefix: string;
  deviceId: string;
  topics: DeviceTopics;
  version: string;
  /** The active head's classes, read at every announcement. */
  classes: () => readonly string[];
  unknownLabel: string;
  /** Where the board's facts are read (tests point it elsewhere). */
  procRoot?: string;
}

/** The board: model from the device tree (Raspberry Pi and other ARM boards), revision from cpuinfo where given. */
export function boardFacts(procRoot = '/proc'): { model: string; hwVersion?: string } {
  const read = (f: string): string | undefined => {
    try {
      return fs.readFileSync(path.join(procRoot, f), 'utf8');
    } catch {
      return undefined;
    }
  };
  const model = read('device-tree/model')?.replace(/\0/g, '').trim();
  const revision = read('cpuinfo')?.match(/^Revision\s*:\s*(\S+)/m)?.[1];
  return { model: model || `${os.platform()} ${os.arch()}`, ...(revision ? { hwVersion: revision } : {}) };
}

export class HomeAssistantDiscovery {
  private readonly device: HaDevice;
  private readonly origin: HaOrigin;

  constructor(private readonly deps: HomeAssistantDeps) {
    const board = boardFacts(deps.procRoot);
    this.device = {
      identifiers: [deps.deviceId],
      name: deps.deviceId,
      manufacturer: 'edgehead',
      model: board.model,
      sw_version: deps.version,
      ...(board.hwVersion ? { hw_version: board.hwVersion } : {}),
    };
    this.origin = { name: 'edgehead', sw_version: deps.version };
  }

  /** The topic to route to onHaStatus, when discovery is on (else nothing to listen to). */
  get statusTopic(): string | undefined {
    return this.deps.enabled ? haStatusTopic(this.deps.haPrefix) : undefined;
  }

  /** Announces (or clears) on every connection. */
  start(): void {
    this.deps.broker.onConnect(() => void this.announce());
  }

  /** Publishes every entity config, or with discovery off the empty payloads that remove them. */
  async announce(): Promise<void> {
    if (!this.deps.broker.connected) return; // announced again on the next connection
    const messages = this.deps.enabled
      ? haDiscoveryMessages({
          haPrefix: this.deps.haPrefix,
          deviceId: this.deps.deviceId,
          topics: this.deps.topics,
          device: this.device,
          origin: this.origin,
          classes: this.deps.classes(),
          unknownLabel: this.deps.unknownLabel,
        }).map((m) => ({ topic: m.topic, payload: JSON.stringify(m.config) }))
      : haConfigTopics(this.deps.haPrefix, this.deps.deviceId).map((topic) => ({ topic, payload: '' }));
    const results = await Promise.allSettled(messages.map((m) => this.deps.broker.publish(m.topic, m.payload, RETAINED)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) log.warn(`discovery ${this.deps.enabled ? 'configs' : 'clearing'} not published`, { error: describeError(failed.reason) });
  }

  /** A message on Home Assistant's status topic: `online` means HA (re)started and wants the configs again. */
  async onHaStatus(payload: Uint8Array): Promise<void> {
    if (!this.deps.enabled || Buffer.from(payload).toString('utf8').trim() !== HA_ONLINE) return;
    await this.announce();
  }

  /** The active head changed: its classes are the label sensor's options. */
  headChanged(): Promise<void> {
    return this.deps.enabled ? this.announce() : Promise.resolve();
  }
}
