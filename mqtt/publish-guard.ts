/**
 * A size limit on incoming PUBLISH payloads, enforced on the byte stream before MQTT.js sees it. MQTT.js (through
 * mqtt-packet's parser) buffers every packet whole before anything can look at it: one 50 MB publish on a
 * subscribed topic took the agent from 216 to 785 MB RSS for good. mqtt-packet has no size limit, and MQTT.js's
 * `maximumPacketSize` is MQTT 5 only and checked after the packet was parsed (the broker honours it, but only if it
 * supports MQTT 5 and the client speaks it; this adapter speaks 3.1.1). So this transform sits between the socket and
 * MQTT.js: it reads each packet's fixed header and, for a PUBLISH, the topic; a payload over that topic's limit is
 * skipped as its bytes go by (never buffered), acknowledged here (QoS 1: PUBACK, so the broker does not send it
 * again), and reported through `onRefused`. Every other byte passes through unchanged.
 *
 * QoS 2 cannot be acknowledged by halves here: such a PUBLISH is handed to MQTT.js with an empty payload (it runs
 * the PUBREC/PUBREL/PUBCOMP exchange) and its packet id is reported, so the client can drop the empty message.
 * Assumes MQTT 3.1.1 framing (no properties), which is what mqttjs-client.ts speaks.
 */
import { Transform, type TransformCallback } from 'node:stream';

export interface RefusedPublish {
  topic: string;
  /** Payload size in bytes, as the packet declared it. */
  bytes: number;
  /** The topic's limit. */
  limit: number;
  retained: boolean;
  qos: number;
  /** Set for QoS 2: MQTT.js delivers this packet id with an empty payload, which is not a real message. */
  messageId?: number;
}

export interface PublishGuardOptions {
  /** Largest payload accepted on a topic. */
  maxPayloadBytes: (topic: string) => number;
  /** Writes a packet back to the broker (the PUBACK of a refused QoS 1 publish). */
  reply: (packet: Buffer) => void;
  onRefused: (refused: RefusedPublish) => void;
}

const PUBLISH = 3;

type State =
  | { kind: 'header' } // reading the fixed header (into `held`)
  | { kind: 'topic'; first: number; remaining: number; headerBytes: number } // reading a PUBLISH's variable header
  | { kind: 'pass'; left: number } // forwarding the rest of a packet
  | { kind: 'skip'; left: number }; // discarding a refused payload

export class PublishGuard extends Transform {
  private state: State = { kind: 'header' };
  /** Bytes of the current packet read but not yet forwarded: at most the fixed header and a PUBLISH's variable
   * header (2 + 65535 + 2 bytes). */
  private held = Buffer.alloc(0);

  constructor(private readonly opts: PublishGuardOptions) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      this.consume(chunk);
      done();
    } catch (e) {
      done(e as Error);
    }
  }

  private consume(chunk: Buffer): void {
    let at = 0;
    for (;;) {
      const s = this.state;
      if (s.kind === 'pass' || s.kind === 'skip') {
        if (at >= chunk.length) return;
        const n = Math.min(s.left, chunk.length - at);
        if (s.kind === 'pass') this.push(chunk.subarray(at, at + n));
        at += n;
        s.left -= n;
        if (s.left === 0) this.state = { kind: 'header' };
        continue;
      }
      // header or topic: collect bytes until the part is complete (both small and bounded); the need can grow as
      // bytes arrive (length bytes with the continuation bit, then the topic length), so it is asked again each time
      const want = s.kind === 'header' ? this.headerNeed() : this.topicNeed(s);
      if (this.held.length >= want) {
        if (s.kind === 'header') this.onHeader();
        else this.onTopic(s);
        continue;
      }
      if (at >= chunk.length) return;
      const n = Math.min(want - this.held.length, chunk.length - at);
      this.held = Buffer.concat([this.held, chunk.subarray(at, at + n)]);
      at += n;
    }
  }

  /** Bytes of the fixed header known to be needed so far: the type byte, then length bytes while the continuation
   * bit is set (at most 4). */
  private headerNeed(): number {
    let n = 2;
    while (n <= this.held.length && n < 5 && (this.held[n - 1]! & 0x80) !== 0) n++;
    return n;
  }

  private onHeader(): void {
    const h = this.held;
    const last = h[h.length - 1]!;
    if (last & 0x80) throw new Error('malformed MQTT packet: remaining length longer than 4 bytes');
    let remaining = 0;
    for (let i = h.length - 1; i >= 1; i--) remaining = remaining * 128 + (h[i]! & 0x7f);
    const first = h[0]!;
    if (first >> 4 === PUBLISH && remaining > 0) {
      this.state = { kind: 'topic', first, remaining, headerBytes: h.length };
      return;
    }
    this.forwardHeld();
    this.state = remaining > 0 ? { kind: 'pass', left: remaining } : { kind: 'header' };
  }

  /** Bytes needed for the fixed header plus the variable header: topic length, topic, packet id for QoS > 0. */
  private topicNeed(s: Extract<State, { kind: 'topic' }>): number {
    const base = s.headerBytes + 2;
    if (this.held.length < base) return Math.min(base, s.headerBytes + s.remaining);
    const topicLength = this.held.readUInt16BE(s.headerBytes);
    const qos = (s.first >> 1) & 3;
    return Math.min(base + topicLength + (qos > 0 ? 2 : 0), s.headerBytes + s.remaining);
  }

  private onTopic(s: Extract<State, { kind: 'topic' }>): void {
    const varHeader = this.held.length - s.headerBytes;
    const payload = s.remaining - varHeader;
    if (varHeader < 2 || payload < 0) {
      // too short to be a valid PUBLISH: let MQTT.js's parser report it
      this.forwardHeld();
      this.state = payload > 0 ? { kind: 'pass', left: payload } : { kind: 'header' };
      return;
    }
    const topicLength = this.held.readUInt16BE(s.headerBytes);
    const topic = this.held.toString('utf8', s.headerBytes + 2, s.headerBytes + 2 + topicLength);
    const limit = this.opts.maxPayloadBytes(topic);
    if (payload <= limit) {
      this.forwardHeld();
      this.state = payload > 0 ? { kind: 'pass', left: payload } : { kind: 'header' };
      return;
    }
    const qos = (s.first >> 1) & 3;
    const messageId = qos > 0 ? this.held.readUInt16BE(s.headerBytes + 2 + topicLength) : undefined;
    const retained = (s.first & 1) === 1;
    if (qos === 2) {
      // the same packet without its payload, for MQTT.js to acknowledge
      this.push(Buffer.concat([Buffer.from([s.first]), encodeLength(varHeader), this.held.subarray(s.headerBytes)]));
    } else if (qos === 1) {
      this.opts.reply(Buffer.from([0x40, 0x02, messageId! >> 8, messageId! & 0xff]));
    }
    this.held = Buffer.alloc(0);
    this.state = { kind: 'skip', left: payload };
    this.opts.onRefused({ topic, bytes: payload, limit, retained, qos, ...(qos === 2 ? { messageId } : {}) });
  }

  private forwardHeld(): void {
    if (this.held.length) this.push(this.held);
    this.held = Buffer.alloc(0);
  }
}

/** MQTT's variable-length "remaining length" encoding. */
export function encodeLength(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}
