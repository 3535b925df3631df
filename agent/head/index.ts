/** The head: binary format (file and MQTT payload), signatures, inference and training. */
export {
  HEAD_MAGIC,
  HEAD_FORMAT_VERSION,
  HEAD_HEADER_BYTES,
  MAX_MANIFEST_BYTES,
  MAX_MANIFEST_DEPTH,
  DEFAULT_DECODE_LIMITS,
  encodeHead,
  decodeHead,
  headSha256,
  encodeHeader,
  encodeWeights,
  canonicalJson,
  validateManifest,
  makeHeadFile,
  type HeadFile,
  type HeadManifest,
  type HeadSignature,
  type TestVector,
  type DecodeLimits,
} from './format';
export {
  generateKeyPair,
  signHead,
  verifyHead,
  keyIdFromPublicKey,
  signedBytes,
  canonicalUnsignedManifest,
  type VerifyResult,
} from './signature';
export { DenseHead, type Prediction, type TestVectorResult } from './dense-head';
export {
  DEFAULT_TRAIN_OPTIONS,
  splitStratified,
  trainSoftmaxHead,
  formatConfusion,
  type TrainOptions,
  type TrainResult,
  type TrainMetrics,
  type EpochReport,
} from './train';
