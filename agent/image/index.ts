/** Image input: probe headers, decode JPEG/PNG to RGBA, and turn pixels into a model input tensor. */
export { probeImage, type ImageFormat, type ImageInfo } from './probe';
export { decodeImage, initImageCodecs, type DecodeOptions, type DecodedImage, type ImageCodecs, type ImageDecoder } from './decode';
export { toModelInput, applyOrientation, type PreprocessSpec, type ResizeMode } from './preprocess';
