// Floats of the activation buffers of a [B, T] pass of any model type: what batch sizing (lib/train/batch-size.ts,
// SentenceEncoder's engine) counts before allocating. BERT's layers (activations.ts) and ModernBERT's
// (modernbert.ts) keep different buffers.
import type { BertConfig } from './config.js'
import { floatsFor } from './activations.js'
import { modernFloatsFor } from './modernbert.js'

/**
 * interBf16: BERT training at bf16, which keeps the MLP's pre-activation in bfloat16; attentionBf16: on CUDA, the
 * attention's q | k | v, ctx and its gradient too, at the lengths activations.ts's attentionKeptBf16 admits (ModernBERT:
 * only no probabilities where keepsProbs says).
 */
export function passFloats(c: BertConfig, B: number, T: number, training: boolean, interBf16 = false, attentionBf16 = false): number {
  return c.modelType === 'modernbert'
    ? modernFloatsFor(c, B, T, training, attentionBf16)
    : floatsFor(c, B, T, training, interBf16, attentionBf16)
}
