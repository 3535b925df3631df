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
 * The MQTT connection is injectable (`connect`), so tests can run it against an in-process broker.
 */
import * as fs from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { decodeHead, DEFAULT_DECODE_LIMITS, type HeadManifest } from '../protocol/head/format';
import {
  correlationIdOf,
  deviceHeadStateTopic,
  deviceHeadTopic,
  fleetHeadTopic,
  groupHeadTopic,
  type HeadStateMessage,
  type HeadUpdateStatus,
} from '../protocol/topics';
import { describeMqttError } from '../mqtt/mqttjs-client';
import { EdgeheadError } from '../base/errors';
import { sha256Hex } from '../base/hash';

export const DEFAULT_PUSH_TIMEOUT_MS = 10_000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** Statuses that count as success for a push. */
export const OK_STATUSES: readonly HeadUpdateStatus[] = ['applied', 'duplicate', 'shadow'];

export type PushTarget = { kind: 'device'; device: string } | { kind: 'group'; group: string } | { kind: 'all' };

export type MqttConnect = (url: string, options: IClientOptions) => MqttClient;

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
  /** From the publish. Default 10 s. */
  timeoutMs?: number;
  connectTimeoutMs?: number;
  /** Largest payload accepted by the local validation (the devices' head.maxBytes). */
  maxBytes?: number;
  username?: string;
  password?: string;
  /** PEM files for mqtts:// / wss://. */
  tls?: { ca?: string; cert?: string; key?: string };
  /** Default: mqtt.connect (MQTT.js). */
  connect?: MqttConnect;
  /** Default: Date.now. */
  now?: () => number;
  /** Called once the broker acknowledged the publish. */
  onPublished?: (info: { topic: string; retained: boolean; correlationId: string }) => void;
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
  /** Devices that had to answer: the named device, or waitAcks; null when whoever answers is reported. */
  expected: number | null;
  /** Sorted by device. Includes a "no answer" row for a named device that did not answer. */
  answers: DeviceAnswer[];
  /** Devices whose retained (old) state already carried this correlation id but that did not answer this push. */
  earlier: { device: string; status: string; receivedAt: string | null }[];
  /** State messages not counted: old states, other correlation ids, unreadable JSON, other devices. */
  ignored: number;
  timedOut: boolean;
  elapsedMs: number;
}

/** Checks a device id or group name can be one topic level. */
export function checkTopicLevel(value: string, what: string): void {
  if (value.length === 0 || /[/#+]/.test(value) || value.includes('\u0000')) {
    throw new EdgeheadError('BAD_ARGS', `${what} must be one topic level without "/", "#" or "+" (got ${JSON.stringify(value)})`);
  }
}

export function pushTopic(prefix: string, target: PushTarget): string {
  switch (target.kind) {
    case 'device':
      return deviceHeadTopic(prefix, target.device);
    case 'group':
      return groupHeadTopic(prefix, target.group);
    case 'all':
      return fleetHeadTopic(prefix);
  }
}

/** Validates the payload as a device would (format, schema, checksum); throws BAD_HEAD. */
export function validatePayload(payload: Uint8Array, maxBytes = DEFAULT_DECODE_LIMITS.maxBytes): HeadManifest {
  try {
    return decodeHead(payload, { maxBytes }).manifest;
  } catch (e) {
    if (e instanceof EdgeheadError) throw new EdgeheadError('BAD_HEAD', `refusing to push a broken head: ${e.message}`, { hint: e.hint });
    throw e;
  }
}

export async function pushHead(opts: PushOptions): Promise<PushResult> {
  const manifest = validatePayload(opts.payload, opts.maxBytes);
  if (opts.prefix.length === 0 || /[#+]/.test(opts.prefix) || opts.prefix.startsWith('/') || opts.prefix.endsWith('/')) {
    throw new EdgeheadError('BAD_ARGS', `the topic prefix must be non-empty, without "#" or "+" and without a leading or trailing "/" (got ${JSON.stringify(opts.prefix)})`);
  }
  if (opts.target.kind === 'device') checkTopicLevel(opts.target.device, 'the device id');
  if (opts.target.kind === 'group') checkTopicLevel(opts.target.group, 'the group name');
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
  const topic = pushTopic(opts.prefix, opts.target);
  const retained = opts.retain ?? opts.target.kind !== 'device';
  const stateTopic = opts.target.kind === 'device' ? deviceHeadStateTopic(opts.prefix, opts.target.device) : deviceHeadStateTopic(opts.prefix, '+');
  const named = opts.target.kind === 'device' ? opts.target.device : undefined;
  const expected = named !== undefined ? 1 : (opts.waitAcks ?? null);

  const client = await connectClient(opts);
  const answers = new Map<string, DeviceAnswer>();
  const earlier = new Map<string, { device: string; status: string; receivedAt: string | null }>();
  let ignored = 0;
  let publishedAt: number | undefined;
  let finish: (() => void) | undefined;
  const enough = () => (expected !== null && answers.size >= expected) || (named !== undefined && answers.has(named));

  const onMessage = (t: string, payload: Buffer, packet: { retain?: boolean }) => {
    const device = t.slice(opts.prefix.length + 1, -'/head/state'.length);
    const state = parseState(payload);
    const cid = state?.lastUpdate.correlationId;
    if (state === undefined || cid !== correlationId || (named !== undefined && device !== named) || answers.has(device)) {
      ignored++;
      return;
    }
    if (packet.retain === true || publishedAt === undefined) {
      // Published before we subscribed: not an answer to this push, but the device has seen these bytes before.
      earlier.set(device, { device, status: String(state.lastUpdate.status), receivedAt: typeof state.lastUpdate.receivedAt === 'string' ? state.lastUpdate.receivedAt : null });
      ignored++;
      return;
    }
    const status = state.lastUpdate.status;
    const answer: DeviceAnswer = {
      device,
      status,
      reason: typeof state.lastUpdate.reason === 'string' ? state.lastUpdate.reason : null,
      latencyMs: Math.max(0, now() - publishedAt),
      deviceLatencyMs: typeof state.lastUpdate.latencyMs === 'number' ? state.lastUpdate.latencyMs : null,
      ok: OK_STATUSES.includes(status),
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
    client.on('message', onMessage);
    client.on('close', onClose);
    await Promise.race([client.subscribeAsync(stateTopic, { qos: 1 }), lostSignal]);
    publishedAt = now();
    try {
      const body = Buffer.from(opts.payload.buffer, opts.payload.byteOffset, opts.payload.byteLength);
      await Promise.race([client.publishAsync(topic, body, { qos: 1, retain: retained }), lostSignal]);
    } catch (e) {
      if (e instanceof EdgeheadError) throw e;
      throw new EdgeheadError('MQTT', `publishing to ${topic} failed: ${(e as Error).message}`);
    }
    opts.onPublished?.({ topic, retained, correlationId });
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
    if (named !== undefined && !answers.has(named)) {
      answers.set(named, { device: named, status: 'no answer', reason: null, latencyMs: null, deviceLatencyMs: null, ok: false });
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
      answers: rows,
      earlier: [...earlier.values()].filter((e) => !answers.has(e.device) || answers.get(e.device)!.status === 'no answer'),
      ignored,
      timedOut,
      elapsedMs,
    };
  } finally {
    client.off('message', onMessage);
    client.off('close', onClose);
    await endClient(client);
  }
}

function parseState(payload: Buffer): HeadStateMessage | undefined {
  let v: unknown;
  try {
    v = JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
  if (v === null || typeof v !== 'object') return undefined;
  const lu = (v as { lastUpdate?: unknown }).lastUpdate;
  if (lu === null || typeof lu !== 'object' || typeof (lu as { status?: unknown }).status !== 'string') return undefined;
  return v as HeadStateMessage;
}

function readPem(file: string | undefined, flag: string): Buffer | undefined {
  if (file === undefined) return undefined;
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new EdgeheadError('BAD_ARGS', `--${flag}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

function clientOptions(opts: PushOptions): IClientOptions {
  const options: IClientOptions = {
    clientId: `edgehead-push-${Math.random().toString(16).slice(2, 10)}`,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    protocolVersion: 4,
    username: opts.username,
    password: opts.password,
  };
  const tls = opts.tls ?? {};
  if (tls.ca !== undefined || tls.cert !== undefined || tls.key !== undefined) {
    if (!/^(mqtts|wss):/.test(opts.broker)) {
      throw new EdgeheadError('BAD_ARGS', `--ca/--cert/--key need an mqtts:// or wss:// broker URL (got ${opts.broker})`);
    }
    Object.assign(options, { ca: readPem(tls.ca, 'ca'), cert: readPem(tls.cert, 'cert'), key: readPem(tls.key, 'key'), rejectUnauthorized: true });
  }
  return options;
}

/** One line an operator can act on. */
export function describeConnectError(err: Error & { code?: string | number }, url: string): string {
  const code = typeof err.code === 'string' ? err.code : '';
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ALTNAME|EPROTO/i.test(code) || /certificate|ssl|tls/i.test(err.message)) {
    return `TLS error talking to ${url}: ${err.message} (check --ca / --cert / --key)`;
  }
  return `cannot connect: ${describeMqttError(err, url)}`;
}

async function connectClient(opts: PushOptions): Promise<MqttClient> {
  if (!/^(mqtt|mqtts|ws|wss):\/\//.test(opts.broker)) {
    throw new EdgeheadError('BAD_ARGS', `--broker must start with mqtt://, mqtts://, ws:// or wss:// (got ${JSON.stringify(opts.broker)})`);
  }
  const options = clientOptions(opts);
  const connect = opts.connect ?? ((url, o) => mqtt.connect(url, o));
  let client: MqttClient;
  try {
    client = connect(opts.broker, options);
  } catch (e) {
    throw new EdgeheadError('MQTT', describeConnectError(e as Error, opts.broker));
  }
  await new Promise<void>((resolve, reject) => {
    let lastError: Error | undefined;
    const cleanup = () => {
      client.off('connect', onConnect);
      client.off('error', onError);
      client.off('close', onClose);
    };
    const onConnect = () => {
      cleanup();
      resolve();
    };
    const onError = (e: Error) => {
      lastError = e;
    };
    const onClose = () => {
      cleanup();
      const why = lastError ?? new Error(`no answer within ${options.connectTimeout} ms`);
      reject(new EdgeheadError('MQTT', describeConnectError(why, opts.broker)));
    };
    client.on('connect', onConnect);
    client.on('error', onError);
    client.on('close', onClose);
  }).catch(async (e: unknown) => {
    await endClient(client, true);
    throw e;
  });
  return client;
}

async function endClient(client: MqttClient, force = false): Promise<void> {
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => {
      client.end(true);
      resolve();
    }, 2000);
    client.end(force, {}, () => {
      clearTimeout(t);
      resolve();
    });
  });
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
  for (const e of r.earlier) {
    out.push(`note: ${e.device} did not answer, but its retained state shows it processed this payload before (${e.status}${e.receivedAt ? ` at ${e.receivedAt}` : ''})`);
  }
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
  const tail = r.expected === null && r.retained ? '; retained: devices that connect later get it too' : '';
  return `${r.ok ? 'OK' : 'FAILED'}: ${who}${when}${parts ? ` (${parts})` : ''}${tail}`;
}
