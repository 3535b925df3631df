/**
 * Pushing a head to devices over MQTT and collecting their answers (the library behind `edgehead head push`).
 *
 *   1. validate the payload locally (decodeHead): a broken file is refused before any connection is made;
 *   2. connect, subscribe to the devices' head/state topics and wait for the SUBACK;
 *   3. publish the payload (QoS 1; retained for group and fleet topics unless told otherwise);
 *   4. per device, take the first head/state whose lastUpdate.correlationId is the payload's correlation id
 *      (first 16 hex of sha256(payload)), received live: a state delivered with the retain flag was published
 *      before our subscription, so it cannot answer this push (an old state; if it carries our correlation id the
 *      device processed these exact bytes earlier, which is reported as `earlier`, not counted as an answer);
 *   5. stop when the named device answered, when `waitAcks` devices answered, or at the timeout.
 *
 * A group or fleet push without `waitAcks` expects the devices whose retained status says they are online and in
 * the target (push-expect.ts): it subscribes to <prefix>/+/status first, and the SUBACK of the head/state
 * subscription that follows marks the end of the retained burst (a broker sends a subscription's retained messages
 * before it handles the client's next packet). With no device to expect, nothing is published (a typo in a group
 * name must not leave a retained head on a topic no device reads). It stops when every expected device answered (or
 * went offline); each one that did not is a "no answer" row.
 *
 * The MQTT connection is injectable (`connect`), so tests can run it against an in-process broker.
 */
import { EdgeheadError } from '../base/errors';
import { sha256Hex } from '../base/hash';
import { defaultConfig } from '../config/defaults';
import type { BrokerClient } from '../mqtt/broker';
import { type MqttConnect, MqttJsClient, type MqttSettings } from '../mqtt/mqttjs-client';
import { decodeHead, type HeadManifest } from '../protocol/head/format';
import { ACCEPTED_STATUSES, correlationIdOf, HeadStateMessageSchema, type HeadUpdateStatus } from '../protocol/messages';
import { DEVICE_ID_RE, DEVICE_ID_RULE, HEAD_MAX_BYTES, ID_RE, ID_RULE, MQTT_URL_RE, MQTT_URL_RULE, STATE_MAX_BYTES, TLS_URL_RE, TOPIC_PREFIX_RE, TOPIC_PREFIX_RULE } from '../protocol/patterns';
import { everyDeviceTopic, deviceTopic, type HeadScope, headSetTopic, parseTopic } from '../protocol/topics';
import { parseJsonPayload } from '../protocol/validate';
import { ExpectedDevices, type OfflineDevice } from './push-expect';

export type { MqttConnect };
export const DEFAULT_PUSH_TIMEOUT_MS = 30_000;

export type PushTarget = HeadScope;

export interface PushOptions {
  /** Broker URL: mqtt://, mqtts://, ws://, wss://. */
  broker: string;
  target: PushTarget;
  /** The head file's bytes, published as they are. */
  payload: Uint8Array;
  /** Topic prefix (mqtt.topicPrefix of the devices). */
  prefix: string;
  /** Default: false for a device, true for a group or the fleet (devices that connect later still get it). */
  retain?: boolean;
  /** Group/fleet: stop as soon as this many devices answered; fewer by the timeout is a failure. */
  waitAcks?: number;
  /** From the publish. Default 30 s. */
  timeoutMs?: number;
  connectTimeoutMs?: number;
  /** Largest payload accepted by the local validation (the devices' head.maxBytes). */
  maxBytes?: number;
  username?: string;
  password?: string;
  /** PEM files for mqtts:// / wss://. */
  tls?: { ca?: string; cert?: string; key?: string };
  /** Default: MQTT.js's connect (tests connect through in-memory streams). */
  connect?: MqttConnect;
  /** Default: Date.now. */
  now?: () => number;
  /** Called once the broker acknowledged the publish. */
  onPublished?: (info: { topic: string; retained: boolean; correlationId: string; expected: string[] | null }) => void;
  /** Called for each counted answer, as it arrives. */
  onAnswer?: (answer: DeviceAnswer) => void;
}

export interface DeviceAnswer {
  device: string;
  status: HeadUpdateStatus | 'no answer';
  reason: string | null;
  /** Publish to receipt of the state, ms; null for "no answer". */
  latencyMs: number | null;
  /** The device's own receipt-to-applied time, when it reports one. */
  deviceLatencyMs: number | null;
  ok: boolean;
}

export interface PushResult {
  ok: boolean;
  topic: string;
  retained: boolean;
  qos: 1;
  target: PushTarget;
  head: { id: string; version: number; signedBy: string | null; testVectors: number };
  bytes: number;
  /** sha256 of the payload bytes. */
  payloadSha256: string;
  correlationId: string;
  /** How many devices had to answer: the named device, waitAcks, or the expected devices. */
  expected: number | null;
  /** Group/fleet push without waitAcks: the devices whose retained status said online and in the target (sorted). */
  expectedDevices: string[] | null;
  /** Fleet push: devices whose retained status says offline (not expected; a retained head reaches them later). */
  offline: OfflineDevice[];
  /** Sorted by device. Includes a "no answer" row for a named device that did not answer. */
  answers: DeviceAnswer[];
  /** Devices whose retained (old) state already carried this correlation id but that did not answer this push. */
  earlier: { device: string; status: string; receivedAt: string | null }[];
  /** State messages not counted: old states, other correlation ids, unreadable JSON, other devices. */
  ignored: number;
  timedOut: boolean;
  elapsedMs: number;
}

/** Checks a device id or group name is one the devices accept (protocol/patterns.ts). */
export function checkId(value: string, what: string, rule: { re: RegExp; text: string } = { re: ID_RE, text: ID_RULE }): void {
  if (!rule.re.test(value)) throw new EdgeheadError('BAD_ARGS', `${what} ${rule.text} (got ${JSON.stringify(value.slice(0, 80))})`);
}

/** Validates the payload as a device would (format, schema, checksum); throws BAD_HEAD. */
export function validatePayload(payload: Uint8Array, maxBytes = HEAD_MAX_BYTES): HeadManifest {
  try {
    return decodeHead(payload, { maxBytes }).manifest;
  } catch (e) {
    if (e instanceof EdgeheadError) throw new EdgeheadError('BAD_HEAD', `refusing to push a broken head: ${e.message}`, { hint: e.hint });
    throw e;
  }
}

export async function pushHead(opts: PushOptions): Promise<PushResult> {
  const manifest = validatePayload(opts.payload, opts.maxBytes);
  if (!TOPIC_PREFIX_RE.test(opts.prefix)) throw new EdgeheadError('BAD_ARGS', `the topic prefix ${TOPIC_PREFIX_RULE} (got ${JSON.stringify(opts.prefix)})`);
  if (opts.target.kind === 'device') checkId(opts.target.device, 'the device id', { re: DEVICE_ID_RE, text: DEVICE_ID_RULE });
  if (opts.target.kind === 'group') checkId(opts.target.group, 'the group name');
  if (opts.waitAcks !== undefined && opts.target.kind === 'device') {
    throw new EdgeheadError('BAD_ARGS', 'waitAcks applies to a group or the fleet, not to a single device');
  }
  if (opts.waitAcks !== undefined && !(Number.isSafeInteger(opts.waitAcks) && opts.waitAcks >= 1)) {
    throw new EdgeheadError('BAD_ARGS', `waitAcks must be an integer >= 1 (got ${opts.waitAcks})`);
  }
  const now = opts.now ?? Date.now;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_PUSH_TIMEOUT_MS;
  const payloadSha256 = sha256Hex(opts.payload);
  const correlationId = correlationIdOf(payloadSha256);
  const topic = headSetTopic(opts.prefix, opts.target);
  const retained = opts.retain ?? opts.target.kind !== 'device';
  const stateTopic = opts.target.kind === 'device' ? deviceTopic(opts.prefix, opts.target.device, 'head/state') : everyDeviceTopic(opts.prefix, 'head/state');
  const named = opts.target.kind === 'device' ? opts.target.device : undefined;
  const expect = opts.target.kind !== 'device' && opts.waitAcks === undefined ? new ExpectedDevices(opts.target) : undefined;
  let expected = named !== undefined ? 1 : (opts.waitAcks ?? null);

  const client = await connectClient(opts);
  const answers = new Map<string, DeviceAnswer>();
  const earlier = new Map<string, { device: string; status: string; receivedAt: string | null }>();
  let ignored = 0;
  let publishedAt: number | undefined;
  let finish: (() => void) | undefined;
  const enough = () =>
    expect !== undefined
      ? publishedAt !== undefined && expect.expected().every((d) => answers.has(d) || expect.offlineReason(d) !== undefined)
      : (expected !== null && answers.size >= expected) || (named !== undefined && answers.has(named));

  const onMessage = (t: string, payload: Buffer, retainedMsg: boolean) => {
    const parsed = parseTopic(opts.prefix, t);
    if (parsed?.kind === 'status') {
      if (expect === undefined) return;
      if (expect.handle(parsed.device, payload, retainedMsg) && publishedAt !== undefined) expected = expect.expected().length;
      if (enough()) finish?.();
      return;
    }
    const device = parsed?.kind === 'head/state' ? parsed.device : undefined;
    const state = parseJsonPayload(HeadStateMessageSchema, payload, 'head/state', STATE_MAX_BYTES);
    if (device === undefined || !state.ok || state.value.lastUpdate.correlationId !== correlationId || (named !== undefined && device !== named) || answers.has(device)) {
      ignored++;
      return;
    }
    const lastUpdate = state.value.lastUpdate;
    if (retainedMsg || publishedAt === undefined) {
      // Published before we subscribed: not an answer to this push, but the device has seen these bytes before.
      earlier.set(device, { device, status: lastUpdate.status, receivedAt: lastUpdate.receivedAt });
      ignored++;
      return;
    }
    const status = lastUpdate.status;
    const answer: DeviceAnswer = {
      device,
      status,
      reason: lastUpdate.reason ?? null,
      latencyMs: Math.max(0, now() - publishedAt),
      deviceLatencyMs: lastUpdate.latencyMs ?? null,
      ok: ACCEPTED_STATUSES.includes(status),
    };
    answers.set(device, answer);
    opts.onAnswer?.(answer);
    if (enough()) finish?.();
  };

  let lost = false;
  let onLost: (() => void) | undefined;
  const lostSignal = new Promise<never>((_, reject) => {
    onLost = () => reject(new EdgeheadError('MQTT', `lost the connection to ${opts.broker} (${answers.size} answered so far)`));
  });
  lostSignal.catch(() => undefined);
  const onClose = () => {
    lost = true;
    onLost?.();
    finish?.();
  };
  try {
    client.onMessage(onMessage);
    client.onDisconnect(onClose);
    if (expect !== undefined) await Promise.race([client.subscribe([everyDeviceTopic(opts.prefix, 'status')]), lostSignal]);
    await Promise.race([client.subscribe([stateTopic]), lostSignal]);
    if (expect !== undefined) {
      if (expect.expected().length === 0) throw noDeviceError(opts.prefix, expect.scope, expect.knownCount());
      expected = expect.expected().length;
    }
    publishedAt = now();
    await Promise.race([client.publish(topic, opts.payload, { qos: 1, retain: retained }), lostSignal]);
    opts.onPublished?.({ topic, retained, correlationId, expected: expect?.expected() ?? null });
    let timedOut = false;
    if (!enough() && !lost) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          timedOut = true;
          resolve();
        }, Math.max(0, timeoutMs - (now() - publishedAt!)));
        finish = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    if (lost && !enough() && !timedOut) await lostSignal;
    const elapsedMs = now() - publishedAt;
    const mustAnswer = named !== undefined ? [named] : (expect?.expected() ?? []);
    for (const device of mustAnswer) {
      if (answers.has(device)) continue;
      const off = expect?.offlineReason(device);
      answers.set(device, { device, status: 'no answer', reason: off === undefined ? null : `went offline (${off})`, latencyMs: null, deviceLatencyMs: null, ok: false });
    }
    const rows = [...answers.values()].sort((a, b) => (a.device < b.device ? -1 : a.device > b.device ? 1 : 0));
    const answered = rows.filter((r) => r.status !== 'no answer').length;
    const ok = rows.every((r) => r.ok) && (expected === null || answered >= expected);
    return {
      ok,
      topic,
      retained,
      qos: 1,
      target: opts.target,
      head: { id: manifest.id, version: manifest.version, signedBy: manifest.signature?.keyId ?? null, testVectors: manifest.testVectors?.length ?? 0 },
      bytes: opts.payload.byteLength,
      payloadSha256,
      correlationId,
      expected,
      expectedDevices: expect?.expected() ?? null,
      offline: expect?.offline() ?? [],
      answers: rows,
      earlier: [...earlier.values()].filter((e) => !answers.has(e.device) || answers.get(e.device)!.status === 'no answer'),
      ignored,
      timedOut,
      elapsedMs,
    };
  } finally {
    onLost = undefined;
    await client.stop(undefined, 2000);
  }
}

/** The connection settings: the schema's mqtt defaults with the operator's broker, credentials and TLS files. */
export function pushSettings(opts: Pick<PushOptions, 'broker' | 'username' | 'password' | 'tls' | 'connectTimeoutMs'>): MqttSettings {
  const d = defaultConfig().mqtt;
  if (!MQTT_URL_RE.test(opts.broker)) throw new EdgeheadError('BAD_ARGS', `--broker ${MQTT_URL_RULE} (got ${JSON.stringify(opts.broker)})`);
  const tls = opts.tls ?? {};
  if ((tls.ca !== undefined || tls.cert !== undefined || tls.key !== undefined) && !TLS_URL_RE.test(opts.broker)) {
    throw new EdgeheadError('BAD_ARGS', `--ca/--cert/--key need an mqtts:// or wss:// broker URL (got ${opts.broker})`);
  }
  return {
    ...d,
    url: opts.broker,
    cleanSession: true,
    connectTimeoutMs: opts.connectTimeoutMs ?? d.connectTimeoutMs,
    username: opts.username,
    password: opts.password,
    tls: { ...d.tls, ca: tls.ca, cert: tls.cert, key: tls.key },
  };
}

function noDeviceError(prefix: string, target: Exclude<PushTarget, { kind: 'device' }>, known: number): EdgeheadError {
  const where = target.kind === 'group' ? `in group ${target.group}` : 'in the fleet';
  return new EdgeheadError('MQTT', `no device to push to: no online device ${where} has a retained status on ${prefix}/+/status (${known} device${known === 1 ? '' : 's'} under the prefix); nothing was published`, {
    hint: target.kind === 'group'
      ? 'check the group name (a device lists its groups in its status; `edgehead fleet status` shows them) and --prefix'
      : 'check --prefix and that the devices are connected to this broker (`edgehead fleet status`)',
  });
}

async function connectClient(opts: PushOptions): Promise<BrokerClient> {
  const client = new MqttJsClient({
    cfg: pushSettings(opts),
    clientId: `edgehead-push-${Math.random().toString(16).slice(2, 10)}`,
    reconnect: false,
    settingName: (k) => `--${k}`,
    connect: opts.connect,
  });
  await client.open();
  return client;
}

// ---------------------------------------------------------------------------------------------------------------
// Reporting

function targetName(t: PushTarget): string {
  return t.kind === 'device' ? `device ${t.device}` : t.kind === 'group' ? `group ${t.group}` : 'the whole fleet';
}

/** The table and summary `edgehead head push` prints. */
export function formatPushResult(r: PushResult): string {
  const rows = r.answers.map((a) => [a.device, a.status, a.reason ?? '-', a.latencyMs === null ? '-' : `${Math.round(a.latencyMs)} ms`]);
  const header = ['device', 'status', 'reason', 'latency'];
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((row) => row[i]!.length)));
  const line = (row: string[]) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  const out = [`pushed ${r.head.id} v${r.head.version} (${r.bytes} bytes, ${r.head.signedBy ? `signed by key ${r.head.signedBy}` : 'unsigned'}, correlation id ${r.correlationId}) to ${targetName(r.target)}`];
  out.push(`topic ${r.topic} (QoS 1, ${r.retained ? 'retained' : 'not retained'})`);
  out.push('');
  if (rows.length > 0) out.push(line(header), ...rows.map(line));
  else out.push('(no device answered)');
  const notes: string[] = [];
  for (const o of r.offline) {
    notes.push(`note: ${o.device} is offline${o.reason ? ` (${o.reason})` : ''}: not expected${r.retained ? '; it gets the retained head when it connects' : ''}`);
  }
  for (const e of r.earlier) {
    notes.push(`note: ${e.device} did not answer, but its retained state shows it processed this payload before (${e.status}${e.receivedAt ? ` at ${e.receivedAt}` : ''})`);
  }
  if (notes.length > 0) out.push('', ...notes);
  out.push('');
  out.push(summaryLine(r));
  return out.join('\n');
}

const STATUS_ORDER = ['applied', 'duplicate', 'shadow', 'rejected', 'no answer'];

export function summaryLine(r: PushResult): string {
  const counts = new Map<string, number>();
  for (const a of r.answers) counts.set(a.status, (counts.get(a.status) ?? 0) + 1);
  const rank = (s: string) => (STATUS_ORDER.includes(s) ? STATUS_ORDER.indexOf(s) : STATUS_ORDER.length);
  const parts = [...counts.entries()].sort((a, b) => rank(a[0]) - rank(b[0])).map(([s, n]) => `${n} ${s}`).join(', ');
  const answered = r.answers.filter((a) => a.status !== 'no answer').length;
  const secs = (r.elapsedMs / 1000).toFixed(1);
  const who = r.expected === null ? `${answered} answered` : `${answered}/${r.expected} answered`;
  const when = r.timedOut && r.expected !== null && answered < r.expected ? `, timed out after ${secs} s` : ` in ${secs} s`;
  const tail = (r.expected === null || r.expectedDevices !== null) && r.retained ? '; retained: devices that connect later get it too' : '';
  return `${r.ok ? 'OK' : 'FAILED'}: ${who}${when}${parts ? ` (${parts})` : ''}${tail}`;
}
