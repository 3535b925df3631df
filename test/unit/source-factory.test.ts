/** createFrameSource: config.source.type picks the implementation, which gets its own settings section and the clock. */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { defaultConfig } from '../../config/defaults';
import { DirectorySource, HttpSource, StreamSource, WebcamSource, createFrameSource } from '../../agent/sources';
import { ManualClock } from '../../base/clock';
import { EdgeheadError } from '../../base/errors';

describe('createFrameSource', () => {
  test('chooses by source.type', () => {
    const cfg = defaultConfig().source;
    assert.equal(cfg.type, 'directory', 'the schema default');
    const cases = [
      ['directory', DirectorySource],
      ['webcam', WebcamSource],
      ['stream', StreamSource],
      ['http', HttpSource],
    ] as const;
    for (const [type, cls] of cases) {
      const src = createFrameSource({ ...cfg, type, http: { ...cfg.http, url: 'http://127.0.0.1:9/snap.jpg' } });
      assert.ok(src instanceof cls, type);
      assert.equal(src.type, type);
    }
  });

  test('passes the settings section and the clock on', async () => {
    const cfg = defaultConfig().source;
    const clock = new ManualClock(42_000);
    const src = createFrameSource({ ...cfg, directory: { path: path.resolve(__dirname, '../../assets/samples/tool') } }, { clock });
    await src.start();
    const f = await src.capture();
    assert.equal(f.origin, 'directory:cuttingTool.jpg');
    assert.equal(f.capturedAt, 42_000);
    await src.stop();
  });

  test('http without a url is BAD_CONFIG', () => {
    const cfg = defaultConfig().source;
    assert.throws(
      () => createFrameSource({ ...cfg, type: 'http' }),
      (e: unknown) => e instanceof EdgeheadError && e.code === 'BAD_CONFIG' && /^source\.http\.url is required when source\.type is http$/.test(e.message),
    );
  });
});
