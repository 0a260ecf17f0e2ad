// Int8 copies of the encoder layers' four linear weights (q/k/v, attention output, intermediate, output; ModernBERT's
// Wqkv, Wo, Wi and the MLP's Wo), for
// the CPU's int8 inference (BertModel.quantizeInt8, SentenceEncoder's precision 'int8'): each weight quantized
// once, per output channel, and packed for the int8 kernels (native/cpu/linear_int8.h). The biases, LayerNorms,
// attention and embeddings stay fp32, as do the MLP head and the sentence-transformers Dense modules.
import * as ops from '../ops.js'
import type { Tensor } from '../tensor.js'

/** One layer's packed weights (ops.int8PackWeight's tensors). */
export interface Int8Layer {
  qkv: Tensor
  attentionOutput: Tensor
  intermediate: Tensor
  output: Tensor
}

/** The four weights of a layer, in Int8Layer's roles. */
export type LayerWeights = Record<keyof Int8Layer, Tensor>

/** Every layer's weights packed (CPU tensors); nothing is left allocated when one fails. */
export function packInt8Layers(layers: readonly LayerWeights[]): Int8Layer[] {
  const made: Tensor[] = []
  const pack = (w: Tensor) => {
    const t = ops.int8PackWeight(w)
    made.push(t)
    return t
  }
  try {
    return layers.map((l) => ({
      qkv: pack(l.qkv),
      attentionOutput: pack(l.attentionOutput),
      intermediate: pack(l.intermediate),
      output: pack(l.output),
    }))
  } catch (e) {
    for (const t of made) t.dispose()
    throw e
  }
}

export function disposeInt8Layers(layers: readonly Int8Layer[]): void {
  for (const l of layers) for (const t of [l.qkv, l.attentionOutput, l.intermediate, l.output]) t.dispose()
}
