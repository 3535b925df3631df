/**
 * Downgrades and replays of signed heads (issue 11, item 4): the durable high-water mark of every head id ever
 * applied, the operator's one-shot `allow`, `rollback` still allowed, and the signed `notAfter`.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { deviceCommandHandlers } from '../../agent/commands/handlers';
import { HeadStore } from '../../agent/hot-swap/head-store';
import { configureLogging } from '../../base/log';
import { defaultConfig } from '../../config/defaults';
import { headSignCommand, notAfterArg } from '../../cli/commands/head-sign';
import { decodeHead, encodeHead, makeHeadFile } from '../../protocol/head/format';
import { generateKeyPair, signHead, verifyHead } from '../../protocol/head/signature';
import type { HeadStateMessage } from '../../protocol/messages';
import { tmpDir } from '../support/cli';
import { testHeadManager } from '../support/head-manager';

before(async () => {
  configureLogging({ level: 'silent' });
  await tf.setBackend('cpu');
});

const D = 4;
const extractor = { id: 'x', fingerprint: 'ab'.repeat(32), featureDim: D };
const keys = generateKeyPair();
const cfg = defaultConfig().head;
const DEVICE_TOPIC = 'edgehead/dev/head/set';
const FLEET_TOPIC = 'edgehead/all/head/set';

/** A signed head; `seed` changes the weights (so two heads with the same id and version can differ). */
function signed(id: string, version: number, extra: { notAfter?: string; seed?: number } = {}): Uint8Array {
  const kernel = Float32Array.from({ length: D * 2 }, (_, i) => ((i + (extra.seed ?? version)) % 5) / 10);
  const file = makeHeadFile({ id, version, classes: ['a', 'b'], extractor, kernel, bias: new Float32Array(2) });
  if (extra.notAfter) file.manifest.notAfter = extra.notAfter;
  return encodeHead(signHead(file, keys.privateKeyPem));
}

function setup(dir = tmpDir('downgrade-'), now?: () => number) {
  const store = new HeadStore(dir, cfg.maxBytes, 0);
  const t = testHeadManager({ store, cfg, extractor, publicKeys: [keys.publicKeyPem], initialBytes: signed('base', 1), ...(now ? { now } : {}) });
  const push = async (bytes: Uint8Array, topic = DEVICE_TOPIC): Promise<HeadStateMessage> => {
    await t.manager.handlePayload(topic, bytes, false);
    return t.states.at(-1)!;
  };
  const handlers = deviceCommandHandlers({
    frames: { capture: async () => assert.fail('no capture') },
    scheduler: { runNow: async () => undefined, idle: async () => undefined, pause: () => assert.fail('no pause'), resume: () => assert.fail('no resume') },
    heads: t.manager,
    status: () => assert.fail('no status'),
    scheduleChanged: async () => assert.fail('no schedule change'),
    snapshots: { take: async () => assert.fail('no snapshot') },
  });
  return { ...t, dir, push, handlers, close: () => (t.current().dispose(), t.manager.dispose()) };
}

const active = (s: HeadStateMessage) => `${s.active.id} v${s.active.version}`;

test('the hop of issue 11: shop v2 -> (old, validly signed) other v1 -> shop v1 is refused, and so is a replay of shop v2', async () => {
  const d = setup();
  const shop1 = signed('shop', 1);
  const shop2 = signed('shop', 2);
  assert.equal((await d.push(shop1, FLEET_TOPIC)).lastUpdate.status, 'applied');
  assert.equal((await d.push(shop2, FLEET_TOPIC)).lastUpdate.status, 'applied');
  // An id this device never ran is a new head: the mark cannot know it is old (see docs/head-format.md, threat model).
  const other = await d.push(signed('other', 1), FLEET_TOPIC);
  assert.equal(other.lastUpdate.status, 'applied', other.lastUpdate.reason);
  const back = await d.push(shop1, FLEET_TOPIC);
  assert.equal(back.lastUpdate.status, 'rejected', 'shop v1 must not come back');
  assert.match(back.lastUpdate.reason!, /downgrade: head shop v1 <= v2, the highest version of shop applied on this device/);
  assert.match(back.lastUpdate.reason!, /"cmd":"allow","args":\{"id":"shop","version":1\}/, 'the reason says how to allow it');
  assert.equal(active(back), 'other v1');
  const replay = await d.push(shop2, FLEET_TOPIC);
  assert.equal(replay.lastUpdate.status, 'rejected', 'an equal version that is not active is a replay');
  assert.equal(active(replay), 'other v1');
  d.close();
});

test('the high-water mark survives a restart and is a 0600 file in <stateDir>/heads', async () => {
  const dir = tmpDir('downgrade-');
  const a = setup(dir);
  await a.push(signed('shop', 1));
  await a.push(signed('shop', 2));
  await a.push(signed('other', 1));
  a.close();
  const file = path.join(dir, 'heads', 'high-water.json');
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  const b = setup(dir);
  const st = await b.push(signed('shop', 1));
  assert.equal(st.lastUpdate.status, 'rejected');
  assert.match(st.lastUpdate.reason!, /downgrade/);
  assert.equal(active(st), 'other v1');
  b.close();
});

test('a damaged high-water file is rebuilt from the heads on disk (active and previous)', async () => {
  const dir = tmpDir('downgrade-');
  const a = setup(dir);
  await a.push(signed('shop', 1));
  await a.push(signed('shop', 2));
  await a.push(signed('other', 3));
  a.close();
  fs.writeFileSync(path.join(dir, 'heads', 'high-water.json'), '{"heads": {"shop": {"vers');
  const b = setup(dir);
  assert.match((await b.push(signed('shop', 1))).lastUpdate.reason!, /downgrade: head shop v1 <= v2/, 'previous head shop v2 re-seeded');
  assert.match((await b.push(signed('other', 2))).lastUpdate.reason!, /older version/);
  assert.match(fs.readFileSync(path.join(dir, 'heads', 'high-water.json'), 'utf8'), /"shop"/, 'rewritten');
  b.close();
});

test('equal version and sha256 as the active head is still a duplicate; a newer version still applies', async () => {
  const d = setup();
  const shop1 = signed('shop', 1);
  await d.push(shop1);
  assert.equal((await d.push(shop1)).lastUpdate.status, 'duplicate');
  const other = await d.push(signed('shop', 1, { seed: 3 }));
  assert.match(other.lastUpdate.reason!, /already active with other weights/);
  assert.equal((await d.push(signed('shop', 2))).lastUpdate.status, 'applied');
  d.close();
});

test('allow: the operator lets one rollback target through, once; rollback to the previous head stays allowed', async () => {
  const d = setup();
  const shop1 = signed('shop', 1);
  await d.push(shop1);
  await d.push(signed('shop', 2));
  await d.push(signed('other', 1));
  // A pinned allowance lets only those bytes through.
  const wrongSha = await d.handlers.allow({ id: 'shop', version: 1, sha256: 'ee'.repeat(32) });
  assert.deepEqual(wrongSha, { allowed: { id: 'shop', version: 1, sha256: 'ee'.repeat(32), until: (wrongSha as { allowed: { until: string } }).allowed.until } });
  assert.equal((await d.push(shop1)).lastUpdate.status, 'rejected');
  await d.handlers.allow({ id: 'shop', version: 1 });
  const st = await d.push(shop1);
  assert.equal(st.lastUpdate.status, 'applied', st.lastUpdate.reason);
  assert.equal(active(st), 'shop v1');
  // The stored previous head is an explicit operator target: rollback works without an allowance.
  const rb = (await d.handlers.rollback({})) as { id: string; version: number };
  assert.deepEqual([rb.id, rb.version], ['other', 1]);
  // The allowance was used up by the head it let through.
  const again = await d.push(shop1);
  assert.equal(again.lastUpdate.status, 'rejected');
  assert.match(again.lastUpdate.reason!, /downgrade/);
  // The mark did not go down: shop v2 (the highest) is still refused, v3 applies.
  assert.equal((await d.push(signed('shop', 2))).lastUpdate.status, 'rejected');
  assert.equal((await d.push(signed('shop', 3))).lastUpdate.status, 'applied');
  d.close();
});

test('allow: refused arguments and an allowance that expired', async () => {
  let now = Date.parse('2030-01-01T00:00:00Z');
  const d = setup(tmpDir('downgrade-'), () => now);
  await d.push(signed('shop', 1));
  await d.push(signed('shop', 2));
  await assert.rejects(d.handlers.allow({ id: 'nope', version: 1 }), /no head "nope" was ever applied on this device/);
  await assert.rejects(d.handlers.allow({ id: 'shop', version: 3 }), /shop v3 is not a downgrade/);
  const r = (await d.handlers.allow({ id: 'shop', version: 1, minutes: 5 })) as { allowed: { until: string } };
  assert.equal(r.allowed.until, '2030-01-01T00:05:00.000Z');
  now += 6 * 60_000;
  const st = await d.push(signed('shop', 1));
  assert.equal(st.lastUpdate.status, 'rejected');
  assert.match(st.lastUpdate.reason!, /older version: head shop v1 < active v2/);
  d.close();
});

test('notAfter: an expired signed head is refused with a clear reason; an unexpired one applies', async () => {
  const now = Date.parse('2030-06-01T00:00:00Z');
  const d = setup(tmpDir('downgrade-'), () => now);
  const old = await d.push(signed('shop', 1, { notAfter: '2030-05-31T23:59:59Z' }));
  assert.equal(old.lastUpdate.status, 'rejected');
  assert.match(old.lastUpdate.reason!, /expired: head shop v1 was valid until 2030-05-31T23:59:59Z \(notAfter\); this device's clock says 2030-06-01T00:00:00.000Z/);
  const fresh = await d.push(signed('shop', 1, { notAfter: '2030-06-02T00:00:00Z' }));
  assert.equal(fresh.lastUpdate.status, 'applied', fresh.lastUpdate.reason);
  d.close();
});

test('edgehead head sign --not-after: sets a signed notAfter (date or duration); a past or malformed one is refused', async () => {
  const dir = tmpDir('sign-');
  const keyFile = path.join(dir, 'k.key');
  fs.writeFileSync(keyFile, keys.privateKeyPem, { mode: 0o600 });
  const file = path.join(dir, 'shop.head');
  fs.writeFileSync(file, signed('shop', 1));
  const out: string[] = [];
  const write = process.stdout.write;
  process.stdout.write = ((s: string) => (out.push(s), true)) as typeof process.stdout.write;
  try {
    assert.equal(await headSignCommand.run(['--key', keyFile, '--not-after', '2031-01-01T00:00:00Z', file]), 0);
  } finally {
    process.stdout.write = write;
  }
  assert.match(out.join(''), /not after: +2031-01-01T00:00:00Z/);
  const head = decodeHead(new Uint8Array(fs.readFileSync(file)), { maxBytes: cfg.maxBytes });
  assert.equal(head.manifest.notAfter, '2031-01-01T00:00:00Z');
  assert.deepEqual(verifyHead(head, [keys.publicKeyPem]), { ok: true, keyId: head.manifest.signature!.keyId });
  // The device refuses it once its clock is past that date, with the signature intact.
  const d = setup(tmpDir('downgrade-'), () => Date.parse('2031-01-02T00:00:00Z'));
  assert.match((await d.push(new Uint8Array(fs.readFileSync(file)))).lastUpdate.reason!, /^expired: head shop v1 was valid until 2031-01-01T00:00:00Z/);
  d.close();

  const now = new Date('2030-01-01T00:00:00Z');
  assert.equal(notAfterArg('90d', now), '2030-04-01T00:00:00.000Z');
  assert.equal(notAfterArg('12h', now), '2030-01-01T12:00:00.000Z');
  assert.throws(() => notAfterArg('2029-12-31T00:00:00Z', now), /already past/);
  assert.throws(() => notAfterArg('2030-02-01', now), /ISO 8601 date-time with a time zone/);
  assert.throws(() => notAfterArg('0d', now), /in the future/);
  await assert.rejects(headSignCommand.run(['--key', keyFile, '--not-after', '2030-02-31T00:00:00Z', file]), /notAfter/);
});
