/** `edgehead summary --classes a,b,c [--extractor ID] [--demo-batch N] [--json]`: the Keras-style model table. */
import * as tf from '@tensorflow/tfjs-core';
import { makeHeadFile } from '../../protocol/head/format';
import { DenseHead } from '../../agent/inference/dense-head';
import { formatSummary, type SummaryRow } from '../../operator/summary';
import { EdgeheadError } from '../../base/errors';
import { type Command, defineCommand, intArg } from '../args';
import { openExtractor, RUNTIME_OPTIONS, runtimeChoice } from '../runtime';
import type { CommandSpec } from '../spec';

export const SUMMARY_SPEC = {
  path: 'summary',
  purpose: 'print the model table (frozen extractor + Dense head) and parameter counts',
  options: {
    classes: { type: 'string', arg: 'A,B,...', required: true, description: 'the head\'s class names, comma-separated (at least two)' },
    'demo-batch': { type: 'string', arg: 'N', description: 'run a random [N,h,w,3] batch through both and print the output shape' },
    json: { type: 'boolean', description: 'one JSON object on stdout: layers, parameter totals, demo batch shape (errors too: {"error": {...}})' },
    ...RUNTIME_OPTIONS,
  },
  details: `Prints the layer table and parameter totals of the frozen extractor plus a Dense(len(classes)) head, like
Keras' Model.summary().`,
  examples: [
    'edgehead summary --classes cat,dog,bird',
    'edgehead summary --extractor mobilenet_v2_100 --classes cat,dog,bird,fish,horse --demo-batch 32',
    'edgehead summary --json --classes a,b',
  ],
  jsonErrors: true,
} as const satisfies CommandSpec;

export const summaryCommand: Command = defineCommand(SUMMARY_SPEC, async ({ values }) => {
  const classes = (values.classes ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (classes.length < 2) throw new EdgeheadError('BAD_ARGS', '--classes needs at least two comma-separated names');
  const batch = intArg(values['demo-batch'], 'demo-batch', 1, 0);
  const { extractor } = await openExtractor(runtimeChoice(values));
  const { info } = extractor;
  const c = classes.length;
  const rows: SummaryRow[] = [
    { name: info.id, type: info.format === 'layers' ? 'Functional' : 'GraphModel', outputShape: [null, info.featureDim], params: info.paramCount, trainable: false },
    { name: 'dense', type: 'Dense', outputShape: [null, c], params: info.featureDim * c + c, trainable: true },
  ];
  if (!values.json) process.stdout.write(formatSummary('edgehead', rows) + '\n');
  let demoBatchShape: number[] | undefined;
  if (batch > 0) {
    // A freshly initialised head (Glorot-uniform kernel, zero bias), as Keras would build it.
    const limit = Math.sqrt(6 / (info.featureDim + c));
    const kernel = tf.tidy(() => tf.randomUniform([info.featureDim, c], -limit, limit, 'float32', 1).dataSync() as Float32Array);
    const head = DenseHead.fromFile(makeHeadFile({ id: 'summary', version: 1, classes, extractor: { id: info.id, fingerprint: info.fingerprint }, kernel, bias: new Float32Array(c) }));
    const shape = tf.tidy(() => {
      const [lo, hi] = info.valueRange;
      const images = tf.randomUniform([batch, info.inputSize[0], info.inputSize[1], 3], lo, hi, 'float32', 2) as tf.Tensor4D;
      return head.logits(extractor.extract(images)).shape;
    });
    demoBatchShape = shape;
    if (!values.json) process.stdout.write(`(${shape.join(', ')})\n`);
    head.dispose();
  }
  extractor.dispose();
  if (values.json) {
    const total = rows.reduce((a, r) => a + r.params, 0);
    const trainable = rows.filter((r) => r.trainable).reduce((a, r) => a + r.params, 0);
    const summary = { model: 'edgehead', extractor: info.id, classes, layers: rows, totalParams: total, trainableParams: trainable, nonTrainableParams: total - trainable };
    process.stdout.write(JSON.stringify(demoBatchShape ? { ...summary, demoBatchShape } : summary, null, 2) + '\n');
  }
  return 0;
});
