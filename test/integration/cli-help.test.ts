/**
 * The CLI explains itself (issue 16): help for every command from its spec, `edgehead help CMD`, global flags before
 * or after the command, "did you mean" for a mistyped command, `classify DIR`, --json results and errors for
 * `head train` and `summary`, and `npm run bench -- --help`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { hasStackTrace, ROOT, runCli, SAMPLES, tmpDir } from '../support/cli';

describe('help', () => {
  test('`help CMD`, `CMD --help` and `--help CMD` print the same: purpose, usage, options with defaults, global flags, examples', async () => {
    const a = await runCli(['help', 'head', 'train']);
    const b = await runCli(['head', 'train', '--help']);
    const c = await runCli(['--help', 'head', 'train']);
    for (const r of [a, b, c]) assert.equal(r.code, 0, r.stderr);
    assert.equal(a.stdout, b.stdout);
    assert.equal(c.stdout, b.stdout);
    const help = b.stdout;
    assert.match(help, /^edgehead head train: train a Dense head/);
    assert.match(help, /^usage: edgehead head train --data DIR --out FILE \[options\]$/m);
    assert.match(help, /^ {2}--folds N +.*\(default: 5\)$/m);
    assert.equal(help.match(/^ {2}--extractor /gm)?.length, 1, 'the extractor flag once');
    for (const flag of [/^ {2}--verbose /m, /^ {2}-h, --help /m, /^ {2}--json /m]) assert.match(help, flag);
    assert.match(help, /^examples:\n {2}edgehead head train --data /m);
  });

  test('`help run` is the help of run, not the command list; `doctor --help` says what doctor does', async () => {
    const run = await runCli(['help', 'run']);
    assert.equal(run.code, 0);
    assert.match(run.stdout, /^edgehead run: run the agent/);
    assert.match(run.stdout, /-c, --config FILE/);
    const doctor = await runCli(['doctor', '--help']);
    assert.equal(doctor.code, 0);
    assert.match(doctor.stdout, /^edgehead doctor: report backend, SIMD/);
    assert.match(doctor.stdout, /^examples:\n {2}edgehead doctor/m);
    assert.match(doctor.stdout, /^ {2}--verbose /m);
  });

  test('groups: `head --help` lists the subcommands, `help head trian` suggests train', async () => {
    const head = await runCli(['head', '--help']);
    assert.equal(head.code, 0);
    assert.match(head.stdout, /^ {2}train +train a Dense head/m);
    const typo = await runCli(['help', 'head', 'trian']);
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /unknown head subcommand "trian" — did you mean "train"\?/);
  });
});

describe('global flags and mistakes', () => {
  test('--verbose before or after the command: no stack trace for a bad input, the same one-line error', async () => {
    for (const args of [['--verbose', 'classify', '/nonexistent/x.jpg'], ['classify', '/nonexistent/x.jpg', '--verbose']]) {
      const r = await runCli(args);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^edgehead: \/nonexistent\/x\.jpg: cannot read: ENOENT$/m);
      assert.ok(!hasStackTrace(r.stderr), r.stderr);
      assert.doesNotMatch(r.stderr, /unknown command/);
    }
  });

  test('--json before the command reaches the command', async () => {
    const r = await runCli(['--json', 'config', 'defaults']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(typeof JSON.parse(r.stdout).mqtt, 'object');
  });

  test('a mistyped command: did you mean, exit 2', async () => {
    const r = await runCli(['clasify', 'x.jpg']);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, 'edgehead: unknown command "clasify" — did you mean "classify"?\n');
    const far = await runCli(['frobnicate']);
    assert.equal(far.code, 2);
    assert.match(far.stderr, /^edgehead: unknown command "frobnicate" \(run `edgehead --help` for the commands\)$/m);
  });

  test('a mistyped option: did you mean, exit 2', async () => {
    const r = await runCli(['classify', '--hed', 'x.head', 'x.jpg']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Unknown option '--hed' — did you mean '--head'\?/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  });
});

describe('classify DIR', () => {
  test('walks the folder recursively, images only, sorted; a bad image is reported and the rest continue', async () => {
    const dir = tmpDir();
    fs.mkdirSync(path.join(dir, 'b', 'deep'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'a'));
    fs.copyFileSync(path.join(SAMPLES, 'fish', 'fish1.jpg'), path.join(dir, 'b', 'deep', 'z.JPG'));
    fs.copyFileSync(path.join(SAMPLES, 'tool', 'hammer1.jpg'), path.join(dir, 'a', 'hammer1.jpg'));
    fs.copyFileSync(path.join(SAMPLES, 'fish', 'fish1.jpg'), path.join(dir, 'top.jpeg'));
    fs.writeFileSync(path.join(dir, 'a', 'broken.png'), 'not a png');
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'not an image');
    fs.writeFileSync(path.join(dir, '.hidden.jpg'), 'hidden');
    const r = await runCli(['classify', '--json', dir]);
    assert.equal(r.code, 1, 'one image failed');
    const out = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { file: string; error?: string; top?: { label: string }[] });
    assert.deepEqual(out.map((o) => path.relative(dir, o.file)), ['a/broken.png', 'a/hammer1.jpg', 'b/deep/z.JPG', 'top.jpeg']);
    assert.match(out[0]!.error!, /not a JPEG or PNG/i);
    assert.equal(out[1]!.top![0]!.label, 'tool');
    assert.equal(out[2]!.top![0]!.label, 'fish');
    assert.doesNotMatch(r.stderr, /EISDIR/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  });

  test('a folder without images is an error for that folder only', async () => {
    const empty = tmpDir();
    const r = await runCli(['classify', empty, path.join(SAMPLES, 'fish', 'fish1.jpg')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no images \(\.jpg, \.jpeg, \.png\) in this folder/);
    assert.match(r.stdout, /fish1\.jpg {2}fish/);
  });
});

describe('--json for head train and summary', () => {
  test('head train --json: the result as JSON; a failure as {"error"} on stdout', async () => {
    const data = tmpDir();
    for (const [cls, files] of [['fish', ['fish1.jpg', 'fish10.jpg']], ['tool', ['hammer1.jpg', 'hammer3.jpg']]] as const) {
      fs.mkdirSync(path.join(data, cls));
      for (const f of files) fs.copyFileSync(path.join(SAMPLES, cls, f), path.join(data, cls, f));
    }
    const out = path.join(tmpDir(), 'two.head');
    const r = await runCli(['head', 'train', '--json', '--quiet', '--no-flip', '--data', data, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    assert.equal(result.file, out);
    assert.deepEqual(result.head.classes, ['fish', 'tool']);
    assert.equal(result.head.id, 'two');
    assert.equal(result.samples.images, 4);
    assert.equal(typeof result.metrics.trainAccuracy, 'number');
    assert.ok(fs.statSync(out).size === result.head.bytes);

    const bad = await runCli(['head', 'train', '--json', '--data', path.join(data, 'nonexistent'), '--out', out]);
    assert.equal(bad.code, 2);
    const err = JSON.parse(bad.stdout);
    assert.equal(err.error.code, 'BAD_ARGS');
    assert.match(err.error.message, /nonexistent/);
  });

  test('summary --json: layers and totals; errors as JSON', async () => {
    const r = await runCli(['summary', '--json', '--extractor', 'mobilenet_v2_100', '--classes', 'cat,dog,bird,fish,horse']);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout);
    assert.equal(s.totalParams, 2264389);
    assert.equal(s.trainableParams, 6405);
    assert.equal(s.layers[1].name, 'dense');
    const bad = await runCli(['summary', '--json', '--classes', 'one']);
    assert.equal(bad.code, 2);
    assert.match(JSON.parse(bad.stdout).error.message, /at least two/);
  });
});

test('npm run bench -- --help: the usage, no "Unknown option" first', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench', 'run.ts'), '--help'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.match(r.stdout, /^usage: npm run bench -- /);
  assert.match(r.stdout, /--frames N/);
});
