/**
 * Pulling collected samples from devices (the library behind `edgehead dataset pull`): for each device, ask
 * `collect-fetch` (after = the last id received) until it says more = false, write each sample into DIR/unlabeled/
 * (layout.ts; a sample already anywhere in DIR is not written again), then `collect-ack` the ids of that reply so
 * the device deletes them: a sample is deleted on the device only after it is safely on disk here. A device that
 * does not answer within the timeout (or answers with an error, e.g. collect disabled) is reported and skipped.
 *
 * Requests go on <prefix>/<device>/cmd with a fresh correlation id; the reply is the first on cmd/reply carrying it.
 * The broker is the BrokerClient seam (already connected), so tests run it against an in-process device.
 */
import { type Clock, systemClock } from '../../base/clock';
import { describeError, EdgeheadError } from '../../base/errors';
import type { BrokerClient } from '../../mqtt/broker';
import {
  type CollectFetchReply,
  CollectFetchReplySchema,
  COLLECT_ACK_MAX_IDS,
  COLLECT_REPLY_MAX_BYTES,
  type CommandArgs,
  type CommandName,
  CommandReplySchema,
  commandRequest,
} from '../../protocol/commands';
import { encodePayload } from '../../protocol/messages';
import { deviceTopic } from '../../protocol/topics';
import { parseJsonPayload, schemaErrors } from '../../protocol/validate';
import { DataFolder } from './layout';

export const DEFAULT_PULL_TIMEOUT_MS = 10_000;

export interface PullOptions {
  broker: Pick<BrokerClient, 'publish' | 'subscribe' | 'onMessage'>;
  prefix: string;
  devices: readonly string[];
  /** The data folder (DIR); samples go into DIR/unlabeled/. */
  out: string;
  /** How long one request waits for its reply. */
  timeoutMs?: number;
  /** collect-fetch maxBytes (the device's default when unset). */
  maxBytes?: number;
  clock?: Clock;
  /** Progress lines (the CLI writes them to stderr). */
  progress?: (line: string) => void;
}

export interface DevicePull {
  device: string;
  ok: boolean;
  /** Samples written into DIR/unlabeled/. */
  written: number;
  /** Of them, with a JPEG. */
  images: number;
  /** Samples received that were already in DIR (pulled before; acknowledged again). */
  known: number;
  /** Samples the device deleted after our acks. */
  deleted: number;
  error?: string;
}

/** Pulls from each device in turn; never throws for one device's failure (it is in its result). */
export async function pullSamples(o: PullOptions): Promise<DevicePull[]> {
  const folder = new DataFolder(o.out);
  const requests = new DeviceRequests(o.broker, o.prefix, o.timeoutMs ?? DEFAULT_PULL_TIMEOUT_MS, o.clock ?? systemClock);
  const results: DevicePull[] = [];
  for (const device of o.devices) {
    const r: DevicePull = { device, ok: false, written: 0, images: 0, known: 0, deleted: 0 };
    try {
      await pullDevice(device, folder, requests, o, r);
      r.ok = true;
      o.progress?.(`${device}: ${r.written} new sample${r.written === 1 ? '' : 's'} (${r.images} with images), ${r.known} already here, ${r.deleted} deleted on the device`);
    } catch (e) {
      r.error = describeError(e);
      o.progress?.(`${device}: skipped: ${r.error}`);
    }
    results.push(r);
  }
  requests.close();
  return results;
}

async function pullDevice(device: string, folder: DataFolder, requests: DeviceRequests, o: PullOptions, r: DevicePull): Promise<void> {
  let after: string | undefined;
  for (;;) {
    const args: CommandArgs<'collect-fetch'> = { ...(after ? { after } : {}), ...(o.maxBytes ? { maxBytes: o.maxBytes } : {}) };
    const data = await requests.send(device, 'collect-fetch', args);
    const errors = schemaErrors(CollectFetchReplySchema, data, 'data', 3);
    if (errors.length > 0) throw new EdgeheadError('MQTT', `${device}: unexpected collect-fetch reply: ${errors.join('; ')}`);
    const reply = data as CollectFetchReply;
    const ids: string[] = [];
    for (const sample of reply.samples) {
      if (sample.device !== device) throw new EdgeheadError('MQTT', `${device}: sent sample ${sample.id} of device ${sample.device}`);
      const b64 = sample.image ? reply.images[sample.id] : undefined;
      if (sample.image && b64 === undefined) throw new EdgeheadError('MQTT', `${device}: sample ${sample.id} came without its image`);
      if (folder.write(sample, b64 === undefined ? undefined : Buffer.from(b64, 'base64'))) {
        r.written++;
        if (b64 !== undefined) r.images++;
      } else r.known++;
      ids.push(sample.id);
    }
    for (let i = 0; i < ids.length; i += COLLECT_ACK_MAX_IDS) {
      const ack = (await requests.send(device, 'collect-ack', { ids: ids.slice(i, i + COLLECT_ACK_MAX_IDS) })) as { deleted?: unknown };
      if (typeof ack?.deleted === 'number') r.deleted += ack.deleted;
    }
    if (ids.length > 0) o.progress?.(`${device}: ${r.written + r.known} samples received${reply.more ? ', more to come' : ''}`);
    if (!reply.more) return;
    if (ids.length === 0) throw new EdgeheadError('MQTT', `${device}: collect-fetch said more = true but sent no sample`);
    after = ids.at(-1);
  }
}

/** Request/reply over <prefix>/<device>/cmd and cmd/reply, matched by correlation id. */
class DeviceRequests {
  private readonly waiting = new Map<string, { topic: string; resolve: (data: unknown) => void; reject: (e: Error) => void }>();
  private readonly subscribed = new Set<string>();
  private readonly tag = Math.random().toString(16).slice(2, 10);
  private seq = 0;
  private closed = false;

  constructor(
    private readonly broker: PullOptions['broker'],
    private readonly prefix: string,
    private readonly timeoutMs: number,
    private readonly clock: Clock,
  ) {
    broker.onMessage((topic, payload, _retained, refused) => {
      if (this.closed || !this.subscribed.has(topic)) return;
      if (refused) {
        // Skipped unread (over COLLECT_REPLY_MAX_BYTES): its id cannot be read, so every request to that device fails.
        for (const [id, w] of this.waiting) {
          if (w.topic !== topic) continue;
          this.waiting.delete(id);
          w.reject(new EdgeheadError('MQTT', `a reply of ${refused.bytes} bytes was refused (limit ${refused.limit})`));
        }
        return;
      }
      const parsed = parseJsonPayload(CommandReplySchema, payload, 'reply', COLLECT_REPLY_MAX_BYTES);
      if (!parsed.ok || parsed.value.id === null) return; // not ours to read (another tool's, or malformed)
      const w = this.waiting.get(parsed.value.id);
      if (!w) return;
      this.waiting.delete(parsed.value.id);
      if (parsed.value.ok) w.resolve(parsed.value.data);
      else w.reject(new EdgeheadError('BAD_ARGS', `${parsed.value.cmd ?? 'command'} failed on the device: ${parsed.value.error ?? 'no reason given'}`));
    });
  }

  async send<N extends CommandName>(device: string, cmd: N, args: CommandArgs<N>): Promise<unknown> {
    const replyTopic = deviceTopic(this.prefix, device, 'cmd/reply');
    if (!this.subscribed.has(replyTopic)) {
      await this.broker.subscribe([replyTopic]);
      this.subscribed.add(replyTopic);
    }
    const id = `pull-${this.tag}-${++this.seq}`;
    const answer = new Promise<unknown>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.waiting.delete(id);
        reject(new EdgeheadError('MQTT', `no answer to ${cmd} within ${this.timeoutMs / 1000} s (is the device online?)`));
      }, this.timeoutMs);
      this.waiting.set(id, {
        topic: replyTopic,
        resolve: (v) => (timer.cancel(), resolve(v)),
        reject: (e) => (timer.cancel(), reject(e)),
      });
    });
    try {
      await this.broker.publish(deviceTopic(this.prefix, device, 'cmd'), encodePayload('command', commandRequest(id, cmd, args)), { qos: 1, retain: false });
    } catch (e) {
      this.waiting.get(id)?.reject(e as Error);
    }
    return answer;
  }

  close(): void {
    this.closed = true;
    for (const w of this.waiting.values()) w.reject(new EdgeheadError('MQTT', 'closed'));
    this.waiting.clear();
  }
}

/** The summary line: totals over the devices. */
export function pullSummary(results: readonly DevicePull[], out: string): string {
  const sum = (k: 'written' | 'images' | 'known') => results.reduce((a, r) => a + r[k], 0);
  const failed = results.filter((r) => !r.ok);
  return (
    `pulled ${sum('written')} new sample${sum('written') === 1 ? '' : 's'} (${sum('images')} with images) from ${results.length - failed.length} of ${results.length} device${results.length === 1 ? '' : 's'} into ${out}/unlabeled` +
    `${sum('known') ? `; ${sum('known')} already there` : ''}${failed.length ? `; failed: ${failed.map((r) => r.device).join(', ')}` : ''}`
  );
}
