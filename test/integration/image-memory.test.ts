/**
 * Decode memory, measured where it matters: the real CLI classifies the largest PNG the decode budget accepts (the
 * worst accepted input: pngjs decodes at full size) in a child process, which reports its peak RSS at exit.
 * Memory, not time: nothing here depends on the machine's speed.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { createDeflate } from 'node:zlib';
import { crc32 } from '../../base/crc32';
import { budgetPixels, pngBytesPerPixel } from '../../agent/image/budget';
import { runCli, tmpDir } from '../support/cli';

/**
 * Issue 11 asks that no accepted input peak above ~600 MB RSS. The CLI itself runs near 210 MB and the budget allows
 * 380 MB on top (measured: 585 MB for this file); 650 MB leaves room for garbage-collection timing while still
 * failing the code before the budget, which peaked at 1.5 GB on this file (docs/preprocessing.md).
 */
const PEAK_RSS_BOUND_MB = 650;

/** A flat-colour 8-bit RGB PNG, written without ever holding its raw pixels (one row at a time through deflate). */
async function writeFlatPng(file: string, width: number, height: number): Promise<void> {
  const chunk = (type: string, data: Buffer): Buffer => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
    return Buffer.concat([head, data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const row = Buffer.alloc(1 + width * 3);
  for (let x = 0; x < width; x++) row.set([0x33, 0x66, 0x99], 1 + x * 3);
  const deflate = createDeflate({ level: 9 });
  const parts: Buffer[] = [];
  deflate.on('data', (d: Buffer) => parts.push(d));
  const done = new Promise((r) => deflate.on('end', r));
  for (let y = 0; y < height; y++) if (!deflate.write(row)) await new Promise((r) => deflate.once('drain', r));
  deflate.end();
  await done;
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  fs.writeFileSync(file, Buffer.concat([signature, chunk('IHDR', ihdr), chunk('IDAT', Buffer.concat(parts)), chunk('IEND', Buffer.alloc(0))]));
}

test('the largest PNG the decode budget accepts classifies with a bounded peak RSS', { timeout: 180_000 }, async () => {
  const dir = tmpDir();
  // the side of the largest square 8-bit RGB PNG within the budget (its compressed size, ~130 KB, counted generously)
  const side = Math.floor(Math.sqrt(budgetPixels(pngBytesPerPixel({ bitDepth: 8, colorType: 2, interlaced: false }), 1_000_000)));
  assert.ok(side * side > 36_000_000, `${side}x${side}: at least the 6000x6000 PNG of issue 11`);
  const file = path.join(dir, 'worst.png');
  await writeFlatPng(file, side, side);
  const hook = path.join(dir, 'peak-rss.cjs');
  fs.writeFileSync(hook, "process.on('exit', () => process.stderr.write(`PEAK_RSS_KB ${process.resourceUsage().maxRSS}\\n`));\n");
  const r = await runCli(['classify', '--json', file], { env: { NODE_OPTIONS: `--require ${hook}` } });
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout.trim().split('\n')[0]!) as { file: string; top: { label: string }[] };
  assert.ok(result.top.length > 0 && result.file.endsWith('worst.png'), r.stdout.slice(0, 300));
  const peakMb = Number(/PEAK_RSS_KB (\d+)/.exec(r.stderr)?.[1]) / 1024;
  assert.ok(Number.isFinite(peakMb), r.stderr);
  assert.ok(peakMb < PEAK_RSS_BOUND_MB, `peak RSS ${peakMb.toFixed(0)} MB classifying a ${side}x${side} PNG (bound ${PEAK_RSS_BOUND_MB} MB)`);
});
