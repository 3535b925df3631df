/** The wire contract (protocol/): topics built and parsed by one module, command parsing, docs/mqtt.md current. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { COMMAND_NAMES, parseCommand } from '../../protocol/commands';
import { renderMqttDocs } from '../../protocol/docs';
import { CMD_MAX_BYTES, TOPIC_PREFIX_RE } from '../../protocol/patterns';
import { DEVICE_TOPIC_KINDS, deviceTopic, deviceTopics, everyDeviceTopic, headScopeOf, headSetTopic, parseTopic, scopeRank } from '../../protocol/topics';
import { ROOT } from '../support/cli';

test('every topic a device uses parses back to what built it, under one- and multi-level prefixes', () => {
  for (const prefix of ['edgehead', 'site/a/edgehead']) {
    for (const kind of DEVICE_TOPIC_KINDS) {
      const t = deviceTopic(prefix, 'pi-1', kind);
      const parsed = parseTopic(prefix, t);
      if (kind === 'head/set') assert.deepEqual(parsed, { kind, scope: { kind: 'device', device: 'pi-1' } });
      else assert.deepEqual(parsed, { kind, device: 'pi-1' });
    }
    assert.deepEqual(parseTopic(prefix, headSetTopic(prefix, { kind: 'group', group: 'kitchens' })), { kind: 'head/set', scope: { kind: 'group', group: 'kitchens' } });
    assert.deepEqual(parseTopic(prefix, headSetTopic(prefix, { kind: 'all' })), { kind: 'head/set', scope: { kind: 'all' } });
  }
});

test('deviceTopics lists the head topics a device subscribes to, highest precedence first', () => {
  const t = deviceTopics('edgehead', 'd', ['g1', 'g2']);
  assert.deepEqual(t.headSet, ['edgehead/d/head/set', 'edgehead/groups/g1/head/set', 'edgehead/groups/g2/head/set', 'edgehead/all/head/set']);
  const ranks = t.headSet.map((topic) => scopeRank(headScopeOf('edgehead', topic)));
  assert.deepEqual(ranks, [3, 2, 2, 1]);
  assert.equal(scopeRank(undefined), 0);
  assert.equal(everyDeviceTopic('edgehead', 'head/state'), 'edgehead/+/head/state');
});

test('parseTopic refuses other prefixes, unknown kinds, wildcards and empty levels', () => {
  for (const t of ['other/d/status', 'edgehead/d/unknown', 'edgehead/+/status', 'edgehead/d/cmd/#', 'edgehead//status', 'edgehead/d', 'edgeheadx/d/status', 'edgehead/groups/g/head/state/x', 'edgehead/groups/head/set']) {
    assert.equal(parseTopic('edgehead', t), undefined, t);
  }
  // "groups/<g>/head/set" is a group head, never a device called "groups"
  assert.deepEqual(headScopeOf('edgehead', 'edgehead/groups/g/head/set'), { kind: 'group', group: 'g' });
});

test('the topic-prefix rule', () => {
  for (const ok of ['edgehead', 'a/b', 'site-1/edge.head']) assert.ok(TOPIC_PREFIX_RE.test(ok), ok);
  for (const bad of ['', '/a', 'a/', 'a//b', 'a/+/b', 'a#', 'a\u0000b']) assert.ok(!TOPIC_PREFIX_RE.test(bad), JSON.stringify(bad));
});

test('parseCommand: typed arguments per command, one-line errors that never echo large input', () => {
  const ok = parseCommand('{"id":"1","cmd":"shadow","args":{"frames":5,"autoPromoteAgreement":0.9}}');
  assert.deepEqual(ok, { ok: true, command: { id: '1', cmd: 'shadow', args: { frames: 5, autoPromoteAgreement: 0.9 } } });
  assert.deepEqual(parseCommand('{"id":2,"cmd":"status"}'), { ok: true, command: { id: '2', cmd: 'status', args: {} } });
  const cases: [string, RegExp, string | null][] = [
    ['not json', /^malformed command: not JSON/, null],
    ['[1]', /^malformed command: must be an object/, null],
    ['{"cmd":"status"}', /^malformed command\.id: required/, null],
    ['{"id":"x"}', /^malformed command\.cmd: required/, 'x'],
    ['{"id":"x","cmd":"status","args":[]}', /^malformed command\.args: must be an object/, 'x'],
    ['{"id":"x","cmd":"status","args":{"a":1}}', /^status: args\.a: unknown key/, 'x'],
    ['{"id":"x","cmd":"shadow","args":{"frames":1.5}}', /^shadow: args\.frames: must be an integer/, 'x'],
    ['{"id":"x","cmd":"shadow","args":{}}', /^shadow: args\.frames: required/, 'x'],
    ['{"id":"x","cmd":"shadow","args":{"frames":2,"autoPromoteAgreement":2}}', /^shadow: args\.autoPromoteAgreement: must be <= 1/, 'x'],
    ['{"id":"x","cmd":"__proto__"}', /^unknown command "__proto__"/, 'x'],
  ];
  for (const [payload, error, id] of cases) {
    const r = parseCommand(payload);
    assert.equal(r.ok, false, payload);
    if (r.ok) continue;
    assert.match(r.reply.error!, error, payload);
    assert.equal(r.reply.id, id, payload);
    assert.ok(!r.reply.error!.includes('\n'));
  }
  const huge = JSON.stringify({ id: 'big', cmd: 'x'.repeat(CMD_MAX_BYTES) });
  const r = parseCommand(huge);
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.match(r.reply.error!, /too large \(\d+ bytes > limit 65536\)/);
    assert.ok(JSON.stringify(r.reply).length < 300, 'the reply does not echo the payload');
  }
  const longName = parseCommand(JSON.stringify({ id: 'n', cmd: 'y'.repeat(5000) }));
  assert.ok(!longName.ok && JSON.stringify(longName.reply).length < 400);
  assert.deepEqual(COMMAND_NAMES, ['allow', 'capture', 'collect-ack', 'collect-fetch', 'collect-status', 'discard', 'pause', 'promote', 'resume', 'rollback', 'shadow', 'snapshot', 'status']);
});

test('docs/mqtt.md is up to date with protocol/ (npx tsx scripts/gen-mqtt-docs.ts)', () => {
  const committed = fs.readFileSync(path.join(ROOT, 'docs', 'mqtt.md'), 'utf8');
  const fresh = renderMqttDocs(committed);
  if (committed === fresh) return;
  const a = committed.split('\n');
  const b = fresh.split('\n');
  const line = a.findIndex((l, i) => l !== b[i]);
  assert.fail(`docs/mqtt.md is stale at line ${line + 1}: ${JSON.stringify(a[line])} should be ${JSON.stringify(b[line])}; run npx tsx scripts/gen-mqtt-docs.ts`);
});

test('no topic string is spelled outside protocol/ in runtime or tooling code (module paths like ./fleet/status are not topics)', () => {
  const offenders: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.ts') && /['`"](?!\.\.?\/)[^'`"]*\/(head\/set|head\/state|cmd\/reply|status|predictions|telemetry)['`"]/.test(fs.readFileSync(p, 'utf8'))) offenders.push(path.relative(ROOT, p));
    }
  };
  for (const dir of ['agent', 'operator', 'cli', 'mqtt', 'config', 'base']) walk(path.join(ROOT, dir));
  assert.deepEqual(offenders, []);
});

test('a device id may not be a topic word ("all", "groups"): the config and head push refuse it', async () => {
  const { checkConfig } = await import('../../config/load');
  for (const id of ['all', 'groups']) {
    const r = checkConfig({ data: { version: 1, device: { id } }, checkFiles: false });
    assert.ok(r.errors.some((e) => e.startsWith('device.id: ') && e.includes('must not be "groups" or "all"')), r.errors.join('\n'));
  }
  assert.deepEqual(checkConfig({ data: { version: 1, device: { id: 'allotment', groups: ['all'] } }, checkFiles: false }).errors, []);
  const { checkId } = await import('../../operator/push');
  const { DEVICE_ID_RE, DEVICE_ID_RULE } = await import('../../protocol/patterns');
  assert.throws(() => checkId('groups', 'the device id', { re: DEVICE_ID_RE, text: DEVICE_ID_RULE }), /must not be "groups" or "all"/);
});
