/** Broker outages, flaps and kill -9: nothing the agent printed may be lost. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import mqtt from 'mqtt';
import { decodeHead, encodeHead } from '../../protocol/head/format';
import { deviceTopic } from '../../protocol/topics';
import { PREFIX, ROOT } from '../harness';
import type { Scenario } from '../world';

export const steady: Scenario = {
  name: 'steady',
  proves: 'the baseline: every prediction printed is received once',
  async run(w, { short }) {
    const a = w.agent();
    await a.frames(short ? 30 : 300);
    await a.stop();
    return w.outcome();
  },
};

export const brokerFlaps: Scenario = {
  name: 'broker-flaps',
  proves: 'broker restarts (graceful, persistence on): queued predictions are delivered in order after each one',
  async run(w, { short }) {
    const a = w.agent();
    const flaps = short ? 2 : 5;
    await a.frames(10);
    for (let i = 0; i < flaps; i++) {
      await w.broker.stop();
      await a.frames(10); // classified and queued while the broker is away
      await w.broker.restart();
      await a.frames(10);
    }
    await a.stop();
    w.notes.push(`${flaps} broker restarts`);
    return w.outcome();
  },
};

export const kill9Outage: Scenario = {
  name: 'kill9-outage',
  proves: 'kill -9 while the broker is down: what was queued survives and is sent by the next start',
  async run(w, { short }) {
    await w.broker.stop();
    const a = w.agent();
    await a.frames(short ? 15 : 100);
    await a.stop('SIGKILL');
    const b = w.agent();
    await b.frames(5);
    await w.broker.restart();
    await b.frames(10);
    await b.stop();
    w.notes.push('agent killed with -9 during the outage');
    return w.outcome();
  },
};

export const kill9HeadPersist: Scenario = {
  name: 'kill9-head-persist',
  proves: 'kill -9 in the middle of making a new head active: the next start runs a valid head (old or new)',
  async run(w) {
    const a = w.agent({}, { EDGEHEAD_TEST_PERSIST_PAUSE_MS: '5000' });
    await a.frames(5);
    const demo = decodeHead(new Uint8Array(fs.readFileSync(path.join(ROOT, 'dist', 'assets', 'heads', 'demo.head'))));
    const v2 = encodeHead({ ...demo, manifest: { ...demo.manifest, version: demo.manifest.version + 1 } });
    const pub = await mqtt.connectAsync(w.broker.url);
    await pub.publishAsync(deviceTopic(PREFIX, 'chaos1', 'head/set'), Buffer.from(v2), { qos: 1 });
    await pub.endAsync();
    await a.waitFor('the persist pause', () => a.stderr.includes('test hook: paused'));
    await a.stop('SIGKILL');
    const b = w.agent();
    await b.frames(5);
    const head = /head="([^"]+)"/.exec(b.stderr)?.[1] ?? '?';
    await b.stop();
    w.notes.push(`restarted on head ${head}`);
    const out = await w.outcome();
    if (!/^demo v[12]$/.test(head)) out.failure ??= `unexpected head after the crash: ${head}`;
    return out;
  },
};

export const NETWORK = [steady, brokerFlaps, kill9Outage, kill9HeadPersist];
