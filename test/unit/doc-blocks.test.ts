/** The doc-test markers and the output matcher (test/support/doc-blocks.ts) used by test/integration/docs-shell.test.ts. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { outputMatches, parseBlocks } from '../support/doc-blocks';

const md = [
  '# Title',
  '',
  '<!-- doctest -->',
  '```sh',
  'echo hello',
  '```',
  '',
  '<!-- doctest: skip needs a Raspberry Pi camera -->',
  '```sh',
  'rpicam-still -o x.jpg',
  '```',
  '',
  '```sh',
  'unmarked',
  '```',
  '',
  '<!-- doctest: long-running timeout=90 -->',
  '```bash',
  'npm start',
  '```',
  'Some text.',
  '',
  '<!-- doctest: output -->',
  '```',
  '#1 directory:fish/fish1.jpg: fish 0.99 (monument 0.00, tool 0.00)  210 ms',
  '```',
].join('\n');

describe('parseBlocks', () => {
  test('markers: run, skip with its reason, none; an output block belongs to the last runnable block above it', () => {
    const blocks = parseBlocks(md, 'X.md');
    assert.deepEqual(
      blocks.map((b) => [b.line, b.lang, b.marker]),
      [
        [4, 'sh', { kind: 'run', timeoutSec: 60, longRunning: false }],
        [9, 'sh', { kind: 'skip', reason: 'needs a Raspberry Pi camera' }],
        [13, 'sh', null],
        [18, 'bash', { kind: 'run', timeoutSec: 90, longRunning: true }],
        [24, '', { kind: 'output' }],
      ],
    );
    assert.equal(blocks[0]!.body, 'echo hello');
    assert.equal(blocks[0]!.output, undefined);
    assert.equal(blocks[3]!.output, blocks[4]);
  });

  test('bad markers: one line naming the file, the line and the problem', () => {
    assert.throws(() => parseBlocks('<!-- doctest: skip -->\n```sh\nx\n```', 'A.md'), /^Error: A\.md:2: "doctest: skip" needs a reason/);
    assert.throws(() => parseBlocks('<!-- doctest: timout=5 -->\n```sh\nx\n```', 'A.md'), /^Error: A\.md:2: unknown doctest option "timout=5"/);
    assert.throws(() => parseBlocks('<!-- doctest: output -->\n```\nx\n```', 'A.md'), /A\.md:2: "doctest: output" with no runnable block above it/);
    assert.throws(() => parseBlocks('<!-- doctest: long-running -->\n```sh\nnpm start\n```', 'A.md'), /A\.md:2: a long-running block needs a "doctest: output" block/);
    assert.throws(() => parseBlocks('<!-- doctest -->\n```yaml\na: 1\n```', 'A.md'), /A\.md:2: only shell blocks .* can be run, not "yaml"/);
    assert.throws(() => parseBlocks('```sh\nx\n', 'A.md'), /A\.md:1: unclosed code fence/);
  });
});

describe('outputMatches', () => {
  const out = ['> edgehead@0.1.0 start', '', '#1 directory:fish/fish1.jpg: fish 0.99 (monument 0.00, tool 0.00)  886 ms', '#2 directory:fish/fish10.jpg: fish 1.00 (monument 0.00, tool 0.00)  94.5 ms  ', 'done'].join('\n');

  test('consecutive lines anywhere in the output; durations match any duration; trailing spaces ignored', () => {
    assert.ok(outputMatches('#1 directory:fish/fish1.jpg: fish 0.99 (monument 0.00, tool 0.00)  210 ms\n#2 directory:fish/fish10.jpg: fish 1.00 (monument 0.00, tool 0.00)  94 ms\n', out));
  });

  test('a different score, label or order does not match', () => {
    assert.ok(!outputMatches('#1 directory:fish/fish1.jpg: fish 0.98 (monument 0.00, tool 0.00)  210 ms', out));
    assert.ok(!outputMatches('#1 directory:fish/fish1.jpg: tool 0.99 (monument 0.00, tool 0.00)  210 ms', out));
    assert.ok(!outputMatches('#2 directory:fish/fish10.jpg: ...\n#1 directory:...', out));
  });

  test('"..." inside a line is any text; a "..." line is any number of lines', () => {
    assert.ok(outputMatches('#1 directory:fish/fish1.jpg: fish ...', out));
    assert.ok(outputMatches('> edgehead@... start\n...\ndone', out));
    assert.ok(!outputMatches('> edgehead@... start\ndone', out), 'without "..." the lines must be consecutive');
    assert.ok(!outputMatches('fish 0.99', out), 'a line matches a whole line, not a part of one');
  });
});

describe('outputMatches: example values', () => {
  test('a hex digest of 16+ digits matches any digest of the same length, not another length', () => {
    const out = 'key id: 7fa96040b1de5f9d\nsha256: 0b3a2a1926be52377dd9e9cab89d94fc0ac415a042b4b99c280ec3553ba9a52b';
    assert.ok(outputMatches('key id: b84cdb0fc36da0d1\nsha256: 133d93563198400098b5aa923b0ed2bf1afeb601f22e82039ddc5a14f7604be6', out));
    assert.ok(!outputMatches('key id: b84cdb0fc36da0d1ff', out), 'a longer digest is not the same kind of value');
    assert.ok(!outputMatches('key ID: b84cdb0fc36da0d1', out), 'the text around it still has to match');
  });

  test('an ISO time matches any ISO time; a date that is not one does not', () => {
    assert.ok(outputMatches('createdAt     2026-11-29T02:57:04.355Z', 'createdAt     2026-12-07T02:03:40.643Z'));
    assert.ok(!outputMatches('createdAt     2026-11-29T02:57:04.355Z', 'createdAt     yesterday'));
  });
});
