/**
 * Head-swap latency, receipt -> applied, through the device's real path (HeadManager: validate incl. signature and
 * test vectors, persist with fsync, build, warm up, swap), for a 5-class and a 1000-class head. Prints JSON.
 */
import { initBackend } from '../agent/backend/wasm';
import { CATALOGUE } from '../agent/extractors/catalogue';
import { fingerprintOf } from '../agent/extractors/extractor';
import { readModelFolder } from '../agent/extractors/model-files';
import { encodeHead, makeHeadFile } from '../protocol/head/format';
import { generateKeyPair, signHead } from '../protocol/head/signature';
import { makeTestVectors } from '../protocol/head/test-vectors';
import { HeadStore } from '../agent/hot-swap/head-store';
import { configureLogging } from '../base/log';
import { prng } from '../base/prng';
import { resourcePath } from '../base/paths';
import { defaultConfig } from '../config/defaults';
import { testHeadManager } from '../test/support/head-manager';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

async function main(): Promise<void> {
  configureLogging({ level: 'silent' });
  await initBackend({ backend: 'wasm', threads: 1 });
  const entry = CATALOGUE[0]!;
  const extractor = { id: entry.id, fingerprint: fingerprintOf(readModelFolder(resourcePath('models', entry.id))), featureDim: entry.featureDim };
  const keys = generateKeyPair();
  const rand = prng(1);
  const D = extractor.featureDim;
  const features = Float32Array.from({ length: D }, () => rand());
  const result: Record<string, { median: number; p95: number; bytes: number }> = {};
  for (const classes of [5, 1000]) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgehead-bench-'));
    const cfg = { ...defaultConfig().head, maxBytes: 64 * 1024 * 1024 };
    const kernel = Float32Array.from({ length: D * classes }, () => rand() - 0.5);
    const bias = new Float32Array(classes);
    const names = Array.from({ length: classes }, (_, i) => `class_${i}`);
    const make = (version: number) =>
      encodeHead(signHead(makeHeadFile({ id: `h${classes}`, version, classes: names, extractor, kernel, bias, testVectors: makeTestVectors([features], kernel, bias) }), keys.privateKeyPem));
    const { manager, states, current } = testHeadManager({ store: new HeadStore(dir, cfg.maxBytes, 0), cfg, extractor, publicKeys: [keys.publicKeyPem], initialBytes: make(1), lastFeatures: () => features, deviceId: 'bench' });
    const times: number[] = [];
    let bytes = 0;
    for (let v = 2; v < 2 + 17; v++) {
      const payload = make(v);
      bytes = payload.byteLength;
      const t0 = performance.now();
      await manager.handlePayload('bench', payload, false);
      if (states.at(-1)?.lastUpdate.status !== 'applied') throw new Error(`v${v} not applied: ${states.at(-1)?.lastUpdate.reason}`);
      if (v >= 4) times.push(performance.now() - t0); // first two: warm-up
    }
    times.sort((a, b) => a - b);
    result[`${classes}`] = { median: Math.round(times[times.length >> 1]! * 10) / 10, p95: Math.round(times[Math.floor(0.95 * (times.length - 1))]! * 10) / 10, bytes };
    current().dispose();
    manager.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify({ extractor: extractor.id, signed: true, classes: result }) + '\n');
}

main().then(() => process.exit(0), (e) => {
  process.stderr.write(`head-swap bench failed: ${e?.stack ?? e}\n`);
  process.exit(1);
});
