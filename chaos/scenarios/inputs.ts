/** Hostile input: garbage and huge payloads on every subscribed topic, huge and slow camera snapshots. */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import mqtt from 'mqtt';
import { deviceTopic, headSetTopic } from '../../protocol/topics';
import { freePort } from '../../test/support/mosquitto';
import { PREFIX, ROOT } from '../harness';
import type { Scenario } from '../world';

/** Peak RSS the agent may reach under hostile input (issue 11: ~600 MB for any single accepted input). */
const RSS_BOUND_MB = 600;

function dirBytes(dir: string): number {
  if (!fs.existsSync(dir)) return 0;
  return fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
}

export const hostilePayloads: Scenario = {
  name: 'hostile-payloads',
  proves: 'garbage, huge and deep payloads on cmd, head/set, group and fleet topics: answered or refused, memory bounded, frames go on',
  async run(w, { short }) {
    const a = w.agent({ device: { id: 'chaos1', groups: ['g1'] } });
    await a.frames(5);
    const c = await mqtt.connectAsync(w.broker.url);
    const replies: string[] = [];
    c.on('message', (_t, p) => replies.push(p.toString()));
    await c.subscribeAsync(deviceTopic(PREFIX, 'chaos1', 'cmd/reply'), { qos: 1 });
    const cmd = deviceTopic(PREFIX, 'chaos1', 'cmd');
    const huge = Buffer.alloc((short ? 20 : 50) * 1024 * 1024, 0x61);
    const deep = '['.repeat(30_000) + ']'.repeat(30_000);
    const hostileCmds: (string | Buffer)[] = ['garbage', '{"id":', deep, Buffer.concat([Buffer.from('{"id":"h","cmd":"'), huge, Buffer.from('"}')]), JSON.stringify({ id: 'x'.repeat(10_000), cmd: 'status' }), '{"id":"u","cmd":"reboot"}'];
    for (const p of hostileCmds) await c.publishAsync(cmd, p, { qos: 1 });
    const heads = [deviceTopic(PREFIX, 'chaos1', 'head/set'), headSetTopic(PREFIX, { kind: 'group', group: 'g1' }), headSetTopic(PREFIX, { kind: 'all' })];
    for (const t of heads) {
      await c.publishAsync(t, Buffer.alloc(2 * 1024 * 1024, 0x5a), { qos: 1, retain: t !== heads[0] });
      await c.publishAsync(t, Buffer.from('EHED\u0001\u0000\u0000\u0000\u00ff\u00ff\u00ff\u00ff'), { qos: 1 });
      for (let i = 0; i < (short ? 20 : 200); i++) await c.publishAsync(t, Buffer.from(`junk ${i}`), { qos: 1 });
    }
    for (const t of heads.slice(1)) await c.publishAsync(t, '', { qos: 1, retain: true }); // clear the retained garbage
    await c.publishAsync(cmd, '{"id":"final","cmd":"status"}', { qos: 1 });
    await a.waitFor('the final status reply', () => replies.some((r) => r.includes('"id":"final"') && r.includes('"ok":true')));
    await a.frames(5);
    await a.stop();
    await c.endAsync();
    const longest = Math.max(...replies.map((r) => r.length));
    const rejectedBytes = dirBytes(path.join(w.stateDir, 'heads', 'rejected'));
    w.notes.push(`${replies.length} replies (longest ${longest} bytes)`, `rejected/ holds ${Math.round(rejectedBytes / 1024)} KiB`);
    const out = await w.outcome();
    if (out.peakRssMB > RSS_BOUND_MB) out.failure ??= `peak RSS ${out.peakRssMB} MB > ${RSS_BOUND_MB} MB`;
    if (longest > 4096) out.failure ??= `a reply of ${longest} bytes echoes its input`;
    if (rejectedBytes > 2 * 1024 * 1024) out.failure ??= `rejected payloads take ${rejectedBytes} bytes on disk`;
    return out;
  },
};

export const httpSource: Scenario = {
  name: 'http-source',
  proves: 'an IP camera sending a 300 MB snapshot, then stalling: the agent refuses it within its cap and stops on SIGTERM',
  async run(w) {
    const jpeg = fs.readFileSync(path.join(ROOT, 'dist', 'assets', 'samples', 'fish', 'fish1.jpg'));
    let mode: 'ok' | 'huge' | 'stall' = 'ok';
    let served = 0;
    const server = http.createServer((_req, res) => {
      served++;
      res.writeHead(200, { 'content-type': 'image/jpeg' });
      if (mode === 'ok') return void res.end(jpeg);
      if (mode === 'stall') return void res.write(jpeg.subarray(0, 100)); // never ends
      let sent = 0;
      const chunk = Buffer.alloc(1024 * 1024, 0xff);
      const pump = (): void => {
        while (sent < 300 * 1024 * 1024) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      res.on('close', () => (sent = Infinity));
      pump();
    });
    const port = await freePort();
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    try {
      const a = w.agent({ source: { type: 'http', http: { url: `http://127.0.0.1:${port}/snap.jpg`, timeoutMs: 60_000 } } });
      await a.frames(5);
      mode = 'huge';
      const before = served;
      await a.waitFor('two huge snapshots refused', () => served >= before + 2 && /frame failed/.test(a.stderr), 120_000);
      mode = 'ok';
      await a.frames(5);
      mode = 'stall';
      const stalled = served;
      await a.waitFor('a stalled download', () => served > stalled, 30_000);
      const t0 = Date.now();
      const exit = await a.stop();
      w.notes.push(`SIGTERM during a stalled download: exit ${exit.code} after ${Date.now() - t0} ms`);
      const out = await w.outcome();
      if (out.peakRssMB > RSS_BOUND_MB) out.failure ??= `peak RSS ${out.peakRssMB} MB > ${RSS_BOUND_MB} MB`;
      if (exit.code !== 0) out.failure ??= `exit code ${exit.code} on SIGTERM during a download (forced exit?)`;
      return out;
    } finally {
      server.closeAllConnections();
      server.close();
    }
  },
};

export const INPUTS = [hostilePayloads, httpSource];
