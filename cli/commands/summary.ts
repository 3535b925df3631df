/** `edgehead summary --classes a,b,c [--extractor ID] [--demo-batch N]`: the Keras-style model table. */
import * as tf from '@tensorflow/tfjs-core';
import { makeHeadFile } from '../../protocol/head/format';
import { DenseHead } from '../../agent/inference/dense-head';
import { formatSummary } from '../../operator/summary';
import { EdgeheadError } from '../../base/errors';
import { type Command, help, intArg, parseCommandArgs } from '../args';
import { openExtractor, RUNTIME_OPTIONS, RUNTIME_USAGE, runtimeChoice } from '../runtime';

const USAGE = `edgehead summary --classes A,B,... [--demo-batch N] ${RUNTIME_USAGE}
  Prints the layer table and parameter totals of the frozen extractor plus a Dense(len(classes)) head, like
  Keras' Model.summary(). --demo-batch N runs a random [N,h,w,3] batch through both and prints the output shape.`;

export const summaryCommand: Command = {
  name: 'summary',
  summary: 'print the model table (frozen extractor + Dense head) and parameter counts',
  usage: USAGE,
  async run(argv) {
    const { values } = parseCommandArgs(argv, { ...RUNTIME_OPTIONS, classes: { type: 'string' }, 'demo-batch': { type: 'string' } }, USAGE);
    if (values.help) return help(USAGE);
    const classes = (values.classes ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    if (classes.length < 2) throw new EdgeheadError('BAD_ARGS', '--classes needs at least two comma-separated names');
    const batch = intArg(values['demo-batch'], 'demo-batch', 1, 0);
    const { extractor } = await openExtractor(runtimeChoice(values));
    const { info } = extractor;
    const c = classes.length;
    process.stdout.write(
      formatSummary('edgehead', [
        { name: info.id, type: info.format === 'layers' ? 'Functional' : 'GraphModel', outputShape: [null, info.featureDim], params: info.paramCount, trainable: false },
        { name: 'dense', type: 'Dense', outputShape: [null, c], params: info.featureDim * c + c, trainable: true },
      ]) + '\n',
    );
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
      process.stdout.write(`(${shape.join(', ')})\n`);
      head.dispose();
    }
    extractor.dispose();
    return 0;
  },
};
