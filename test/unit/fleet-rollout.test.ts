/**
 * The rollout engine (operator/fleet/rollout.ts) against a fake fleet (the RolloutFleet seam: rows plus headState
 * and status events), the in-memory FakeBroker recording every publish, a ManualClock and a real audit log in a temp
 * folder. Head files are real: built with makeHeadFile/encodeHead, signed with signHead where a test needs it.
 * Then the `edgehead fleet rollout` CLI (cli/commands/fleet-rollout.ts) against a fake HTTP transport, fed with
 * views the engine made.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ManualClock } from '../../base/clock';
import { sha256Hex } from '../../base/hash';
import { configureLogging, logLevel } from '../../base/log';
import { parseCommand } from '../../protocol/commands';
import { encodeHead, makeHeadFile, type HeadManifest } from '../../protocol/head/format';
import { generateKeyPair, signHead } from '../../protocol/head/signature';
import { correlationIdOf, type HeadStateMessage, type HeadUpdateStatus } from '../../protocol/messages';
import { createFleetRolloutCommand, type HttpAnswer, type HttpCall, type RolloutCliIo } from '../../cli/commands/fleet-rollout';
import { AuditLog } from '../../operator/fleet/audit';
import type { DeviceRow, RolloutRequest, RolloutView } from '../../operator/fleet/model';
import { RESTART_REASON, type RolloutFleet, Rollouts } from '../../operator/fleet/rollout';
import { FakeBroker } from '../support/fake-broker';
import { rejectsWith } from '../support/assertions';
import { tmpDir } from '../support/cli';

const PREFIX = 'edgehead';
const FINGERPRINT = sha256Hex('extractor');
const T0 = Date.parse('2026-05-01T12:00:00Z');

function headBytes(opts: { version?: number; shadow?: HeadManifest['shadow']; key?: string; notAfter?: string } = {}): Uint8Array {
  let head = makeHeadFile({
    id: 'kitchen',
    version: opts.version ?? 3,
    classes: ['cat', 'dog'],
    extractor: { id: 'mobilenet_v2_1.0_224', fingerprint: FINGERPRINT },
    kernel: new Float32Array([0.5, -0.5, 1, 2, -1, 0.25]),
    bias: new Float32Array([0.1, -0.1]),
    createdAt: new Date('2026-04-01T00:00:00Z'),
    ...(opts.shadow ? { shadow: opts.shadow } : {}),
  });
  if (opts.notAfter) head = { ...head, manifest: { ...head.manifest, notAfter: opts.notAfter } };
  if (opts.key) head = signHead(head, opts.key);
  return encodeHead(head);
}

function row(device: string, groups: string[], online: boolean | null): DeviceRow {
  return {
    device, groups, online, offlineReason: null, statusSince: null, agentVersion: null, extractor: null, head: null, previousHead: null,
    lastUpdate: null, shadow: null, lastSeen: null, lastFrameTs: null, lastLabel: null, lastScore: null, latencyMs: null, fps: null,
    cpuTempC: null, rssMB: null, queueDepth: null, problems: [],
  };
}

type HeadStateListener = (device: string, msg: HeadStateMessage, retained: boolean) => void;
type StatusListener = (device: string, online: boolean, retained: boolean) => void;

/** The RolloutFleet seam: rows set by the test, events fired by the test. */
class FakeFleet implements RolloutFleet {
  readonly devices = new Map<string, DeviceRow>();
  private readonly headStateListeners: HeadStateListener[] = [];
  private readonly statusListeners: StatusListener[] = [];

  add(device: string, groups: string[] = ['kitchens'], online: boolean | null = true): this {
    this.devices.set(device, row(device, groups, online));
    return this;
  }
  rows(): DeviceRow[] {
    return [...this.devices.values()];
  }
  row(id: string): DeviceRow | undefined {
    return this.devices.get(id);
  }
  on(event: 'headState', listener: HeadStateListener): this;
  on(event: 'status', listener: StatusListener): this;
  on(event: 'headState' | 'status', listener: HeadStateListener | StatusListener): this {
    if (event === 'headState') this.headStateListeners.push(listener as HeadStateListener);
    else this.statusListeners.push(listener as StatusListener);
    return this;
  }

  /** A device's head/state carrying `correlationId` (the rollout's file unless given). */
  answer(device: string, status: HeadUpdateStatus, opts: { correlationId?: string | null; reason?: string; shadow?: HeadStateMessage['shadow']; retained?: boolean } = {}): void {
    const msg: HeadStateMessage = {
      device,
      active: { id: 'kitchen', version: 3, sha256: 'a'.repeat(64), appliedAt: new Date(T0).toISOString() },
      previous: null,
      lastUpdate: {
        status,
        ...(opts.reason !== undefined ? { reason: opts.reason } : {}),
        correlationId: opts.correlationId === undefined ? null : opts.correlationId,
        via: `${PREFIX}/${device}/head/set`,
        receivedAt: new Date(T0).toISOString(),
      },
      shadow: opts.shadow ?? null,
    };
    for (const l of this.headStateListeners) l(device, msg, opts.retained ?? false);
  }

  setOnline(device: string, online: boolean, retained = false): void {
    this.devices.get(device)!.online = online;
    for (const l of this.statusListeners) l(device, online, retained);
  }
}

interface Setup {
  fleet: FakeFleet;
  broker: FakeBroker;
  clock: ManualClock;
  audit: AuditLog;
  rollouts: Rollouts;
  changes: RolloutView[];
  /** Answers with the rollout file's correlation id. */
  answer(device: string, status: HeadUpdateStatus, opts?: { reason?: string; shadow?: HeadStateMessage['shadow']; retained?: boolean }): void;
}

function setup(opts: { devices?: [string, string[], boolean | null][]; publicKeys?: string[]; bytes?: Uint8Array; auditFile?: string } = {}): Setup {
  const fleet = new FakeFleet();
  for (const [d, g, online] of opts.devices ?? [['pi-1', ['kitchens'], true], ['pi-2', ['kitchens'], true], ['pi-3', ['kitchens'], true], ['pi-4', ['kitchens'], true]]) fleet.add(d, g, online);
  const broker = new FakeBroker();
  broker.connect();
  const clock = new ManualClock(T0);
  const audit = new AuditLog(opts.auditFile ?? path.join(tmpDir('fleet-rollout-'), 'audit', 'rollouts.jsonl'));
  const rollouts = new Rollouts({
    fleet, broker, prefix: PREFIX, clock, audit, publicKeys: opts.publicKeys ?? [], maxUploadBytes: 1 << 20,
    defaults: { canaryPercent: 25, stageTimeoutSec: 60, minAgreement: 0.9 },
  });
  const changes: RolloutView[] = [];
  rollouts.on('change', (v) => changes.push(v));
  const corr = correlationIdOf(sha256Hex(opts.bytes ?? BYTES));
  return { fleet, broker, clock, audit, rollouts, changes, answer: (device, status, o = {}) => fleet.answer(device, status, { ...o, correlationId: corr }) };
}

const BYTES = headBytes();
const GROUP_TOPIC = `${PREFIX}/groups/kitchens/head/set`;
const devTopic = (d: string) => `${PREFIX}/${d}/head/set`;
const cmdTopic = (d: string) => `${PREFIX}/${d}/cmd`;
const state = (v: RolloutView | undefined, d: string) => v?.devices.find((x) => x.device === d)?.state;
const groupReq: RolloutRequest = { target: { kind: 'group', group: 'kitchens' }, actor: 'alice' };
/** Lets the engine's pending promise callbacks (publish acknowledgements) run. */
const settle = () => new Promise<void>((r) => setImmediate(r));

let savedLevel: ReturnType<typeof logLevel>;
before(() => {
  savedLevel = logLevel();
  configureLogging({ level: 'silent' }); // halts are warnings: expected here
});
after(() => configureLogging({ level: savedLevel }));

describe('rollouts: canary, rest, done', () => {
  test('happy path: canary on its own topic, then the rest retained on the group topic, then done', async () => {
    const s = setup();
    const v = await s.rollouts.start(BYTES, groupReq);
    assert.equal(v.phase, 'canary');
    assert.equal(v.actor, 'alice');
    assert.equal(v.head.fileSha256, sha256Hex(BYTES));
    assert.equal(v.head.correlationId, sha256Hex(BYTES).slice(0, 16));
    assert.equal(v.topic, GROUP_TOPIC);
    assert.deepEqual(v.devices.map((d) => [d.device, d.stage, d.state]), [
      ['pi-1', 'canary', 'waiting'], ['pi-2', 'rest', 'pending'], ['pi-3', 'rest', 'pending'], ['pi-4', 'rest', 'pending'],
    ]);
    assert.deepEqual(s.broker.sent.map((p) => [p.topic, p.opts.qos, p.opts.retain]), [[devTopic('pi-1'), 1, false]]);
    assert.deepEqual(Buffer.from(s.broker.sent[0]!.payload as Uint8Array), Buffer.from(BYTES));

    // A retained state from earlier is not an answer, nor is a state for another file.
    s.answer('pi-1', 'applied', { retained: true });
    s.fleet.answer('pi-1', 'applied', { correlationId: 'f'.repeat(16) });
    assert.equal(s.rollouts.get(v.id)!.phase, 'canary');

    s.answer('pi-1', 'applied');
    let now = s.rollouts.get(v.id)!;
    assert.equal(now.phase, 'rest');
    assert.deepEqual(now.devices.map((d) => d.state), ['applied', 'waiting', 'waiting', 'waiting']);
    const group = s.broker.sentTo(GROUP_TOPIC);
    assert.equal(group.length, 1);
    assert.equal(group[0]!.opts.retain, true);
    assert.equal(group[0]!.opts.qos, 1);

    const canaryAnsweredAt = s.rollouts.get(v.id)!.devices[0]!.answeredAt;
    assert.equal(canaryAnsweredAt, T0);
    s.clock.advance(5000);
    s.answer('pi-1', 'duplicate'); // the canary sees the retained group head too
    assert.equal(s.rollouts.get(v.id)!.devices[0]!.answeredAt, canaryAnsweredAt, 'answeredAt: when the canary applied it, not its later duplicate');
    s.answer('pi-2', 'applied');
    s.answer('pi-3', 'duplicate');
    assert.equal(s.rollouts.get(v.id)!.phase, 'rest');
    s.answer('pi-4', 'applied');
    await settle();
    now = s.rollouts.get(v.id)!;
    assert.equal(now.phase, 'done');
    assert.equal(now.haltReason, null);
    assert.deepEqual(now.devices.map((d) => d.state), ['applied', 'applied', 'applied', 'applied']);
    assert.equal(s.broker.sentTo(GROUP_TOPIC).length, 1, 'the retained head stays for devices that come later');
    assert.deepEqual(s.changes.at(-1), now, "the last 'change' event is the final view");
    assert.deepEqual(s.rollouts.list().map((x) => x.id), [v.id]);
  });

  test('canary rejected: halts before the rest is published', async () => {
    const s = setup();
    const v = await s.rollouts.start(BYTES, groupReq);
    s.answer('pi-1', 'rejected', { reason: 'feature dimension 3 != 1280' });
    await settle();
    const now = s.rollouts.get(v.id)!;
    assert.equal(now.phase, 'halted');
    assert.equal(now.haltReason, 'pi-1 rejected it: feature dimension 3 != 1280');
    assert.equal(state(now, 'pi-1'), 'rejected');
    assert.deepEqual(s.broker.sentTo(GROUP_TOPIC), [], 'nothing on the group topic, not even a clear');
    assert.deepEqual(s.broker.sent.map((p) => p.topic), [devTopic('pi-1')]);
    // Later answers change no phase and publish nothing.
    s.answer('pi-1', 'applied');
    assert.equal(s.rollouts.get(v.id)!.phase, 'halted');
    assert.equal(s.broker.sent.length, 1);
  });

  test('listed canaries; a devices target publishes the rest on each device topic, not retained', async () => {
    const s = setup();
    const v = await s.rollouts.start(BYTES, { target: { kind: 'devices', devices: ['pi-3', 'pi-1', 'pi-2'] }, canary: { devices: ['pi-2'] } });
    assert.equal(v.topic, null);
    assert.equal(v.actor, 'local');
    assert.deepEqual(v.devices.map((d) => [d.device, d.stage]), [['pi-2', 'canary'], ['pi-1', 'rest'], ['pi-3', 'rest']]);
    s.answer('pi-2', 'applied');
    await settle();
    assert.deepEqual(s.broker.sent.map((p) => [p.topic, p.opts.retain]), [[devTopic('pi-2'), false], [devTopic('pi-1'), false], [devTopic('pi-3'), false]]);
    s.answer('pi-1', 'applied');
    s.answer('pi-3', 'applied');
    await settle();
    assert.equal(s.rollouts.get(v.id)!.phase, 'done');
  });

  test('canary percent: ceil of the target, online devices first, sorted', async () => {
    const s = setup({ devices: [['a', ['g'], false], ['b', ['g'], true], ['c', ['g'], true], ['d', ['g'], true], ['e', ['g'], null]] });
    const v = await s.rollouts.start(BYTES, { target: { kind: 'all' }, canary: { percent: 41 } });
    assert.deepEqual(v.devices.filter((d) => d.stage === 'canary').map((d) => d.device), ['b', 'c', 'd']);
    assert.equal(v.topic, `${PREFIX}/all/head/set`);
    const hundred = setup({ devices: Array.from({ length: 100 }, (_, i): [string, string[], boolean] => [`d${String(i).padStart(3, '0')}`, ['g'], true]) });
    const w = await hundred.rollouts.start(BYTES, { target: { kind: 'group', group: 'g' }, canary: { percent: 7 } });
    assert.deepEqual(w.devices.filter((d) => d.stage === 'canary').map((d) => d.device), ['d000', 'd001', 'd002', 'd003', 'd004', 'd005', 'd006'], '7% of 100 is 7');
  });

  test('offline device: pending through the rest, done without it, applied when it comes back and answers', async () => {
    const s = setup({ devices: [['pi-1', ['kitchens'], true], ['pi-2', ['kitchens'], true], ['pi-3', ['kitchens'], false]] });
    const v = await s.rollouts.start(BYTES, { ...groupReq, canary: { devices: ['pi-1'] } });
    s.answer('pi-1', 'applied');
    let now = s.rollouts.get(v.id)!;
    assert.equal(state(now, 'pi-2'), 'waiting');
    assert.equal(state(now, 'pi-3'), 'pending');
    s.answer('pi-2', 'applied');
    await settle();
    now = s.rollouts.get(v.id)!;
    assert.equal(now.phase, 'done');
    assert.equal(state(now, 'pi-3'), 'pending');
    // It reconnects: the broker hands it the retained group head; it answers.
    s.fleet.setOnline('pi-3', true);
    s.answer('pi-3', 'applied');
    now = s.rollouts.get(v.id)!;
    assert.equal(now.phase, 'done');
    assert.equal(state(now, 'pi-3'), 'applied');
    assert.equal(s.broker.sentTo(GROUP_TOPIC).length, 1);
  });

  test('devices target: an offline rest device gets the file on its own topic when it comes back', async () => {
    const s = setup({ devices: [['pi-1', [], true], ['pi-2', [], false]] });
    const v = await s.rollouts.start(BYTES, { target: { kind: 'devices', devices: ['pi-1', 'pi-2'] } });
    s.answer('pi-1', 'applied');
    await settle();
    assert.equal(s.rollouts.get(v.id)!.phase, 'done');
    assert.deepEqual(s.broker.sentTo(devTopic('pi-2')), []);
    s.fleet.setOnline('pi-2', true);
    assert.equal(s.broker.sentTo(devTopic('pi-2')).length, 1);
    s.answer('pi-2', 'applied');
    assert.equal(state(s.rollouts.get(v.id), 'pi-2'), 'applied');
  });
});

describe('rollouts: automatic halts', () => {
  const shadowBytes = headBytes({ version: 4, shadow: { frames: 100 } });
  const candidate = { id: 'kitchen', version: 4, sha256: JSON.parse(Buffer.from(shadowBytes.subarray(12, 12 + Buffer.from(shadowBytes).readUInt32LE(8))).toString()).sha256 as string };
  const shadowState = (seen: number, agreement: number | null): HeadStateMessage['shadow'] => ({ candidate, frames: 100, seen, agreement });

  test('shadow agreement below the threshold halts', async () => {
    const s = setup({ bytes: shadowBytes });
    const v = await s.rollouts.start(shadowBytes, groupReq);
    s.answer('pi-1', 'shadow', { reason: 'running beside the active head for 100 frames', shadow: shadowState(0, null) });
    assert.equal(state(s.rollouts.get(v.id), 'pi-1'), 'shadow');
    assert.equal(s.rollouts.get(v.id)!.phase, 'canary');
    s.answer('pi-1', 'shadow', { reason: 'shadow run complete: agreement 0.710; promote or discard', shadow: shadowState(100, 0.71) });
    await settle();
    const now = s.rollouts.get(v.id)!;
    assert.equal(now.phase, 'halted');
    assert.equal(now.haltReason, 'agreement 0.71 < 0.90 on pi-1');
    assert.equal(now.devices[0]!.agreement, 0.71);
    assert.deepEqual(s.broker.sentTo(cmdTopic('pi-1')), [], 'no promote');
    assert.deepEqual(s.broker.sentTo(GROUP_TOPIC), []);
  });

  test('shadow agreement at the threshold: the engine sends promote; the promoted answer passes the canary', async () => {
    const s = setup({ bytes: shadowBytes });
    const v = await s.rollouts.start(shadowBytes, { ...groupReq, minAgreement: 0.8 });
    s.answer('pi-1', 'shadow', { shadow: shadowState(100, 0.8) });
    const cmds = s.broker.sentTo(cmdTopic('pi-1'));
    assert.equal(cmds.length, 1);
    const parsed = parseCommand(cmds[0]!.text);
    assert.ok(parsed.ok);
    assert.equal(parsed.command.cmd, 'promote');
    assert.equal(cmds[0]!.opts.qos, 1);
    assert.equal(s.rollouts.get(v.id)!.phase, 'canary', 'passes only once promoted');
    s.answer('pi-1', 'promoted');
    assert.equal(s.rollouts.get(v.id)!.phase, 'rest');
    assert.equal(state(s.rollouts.get(v.id), 'pi-1'), 'applied');
  });

  test('a device going offline mid-update halts and clears the retained group head', async () => {
    const s = setup();
    const v = await s.rollouts.start(BYTES, groupReq);
    s.answer('pi-1', 'applied');
    s.answer('pi-2', 'applied');
    s.fleet.setOnline('pi-3', false);
    await settle();
    const now = s.rollouts.get(v.id)!;
    assert.equal(now.phase, 'halted');
    assert.equal(now.haltReason, 'pi-3 went offline mid-update');
    assert.equal(state(now, 'pi-3'), 'offline');
    const group = s.broker.sentTo(GROUP_TOPIC);
    assert.equal(group.length, 2);
    assert.equal(group[1]!.payload.length, 0, 'an empty payload');
    assert.equal(group[1]!.opts.retain, true, 'retained: deletes the retained head');
    // A device that already applied it keeps it; nothing else is published after the halt.
    s.answer('pi-4', 'applied');
    assert.equal(state(s.rollouts.get(v.id), 'pi-4'), 'applied');
    assert.equal(s.broker.sent.length, 3);
  });

  test('no answer within stageTimeoutSec halts naming the devices', async () => {
    const s = setup();
    const v = await s.rollouts.start(BYTES, { ...groupReq, canary: { devices: ['pi-1', 'pi-2'] }, stageTimeoutSec: 30 });
    s.answer('pi-1', 'applied');
    s.clock.advance(29_999);
    assert.equal(s.rollouts.get(v.id)!.phase, 'canary');
    s.clock.advance(1);
    await settle();
    const now = s.rollouts.get(v.id)!;
    assert.equal(now.phase, 'halted');
    assert.equal(now.haltReason, 'no answer within 30 s from pi-2');
    assert.deepEqual(s.broker.sentTo(GROUP_TOPIC), []);
  });

  test('a failed publish halts', async () => {
    const s = setup();
    s.broker.disconnect();
    const v = await s.rollouts.start(BYTES, groupReq);
    assert.equal(v.phase, 'halted');
    assert.match(v.haltReason!, /^cannot publish to edgehead\/pi-1\/head\/set: not connected/);
  });
});

describe('rollouts: halt and rollback by hand', () => {
  test('halt by hand in rest clears the retained topic; a second halt is refused', async () => {
    const s = setup();
    const v = await s.rollouts.start(BYTES, groupReq);
    s.answer('pi-1', 'applied');
    const h = await s.rollouts.halt(v.id, 'bob');
    assert.equal(h.phase, 'halted');
    assert.equal(h.haltReason, 'halted by bob');
    assert.deepEqual(s.broker.sentTo(GROUP_TOPIC).map((p) => p.payload.length), [BYTES.length, 0]);
    await rejectsWith(s.rollouts.halt(v.id, 'bob'), 'BAD_ARGS', /is halted/);
    await rejectsWith(s.rollouts.halt('nope', 'bob'), 'BAD_ARGS', /unknown rollout "nope"/);
  });

  test('rollback: rollback to applied devices, discard to shadow ones, retained topic cleared, answers tracked', async () => {
    const s = setup();
    const v = await s.rollouts.start(BYTES, groupReq);
    s.answer('pi-1', 'applied');
    s.answer('pi-2', 'applied');
    s.answer('pi-3', 'shadow', { shadow: null });
    s.answer('pi-4', 'applied');
    s.broker.sent.length = 0;
    const rb = await s.rollouts.rollback(v.id, 'carol');
    assert.equal(rb.phase, 'rolling-back');
    assert.equal(rb.haltReason, 'rolled back by carol');
    const cmds = s.broker.sent.filter((p) => p.topic.endsWith('/cmd')).map((p) => {
      const c = parseCommand(p.text);
      assert.ok(c.ok);
      assert.equal(p.opts.qos, 1);
      return [p.topic, c.command.cmd, c.command.id] as const;
    });
    assert.deepEqual(cmds.map(([t, c]) => [t, c]), [[cmdTopic('pi-1'), 'rollback'], [cmdTopic('pi-2'), 'rollback'], [cmdTopic('pi-3'), 'discard'], [cmdTopic('pi-4'), 'rollback']]);
    assert.equal(new Set(cmds.map(([, , id]) => id)).size, 4, 'command ids are unique');
    const clears = s.broker.sentTo(GROUP_TOPIC);
    assert.ok(clears.length >= 1 && clears.every((p) => p.payload.length === 0 && p.opts.retain));

    s.fleet.answer('pi-1', 'rolled-back', { correlationId: null, retained: true }); // an old retained state: not an answer
    assert.equal(state(s.rollouts.get(v.id), 'pi-1'), 'applied');
    s.fleet.answer('pi-1', 'rolled-back', { correlationId: null });
    s.answer('pi-3', 'discarded');
    s.fleet.answer('pi-4', 'rolled-back', { correlationId: null });
    assert.equal(s.rollouts.get(v.id)!.phase, 'rolling-back');
    s.clock.advance(60_000);
    const now = s.rollouts.get(v.id)!;
    assert.equal(now.phase, 'rolled-back');
    assert.deepEqual(now.devices.map((d) => d.state), ['rolled-back', 'rollback-failed', 'rolled-back', 'rolled-back']);
    await rejectsWith(s.rollouts.rollback(v.id, 'carol'), 'BAD_ARGS', /already rolled-back/);
  });

  test('a second rollout for overlapping devices is refused while the first is in progress', async () => {
    const s = setup();
    const v = await s.rollouts.start(BYTES, groupReq);
    await rejectsWith(s.rollouts.start(headBytes({ version: 5 }), { target: { kind: 'devices', devices: ['pi-2'] } }), 'BAD_ARGS', new RegExp(`rollout ${v.id} is still in canary for pi-2`));
    await s.rollouts.halt(v.id, 'bob');
    const w = await s.rollouts.start(headBytes({ version: 5 }), { target: { kind: 'devices', devices: ['pi-2'] } });
    assert.equal(w.phase, 'canary');
    assert.deepEqual(s.rollouts.list().map((x) => x.id), [w.id, v.id], 'newest first');
  });
});

describe('rollouts: what start refuses (nothing published, nothing recorded)', () => {
  const keys = generateKeyPair();
  const other = generateKeyPair();

  async function refused(s: Setup, bytes: Uint8Array, req: RolloutRequest, code: string, re: RegExp): Promise<void> {
    await rejectsWith(s.rollouts.start(bytes, req), code, re);
    assert.deepEqual(s.broker.sent, []);
    assert.deepEqual(s.audit.readAll(), []);
    assert.deepEqual(s.rollouts.list(), []);
  }

  test('bad bytes, too large, expired', async () => {
    const s = setup();
    await refused(s, new TextEncoder().encode('not a head at all'), groupReq, 'BAD_HEAD', /bad magic/);
    await refused(s, BYTES.slice(0, BYTES.length - 3), groupReq, 'BAD_HEAD', /truncated weights/);
    await refused(s, new Uint8Array((1 << 20) + 1), groupReq, 'BAD_HEAD', /too large/);
    await refused(s, headBytes({ notAfter: '2026-04-30T00:00:00Z' }), groupReq, 'BAD_HEAD', /^expired: head kitchen v3/);
  });

  test('with public keys: unsigned and signed by another key are refused; signed by a trusted key is taken', async () => {
    const s = setup({ publicKeys: [keys.publicKeyPem] });
    await refused(s, BYTES, groupReq, 'BAD_HEAD', /^signature: unsigned/);
    await refused(s, headBytes({ key: other.privateKeyPem }), groupReq, 'BAD_HEAD', /^signature: unknown key id/);
    const v = await s.rollouts.start(headBytes({ key: keys.privateKeyPem }), groupReq);
    assert.equal(v.head.signedBy, keys.keyId);
  });

  test('targets: unknown devices, empty group, canary outside the target or offline', async () => {
    const s = setup({ devices: [['pi-1', ['kitchens'], true], ['pi-2', ['kitchens'], false]] });
    await refused(s, BYTES, { target: { kind: 'devices', devices: ['pi-1', 'pi-9', 'pi-8'] } }, 'BAD_ARGS', /unknown devices pi-9, pi-8/);
    await refused(s, BYTES, { target: { kind: 'devices', devices: [] } }, 'BAD_ARGS', /names no device/);
    await refused(s, BYTES, { target: { kind: 'group', group: 'garages' } }, 'BAD_ARGS', /no known device is in group garages/);
    await refused(s, BYTES, { target: { kind: 'devices', devices: ['pi-1'] }, canary: { devices: ['pi-2'] } }, 'BAD_ARGS', /canary pi-2 not in the rollout's target/);
    await refused(s, BYTES, { ...groupReq, canary: { devices: ['pi-2'] } }, 'BAD_ARGS', /canary pi-2 is offline/);
    await refused(s, BYTES, { ...groupReq, canary: { percent: 0 } }, 'BAD_ARGS', /canary percent/);
    await refused(s, BYTES, { ...groupReq, minAgreement: 1.5 }, 'BAD_ARGS', /minAgreement/);
  });
});

describe('rollouts: the audit log', () => {
  test('records every step: start, publish, answers, done', async () => {
    const s = setup();
    const v = await s.rollouts.start(BYTES, groupReq);
    s.answer('pi-1', 'applied');
    for (const d of ['pi-2', 'pi-3', 'pi-4']) s.answer(d, 'applied');
    await settle();
    const log = s.audit.readAll();
    assert.ok(log.every((e) => e.rollout === v.id));
    assert.deepEqual(log.map((e) => e.action), ['start', 'publish', 'answer', 'rest', 'publish', 'answer', 'answer', 'answer', 'done']);
    const [start, canaryPub] = log;
    assert.equal(start!.actor, 'alice');
    assert.equal(start!.sha256, sha256Hex(BYTES));
    assert.deepEqual(start!.head, { id: 'kitchen', version: 3 });
    assert.deepEqual(start!.devices, ['pi-1', 'pi-2', 'pi-3', 'pi-4']);
    assert.deepEqual(start!.detail!.canary, ['pi-1']);
    assert.deepEqual(canaryPub!.devices, ['pi-1']);
    assert.deepEqual(canaryPub!.detail, { topic: devTopic('pi-1'), retained: false, stage: 'canary' });
    assert.deepEqual(log[4]!.detail, { topic: GROUP_TOPIC, retained: true, stage: 'rest' });
    assert.deepEqual(log[4]!.devices, ['pi-2', 'pi-3', 'pi-4']);
    assert.equal(log[2]!.actor, 'pi-1');
    assert.equal(log[2]!.result, 'applied');
  });

  test('halt, clear, rollback and rollback answers are recorded', async () => {
    const s = setup();
    const v = await s.rollouts.start(BYTES, groupReq);
    s.answer('pi-1', 'applied');
    s.answer('pi-2', 'rejected', { reason: 'downgrade: no' });
    await settle();
    await s.rollouts.rollback(v.id, 'carol');
    s.fleet.answer('pi-1', 'rolled-back', { correlationId: null });
    const log = s.audit.readAll();
    const halt = log.find((e) => e.action === 'halt')!;
    assert.equal(halt.result, 'pi-2 rejected it: downgrade: no');
    assert.equal(halt.actor, 'server');
    assert.deepEqual(log.find((e) => e.action === 'answer' && e.result === 'rejected')?.detail, { state: 'rejected', reason: 'downgrade: no', agreement: null });
    assert.ok(log.some((e) => e.action === 'clear' && (e.detail as { topic: string }).topic === GROUP_TOPIC));
    const rb = log.find((e) => e.action === 'rollback')!;
    assert.equal(rb.actor, 'carol');
    assert.deepEqual(rb.devices, ['pi-1']);
    assert.deepEqual(log.slice(-2).map((e) => [e.action, e.result]), [['answer', 'rolled-back'], ['rolled-back', '1 rolled back, 0 failed']]);
  });

  test('a restart shows an interrupted rollout as halted, and a finished one as it ended', async () => {
    const file = path.join(tmpDir('fleet-rollout-'), 'audit.jsonl');
    const first = setup({ auditFile: file });
    const done = await first.rollouts.start(BYTES, { target: { kind: 'devices', devices: ['pi-4'] } });
    first.answer('pi-4', 'applied');
    await settle();
    first.clock.advance(1000);
    const bytes2 = headBytes({ version: 6 });
    const cut = await first.rollouts.start(bytes2, { target: { kind: 'devices', devices: ['pi-1', 'pi-2'] } });
    first.fleet.answer('pi-1', 'applied', { correlationId: correlationIdOf(sha256Hex(bytes2)) });
    first.rollouts.stop();

    const second = setup({ auditFile: file });
    const list = second.rollouts.list();
    assert.deepEqual(list.map((x) => x.id), [cut.id, done.id]);
    const [interrupted, finished] = list;
    assert.equal(interrupted!.phase, 'halted');
    assert.equal(interrupted!.haltReason, RESTART_REASON);
    assert.deepEqual(interrupted!.devices.map((d) => [d.device, d.state]), [['pi-1', 'applied'], ['pi-2', 'waiting']]);
    assert.equal(finished!.phase, 'done');
    assert.equal(state(finished, 'pi-4'), 'applied');
    assert.equal(finished!.head.fileSha256, sha256Hex(BYTES));
    const last = second.audit.readAll().at(-1)!;
    assert.deepEqual([last.rollout, last.action, last.result], [cut.id, 'halt', RESTART_REASON]);
    // A third start reads the same log: the interruption is recorded once.
    const third = setup({ auditFile: file });
    assert.equal(third.audit.readAll().filter((e) => e.action === 'halt').length, 1);
    assert.equal(third.rollouts.get(cut.id)!.haltReason, RESTART_REASON);
    // Not resumed: nothing is published; it can still be rolled back.
    assert.deepEqual(second.broker.sent, []);
    await second.rollouts.rollback(cut.id, 'dave');
    assert.deepEqual(second.broker.sentTo().map((p) => [p.topic, parseCommand(p.text).ok]), [[cmdTopic('pi-1'), true]]);
  });
});

// -------------------------------------------------------------------------------------------------------------
// `edgehead fleet rollout` against a fake HTTP transport (no sockets): what it sends, prints and exits with.

interface FakeIo extends RolloutCliIo {
  calls: HttpCall[];
  stdout: string[];
  stderr: string[];
}

/** Answers each request with the next of `answers` (an Error is thrown as the transport's failure). */
function fakeIo(answers: (HttpAnswer | Error | ((call: HttpCall) => HttpAnswer))[], env: NodeJS.ProcessEnv = {}): FakeIo {
  const io: FakeIo = {
    calls: [],
    stdout: [],
    stderr: [],
    env,
    async request(call) {
      io.calls.push(call);
      const next = answers.shift();
      if (next === undefined) throw new Error(`unexpected request ${call.method} ${call.url}`);
      if (next instanceof Error) throw next;
      return typeof next === 'function' ? next(call) : next;
    },
    out: (l) => void io.stdout.push(l),
    err: (l) => void io.stderr.push(l),
    sleep: async () => {},
  };
  return io;
}

const json = (status: number, body: unknown): HttpAnswer => ({ status, body: Buffer.from(JSON.stringify(body)) });
const connRefused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8080'), { code: 'ECONNREFUSED' });

describe('edgehead fleet rollout (CLI)', () => {
  const dir = tmpDir('fleet-rollout-cli-');
  const headFile = path.join(dir, 'kitchen-v3.head');
  const tokenFile = path.join(dir, 'token');
  const passwordFile = path.join(dir, 'password');
  before(() => {
    fs.writeFileSync(headFile, BYTES);
    fs.writeFileSync(tokenFile, 's3cret-token\nignored second line\n');
    fs.writeFileSync(passwordFile, 'hunter2\n');
  });

  /** Real views from the engine: after start, after the canary, when done (or halted). */
  async function views(halted = false): Promise<RolloutView[]> {
    const s = setup();
    const v = await s.rollouts.start(BYTES, groupReq);
    s.answer('pi-1', 'applied');
    const rest = s.rollouts.get(v.id)!;
    if (halted) s.answer('pi-2', 'rejected', { reason: 'lower precedence' });
    else for (const d of ['pi-2', 'pi-3', 'pi-4']) s.answer(d, 'applied');
    await settle();
    return [v, rest, s.rollouts.get(v.id)!];
  }

  test('start uploads the file with the target in the query, the cross-site header and the token; prints the id', async () => {
    const [v] = await views();
    const io = fakeIo([json(201, v)]);
    const code = await createFleetRolloutCommand(io).run(['start', '--server', 'http://127.0.0.1:9999/fleet/', '--group', 'kitchens', '--canary-percent', '20', '--min-agreement', '0.8', '--stage-timeout', '30', '--token-file', tokenFile, headFile]);
    assert.equal(code, 0);
    assert.deepEqual(io.stdout, [v!.id]);
    const [call] = io.calls;
    assert.equal(call!.method, 'POST');
    assert.equal(call!.url.origin, 'http://127.0.0.1:9999');
    assert.equal(call!.url.pathname, '/fleet/api/rollouts');
    assert.deepEqual(Object.fromEntries(call!.url.searchParams), { target: 'group:kitchens', canaryPercent: '20', minAgreement: '0.8', stageTimeoutSec: '30' });
    assert.equal(call!.headers['X-Edgehead-Request'], '1');
    assert.equal(call!.headers['Content-Type'], 'application/octet-stream');
    assert.equal(call!.headers.Authorization, 'Bearer s3cret-token');
    assert.deepEqual(Buffer.from(call!.body!), Buffer.from(BYTES));
  });

  test('start --wait polls until done (exit 0) or halted (exit 1), printing progress as it changes', async () => {
    const [v, rest, done] = await views();
    let io = fakeIo([json(201, v), json(200, rest), json(200, rest), json(200, done)], { EDGEHEAD_FLEET_TOKEN: 'from-env' });
    assert.equal(await createFleetRolloutCommand(io).run(['start', '--all', '--canary', 'pi-1', '--wait', headFile]), 0);
    assert.equal(io.calls[0]!.url.href, 'http://127.0.0.1:8080/api/rollouts?target=all&canary=pi-1');
    assert.equal(io.calls[0]!.headers.Authorization, 'Bearer from-env');
    assert.deepEqual(io.calls.slice(1).map((c) => [c.method, c.url.pathname, c.headers['X-Edgehead-Request']]), Array(3).fill(['GET', `/api/rollouts/${v!.id}`, undefined]));
    assert.deepEqual(io.stderr.slice(1), ['canary: 0/4 applied (1 waiting, 3 pending)', 'rest: 1/4 applied (3 waiting)', 'done: 4/4 applied', 'done: 4/4 applied']);

    const [v2, rest2, halted] = await views(true);
    io = fakeIo([json(201, v2), json(200, rest2), json(200, halted)]);
    assert.equal(await createFleetRolloutCommand(io).run(['start', '--devices', 'pi-1,pi-2', '--wait', headFile]), 1);
    assert.equal(io.calls[0]!.url.searchParams.get('target'), 'devices:pi-1,pi-2');
    assert.equal(io.stderr.at(-1), 'halted: pi-2 rejected it: lower precedence');
  });

  test('list, show, halt and rollback', async () => {
    const [, , done] = await views();
    let io = fakeIo([json(200, { rollouts: [done] })]);
    assert.equal(await createFleetRolloutCommand(io).run(['list']), 0);
    assert.match(io.stdout[0]!, /^rollout\s+phase\s+head\s+target\s+applied\s+created\s+by$/);
    assert.match(io.stdout[1]!, new RegExp(`^${done!.id}\\s+done\\s+kitchen v3\\s+group kitchens\\s+4/4\\s+2026-05-01T12:00:00.000Z\\s+alice$`));

    io = fakeIo([json(200, done)]);
    assert.equal(await createFleetRolloutCommand(io).run(['show', done!.id]), 0);
    assert.ok(io.stdout.includes(`rollout  ${done!.id}`));
    assert.ok(io.stdout.includes('target   group kitchens (rest on edgehead/groups/kitchens/head/set, retained)'));
    assert.ok(io.stdout.some((l) => /^pi-1\s+canary\s+applied\s+-\s+-$/.test(l)));

    io = fakeIo([json(200, done)]);
    await createFleetRolloutCommand(io).run(['show', '--json', done!.id]);
    assert.deepEqual(JSON.parse(io.stdout.join('\n')), done);

    io = fakeIo([json(200, { ...done!, phase: 'halted', haltReason: 'bad weather' })]);
    assert.equal(await createFleetRolloutCommand(io).run(['halt', '--reason', 'bad weather', '--user', 'ops', '--password-file', passwordFile, done!.id]), 0);
    assert.equal(io.calls[0]!.url.pathname, `/api/rollouts/${done!.id}/halt`);
    assert.deepEqual(JSON.parse(Buffer.from(io.calls[0]!.body!).toString()), { reason: 'bad weather' });
    assert.equal(io.calls[0]!.headers.Authorization, `Basic ${Buffer.from('ops:hunter2').toString('base64')}`);
    assert.equal(io.calls[0]!.headers['X-Edgehead-Request'], '1');
    assert.deepEqual(io.stdout, [`${done!.id} halted: bad weather`]);

    const rolling: RolloutView = { ...done!, phase: 'rolling-back' };
    const ended: RolloutView = { ...done!, phase: 'rolled-back', devices: done!.devices.map((d, i) => ({ ...d, state: i === 0 ? 'rollback-failed' : 'rolled-back' })) };
    io = fakeIo([json(200, rolling), json(200, ended)]);
    assert.equal(await createFleetRolloutCommand(io).run(['rollback', '--wait', done!.id]), 1, 'a device failed to roll back');
    assert.equal(io.calls[0]!.method, 'POST');
    assert.equal(io.calls[0]!.url.pathname, `/api/rollouts/${done!.id}/rollback`);
    assert.equal(io.stderr.at(-1), 'rolled-back: 3 rolled back, 1 failed');
  });

  test('one-line errors: unreachable server, 401, the server\'s own message', async () => {
    const cmd = (io: FakeIo) => createFleetRolloutCommand(io);
    await rejectsWith(cmd(fakeIo([connRefused()])).run(['list']), 'IO', /^cannot reach the fleet server at http:\/\/127\.0\.0\.1:8080: connection refused/);
    const e = await rejectsWith(cmd(fakeIo([json(401, { error: 'authentication required' })])).run(['list']), 'IO', /refused the credentials \(401 authentication required\)/);
    assert.match(e.hint!, /--token-file/);
    await rejectsWith(cmd(fakeIo([json(422, { error: 'unknown devices pi-9 (not seen on the broker)' })])).run(['start', '--devices', 'pi-9', headFile]), 'IO', /answered 422: unknown devices pi-9 \(not seen on the broker\)$/);
    await rejectsWith(cmd(fakeIo([{ status: 200, body: Buffer.from('<html>') }])).run(['list']), 'IO', /not JSON/);
  });

  test('bad arguments are refused before any request; no secret is taken from argv', async () => {
    const io = fakeIo([]);
    const run = (...argv: string[]) => createFleetRolloutCommand(io).run(argv);
    await rejectsWith(run('start', '--all', '--group', 'g', headFile), 'BAD_ARGS', /exactly one of --all, --group G or --devices/);
    await rejectsWith(run('start', '--all'), 'BAD_ARGS', /exactly one head file/);
    await rejectsWith(run('start', '--all', '--canary', 'a', '--canary-percent', '5', headFile), 'BAD_ARGS', /--canary or --canary-percent/);
    await rejectsWith(run('start', '--all', '--min-agreement', '2', headFile), 'BAD_ARGS', /--min-agreement must be a number in \[0, 1\]/);
    await rejectsWith(run('start', '--devices', 'a,,b', headFile), 'BAD_ARGS', /comma-separated/);
    await rejectsWith(run('list', '--password-file', passwordFile), 'BAD_ARGS', /--password-file needs --user/);
    await rejectsWith(run('list', '--user', 'ops'), 'BAD_ARGS', /--user needs --password-file/);
    await rejectsWith(run('list', '--user', 'ops', '--password-file', passwordFile, '--token-file', tokenFile), 'BAD_ARGS', /not both/);
    await rejectsWith(run('list', '--server', 'http://ops:pw@127.0.0.1:8080'), 'BAD_ARGS', /must not carry credentials/);
    await rejectsWith(run('list', '--server', 'ftp://127.0.0.1'), 'BAD_ARGS', /http:\/\/ or https:\/\//);
    await rejectsWith(run('list', '--ca', tokenFile), 'BAD_ARGS', /--ca applies to an https/);
    await rejectsWith(run('list', '--password', 'x'), 'BAD_ARGS', /Unknown option '--password'/);
    await rejectsWith(run('show'), 'BAD_ARGS', /exactly one rollout id/);
    await rejectsWith(run('nope'), 'BAD_ARGS', /unknown fleet rollout subcommand "nope"/);
    assert.deepEqual(io.calls, []);
  });
});
