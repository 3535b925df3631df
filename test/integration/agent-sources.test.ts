/** Real cameras' stand-ins end to end: fswebcam's built-in test source and ffmpeg's lavfi testsrc as an MJPEG stream. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { AgentProcess, Collector, testConfig } from '../support/agent-process';
import { Mosquitto, MOSQUITTO } from '../support/mosquitto';

const has = (bin: string) => ['/usr/bin/', '/usr/local/bin/'].some((d) => fs.existsSync(d + bin));

describe('camera sources end to end', { skip: !MOSQUITTO && 'mosquitto not installed' }, () => {
  let m: Mosquitto;
  before(async () => {
    m = await Mosquitto.start();
  });
  after(() => m.stop());

  const cases = [
    { name: 'webcam (fswebcam -d test)', bin: 'fswebcam', device: 'dev-cam', source: { type: 'webcam', webcam: { device: 'test', width: 320, height: 240, skipFrames: 0 } }, origin: /^webcam:test$/ },
    {
      name: 'stream (ffmpeg lavfi testsrc, MJPEG on stdout)',
      bin: 'ffmpeg',
      device: 'dev-stream',
      source: { type: 'stream', stream: { command: 'ffmpeg', args: ['-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=10', '-f', 'mjpeg', '-q:v', '5', '-'] } },
      origin: /^stream:/,
    },
  ];
  for (const c of cases) {
    test(c.name, { skip: !has(c.bin) && `${c.bin} not installed` }, async () => {
      const sub = await Collector.connect(m.url, [`edgehead/${c.device}/predictions`]);
      const agent = AgentProcess.start(testConfig(m.url, { device: { id: c.device }, source: c.source, schedule: { intervalMs: 500 } }));
      try {
        const preds = await sub.waitFor('2 classified frames', () => {
          const p = sub.json<{ source: string; frameId: number; top: { label: string }[]; ms: { capture: number } }>(`edgehead/${c.device}/predictions`);
          return p.length >= 2 && p;
        }, 60_000);
        assert.match(preds[0]!.source, c.origin);
        assert.ok(preds[0]!.top.length >= 1);
        assert.ok(preds[0]!.ms.capture >= 0); // a stream hands over an already-buffered frame: ~0 ms is right
        assert.equal(await agent.kill('SIGTERM').then((e) => e.code), 0, agent.stderr);
      } finally {
        await agent.kill('SIGKILL');
        await sub.close();
      }
    });
  }
});
