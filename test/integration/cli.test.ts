/**
 * The CLI as a user runs it: summary table numbers, classify output, and bad input of every kind giving a
 * one-line error and a non-zero exit without a stack trace.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { makeHeadFile } from '../../protocol/head/format';
import { writeHeadFile } from '../../protocol/head/files';
import { crc32 } from '../../base/crc32';
import { hasStackTrace, runCli, SAMPLES, tmpDir } from '../support/cli';

describe('edgehead summary', () => {
  test('MobileNetV2 1.0 + Dense(5): the Keras totals and a (32, 5) demo batch', async () => {
    const r = await runCli(['summary', '--extractor', 'mobilenet_v2_100', '--classes', 'cat,dog,bird,fish,horse', '--demo-batch', '32']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.ok(lines.includes('Total params: 2,264,389'), r.stdout);
    assert.ok(lines.includes('Trainable params: 6,405'), r.stdout);
    assert.ok(lines.includes('Non-trainable params: 2,257,984'), r.stdout);
    assert.match(r.stdout, /^ dense \(Dense\)\s+\(None, 5\)\s+6405$/m);
    // Keras wraps a cell longer than its column onto the next line ("mobilenetv2_1.00_224 (Funct" / "ional)"): so do we.
    assert.match(r.stdout, /^ mobilenet_v2_100 \(Functiona\s+\(None, 1280\)\s+2257984\n l\)$/m);
    assert.match(r.stdout, /^ Layer \(type\)\s+Output Shape\s+Param #$/m);
    assert.equal(lines.filter((l) => l.trim() !== '').at(-1), '(32, 5)');
  });

  test('the 1.4 extractor reports 1792-d features', async () => {
    const r = await runCli(['summary', '--classes', 'a,b,c']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\(None, 1792\)/);
    assert.ok(r.stdout.includes('Trainable params: 5,379'), r.stdout); // 1792*3 + 3
  });
});

describe('edgehead classify', () => {
  test('the demo head classifies the bundled samples, one JSON object per image with per-stage ms', async () => {
    const files = ['fish/fish1.jpg', 'monument/IndiaGate.jpg', 'tool/anvil.jpg'].map((f) => path.join(SAMPLES, f)).filter((f) => fs.existsSync(f));
    assert.ok(files.length >= 2, 'sample frames present');
    const r = await runCli(['classify', '--json', '--top', '2', ...files]);
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(out.length, files.length);
    for (const [i, o] of out.entries()) {
      assert.equal(o.file, files[i]);
      assert.equal(o.top.length, 2);
      assert.ok(o.top[0].score >= o.top[1].score);
      assert.equal(o.top[0].label, path.basename(path.dirname(files[i]!)), `top-1 of ${files[i]}`);
      for (const stage of ['decode', 'resize', 'extract', 'head']) assert.equal(typeof o.ms[stage], 'number', stage);
    }
  });

  test('text output: one line per image with labels, scores and stage timings', async () => {
    const r = await runCli(['classify', path.join(SAMPLES, 'fish', 'fish1.jpg')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.trim(), /fish1\.jpg {2}fish [01]\.\d{3} .*\(decode [\d.]+ ms, resize [\d.]+ ms, extract [\d.]+ ms, head [\d.]+ ms\)$/);
  });
});


/** A valid PNG signature + IHDR declaring width x height, and nothing else. */
function pngBomb(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const type = Buffer.from('IHDR');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(13);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([type, ihdr])));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), len, type, ihdr, crc]);
}

describe('bad input: one clear line, non-zero exit, no stack trace', () => {
  const dir = tmpDir();
  const jpeg = fs.readFileSync(path.join(SAMPLES, 'fish', 'fish1.jpg'));
  const cases: { name: string; file: string; bytes: Buffer; expect: RegExp }[] = [
    { name: 'zero-byte file', file: 'empty.jpg', bytes: Buffer.alloc(0), expect: /empty/i },
    { name: 'truncated JPEG', file: 'truncated.jpg', bytes: jpeg.subarray(0, Math.floor(jpeg.length / 2)), expect: /truncated|corrupt/i },
    { name: 'text file named .jpg', file: 'notes.jpg', bytes: Buffer.from('hello, I am not an image\n'), expect: /not a JPEG or PNG/i },
    { name: 'PNG bomb header', file: 'bomb.png', bytes: pngBomb(100000, 100000), expect: /100000\s*x\s*100000|too large|pixel/i },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const f = path.join(dir, c.file);
      fs.writeFileSync(f, c.bytes);
      const r = await runCli(['classify', f]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      const errLines = r.stderr.trim().split('\n');
      assert.equal(errLines.length, 1, r.stderr);
      assert.match(errLines[0]!, new RegExp(`${c.file}: `));
      assert.match(errLines[0]!, c.expect);
      assert.ok(!hasStackTrace(r.stderr));
    });
  }

  test('one bad image among good ones: the good ones are still classified', async () => {
    const bad = path.join(dir, 'also-empty.jpg');
    fs.writeFileSync(bad, '');
    const good = path.join(SAMPLES, 'fish', 'fish1.jpg');
    const r = await runCli(['classify', bad, good]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /fish1\.jpg {2}fish/);
  });

  test('missing model folder', async () => {
    const r = await runCli(['classify', '--extractor', '/nonexistent/model', path.join(SAMPLES, 'fish', 'fish1.jpg')]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /model folder not found: \/nonexistent\/model/);
    assert.ok(!hasStackTrace(r.stderr));
  });

  test('model URL that 404s', async () => {
    const server = http.createServer((_req, res) => res.writeHead(404, 'Not Found').end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hub/model`;
    try {
      const r = await runCli(['classify', '--extractor', url, path.join(SAMPLES, 'fish', 'fish1.jpg')], { cwd: tmpDir() });
      assert.equal(r.code, 1);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /HTTP 404/);
      assert.ok(r.stderr.includes('/hub/model/model.json'));
      assert.ok(!hasStackTrace(r.stderr));
    } finally {
      server.close();
    }
  });

  test('head whose feature dimension does not match the extractor', async () => {
    const head = path.join(dir, 'mnv2-100.head');
    const c = 3;
    writeHeadFile(
      head,
      makeHeadFile({
        id: 'small',
        version: 1,
        classes: ['a', 'b', 'c'],
        extractor: { id: 'mobilenet_v2_100', fingerprint: 'f'.repeat(64) },
        kernel: new Float32Array(1280 * c),
        bias: new Float32Array(c),
      }),
    );
    const r = await runCli(['classify', '--head', head, '--extractor', 'mobilenet_v2_140', path.join(SAMPLES, 'fish', 'fish1.jpg')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /expects 1280-d features, extractor mobilenet_v2_140 gives 1792-d/);
    assert.ok(!hasStackTrace(r.stderr));
  });

  test('bad arguments exit 2 with the usage', async () => {
    const r = await runCli(['classify', '--top', 'zero', 'x.jpg']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--top must be an integer >= 1 \(got "zero"\)/);
    const unknown = await runCli(['classify', '--frobnicate', 'x.jpg']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /frobnicate/);
    const cmd = await runCli(['frobnicate']);
    assert.equal(cmd.code, 2);
    assert.match(cmd.stderr, /unknown command "frobnicate"/);
  });
});

describe('edgehead doctor', () => {
  test('reports backend, SIMD, threads, Node version and CPU count', async () => {
    const r = await runCli(['doctor']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^backend\s+wasm \(tfjs 4\.22\.0\)$/m);
    assert.match(r.stdout, /^simd\s+(yes|no)$/m);
    assert.match(r.stdout, /^threads\s+\d+/m);
    assert.match(r.stdout, new RegExp(`^node\\s+${process.versions.node.replace(/\./g, '\\.')} `, 'm'));
    assert.match(r.stdout, new RegExp(`^cpus\\s+${(await import('node:os')).cpus().length}$`, 'm'));
    const json = await runCli(['doctor', '--json']);
    const report = JSON.parse(json.stdout);
    assert.equal(report.backend, 'wasm');
    assert.equal(typeof report.simd, 'boolean');
    assert.ok(report.threads >= 1);
    assert.deepEqual(report.models.map((m: { installed: boolean }) => m.installed), [true, true]);
  });
});
