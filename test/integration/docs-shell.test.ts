/**
 * README as a test: every shell block of README.md and docs/*.md marked `<!-- doctest -->` runs (test/support/
 * doc-run.ts: a temp dir, the repo's `edgehead` on PATH, the agent's embedded broker on a free loopback port) and its
 * marked output block must appear in what it printed; blocks marked `<!-- doctest: skip REASON -->` are reported as
 * skipped with the reason. Every shell block of README.md and docs/*.md carries one or the other. Markers: test/support/doc-blocks.ts.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { ROOT } from '../support/cli';
import { type DocBlock, outputMatches, readBlocks, SHELL_LANGS } from '../support/doc-blocks';
import { describeRun, runDocBlock } from '../support/doc-run';

const docs = ['README.md', ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
/** The block's first command, without its comment: the test's name. */
const firstLine = (b: DocBlock) =>
  (b.body.split('\n').find((l) => l.trim() !== '' && !l.trimStart().startsWith('#')) ?? '').replace(/\s+#\s.*$/, '').replace(/\s+/g, ' ').trim().slice(0, 80);

describe('README.md and docs/*.md: every shell block is marked', () => {
  for (const doc of docs) {
    test(`${doc}: each \`\`\`sh block is either <!-- doctest --> (run) or <!-- doctest: skip REASON -->`, () => {
      const unmarked = readBlocks(path.join(ROOT, doc), doc)
        .filter((b) => SHELL_LANGS.includes(b.lang) && (b.marker === null || b.marker.kind === 'output'))
        .map((b) => `${doc}:${b.line}: ${firstLine(b)}`);
      assert.deepEqual(unmarked, [], 'mark these blocks runnable or skipped with a reason');
    });
  }
});

for (const doc of docs) {
  const blocks = readBlocks(path.join(ROOT, doc), doc).filter((b) => b.marker?.kind === 'run' || (b.marker?.kind === 'skip' && SHELL_LANGS.includes(b.lang)));
  if (blocks.length === 0) continue;
  describe(doc, () => {
    for (const b of blocks) {
      const name = `${doc}:${b.line}: ${firstLine(b)}`;
      if (b.marker!.kind === 'skip') {
        test(name, { skip: b.marker!.reason }, () => undefined);
        continue;
      }
      test(name, async () => {
        const r = await runDocBlock(b);
        if (b.marker!.kind === 'run' && b.marker!.longRunning) {
          assert.ok(r.matched, describeRun(b, r));
          return;
        }
        assert.ok(!r.timedOut && r.code === 0, describeRun(b, r));
        if (b.output) assert.ok(outputMatches(b.output.body, r.output), describeRun(b, r));
      });
    }
  });
}
