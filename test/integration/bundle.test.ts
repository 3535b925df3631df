/**
 * The board artefact: `npm run build` -> dist/, copied to an empty folder with no node_modules: classify, doctor,
 * run and the fleet server (dashboard assets prebuilt into dist/fleet-web/, no esbuild at run time) work; the JS stays within its 2.75 MB budget; dist/manifest.json lists every file with its size and sha256.
 * The loader in front of the bundle (cli/loader.cjs) keeps V8's code cache: written on the first start, used on the
 * next, and a damaged, foreign or unwritable cache costs only time.
 * Every backend and thread choice a user can pass classifies from the bundle as from source (the build drops
 * nothing they load: a side-effect import esbuild ignored once left `--backend cpu` working from source only).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { before, test } from 'node:test';
import { Aedes } from 'aedes';
import { Collector } from '../support/agent-process';
import { ROOT, runCli, tmpDir } from '../support/cli';
import { freePort, Mosquitto } from '../support/mosquitto';

// 2.5 MB until the bundle carried tfjs-backend-cpu (0.13 MB), which `--backend cpu` needs.
const JS_BUDGET = 2.75 * 1024 * 1024;
let dir: string;

before(() => {
  execFileSync('npm', ['run', '-s', 'build'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  dir = tmpDir('bundle-');
  fs.cpSync(path.join(ROOT, 'dist'), dir, { recursive: true });
});

const bundled = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  execFileSync(process.execPath, [path.join(dir, 'edgehead.cjs'), ...args], {
    cwd: dir,
    env: { PATH: process.env.PATH, EDGEHEAD_CODE_CACHE: path.join(dir, '.code-cache'), ...env },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });

test('the bundle is one JS file within budget and its loader, with a manifest of every file', () => {
  assert.ok(!fs.existsSync(path.join(dir, 'node_modules')));
  const js = fs.readdirSync(dir).filter((f) => /\.(c|m)?js$/.test(f));
  assert.deepEqual(js.sort(), ['edgehead.bundle.cjs', 'edgehead.cjs']);
  const size = fs.statSync(path.join(dir, 'edgehead.bundle.cjs')).size + fs.statSync(path.join(dir, 'edgehead.cjs')).size;
  assert.ok(size <= JS_BUDGET, `the JS is ${size} bytes > ${JS_BUDGET}`);
  assert.ok(fs.readFileSync(path.join(dir, 'edgehead.cjs'), 'utf8').startsWith('#!/usr/bin/env node'));
  assert.ok(fs.statSync(path.join(dir, 'edgehead.cjs')).mode & 0o100, 'edgehead.cjs is executable');
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  assert.match(manifest.version, /^\d+\.\d+\.\d+/);
  assert.match(manifest.commit, /^[0-9a-f]{7,40}(-dirty)?$|^unknown$/);
  for (const [file, info] of Object.entries(manifest.files as Record<string, { bytes: number; sha256: string }>)) {
    const bytes = fs.readFileSync(path.join(dir, file));
    assert.equal(bytes.length, info.bytes, file);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), info.sha256, file);
  }
  for (const must of ['edgehead.cjs', 'edgehead.bundle.cjs', 'assets/heads/demo.head', 'models/mobilenet_v2_140/model.json', 'models/mobilenet_v2_100/weights.bin']) {
    assert.ok(manifest.files[must], `manifest lists ${must}`);
  }
  assert.ok(Object.keys(manifest.files).some((f) => f.startsWith('wasm/') && f.endsWith('.wasm')));
});

test('classify and doctor run from the copied folder', () => {
  const out = bundled(['classify', '--json', 'assets/samples/fish/fish1.jpg', 'assets/samples/tool/hammer1.jpg']);
  const lines = out.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.top[0].label), ['fish', 'tool']);
  const doctor = JSON.parse(bundled(['doctor', '--json']));
  assert.equal(doctor.backend, 'wasm');
  assert.ok(doctor.wasmDir.startsWith(dir), `wasm from the bundle folder: ${doctor.wasmDir}`);
  assert.deepEqual(doctor.models.map((m: { installed: boolean }) => m.installed), [true, true]);
  assert.match(bundled(['--version']).trim(), /^\d+\.\d+\.\d+/);
});

/** classify of one image at debug level from the bundle: what the loader did with the code cache. */
function codeCacheStatus(cache: string): string {
  const r = spawnSync(process.execPath, [path.join(dir, 'edgehead.cjs'), 'classify', '--threads', '1', 'assets/samples/fish/fish1.jpg'], {
    cwd: dir,
    env: { PATH: process.env.PATH, EDGEHEAD_CODE_CACHE: cache, EDGEHEAD_LOG_LEVEL: 'debug' },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /fish/);
  const m = /cold start codeCache=(\S+)/.exec(r.stderr);
  assert.ok(m, r.stderr);
  return m[1]!;
}

test('code cache: written on the first start, used on the next; damaged or foreign files are replaced, old bundles\' removed', () => {
  const cache = tmpDir('code-cache-');
  const oldBundle = path.join(cache, 'edgehead-000000000000-000000000000.v8cache');
  fs.writeFileSync(oldBundle, 'an earlier bundle');
  assert.equal(codeCacheStatus(cache), 'miss');
  const files = fs.readdirSync(cache);
  assert.equal(files.length, 1, `one file for this bundle, the old one removed: ${files.join(', ')}`);
  const file = path.join(cache, files[0]!);
  assert.match(files[0]!, /^edgehead-[0-9a-f]{12}-[0-9a-f]{12}\.v8cache$/);
  assert.equal(codeCacheStatus(cache), 'hit');

  const good = fs.readFileSync(file);
  const flipped = Buffer.from(good);
  flipped[flipped.length >> 1] ^= 0xff; // one byte of V8's data: the sha256 in front no longer matches
  fs.writeFileSync(file, flipped);
  assert.equal(codeCacheStatus(cache), 'corrupt');
  const rewritten = fs.readFileSync(file);
  assert.deepEqual(rewritten.subarray(0, 32), createHash('sha256').update(rewritten.subarray(32)).digest(), 'rewritten whole after the start');
  assert.equal(codeCacheStatus(cache), 'hit');

  fs.writeFileSync(file, good.subarray(0, 40)); // truncated
  assert.equal(codeCacheStatus(cache), 'corrupt');
  const foreign = Buffer.from('not V8 code cache data at all, but the right sha256 over it');
  fs.writeFileSync(file, Buffer.concat([createHash('sha256').update(foreign).digest(), foreign]));
  assert.equal(codeCacheStatus(cache), 'rejected');
  assert.equal(codeCacheStatus(cache), 'hit');
});

test('code cache: "off" writes nothing, a folder that cannot be made only costs time, one others may write is not used', () => {
  const cache = tmpDir('code-cache-off-');
  assert.equal(codeCacheStatus('off'), 'off');
  const blocker = path.join(cache, 'a-file');
  fs.writeFileSync(blocker, '');
  assert.equal(codeCacheStatus(path.join(blocker, 'code')), 'miss');
  assert.equal(codeCacheStatus(path.join(blocker, 'code')), 'miss');
  assert.deepEqual(fs.readdirSync(cache), ['a-file']);
  const shared = path.join(cache, 'shared');
  fs.mkdirSync(shared);
  fs.chmodSync(shared, 0o777); // the cache is code: a folder others may write is not used
  assert.equal(codeCacheStatus(shared), 'unsafe');
  assert.deepEqual(fs.readdirSync(shared), []);
});

/** Each choice with what must have run; undefined: whatever the source runs (auto depends on the CPU count). */
const RUNTIME_CHOICES: { args: string[]; ran?: { name: string; threads: number } }[] = [
  { args: ['--backend', 'cpu'], ran: { name: 'cpu', threads: 1 } },
  { args: ['--backend', 'wasm', '--threads', '1'], ran: { name: 'wasm', threads: 1 } },
  { args: ['--backend', 'wasm', '--threads', '2'], ran: { name: 'wasm', threads: 2 } },
  { args: ['--threads', 'auto'] },
];

for (const { args, ran } of RUNTIME_CHOICES) {
  test(`classify ${args.join(' ')}: the same labels from the bundle as from source, and the JSON says what ran`, async () => {
    const images = ['assets/samples/fish/fish1.jpg', 'assets/samples/tool/hammer1.jpg'];
    const source = await runCli(['classify', '--json', ...args, ...images]);
    assert.equal(source.code, 0, source.stderr);
    const bundle = bundled(['classify', '--json', ...args, ...images]);
    type Line = { top: { label: string }[]; backend: { name: string; threads: number } };
    const [fromSource, fromBundle] = [source.stdout, bundle].map((out) => out.trim().split('\n').map((l) => JSON.parse(l) as Line));
    assert.deepEqual(fromBundle!.map((l) => l.top[0]!.label), ['fish', 'tool']);
    assert.deepEqual(fromBundle!.map((l) => l.top[0]!.label), fromSource!.map((l) => l.top[0]!.label));
    assert.deepEqual(fromBundle!.map((l) => l.backend), fromSource!.map((l) => l.backend));
    if (ran) assert.deepEqual(fromBundle!.map((l) => l.backend), [ran, ran]);
  });
}

test('run: the bundled agent publishes predictions to a broker and stops cleanly', async () => {
  const aedes = await Aedes.createBroker();
  const server = net.createServer(aedes.handle);
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const url = `mqtt://127.0.0.1:${port}`;
  const sub = await Collector.connect(url, ['edgehead/bundle/predictions']);
  const child = spawn(process.execPath, [path.join(dir, 'edgehead.cjs'), 'run'], {
    cwd: dir,
    env: { PATH: process.env.PATH, EDGEHEAD_MQTT_URL: url, EDGEHEAD_DEVICE_ID: 'bundle', EDGEHEAD_STATE_DIR: tmpDir(), EDGEHEAD_SCHEDULE_INTERVAL_MS: '300' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  try {
    await sub.waitFor('2 predictions', () => sub.messages.length >= 2, 60_000);
    const p = JSON.parse(sub.messages[0]!.text);
    assert.equal(p.head.id, 'demo');
    child.kill('SIGTERM');
    const code = await new Promise((r) => child.once('exit', r));
    assert.equal(code, 0, err);
  } finally {
    child.kill('SIGKILL');
    await sub.close();
    await new Promise<void>((r) => aedes.close(() => server.close(() => r())));
  }
});

test('fleet serve: the bundled server serves the prebuilt dashboard and /metrics with no node_modules', async () => {
  const broker = await Mosquitto.start();
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(dir, 'edgehead.cjs'), 'fleet', 'serve', '--broker', broker.url, '--listen', `127.0.0.1:${port}`], {
    cwd: dir,
    env: { PATH: process.env.PATH, EDGEHEAD_FLEET_ROLLOUTS_DATA_DIR: tmpDir() },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  try {
    const deadline = Date.now() + 30_000;
    while (!err.includes('fleet server on')) {
      if (child.exitCode !== null || Date.now() > deadline) assert.fail(`fleet serve did not start: ${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const base = `http://127.0.0.1:${port}`;
    const html = await (await fetch(`${base}/`)).text();
    const scripts = [...html.matchAll(/<script[^>]*src="([^"]+)"/g)].map((m) => m[1]!);
    assert.ok(scripts.length > 0, html);
    for (const src of scripts) {
      const res = await fetch(new URL(src, base));
      assert.equal(res.status, 200, src);
      assert.ok((await res.text()).length > 10_000, `${src}: the bundled dashboard (with uPlot)`);
    }
    assert.match(await (await fetch(`${base}/metrics`)).text(), /^edgehead_fleet_devices\{state="online"\} 0$/m);
    child.kill('SIGTERM');
    assert.equal(await new Promise((r) => child.once('exit', r)), 0, err);
  } finally {
    child.kill('SIGKILL');
    await broker.stop();
  }
});
