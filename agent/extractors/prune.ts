/**
 * Cutting a TF.js model at an inner node, keeping only what that node depends on (topology and weight bytes).
 * Used to turn classification models into feature extractors.
 */
import type { io } from '@tensorflow/tfjs-core';
import { EdgeheadError } from '../../base/errors';
import { ancestors, type GraphNode, inputNodeName } from './graph-def';
import { type ModelFolder, storedByteSize } from './model-files';

/** Keeps the weight entries accepted by `keep`, slicing their bytes out of the concatenated weight data. */
function filterWeights(folder: ModelFolder, keep: (name: string) => boolean): { weights: io.WeightsManifestEntry[]; data: Uint8Array } {
  const weights: io.WeightsManifestEntry[] = [];
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const w of folder.json.weightsManifest.flatMap((g) => g.weights)) {
    const size = storedByteSize(w);
    if (keep(w.name)) {
      weights.push(w);
      parts.push(folder.weightData.subarray(offset, offset + size));
    }
    offset += size;
  }
  return { weights, data: new Uint8Array(Buffer.concat(parts)) };
}

/** Graph model: keep the ancestors of `outputNode`; it becomes the model's only output. */
export function pruneGraph(folder: ModelFolder, outputNode: string): ModelFolder {
  const topology = folder.json.modelTopology as { node: GraphNode[]; [k: string]: unknown };
  const byName = new Map(topology.node.map((n) => [n.name, n]));
  if (!byName.has(outputNode)) throw new EdgeheadError('BAD_MODEL', `graph has no node named ${outputNode}`);
  const keep = ancestors(outputNode, (name) => (byName.get(name)?.input ?? []).map(inputNodeName));
  const { weights, data } = filterWeights(folder, (n) => keep.has(n));
  const json = {
    ...folder.json,
    modelTopology: { ...topology, node: topology.node.filter((n) => keep.has(n.name)) },
    weightsManifest: [{ paths: ['weights.bin'], weights }],
  };
  delete json.userDefinedMetadata; // its signature described the removed classifier outputs
  delete json.signature;
  return { json, weightData: data };
}

interface KerasLayer {
  name: string;
  class_name: string;
  inbound_nodes: unknown[];
}

/** Layers model (Keras functional): keep the ancestors of layer `outputLayer`; it becomes the only output. */
export function pruneLayers(folder: ModelFolder, outputLayer: string): ModelFolder {
  const topology = folder.json.modelTopology as {
    model_config: { class_name: string; config: { layers: KerasLayer[]; output_layers: unknown[]; name?: string } };
    training_config?: unknown;
    [k: string]: unknown;
  };
  const layers = topology.model_config.config.layers;
  const byName = new Map(layers.map((l) => [l.name, l]));
  if (!byName.has(outputLayer)) throw new EdgeheadError('BAD_MODEL', `model has no layer named ${outputLayer}`);
  // inbound_nodes: [[[layerName, nodeIndex, tensorIndex, kwargs], ...], ...]
  const keep = ancestors(outputLayer, (name) =>
    ((byName.get(name)?.inbound_nodes ?? []) as unknown[][][]).flatMap((node) => node.map((edge) => String(edge[0]))),
  );
  const { weights, data } = filterWeights(folder, (n) => keep.has(n.split('/')[0]!));
  const { training_config: _dropped, ...rest } = topology;
  const json = {
    ...folder.json,
    modelTopology: {
      ...rest,
      model_config: {
        ...topology.model_config,
        config: {
          ...topology.model_config.config,
          layers: layers.filter((l) => keep.has(l.name)),
          output_layers: [[outputLayer, 0, 0]],
        },
      },
    },
    weightsManifest: [{ paths: ['weights.bin'], weights }],
  };
  return { json, weightData: data };
}
