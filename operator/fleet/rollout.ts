/**
 * Staged rollouts: a state machine over the fleet's head/state and status streams that pushes one signed head file
 * to a target (devices, a group, the fleet) in two stages, halts on the first sign of trouble, and rolls back.
 *
 *   start:  validate the upload like a device (format, expiry, signature when keys are configured) -> pick the
 *           canary -> publish to each canary's own head/set (QoS 1, not retained)           phase canary
 *   canary: wait for every canary's answer (a live head/state carrying the file's correlation id):
 *             applied | duplicate | promoted            -> 'applied' (passed)
 *             shadow                                    -> 'shadow'; when the shadow object reports seen >= frames:
 *                                                          agreement >= minAgreement -> the engine sends `promote`
 *                                                          (unless the head's autoPromoteAgreement already made the
 *                                                          device promote itself); the `promoted` answer passes it.
 *                                                          Below minAgreement -> halt.
 *             rejected | discarded                      -> halt
 *           a device that goes offline while its answer is awaited, or no answer within stageTimeoutSec -> halt
 *   rest:   group/all: the file retained on the group/all head/set topic (devices offline now converge when they
 *           reconnect; canaries answer `duplicate`); devices: each remaining online device's own topic, and each
 *           offline one's own topic again when it comes back. Online rest devices are 'waiting', offline ones
 *           'pending'. Same halt rules for the waiting ones.                                phase rest
 *   done:   every device that was online has passed; pending ones keep being watched and turn 'applied' when they
 *           answer (later answers update a done rollout; after done nothing halts it automatically).  phase done
 *   halt:   automatic or by hand: nothing more is published; a retained group/all publish is cleared (an empty
 *           retained payload) so devices that connect later do not take it.                  phase halted
 *   rollback: `rollback` to every 'applied' device, `discard` to every 'shadow' one, the retained topic cleared;
 *           a live head/state with status rolled-back (or discarded) -> 'rolled-back', none within stageTimeoutSec
 *           -> 'rollback-failed'.                                                  phases rolling-back, rolled-back
 *
 * Canaries are listed (they must be in the target) or ceil(percent% of the target), online devices first; a canary
 * that is not online at the start is refused (BAD_ARGS): it could not answer.
 * A retained head/state is never an answer (it may be from before the push). Answers are matched by correlation id
 * to the newest rollout of that file that includes the device. A second rollout is refused while another one is in
 * canary, rest or rolling-back for any of the same devices.
 *
 * Every step is appended to the audit log (audit.ts), with these actions:
 *   start (actor, sha256, head, devices = the target, detail: target, canary, topic, ...), publish (detail: topic,
 *   retained, stage; devices), rest (devices = the waiting ones; detail.pending), answer (actor = the device; result =
 *   its status; detail: state, reason, agreement), device (a state change that is not an answer: offline,
 *   rollback-failed), promote, halt (result = reason), clear (the retained topic), done, rollback (devices; detail:
 *   rollback, discard), rolled-back.
 * At construction the rollouts of earlier runs are rebuilt from those records; one whose last phase record is not
 * done, halted or rolled-back was interrupted: it is shown (and recorded) as halted with the reason
 * RESTART_REASON and is not resumed (its retained topic is left as it was: rolling it back clears it).
 *
 * Everything runs on the given clock; nothing here opens a connection (the broker is the BrokerClient seam).
 */
import type { Clock, TimerHandle } from '../../base/clock';
import { describeError, EdgeheadError } from '../../base/errors';
import { sha256Hex } from '../../base/hash';
import { createLogger } from '../../base/log';
import type { BrokerClient } from '../../mqtt/broker';
import { commandRequest, type CommandName } from '../../protocol/commands';
import { decodeHead, type HeadFile } from '../../protocol/head/format';
import { verifyHead } from '../../protocol/head/signature';
import { correlationIdOf, encodePayload, type HeadStateMessage } from '../../protocol/messages';
import { deviceTopic, headSetTopic } from '../../protocol/topics';
import type { AuditEntry, AuditLog } from './audit';
import type { DeviceRow, RolloutDevice, RolloutDeviceState, RolloutPhase, RolloutRequest, RolloutTarget, RolloutView } from './model';

const log = createLogger('fleet:rollout');

/** What the rollout engine needs from the fleet state (FleetState implements it). */
export interface RolloutFleet {
  rows(): DeviceRow[];
  row(id: string): DeviceRow | undefined;
  on(event: 'headState', listener: (device: string, msg: HeadStateMessage, retained: boolean) => void): unknown;
  on(event: 'status', listener: (device: string, online: boolean, retained: boolean) => void): unknown;
}

export interface RolloutDefaults {
  canaryPercent: number;
  stageTimeoutSec: number;
  minAgreement: number;
}

export interface RolloutsOptions {
  fleet: RolloutFleet;
  broker: Pick<BrokerClient, 'publish'>;
  /** The devices' topic prefix (mqtt.topicPrefix). */
  prefix: string;
  clock: Clock;
  audit: Pick<AuditLog, 'append' | 'readAll'>;
  /** Trusted public keys (PEM): when any, an upload must carry a valid signature by one of them. */
  publicKeys: string[];
  maxUploadBytes: number;
  defaults: RolloutDefaults;
}

/** The halt reason of a rollout the server was running when it stopped. */
export const RESTART_REASON = 'the server restarted during the rollout';

/** Phases during which the rollout still drives devices (a new rollout may not share devices with it). */
const BUSY: readonly RolloutPhase[] = ['canary', 'rest', 'rolling-back'];
/** Phases in which a problem halts the rollout. */
const LIVE: readonly RolloutPhase[] = ['canary', 'rest'];
/** Phase records after which a rollout is over (anything else at restart means it was interrupted). */
const FINAL: readonly string[] = ['done', 'halted', 'rolled-back'];
/** Device states whose answer is still awaited. */
const MID_UPDATE: readonly RolloutDeviceState[] = ['waiting', 'shadow'];
/** Most device names a halt reason lists. */
const MAX_NAMED = 10;

type ChangeListener = (view: RolloutView) => void;

interface Rollout {
  view: Omit<RolloutView, 'devices'>;
  devices: Map<string, RolloutDevice>;
  /** The file, while something may still be published (null once halted, rolled back, or restored from the log). */
  bytes: Uint8Array | null;
  minAgreement: number;
  stageTimeoutSec: number;
  /** The head's shadow.autoPromoteAgreement: at or above it the device promotes itself. */
  autoPromote: number | undefined;
  retained: 'no' | 'published' | 'cleared';
  timer: TimerHandle | null;
  promoteSent: Set<string>;
  /** Devices target: pending devices whose return (status online) re-sends the file to their own topic. */
  awaitingReturn: Set<string>;
  rollbackWaiting: Set<string>;
  order: number;
}

export class Rollouts {
  private readonly rollouts = new Map<string, Rollout>();
  private readonly listeners: ChangeListener[] = [];
  private order = 0;
  private commandSeq = 0;
  private stopped = false;

  constructor(private readonly o: RolloutsOptions) {
    for (const r of restore(o.audit.readAll())) {
      r.order = this.order++;
      this.rollouts.set(r.view.id, r);
      if (!FINAL.includes(r.view.phase)) {
        r.view.phase = 'halted';
        r.view.haltReason = RESTART_REASON;
        this.record(r, 'server', 'halt', { result: RESTART_REASON });
      }
    }
    o.fleet.on('headState', (device, msg, retained) => this.guard(() => this.onHeadState(device, msg, retained)));
    o.fleet.on('status', (device, online) => this.guard(() => this.onStatus(device, online)));
  }

  on(event: 'change', listener: ChangeListener): this {
    if (event === 'change') this.listeners.push(listener);
    return this;
  }

  off(event: 'change', listener: ChangeListener): this {
    const i = event === 'change' ? this.listeners.indexOf(listener) : -1;
    if (i >= 0) this.listeners.splice(i, 1);
    return this;
  }

  /** Newest first. */
  list(): RolloutView[] {
    return [...this.rollouts.values()].sort((a, b) => b.view.createdAt - a.view.createdAt || b.order - a.order).map((r) => viewOf(r));
  }

  get(id: string): RolloutView | undefined {
    const r = this.rollouts.get(id);
    return r && viewOf(r);
  }

  /** Validates the upload, records the start, publishes to the canary devices; resolves once those publishes are acknowledged. */
  async start(bytes: Uint8Array, req: RolloutRequest): Promise<RolloutView> {
    if (this.stopped) throw new EdgeheadError('BAD_ARGS', 'the rollout engine is stopped');
    const { file, signedBy } = this.validate(bytes);
    const minAgreement = req.minAgreement ?? this.o.defaults.minAgreement;
    if (!(minAgreement >= 0 && minAgreement <= 1)) throw new EdgeheadError('BAD_ARGS', `minAgreement must be in [0, 1] (got ${minAgreement})`);
    const stageTimeoutSec = req.stageTimeoutSec ?? this.o.defaults.stageTimeoutSec;
    if (!(stageTimeoutSec > 0 && Number.isFinite(stageTimeoutSec))) throw new EdgeheadError('BAD_ARGS', `stageTimeoutSec must be a number > 0 (got ${stageTimeoutSec})`);
    const target = this.targetDevices(req.target);
    const canary = this.pickCanary(req, target);
    this.refuseOverlap(target);

    const fileSha256 = sha256Hex(bytes);
    const correlationId = correlationIdOf(fileSha256);
    const now = this.o.clock.now();
    const id = this.newId(now, correlationId);
    const m = file.manifest;
    const actor = req.actor ?? 'local';
    const topic = req.target.kind === 'devices' ? null : headSetTopic(this.o.prefix, req.target.kind === 'group' ? req.target : { kind: 'all' });
    const r: Rollout = {
      view: {
        id,
        createdAt: now,
        actor,
        head: { id: m.id, version: m.version, sha256: m.sha256, bytes: bytes.length, fileSha256, correlationId, signedBy },
        target: copyTarget(req.target),
        topic,
        phase: 'canary',
        haltReason: null,
        updatedAt: now,
      },
      devices: new Map(),
      bytes: bytes.slice(),
      minAgreement,
      stageTimeoutSec,
      autoPromote: m.shadow?.autoPromoteAgreement,
      retained: 'no',
      timer: null,
      promoteSent: new Set(),
      awaitingReturn: new Set(),
      rollbackWaiting: new Set(),
      order: this.order++,
    };
    for (const device of canary) r.devices.set(device, newDevice(device, 'canary', 'waiting'));
    for (const device of target) if (!r.devices.has(device)) r.devices.set(device, newDevice(device, 'rest', 'pending'));
    // The start record is written before anything is published: no record, no rollout.
    this.o.audit.append({
      at: iso(now),
      rollout: id,
      actor,
      action: 'start',
      sha256: fileSha256,
      head: { id: m.id, version: m.version },
      devices: target,
      detail: { target: r.view.target, canary, topic, correlationId, manifestSha256: m.sha256, bytes: bytes.length, signedBy, minAgreement, stageTimeoutSec, autoPromote: r.autoPromote ?? null },
    });
    this.rollouts.set(id, r);
    log.info('rollout started', { id, head: `${m.id} v${m.version}`, devices: target.length, canary: canary.join(',') });
    this.changed(r);
    this.armTimer(r);
    await Promise.all(canary.map((device) => this.publishHead(r, headSetTopic(this.o.prefix, { kind: 'device', device }), false, [device], 'canary')));
    return viewOf(r);
  }

  /** Halts a rollout that is in canary, rest or done (a done one: its retained topic is cleared). */
  async halt(id: string, actor: string, reason?: string): Promise<RolloutView> {
    const r = this.find(id);
    if (!LIVE.includes(r.view.phase) && r.view.phase !== 'done') {
      throw new EdgeheadError('BAD_ARGS', `rollout ${id} is ${r.view.phase}: only a rollout in canary, rest or done can be halted`);
    }
    await this.haltNow(r, reason && reason.trim() !== '' ? reason.trim() : `halted by ${actor}`, actor);
    return viewOf(r);
  }

  /** Rolls back every device of the rollout that applied it (`rollback`) or runs it in shadow mode (`discard`). */
  async rollback(id: string, actor: string): Promise<RolloutView> {
    const r = this.find(id);
    if (r.view.phase === 'rolling-back' || r.view.phase === 'rolled-back') throw new EdgeheadError('BAD_ARGS', `rollout ${id} is already ${r.view.phase}`);
    if (LIVE.includes(r.view.phase)) await this.haltNow(r, `rolled back by ${actor}`, actor);
    this.cancelTimer(r);
    r.bytes = null;
    const sends: { device: string; cmd: CommandName }[] = [];
    for (const d of r.devices.values()) {
      if (d.state === 'applied') sends.push({ device: d.device, cmd: 'rollback' });
      else if (d.state === 'shadow') sends.push({ device: d.device, cmd: 'discard' });
    }
    r.view.phase = 'rolling-back';
    const pick = (cmd: CommandName) => sends.filter((s) => s.cmd === cmd).map((s) => s.device);
    this.record(r, actor, 'rollback', { devices: sends.map((s) => s.device), detail: { rollback: pick('rollback'), discard: pick('discard') } });
    for (const s of sends) {
      r.rollbackWaiting.add(s.device);
      r.devices.get(s.device)!.reason = `${s.cmd} sent`;
    }
    this.changed(r);
    const clearing = this.clearRetained(r);
    if (sends.length === 0) {
      this.finishRollback(r);
      await clearing;
      return viewOf(r);
    }
    this.armTimer(r);
    await Promise.all(
      sends.map(async ({ device, cmd }) => {
        try {
          await this.sendCommand(device, cmd);
        } catch (e) {
          if (!r.rollbackWaiting.delete(device)) return;
          this.setDevice(r, device, 'rollback-failed', `cannot send ${cmd}: ${describeError(e)}`, 'server', 'device');
          this.checkRollback(r);
        }
      }),
    );
    await clearing;
    return viewOf(r);
  }

  /** Clears the timers; later events are ignored. */
  stop(): void {
    this.stopped = true;
    for (const r of this.rollouts.values()) this.cancelTimer(r);
  }

  // -----------------------------------------------------------------------------------------------------------
  // Upload and target

  private validate(bytes: Uint8Array): { file: HeadFile; signedBy: string | null } {
    const file = decodeHead(bytes, { maxBytes: this.o.maxUploadBytes });
    const m = file.manifest;
    const now = this.o.clock.now();
    if (m.notAfter !== undefined && Date.parse(m.notAfter) < now) {
      throw new EdgeheadError('BAD_HEAD', `expired: head ${m.id} v${m.version} was valid until ${m.notAfter} (notAfter); it is ${iso(now)} (sign a fresh copy: edgehead head sign --not-after ...)`);
    }
    if (this.o.publicKeys.length === 0) return { file, signedBy: null };
    const v = verifyHead(file, this.o.publicKeys);
    if (!v.ok) throw new EdgeheadError('BAD_HEAD', `signature: ${v.reason}`);
    return { file, signedBy: v.keyId };
  }

  /** The target's known devices, sorted. */
  private targetDevices(target: RolloutTarget): string[] {
    let names: string[];
    if (target.kind === 'devices') {
      if (target.devices.length === 0) throw new EdgeheadError('BAD_ARGS', 'the rollout names no device');
      const unknown = target.devices.filter((d) => this.o.fleet.row(d) === undefined);
      if (unknown.length > 0) throw new EdgeheadError('BAD_ARGS', `unknown device${unknown.length > 1 ? 's' : ''} ${namesOf(unknown)} (not seen on the broker)`);
      names = [...new Set(target.devices)];
    } else if (target.kind === 'group') {
      names = this.o.fleet.rows().filter((r) => r.groups.includes(target.group)).map((r) => r.device);
      if (names.length === 0) throw new EdgeheadError('BAD_ARGS', `no known device is in group ${target.group}`);
    } else {
      names = this.o.fleet.rows().map((r) => r.device);
      if (names.length === 0) throw new EdgeheadError('BAD_ARGS', 'no device is known yet: nothing to roll out to');
    }
    return names.sort();
  }

  /** Listed canaries (in the target and online), or ceil(percent% of the target), online devices first; sorted. */
  private pickCanary(req: RolloutRequest, target: string[]): string[] {
    const online = (d: string) => this.o.fleet.row(d)?.online === true;
    let canary: string[];
    if (req.canary && 'devices' in req.canary) {
      canary = [...new Set(req.canary.devices)].sort();
      if (canary.length === 0) throw new EdgeheadError('BAD_ARGS', 'the canary list is empty');
      const outside = canary.filter((d) => !target.includes(d));
      if (outside.length > 0) throw new EdgeheadError('BAD_ARGS', `canary ${namesOf(outside)} not in the rollout's target`);
    } else {
      const percent = req.canary?.percent ?? this.o.defaults.canaryPercent;
      if (!(percent > 0 && percent <= 100)) throw new EdgeheadError('BAD_ARGS', `canary percent must be in (0, 100] (got ${percent})`);
      const n = Math.min(target.length, Math.max(1, Math.ceil((percent * target.length) / 100)));
      canary = [...target.filter(online), ...target.filter((d) => !online(d))].slice(0, n).sort();
    }
    const offline = canary.filter((d) => !online(d));
    if (offline.length > 0) {
      throw new EdgeheadError('BAD_ARGS', `canary ${namesOf(offline)} ${offline.length > 1 ? 'are' : 'is'} offline: a canary must be online to answer`, {
        hint: 'choose online canary devices (--canary) or wait until they are back',
      });
    }
    return canary;
  }

  private refuseOverlap(target: string[]): void {
    for (const r of this.rollouts.values()) {
      if (!BUSY.includes(r.view.phase)) continue;
      const shared = target.filter((d) => r.devices.has(d));
      if (shared.length > 0) {
        throw new EdgeheadError('BAD_ARGS', `rollout ${r.view.id} is still in ${r.view.phase} for ${namesOf(shared)}`, { hint: 'wait for it to finish, or halt it first' });
      }
    }
  }

  private newId(now: number, correlationId: string): string {
    const base = `${iso(now).replace(/[-:]/g, '').replace(/\.\d+/, '')}-${correlationId.slice(0, 8)}`;
    let id = base;
    for (let n = 2; this.rollouts.has(id); n++) id = `${base}-${n}`;
    return id;
  }

  private find(id: string): Rollout {
    const r = this.rollouts.get(id);
    if (!r) throw new EdgeheadError('BAD_ARGS', `unknown rollout ${JSON.stringify(id)}`);
    return r;
  }

  // -----------------------------------------------------------------------------------------------------------
  // Stages

  private startRest(r: Rollout): void {
    this.cancelTimer(r);
    r.view.phase = 'rest';
    const rest = [...r.devices.values()].filter((d) => d.stage === 'rest');
    const waiting: string[] = [];
    const pending: string[] = [];
    for (const d of rest) {
      if (d.state !== 'pending') continue; // answered already (e.g. pushed by hand meanwhile)
      if (this.o.fleet.row(d.device)?.online === true) {
        d.state = 'waiting';
        waiting.push(d.device);
      } else {
        pending.push(d.device);
      }
    }
    this.record(r, 'server', 'rest', { devices: waiting, detail: { pending } });
    this.changed(r);
    this.armTimer(r);
    const published: Promise<boolean>[] = [];
    if (r.view.topic !== null) {
      r.retained = 'published';
      published.push(this.publishHead(r, r.view.topic, true, rest.map((d) => d.device), 'rest'));
    } else {
      for (const device of pending) r.awaitingReturn.add(device);
      for (const device of waiting) published.push(this.publishHead(r, headSetTopic(this.o.prefix, { kind: 'device', device }), false, [device], 'rest'));
    }
    void Promise.all(published).then(() => this.guard(() => this.checkStage(r)));
  }

  /** Moves on when the current stage has every awaited answer. */
  private checkStage(r: Rollout): void {
    const all = [...r.devices.values()];
    if (r.view.phase === 'canary' && all.filter((d) => d.stage === 'canary').every((d) => d.state === 'applied')) {
      this.startRest(r);
    } else if (r.view.phase === 'rest' && !all.some((d) => MID_UPDATE.includes(d.state))) {
      this.cancelTimer(r);
      r.view.phase = 'done';
      if (r.awaitingReturn.size === 0) r.bytes = null;
      const applied = all.filter((d) => d.state === 'applied').length;
      this.record(r, 'server', 'done', { result: `${applied}/${all.length} applied, ${all.length - applied} pending` });
      log.info('rollout done', { id: r.view.id, applied, devices: all.length });
      this.changed(r);
    }
  }

  private onTimeout(r: Rollout): void {
    r.timer = null;
    if (r.view.phase === 'rolling-back') {
      for (const device of [...r.rollbackWaiting]) {
        r.rollbackWaiting.delete(device);
        this.setDevice(r, device, 'rollback-failed', `no answer to the rollback within ${r.stageTimeoutSec} s`, 'server', 'device');
      }
      this.checkRollback(r);
      return;
    }
    if (!LIVE.includes(r.view.phase)) return;
    const stage = r.view.phase === 'canary' ? 'canary' : 'rest';
    const late = [...r.devices.values()].filter((d) => d.stage === stage && MID_UPDATE.includes(d.state));
    if (late.length === 0) return;
    const named = late.map((d) => (d.state === 'shadow' ? `${d.device} (still in shadow mode)` : d.device));
    for (const d of late) d.reason = `no answer within ${r.stageTimeoutSec} s`;
    void this.haltNow(r, `no answer within ${r.stageTimeoutSec} s from ${namesOf(named)}`, 'server');
  }

  private async haltNow(r: Rollout, reason: string, actor: string): Promise<void> {
    this.cancelTimer(r);
    r.view.phase = 'halted';
    r.view.haltReason ??= reason;
    r.bytes = null;
    r.awaitingReturn.clear();
    this.record(r, actor, 'halt', { result: reason });
    log.warn(`rollout ${r.view.id} halted: ${reason}`);
    this.changed(r);
    await this.clearRetained(r);
  }

  /** An empty retained payload on the group/all topic, if the file was published there (once). */
  private async clearRetained(r: Rollout): Promise<void> {
    if (r.retained !== 'published' || r.view.topic === null) return;
    r.retained = 'cleared';
    this.record(r, 'server', 'clear', { detail: { topic: r.view.topic } });
    try {
      await this.o.broker.publish(r.view.topic, new Uint8Array(0), { qos: 1, retain: true });
    } catch (e) {
      r.retained = 'published';
      this.record(r, 'server', 'clear', { result: `failed: ${describeError(e)}`, detail: { topic: r.view.topic } });
      log.error(`rollout ${r.view.id}: cannot clear the retained head on ${r.view.topic}: ${describeError(e)} (clear it by hand: an empty retained message)`);
    }
  }

  private checkRollback(r: Rollout): void {
    if (r.view.phase === 'rolling-back' && r.rollbackWaiting.size === 0) this.finishRollback(r);
  }

  private finishRollback(r: Rollout): void {
    this.cancelTimer(r);
    r.view.phase = 'rolled-back';
    const all = [...r.devices.values()];
    const ok = all.filter((d) => d.state === 'rolled-back').length;
    const failed = all.filter((d) => d.state === 'rollback-failed').length;
    this.record(r, 'server', 'rolled-back', { result: `${ok} rolled back, ${failed} failed` });
    this.changed(r);
  }

  // -----------------------------------------------------------------------------------------------------------
  // Device events

  private onHeadState(device: string, msg: HeadStateMessage, retained: boolean): void {
    if (this.stopped || retained) return;
    const u = msg.lastUpdate;
    if (u.status === 'rolled-back' || u.status === 'discarded') {
      const r = this.newest((x) => x.view.phase === 'rolling-back' && x.rollbackWaiting.has(device) && (u.status === 'rolled-back' || x.view.head.correlationId === u.correlationId));
      if (r) {
        r.rollbackWaiting.delete(device);
        this.setDevice(r, device, 'rolled-back', u.reason ?? null, device, 'answer', u.status);
        this.checkRollback(r);
        return;
      }
    }
    if (u.correlationId === null) return;
    const r = this.newest((x) => x.view.head.correlationId === u.correlationId && x.devices.has(device));
    if (r) this.onAnswer(r, device, msg);
  }

  private onAnswer(r: Rollout, device: string, msg: HeadStateMessage): void {
    const d = r.devices.get(device)!;
    const u = msg.lastUpdate;
    const reason = u.reason ?? null;
    if (r.rollbackWaiting.has(device) || d.state === 'rolled-back' || d.state === 'rollback-failed') {
      this.record(r, device, 'answer', { devices: [device], result: u.status, detail: { state: d.state, reason, ignored: 'rolling back' } });
      return;
    }
    const live = LIVE.includes(r.view.phase);
    switch (u.status) {
      case 'applied':
      case 'duplicate':
      case 'promoted':
        this.setDevice(r, device, 'applied', d.state === 'applied' ? d.reason : reason, device, 'answer', u.status);
        break;
      case 'shadow': {
        if (d.state === 'applied') {
          this.record(r, device, 'answer', { devices: [device], result: u.status, detail: { state: d.state, reason } });
          break;
        }
        const s = msg.shadow;
        const agreement = s?.agreement ?? d.agreement;
        const complete = s !== null && s.seen >= s.frames && s.candidate.sha256 === r.view.head.sha256;
        if (!complete) {
          this.setDevice(r, device, 'shadow', reason, device, 'answer', u.status, agreement);
          break;
        }
        if (agreement === null || agreement < r.minAgreement) {
          const why = `agreement ${fmt(agreement)} < ${fmt(r.minAgreement)}`;
          this.setDevice(r, device, 'shadow', why, device, 'answer', u.status, agreement);
          if (live) void this.haltNow(r, `${why} on ${device}`, 'server');
          break;
        }
        this.setDevice(r, device, 'shadow', `agreement ${fmt(agreement)} >= ${fmt(r.minAgreement)}`, device, 'answer', u.status, agreement);
        const selfPromotes = r.autoPromote !== undefined && agreement >= r.autoPromote;
        if (!selfPromotes && (live || r.view.phase === 'done') && !r.promoteSent.has(device)) this.promote(r, device, agreement);
        break;
      }
      case 'rejected':
      case 'discarded': {
        const why = u.status === 'rejected' ? `${device} rejected it: ${reason ?? 'no reason given'}` : `${device} discarded it`;
        this.setDevice(r, device, 'rejected', u.status === 'rejected' ? reason : 'discarded', device, 'answer', u.status);
        if (live) void this.haltNow(r, why, 'server');
        break;
      }
      default:
        this.record(r, device, 'answer', { devices: [device], result: u.status, detail: { state: d.state, reason } });
    }
    if (live && LIVE.includes(r.view.phase)) this.checkStage(r);
  }

  private onStatus(device: string, online: boolean): void {
    if (this.stopped) return;
    for (const r of this.rollouts.values()) {
      const d = r.devices.get(device);
      if (!d) continue;
      if (!online) {
        if (r.view.topic === null && d.state === 'pending' && d.stage === 'rest' && r.bytes !== null && (r.view.phase === 'rest' || r.view.phase === 'done')) r.awaitingReturn.add(device);
        if (!MID_UPDATE.includes(d.state) || r.rollbackWaiting.has(device) || r.view.phase === 'rolled-back') continue;
        this.setDevice(r, device, 'offline', 'went offline mid-update', 'server', 'device');
        if (LIVE.includes(r.view.phase)) void this.haltNow(r, `${device} went offline mid-update`, 'server');
      } else if (r.awaitingReturn.delete(device) && d.state === 'pending' && r.bytes !== null) {
        void this.publishHead(r, headSetTopic(this.o.prefix, { kind: 'device', device }), false, [device], 'rest');
      }
    }
  }

  // -----------------------------------------------------------------------------------------------------------
  // Publishing, records, views

  /** Publishes the file (QoS 1) unless the rollout no longer publishes; a failure halts it. */
  private async publishHead(r: Rollout, topic: string, retain: boolean, devices: string[], stage: 'canary' | 'rest'): Promise<boolean> {
    const bytes = r.bytes;
    if (bytes === null || !(LIVE.includes(r.view.phase) || r.view.phase === 'done')) return false;
    this.record(r, 'server', 'publish', { devices, detail: { topic, retained: retain, stage } });
    try {
      await this.o.broker.publish(topic, bytes, { qos: 1, retain });
      return true;
    } catch (e) {
      const why = `cannot publish to ${topic}: ${describeError(e)}`;
      if (LIVE.includes(r.view.phase)) await this.haltNow(r, why, 'server');
      else this.record(r, 'server', 'publish', { devices, result: `failed: ${describeError(e)}`, detail: { topic, retained: retain, stage } });
      return false;
    }
  }

  private promote(r: Rollout, device: string, agreement: number): void {
    r.promoteSent.add(device);
    this.record(r, 'server', 'promote', { devices: [device], detail: { agreement, minAgreement: r.minAgreement } });
    this.sendCommand(device, 'promote').catch((e: unknown) => {
      const why = `cannot send promote to ${device}: ${describeError(e)}`;
      if (LIVE.includes(r.view.phase)) void this.haltNow(r, why, 'server');
      else log.warn(`rollout ${r.view.id}: ${why}`);
    });
  }

  private sendCommand(device: string, cmd: CommandName): Promise<void> {
    const id = `rollout-${this.o.clock.now().toString(36)}-${++this.commandSeq}`;
    return this.o.broker.publish(deviceTopic(this.o.prefix, device, 'cmd'), encodePayload('command', commandRequest(id, cmd)), { qos: 1, retain: false });
  }

  /** Sets a device's state (and records it: `action` answer for a device's own answer, device otherwise). */
  private setDevice(r: Rollout, device: string, state: RolloutDeviceState, reason: string | null, actor: string, action: 'answer' | 'device', status?: string, agreement?: number | null): void {
    const d = r.devices.get(device)!;
    // answeredAt is when the device reached this state: a canary's later `duplicate` to the retained group publish
    // does not move it.
    if (action === 'answer' && (d.answeredAt === null || d.state !== state)) d.answeredAt = this.o.clock.now();
    d.state = state;
    d.reason = reason;
    if (agreement !== undefined) d.agreement = agreement;
    this.record(r, actor, action, { devices: [device], result: status ?? state, detail: { state, reason, agreement: d.agreement } });
    this.changed(r);
  }

  private record(r: Rollout, actor: string, action: string, fields: Pick<AuditEntry, 'devices' | 'result' | 'detail'>): void {
    try {
      this.o.audit.append({ at: iso(this.o.clock.now()), rollout: r.view.id, actor, action, ...fields });
    } catch (e) {
      log.error(`rollout ${r.view.id}: ${describeError(e)}`);
    }
  }

  private changed(r: Rollout): void {
    r.view.updatedAt = this.o.clock.now();
    if (this.listeners.length === 0) return;
    const view = viewOf(r);
    for (const l of [...this.listeners]) this.guard(() => l(view));
  }

  private armTimer(r: Rollout): void {
    this.cancelTimer(r);
    r.timer = this.o.clock.setTimeout(() => this.guard(() => this.onTimeout(r)), r.stageTimeoutSec * 1000);
  }

  private cancelTimer(r: Rollout): void {
    r.timer?.cancel();
    r.timer = null;
  }

  private newest(pred: (r: Rollout) => boolean): Rollout | undefined {
    let best: Rollout | undefined;
    for (const r of this.rollouts.values()) if (pred(r) && (!best || r.order > best.order)) best = r;
    return best;
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      log.error(`rollout engine: ${describeError(e)}`, { stack: e instanceof Error ? e.stack : undefined });
    }
  }
}

// -------------------------------------------------------------------------------------------------------------
// Rebuilding earlier rollouts from the audit log

/** Replays the records: each rollout's view as the log tells it (phase from the last phase record). */
function restore(entries: AuditEntry[]): Rollout[] {
  const out = new Map<string, Rollout>();
  for (const e of entries) {
    const r = out.get(e.rollout);
    if (e.action === 'start') {
      const restored = fromStart(e);
      if (restored && !r) out.set(e.rollout, restored);
      continue;
    }
    if (!r) continue;
    const at = Date.parse(e.at);
    if (Number.isFinite(at)) r.view.updatedAt = at;
    const detail = (e.detail ?? {}) as Record<string, unknown>;
    switch (e.action) {
      case 'rest':
        r.view.phase = 'rest';
        for (const device of e.devices ?? []) setState(r, device, 'waiting');
        break;
      case 'answer':
      case 'device':
        for (const device of e.devices ?? []) {
          const d = r.devices.get(device);
          if (!d || typeof detail.state !== 'string') continue;
          d.state = detail.state as RolloutDeviceState;
          d.reason = typeof detail.reason === 'string' ? detail.reason : null;
          if (typeof detail.agreement === 'number') d.agreement = detail.agreement;
          if (e.action === 'answer' && Number.isFinite(at)) d.answeredAt = at;
        }
        break;
      case 'publish':
        if (detail.retained === true && e.result === undefined) r.retained = 'published';
        break;
      case 'clear':
        r.retained = e.result === undefined ? 'cleared' : 'published';
        break;
      case 'halt':
        r.view.phase = 'halted';
        r.view.haltReason ??= e.result ?? 'halted';
        break;
      case 'done':
      case 'rolled-back':
        r.view.phase = e.action;
        break;
      case 'rollback':
        r.view.phase = 'rolling-back';
        break;
    }
  }
  return [...out.values()];
}

function fromStart(e: AuditEntry): Rollout | undefined {
  const d = (e.detail ?? {}) as Record<string, unknown>;
  const at = Date.parse(e.at);
  if (!e.sha256 || !e.head || !Number.isFinite(at) || typeof d.target !== 'object' || d.target === null) return undefined;
  const canary = Array.isArray(d.canary) ? (d.canary as string[]) : [];
  const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
  const r: Rollout = {
    view: {
      id: e.rollout,
      createdAt: at,
      actor: e.actor,
      head: {
        id: e.head.id,
        version: e.head.version,
        sha256: str(d.manifestSha256) ?? '',
        bytes: typeof d.bytes === 'number' ? d.bytes : 0,
        fileSha256: e.sha256,
        correlationId: str(d.correlationId) ?? correlationIdOf(e.sha256),
        signedBy: str(d.signedBy),
      },
      target: d.target as RolloutTarget,
      topic: str(d.topic),
      phase: 'canary',
      haltReason: null,
      updatedAt: at,
    },
    devices: new Map(),
    bytes: null,
    minAgreement: typeof d.minAgreement === 'number' ? d.minAgreement : 0,
    stageTimeoutSec: typeof d.stageTimeoutSec === 'number' ? d.stageTimeoutSec : 60,
    autoPromote: typeof d.autoPromote === 'number' ? d.autoPromote : undefined,
    retained: 'no',
    timer: null,
    promoteSent: new Set(),
    awaitingReturn: new Set(),
    rollbackWaiting: new Set(),
    order: 0,
  };
  for (const device of canary) r.devices.set(device, newDevice(device, 'canary', 'waiting'));
  for (const device of e.devices ?? []) if (!r.devices.has(device)) r.devices.set(device, newDevice(device, 'rest', 'pending'));
  return r;
}

function setState(r: Rollout, device: string, state: RolloutDeviceState): void {
  const d = r.devices.get(device);
  if (d) d.state = state;
}

// -------------------------------------------------------------------------------------------------------------

function newDevice(device: string, stage: 'canary' | 'rest', state: RolloutDeviceState): RolloutDevice {
  return { device, stage, state, reason: null, agreement: null, answeredAt: null };
}

/** A copy the caller may keep (the engine goes on changing its own). */
function viewOf(r: Rollout): RolloutView {
  return { ...r.view, head: { ...r.view.head }, target: copyTarget(r.view.target), devices: [...r.devices.values()].map((d) => ({ ...d })) };
}

function copyTarget(t: RolloutTarget): RolloutTarget {
  return t.kind === 'devices' ? { kind: 'devices', devices: [...t.devices] } : { ...t };
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function fmt(x: number | null): string {
  return x === null ? 'unknown' : x.toFixed(2);
}

/** "pi-1", "pi-1, pi-2", or the first ten and a count. */
function namesOf(names: string[]): string {
  const shown = names.slice(0, MAX_NAMED).join(', ');
  return names.length > MAX_NAMED ? `${shown} and ${names.length - MAX_NAMED} more` : shown;
}
