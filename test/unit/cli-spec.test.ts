/**
 * The command specs (cli/spec.ts) are the single source of the CLI's help, argument checks and docs/cli.md: every
 * command has a purpose, documented options and examples; help shows exactly the spec; every example parses.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { leafCommands, parseSpecArgs } from '../../cli/args';
import { renderCliDocs } from '../../cli/docs';
import { optionLabel } from '../../cli/help';
import { COMMANDS } from '../../cli/main';
import { closest, editDistance } from '../../cli/suggest';
import { ROOT } from '../support/cli';

const leaves = leafCommands(COMMANDS);

/** The words of an example command line: no comment, no redirection, quotes removed (no shell needed for these). */
function exampleArgs(line: string, cmdPath: string): string[] {
  const words = (line.replace(/\s+#.*$/, '').match(/"[^"]*"|'[^']*'|\S+/g) ?? []).map((w) => w.replace(/^(["'])(.*)\1$/, '$2'));
  const redirect = words.findIndex((w) => w === '>' || w === '|');
  const cut = redirect < 0 ? words : words.slice(0, redirect);
  const start = cut.indexOf('edgehead');
  assert.ok(start >= 0, `example ${JSON.stringify(line)} runs edgehead`);
  assert.deepEqual(cut.slice(start + 1, start + 1 + cmdPath.split(' ').length), cmdPath.split(' '), `example ${JSON.stringify(line)} runs edgehead ${cmdPath}`);
  return cut.slice(start + 1 + cmdPath.split(' ').length);
}

/** The lines of a help section (after its title, up to the next blank line). */
function section(lines: string[], title: string): string[] {
  const start = lines.indexOf(title);
  if (start < 0) return [];
  const end = lines.indexOf('', start);
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

test('every command (classify, config, dataset, doctor, fleet*, head*, run, summary) has a spec', () => {
  const paths = leaves.map((c) => c.spec?.path);
  for (const p of ['run', 'classify', 'summary', 'doctor', 'config check', 'config defaults', 'config env', 'dataset pull', 'fleet serve', 'fleet status', 'fleet simulate', 'fleet rollout start', 'fleet rollout list', 'fleet rollout show', 'fleet rollout halt', 'fleet rollout rollback', 'head train', 'head eval', 'head inspect', 'head keygen', 'head sign', 'head push']) {
    assert.ok(paths.includes(p), `no spec for ${p} (have: ${paths.join(', ')})`);
  }
});

describe('each command: purpose, options with descriptions, examples that parse, help that matches', () => {
  for (const cmd of leaves) {
    const spec = cmd.spec!;
    test(spec.path, () => {
      assert.match(spec.purpose, /^\S.{9,}$/, 'a one-line purpose');
      assert.ok(!spec.purpose.includes('\n'));
      assert.ok(spec.examples.length >= 1, 'at least one example');
      for (const [name, o] of Object.entries(spec.options)) assert.ok(o.description.trim().length > 5, `--${name} has a description`);

      const help = cmd.help();
      const lines = help.split('\n');
      assert.equal(lines[0], `edgehead ${spec.path}: ${spec.purpose}`);
      assert.ok(lines.some((l) => l.startsWith(`usage: edgehead ${spec.path}`)), 'a usage line');
      const table = [...section(lines, 'options:'), ...section(lines, 'global options (before or after the command):')];
      for (const [name, o] of Object.entries(spec.options)) {
        const label = name === 'json' ? '--json' : optionLabel(name, o);
        const rows = table.filter((l) => l.trimStart() === label || l.trimStart().startsWith(`${label} `));
        if (o.hidden) assert.equal(rows.length, 0, `hidden --${name} not shown`);
        else {
          assert.equal(rows.length, 1, `--${name} listed exactly once in:\n${help}`);
          if (o.default !== undefined) assert.ok(help.includes(`default: ${o.default}`), `--${name}'s default shown`);
        }
      }
      for (const flag of ['--verbose', '-h, --help']) assert.equal(table.filter((l) => l.trimStart().startsWith(flag)).length, 1, `${flag} documented`);
      assert.equal(table.some((l) => l.trimStart().startsWith('--json ')), spec.options.json !== undefined, '--json documented where offered');
      for (const e of spec.examples) assert.ok(help.includes(`  ${e}`), `example shown: ${e}`);

      for (const e of spec.examples) {
        const args = exampleArgs(e, spec.path);
        assert.doesNotThrow(() => parseSpecArgs(args, spec), `example parses: ${e}`);
      }
    });
  }
});

test('head train lists --extractor once and hides the Adam options; doctor has a description', () => {
  const train = leaves.find((c) => c.spec?.path === 'head train')!.help();
  assert.equal(train.match(/--extractor /g)?.length, 1, train);
  assert.doesNotMatch(train, /--epochs|--patience/);
  const doctor = leaves.find((c) => c.spec?.path === 'doctor')!.help();
  assert.ok(doctor.split('\n')[0]!.length > 'edgehead doctor: '.length + 10, doctor);
});

test('parsing follows the spec: unknown options with a suggestion, no stray arguments, --verbose anywhere', () => {
  const classify = leaves.find((c) => c.spec?.path === 'classify')!.spec!;
  assert.throws(() => parseSpecArgs(['--hed', 'x.head', 'a.jpg'], classify), (e: Error & { code?: string; hint?: string }) => {
    assert.equal(e.code, 'BAD_ARGS');
    assert.match(e.message, /^Unknown option '--hed' — did you mean '--head'\?$/);
    assert.match(e.hint!, /usage: edgehead classify/);
    return true;
  });
  const summary = leaves.find((c) => c.spec?.path === 'summary')!.spec!;
  assert.throws(() => parseSpecArgs(['--classes', 'a,b', 'stray'], summary), /summary takes no arguments \(got "stray"\)/);
  const { values } = parseSpecArgs(['--verbose', '--classes', 'a,b'], summary);
  assert.equal(values.classes, 'a,b');
  assert.equal('verbose' in values, false);
});

test('did you mean: edit distance with transpositions, only close words', () => {
  assert.equal(editDistance('clasify', 'classify'), 1);
  assert.equal(editDistance('trian', 'train'), 1);
  assert.equal(editDistance('', 'abc'), 3);
  const names = COMMANDS.map((c) => c.name);
  assert.equal(closest('clasify', names), 'classify');
  assert.equal(closest('doctr', names), 'doctor');
  assert.equal(closest('conf', names), 'config');
  assert.equal(closest('frobnicate', names), undefined);
});

test('docs/cli.md is generated from the specs and up to date (npx tsx scripts/gen-cli-docs.ts)', () => {
  const committed = fs.readFileSync(path.join(ROOT, 'docs', 'cli.md'), 'utf8');
  const fresh = renderCliDocs();
  if (committed !== fresh) {
    const a = committed.split('\n');
    const b = fresh.split('\n');
    const line = a.findIndex((l, i) => l !== b[i]);
    assert.fail(`docs/cli.md is stale at line ${line + 1}: ${JSON.stringify(a[line])} should be ${JSON.stringify(b[line])}: run npx tsx scripts/gen-cli-docs.ts`);
  }
  for (const cmd of leaves) assert.ok(fresh.includes(cmd.help()), `docs/cli.md has the help of ${cmd.spec!.path}`);
});
