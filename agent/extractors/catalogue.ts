/**
 * The built-in extractors. Their weights come from the npm package nsfwjs (MIT), converted once at install/build
 * time (scripts/convert-models.ts) into models/<id>/ in the standard TF.js form; nsfwjs is never needed at run time.
 */
export interface CatalogueEntry {
  id: string;
  description: string;
  format: 'graph' | 'layers';
  inputSize: [number, number];
  featureDim: number;
  /** Pixel values 0..255 are scaled linearly into this range before extraction. */
  valueRange: [number, number];
  /** Where the weights come from and where the network is cut to give the feature vector. */
  source: { package: 'nsfwjs'; dir: string; shards: number; cutAt: string };
}

export const CATALOGUE: readonly CatalogueEntry[] = [
  {
    id: 'mobilenet_v2_140',
    description: 'TF-Hub MobileNetV2 1.4/224 feature vector (graph model), 1792-d',
    format: 'graph',
    inputSize: [224, 224],
    featureDim: 1792,
    valueRange: [0, 1],
    source: {
      package: 'nsfwjs',
      dir: 'dist/models/mobilenet_v2_mid',
      shards: 2,
      cutAt:
        'StatefulPartitionedCall/sequential/keras_layer/StatefulPartitionedCall/StatefulPartitionedCall/' +
        'StatefulPartitionedCall/predict/feature_vector/SpatialSqueeze',
    },
  },
  {
    id: 'mobilenet_v2_100',
    description: 'Keras MobileNetV2 1.0/224 cut at global pooling (layers model), 1280-d',
    format: 'layers',
    inputSize: [224, 224],
    featureDim: 1280,
    valueRange: [0, 1],
    source: { package: 'nsfwjs', dir: 'dist/models/mobilenet_v2', shards: 1, cutAt: 'flatten_1' },
  },
];

export function catalogueEntry(id: string): CatalogueEntry | undefined {
  return CATALOGUE.find((e) => e.id === id);
}
