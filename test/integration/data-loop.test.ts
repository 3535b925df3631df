/**
 * The data loop end to end on a real Mosquitto (issue 14): an agent (real process, directory source cycling the
 * bundled samples) collects samples -> `edgehead dataset pull` -> the samples are labelled by moving them into
 * DIR/<class>/ (the class is the bundled sample's folder: the agent's predictions name each frame's source) ->
 * `head train --data DIR` from the feature side-files -> `head eval` -> `head push` -> the agent predicts with the
 * new head and its classes. And features-only mode: no JPEG is ever written under the state dir nor sent, and pull
 * writes none.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CollectFetchReply, CommandReply } from '../../protocol/commands';
import type { Sample } from '../../protocol/dataset';
import type { HeadStateMessage, PredictionMessage } from '../../protocol/messages';
import { AgentProcess, Collector, testConfig } from '../support/agent-process';
import { runCli, SAMPLES, tmpDir } from '../support/cli';
import { Mosquitto, MOSQUITTO } from '../support/mosquitto';

const skip = !MOSQUITTO && 'mosquitto not installed';
const CLASSES = fs.readdirSync(SAMPLES, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
const FRAMES = fs.readdirSync(SAMPLES, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.jpg')).length;

/** Every file under dir (recursive), relative. */
const filesUnder = (dir: string): string[] => (fs.existsSync(dir) ? fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }) : []);

describe('data loop: collect -> pull -> label -> train -> eval -> push', { skip }, () => {
  let m: Mosquitto;
  before(async () => {
    m = await Mosquitto.start();
  });
  after(() => m.stop());

  const collect = (images: boolean) => ({ enabled: true, belowScore: 0, onLabelChange: false, sampleEvery: 1, images, imageWidth: 96, dtype: 'float32' });

  test('the agent\'s own samples train a head that the agent then predicts with', async () => {
    const dev = 'dl-1';
    const sub = await Collector.connect(m.url, [`edgehead/${dev}/#`]);
    const config = testConfig(m.url, { device: { id: dev }, schedule: { intervalMs: 100 }, collect: collect(true) });
    const agent = AgentProcess.start(config);
    const preds = () => sub.json<PredictionMessage>(`edgehead/${dev}/predictions`);
    try {
      // Two passes over the bundled samples: every class is seen at least twice.
      await sub.waitFor('two passes of predictions', () => preds().length >= 2 * FRAMES, 120_000);
      const out = tmpDir('data-loop-');
      const pull = await runCli(['dataset', 'pull', '--broker', m.url, '--device', dev, '--out', out]);
      assert.equal(pull.code, 0, pull.stderr);
      assert.match(pull.stdout, /^pulled \d+ new samples \(\d+ with images\) from 1 of 1 device into /);

      // Label: the class of a sample is the folder of the frame it came from (named by its prediction).
      const sourceOf = new Map(preds().map((p) => [`${p.run}-${p.frameId}`, p.source]));
      const unlabeled = path.join(out, 'unlabeled');
      const jsons = fs.readdirSync(unlabeled).filter((f) => f.endsWith('.json'));
      assert.ok(jsons.length >= 2 * FRAMES, `${jsons.length} samples pulled`);
      let moved = 0;
      for (const f of jsons) {
        const sample = JSON.parse(fs.readFileSync(path.join(unlabeled, f), 'utf8')) as Sample;
        assert.equal(f, `${dev}-${sample.id}.json`);
        assert.equal(sample.image, true);
        const jpg = f.replace(/\.json$/, '.jpg');
        assert.ok(fs.existsSync(path.join(unlabeled, jpg)), `${jpg} beside its sample`);
        const source = sourceOf.get(sample.id); // directory:<class>/<file>
        if (!source) continue; // a frame whose prediction the subscriber missed stays unlabeled
        const cls = /^directory:([^/]+)\//.exec(source)![1]!;
        fs.mkdirSync(path.join(out, cls), { recursive: true });
        for (const name of [f, jpg]) fs.renameSync(path.join(unlabeled, name), path.join(out, cls, name));
        moved++;
      }
      assert.ok(moved >= FRAMES, `${moved} samples labelled`);
      assert.deepEqual(fs.readdirSync(out).filter((d) => d !== 'unlabeled').sort(), CLASSES);

      // Pulling again writes nothing twice: the device deleted what it sent, and what is labelled stays put.
      const again = await runCli(['dataset', 'pull', '--broker', m.url, '--device', dev, '--out', out]);
      assert.equal(again.code, 0, again.stderr);
      for (const cls of CLASSES) for (const f of fs.readdirSync(path.join(out, cls))) assert.ok(!fs.existsSync(path.join(unlabeled, f)), `${f} pulled twice`);

      // Train from the feature side-files, evaluate, push.
      const headFile = path.join(tmpDir('data-loop-head-'), 'collected.head');
      const train = await runCli(['head', 'train', '--data', out, '--out', headFile, '--id', 'collected', '--version', '1', '--quiet'], { timeoutMs: 300_000 });
      assert.equal(train.code, 0, train.stderr);
      const evalRun = await runCli(['head', 'eval', '--head', headFile, '--data', out, '--json']);
      assert.equal(evalRun.code, 0, evalRun.stderr);
      const report = JSON.parse(evalRun.stdout) as { accuracy: number; perClass: unknown; confusion: unknown; ece: number; errors: unknown[] };
      for (const k of ['accuracy', 'perClass', 'confusion', 'ece', 'errors']) assert.ok(k in report, `eval --json has ${k}`);
      assert.ok(report.accuracy >= 0.9, `accuracy on its own training samples: ${report.accuracy}`);

      const push = await runCli(['head', 'push', '--broker', m.url, '--device', dev, headFile]);
      assert.equal(push.code, 0, push.stdout + push.stderr);
      await sub.waitFor('the new head applied', () => sub.json<HeadStateMessage>(`edgehead/${dev}/head/state`).find((s) => s.active.id === 'collected'));
      const firstNew = await sub.waitFor('a prediction of the new head', () => preds().find((p) => p.head.id === 'collected' && !p.reason));
      const newPreds = await sub.waitFor('a pass of predictions with the new head', () => {
        const ps = preds().filter((p) => p.frameId >= firstNew.frameId && p.head.id === 'collected' && !p.reason);
        return ps.length >= FRAMES && ps;
      });
      const right = newPreds.filter((p) => p.source.startsWith(`directory:${p.top[0]!.label}/`)).length;
      assert.ok(newPreds.every((p) => p.top.every((t) => CLASSES.includes(t.label))), 'the new head\'s classes');
      assert.ok(right >= 0.9 * newPreds.length, `${right} of ${newPreds.length} frames predicted as their folder`);
    } finally {
      await agent.kill('SIGTERM');
      await sub.close();
    }
  });

  test('features only (collect.images false): no JPEG under the state dir, none in any reply, none pulled', async () => {
    const dev = 'dl-2';
    const sub = await Collector.connect(m.url, [`edgehead/${dev}/#`]);
    const config = testConfig(m.url, { device: { id: dev, groups: ['features-only'] }, schedule: { intervalMs: 100 }, collect: collect(false) });
    const stateDir = config.stateDir as string;
    const agent = AgentProcess.start(config);
    try {
      await sub.waitFor('a pass of predictions', () => sub.json<PredictionMessage>(`edgehead/${dev}/predictions`).length >= FRAMES, 120_000);
      assert.ok(filesUnder(path.join(stateDir, 'collect')).some((f) => f.endsWith('.json')), 'samples were collected');
      assert.deepEqual(filesUnder(stateDir).filter((f) => /\.(jpe?g|png)$/i.test(f)), []);
      const out = tmpDir('data-loop-features-');
      // By group: the devices come from their retained status.
      const pull = await runCli(['dataset', 'pull', '--broker', m.url, '--group', 'features-only', '--out', out, '--timeout', '30']);
      assert.equal(pull.code, 0, pull.stderr);
      assert.match(pull.stderr, /group features-only: 1 device \(0 offline\)/);
      assert.match(pull.stdout, /\(0 with images\)/);
      const pulled = filesUnder(out);
      assert.ok(pulled.some((f) => f.endsWith('.json')));
      assert.deepEqual(pulled.filter((f) => /\.(jpe?g|png)$/i.test(f)), []);
      const replies = sub.json<CommandReply>(`edgehead/${dev}/cmd/reply`).filter((r) => r.cmd === 'collect-fetch');
      assert.ok(replies.length >= 1);
      for (const r of replies) {
        const data = r.data as CollectFetchReply;
        assert.deepEqual(data.images, {});
        assert.ok(data.samples.every((s) => s.image === false));
      }
      assert.deepEqual(filesUnder(stateDir).filter((f) => /\.(jpe?g|png)$/i.test(f)), []);
    } finally {
      await agent.kill('SIGTERM');
      await sub.close();
    }
  });

  test('dataset pull refuses bad arguments with one line and exit 2', async () => {
    for (const [args, re] of [
      [['--broker', m.url, '--out', 'x'], /either --device ID or --group G/],
      [['--broker', m.url, '--device', 'a', '--group', 'b', '--out', 'x'], /either --device ID or --group G/],
      [['--broker', m.url, '--device', 'a'], /needs --out DIR/],
      [['--device', 'a', '--out', 'x'], /needs --broker URL/],
    ] as const) {
      const r = await runCli(['dataset', 'pull', ...args]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, re);
    }
  });
});
