/** Credentials never printed: URL redaction, the log sink, config presentation, the push password sources. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { configureLogging, createLogger } from '../../base/log';
import { redactUrl, redactUrls } from '../../base/redact';
import { pushPassword } from '../../cli/broker-args';
import { defaultConfig } from '../../config/defaults';
import { maskSecrets } from '../../config/present';
import { describeMqttError } from '../../mqtt/mqttjs-client';
import { tmpDir } from '../support/cli';

test('redactUrls masks the password of every URL and leaves the rest alone', () => {
  const cases: [string, string][] = [
    ['mqtt://user:PASSWORD@host:1883', 'mqtt://user:***@host:1883'],
    ['mqtts://u:p%40ss@b.example:8883/x', 'mqtts://u:***@b.example:8883/x'],
    ['see ws://a:b@c and http://:pw@cam/snap.jpg', 'see ws://a:***@c and http://:***@cam/snap.jpg'],
    ['mqtt://u:p@ss@h:1', 'mqtt://u:***@h:1'],
    ['mqtt://host:1883', 'mqtt://host:1883'],
    ['mqtt://user@host', 'mqtt://user@host'],
    ['no url at all: a:b@c', 'no url at all: a:b@c'],
  ];
  for (const [input, want] of cases) assert.equal(redactUrls(input), want, input);
  assert.equal(redactUrl('wss://x:y@z/mqtt'), 'wss://x:***@z/mqtt');
});

test('no log line carries a password, whoever logs it (message and string fields, text and JSON)', () => {
  const lines: string[] = [];
  for (const format of ['text', 'json'] as const) {
    configureLogging({ level: 'debug', format, sink: { write: (l) => void lines.push(l) } });
    const log = createLogger('t');
    log.info('connected', { url: 'mqtt://bob:hunter2@broker:1883', n: 1 });
    log.warn('broker mqtt://bob:hunter2@broker:1883 refused the connection');
  }
  configureLogging({ level: 'silent', format: 'text', sink: { write: (l) => process.stderr.write(l + '\n') } });
  assert.equal(lines.length, 4);
  for (const l of lines) {
    assert.ok(!l.includes('hunter2'), l);
    assert.match(l, /bob:\*\*\*@broker/);
  }
});

test('connection errors name the broker without its password', () => {
  const e = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
  const line = redactUrls(describeMqttError(e, 'mqtt://bob:hunter2@h:1'));
  assert.equal(line, 'broker mqtt://bob:***@h:1 refused the connection (is it running?)');
});

test('config presentation masks passwords inside URLs as well as secret settings', () => {
  const c = defaultConfig();
  c.mqtt.url = 'mqtt://bob:hunter2@broker:1883';
  c.mqtt.password = 'hunter3';
  c.source.http.url = 'http://cam:hunter4@10.0.0.9/snap.jpg';
  const text = JSON.stringify(maskSecrets(c));
  for (const secret of ['hunter2', 'hunter3', 'hunter4']) assert.ok(!text.includes(secret), secret);
  assert.match(text, /mqtt:\/\/bob:\*\*\*@broker:1883/);
});

test('head push takes the password from a file or the environment (not visible in ps)', () => {
  const dir = tmpDir('pw-');
  const file = path.join(dir, 'pw');
  fs.writeFileSync(file, 's3cret\nignored second line\n', { mode: 0o600 });
  assert.equal(pushPassword(undefined, file, undefined), 's3cret');
  assert.equal(pushPassword(undefined, undefined, 'from-env'), 'from-env');
  assert.equal(pushPassword('flag', undefined, 'from-env'), 'flag');
  assert.equal(pushPassword(undefined, undefined, ''), undefined);
  assert.throws(() => pushPassword('a', file, undefined), /not both/);
  assert.throws(() => pushPassword(undefined, path.join(dir, 'missing'), undefined), /--password-file: cannot read .*ENOENT/);
  fs.writeFileSync(file, '\n');
  assert.throws(() => pushPassword(undefined, file, undefined), /is empty/);
});
