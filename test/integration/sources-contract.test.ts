/**
 * The FrameSource contract, run unchanged against every source with real dependencies: the bundled samples, fswebcam's
 * built-in test source, ffmpeg's lavfi test pattern as an MJPEG stream, and a snapshot server on 127.0.0.1.
 * A source is skipped only when its binary is missing (CI installs fswebcam and ffmpeg).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { defaultConfig } from '../../config/defaults';
import type { Config } from '../../config/schema';
import { decodeImage } from '../../agent/image';
import { type FrameSource, RpicamSource, StreamSource, WebcamSource, createFrameSource } from '../../agent/sources';
import { EdgeheadError } from '../../base/errors';

const SAMPLE_JPEG = fs.readFileSync(path.resolve(__dirname, '../../assets/samples/fish/fish1.jpg'));

type SourceConfig = Config['source'];

interface SourceCase {
  type: SourceConfig['type'];
  /** Why this source cannot run here (its binary is missing), or undefined. */
  skip?: string;
  setup?(): Promise<void>;
  teardown?(): Promise<void>;
  config(base: SourceConfig): SourceConfig;
  /** What the source held while running (recorded after the captures) is gone after stop(). */
  released?(source: FrameSource, held: Held): void;
}

/** Things a source held while running, recorded before stop(). */
interface Held {
  pid?: number;
  tempFile?: string;
}

function missing(binary: string): string | undefined {
  const found = spawnSync('sh', ['-c', `command -v ${binary}`]).status === 0;
  return found ? undefined : `${binary} is not installed (apt-get install ${binary}); CI installs it`;
}

let server: http.Server | undefined;
let serverUrl = '';

// The one list of sources. Each entry only says how to build the source; the assertions below are shared.
const CASES: SourceCase[] = [
  {
    type: 'directory',
    config: (base) => ({ ...base, type: 'directory', directory: { path: path.resolve(__dirname, '../../assets/samples') } }),
  },
  {
    type: 'webcam',
    skip: missing('fswebcam'),
    config: (base) => ({ ...base, type: 'webcam', webcam: { ...base.webcam, device: 'test', width: 320, height: 240 } }),
    released: (source, held) => {
      assert.ok(source instanceof WebcamSource);
      assert.equal(fs.existsSync(held.tempFile!), false, 'temp file removed');
    },
  },
  {
    type: 'stream',
    skip: missing('ffmpeg'),
    config: (base) => ({
      ...base,
      type: 'stream',
      stream: {
        ...base.stream,
        command: 'ffmpeg',
        // -re: produce frames in real time like a camera (not as fast as the CPU allows).
        args: ['-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=10', '-f', 'mjpeg', '-q:v', '5', '-'],
      },
    }),
    released: (source, held) => {
      assert.ok(source instanceof StreamSource);
      assert.equal(source.pid, undefined);
      assert.ok(held.pid !== undefined, 'the stream ran a process');
      assert.throws(() => process.kill(held.pid!, 0), { code: 'ESRCH' }, `ffmpeg (pid ${held.pid}) is gone`);
    },
  },
  {
    // test/support/fakes/rpicam-still: a stand-in following rpicam-still's command line (no camera here).
    type: 'rpicam',
    config: (base) => ({ ...base, type: 'rpicam', rpicam: { ...base.rpicam, command: path.resolve(__dirname, '../support/fakes/rpicam-still') } }),
    released: (source, held) => {
      assert.ok(source instanceof RpicamSource);
      assert.equal(source.pid, undefined);
      assert.ok(held.pid !== undefined, 'the source ran a process');
      assert.throws(() => process.kill(held.pid!, 0), { code: 'ESRCH' }, `rpicam-still (pid ${held.pid}) is gone`);
      assert.equal(fs.existsSync(held.tempFile!), false, 'temp folder removed');
    },
  },
  {
    type: 'http',
    async setup() {
      server = http.createServer((req, res) => {
        if (req.url === '/snapshot.jpg') res.writeHead(200, { 'content-type': 'image/jpeg' }).end(SAMPLE_JPEG);
        else res.writeHead(404).end();
      });
      await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
      serverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/snapshot.jpg`;
    },
    async teardown() {
      server!.closeAllConnections();
      await new Promise((r) => server!.close(r));
    },
    config: (base) => ({ ...base, type: 'http', http: { ...base.http, url: serverUrl } }),
  },
];

/** Handle kinds a source may create: processes, pipes, timers, sockets, file requests. */
const RESOURCE_KINDS = ['ProcessWrap', 'PipeWrap', 'Timeout', 'TCPWrap', 'TCPSocketWrap', 'FSReqCallback', 'FSReqPromise'];

function resourceCounts(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) if (RESOURCE_KINDS.includes(kind)) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}

/** Waits (generously) until the resources keeping the event loop alive are back to `baseline`. A closed handle leaves
 * the list at the loop's next close phase, so "right after stop()" is one or two turns of the loop. */
async function assertResourcesBackTo(baseline: Record<string, number>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const now = resourceCounts();
    const extra = Object.entries(now).filter(([k, v]) => v > (baseline[k] ?? 0));
    if (extra.length === 0) return;
    if (Date.now() > deadline) assert.fail(`${what}: still holding ${JSON.stringify(Object.fromEntries(extra))} (baseline ${JSON.stringify(baseline)})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function assertImage(bytes: Uint8Array, what: string): void {
  const jpeg = bytes[0] === 0xff && bytes[1] === 0xd8;
  const png = Buffer.from(bytes.subarray(0, 8)).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  assert.ok(jpeg || png, `${what}: starts with a JPEG SOI or the PNG signature`);
  const img = decodeImage(bytes, { maxPixels: 1e8 });
  assert.ok(img.width > 0 && img.height > 0, `${what}: decodes (${img.width}x${img.height})`);
}

async function assertCaptureFails(source: FrameSource, what: string): Promise<void> {
  await assert.rejects(source.capture(), (e: unknown) => e instanceof EdgeheadError && e.code === 'CAPTURE', what);
}

for (const c of CASES) {
  describe(`${c.type} source (contract)`, { skip: c.skip, timeout: 120_000 }, () => {
    before(async () => c.setup?.());
    after(async () => c.teardown?.());
    const make = (): FrameSource => createFrameSource(c.config(defaultConfig().source));

    test('start(), then 3 captures give decodable frames with monotonic times, its origin and a duration', async () => {
      const source = make();
      assert.equal(source.type, c.type);
      const started = Date.now();
      await source.start();
      try {
        let last = -Infinity;
        for (let i = 1; i <= 3; i++) {
          const f = await source.capture();
          assertImage(f.bytes, `capture ${i}`);
          assert.ok(f.capturedAt >= last, `capture ${i}: capturedAt ${f.capturedAt} >= previous ${last}`);
          // epoch ms, of a frame made since start() (a stream source hands out its newest frame, made before capture())
          assert.ok(f.capturedAt >= started && f.capturedAt <= Date.now(), `capture ${i}: capturedAt ${f.capturedAt} is epoch ms since start() (${started})`);
          last = f.capturedAt;
          assert.ok(f.origin.startsWith(`${c.type}:`), `origin "${f.origin}" starts with "${c.type}:"`);
          assert.ok(Number.isFinite(f.captureMs) && f.captureMs >= 0, `captureMs ${f.captureMs}`);
        }
      } finally {
        await source.stop();
      }
    });

    test('after stop() the source holds nothing: no process, timer, pipe, socket or temp file', async () => {
      const baseline = resourceCounts();
      const source = make();
      await source.start();
      await source.capture();
      const held: Held = {
        pid: source instanceof StreamSource || source instanceof RpicamSource ? source.pid : undefined,
        tempFile: source instanceof WebcamSource ? source.tempFile : source instanceof RpicamSource ? source.tempDir : undefined,
      };
      await source.stop();
      c.released?.(source, held);
      await assertResourcesBackTo(baseline, `${c.type} after stop()`);
    });

    test('start and stop twice are safe; capture() outside start..stop fails with CAPTURE', async () => {
      const baseline = resourceCounts();
      const source = make();
      await source.stop(); // before any start
      await assertCaptureFails(source, 'capture before start');
      await source.start();
      await source.start();
      assertImage((await source.capture()).bytes, 'after double start');
      await source.stop();
      await source.stop();
      await assertCaptureFails(source, 'capture after stop');
      await source.start();
      assertImage((await source.capture()).bytes, 'after restart');
      await source.stop();
      await assertResourcesBackTo(baseline, `${c.type} after two start/stop rounds`);
    });
  });
}
