/** A bad frame is logged and counted; the loop goes on (directory source with a broken image among good ones). */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { test } from 'node:test';
import { Aedes } from 'aedes';
import { AgentProcess, Collector, testConfig } from '../support/agent-process';
import { SAMPLES, tmpDir } from '../support/cli';
import { freePort } from '../support/mosquitto';

test('a broken frame is counted as failed and the next frames are still classified', async () => {
  const aedes = await Aedes.createBroker();
  const server = net.createServer(aedes.handle);
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const url = `mqtt://127.0.0.1:${port}`;
  const frames = tmpDir();
  fs.copyFileSync(path.join(SAMPLES, 'fish', 'fish1.jpg'), path.join(frames, 'a.jpg'));
  fs.writeFileSync(path.join(frames, 'b.jpg'), Buffer.from('this is not a JPEG'));
  fs.copyFileSync(path.join(SAMPLES, 'tool', 'hammer1.jpg'), path.join(frames, 'c.jpg'));
  const sub = await Collector.connect(url, ['edgehead/dev-err/#']);
  const agent = AgentProcess.start(testConfig(url, { device: { id: 'dev-err' }, source: { type: 'directory', directory: { path: frames } } }));
  try {
    const preds = await sub.waitFor('4 predictions', () => {
      const p = sub.json<{ source: string }>('edgehead/dev-err/predictions');
      return p.length >= 4 && p;
    });
    assert.deepEqual(preds.slice(0, 4).map((p) => p.source), ['directory:a.jpg', 'directory:c.jpg', 'directory:a.jpg', 'directory:c.jpg']);
    const tel = await sub.waitFor('telemetry with failures', () => sub.json<{ frames: { failed: number; ok: number } }>('edgehead/dev-err/telemetry').find((t) => t.frames.failed >= 1));
    assert.ok(tel.frames.ok >= 1);
    assert.match(agent.stderr, /frame failed.*b\.jpg/);
    assert.ok(agent.running);
  } finally {
    await agent.kill('SIGKILL');
    await sub.close();
    await new Promise<void>((r) => aedes.close(() => server.close(() => r())));
  }
});
