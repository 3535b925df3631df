/** Image input: probe headers, decode JPEG/PNG to RGBA, and turn pixels into a model input tensor. */
export { probeImage, type ImageFormat, type ImageInfo } from './probe';
export { decodeImage, type DecodeOptions, type DecodedImage } from './decode';
export { toModelInput, applyOrientation, type PreprocessSpec, type ResizeMode } from './preprocess';
