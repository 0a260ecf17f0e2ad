// Where each parameter lives in the model's one flat buffer. Parameters, gradients and AdamW moments
// share this layout (llm.c's habit), so zeroing, grad-norm, the optimizer step and checkpointing are
// single passes. Weight-decayed tensors come first, then the biases and LayerNorm parameters that
// AdamW never decays, so each group is one contiguous range.
import type { BertConfig } from './config.js'
import { parameterSpecs, type ParamSpec } from './names.js'
import { denseBiasName, denseWeightName, type DenseShape } from './dense-head.js'

export interface ParamEntry extends ParamSpec {
  offset: number
  size: number
  decay: boolean
  /** Saved in model.safetensors (false for the training-only MLP head and the Dense modules). */
  saved: boolean
}

export interface ParamLayout {
  entries: ParamEntry[]
  byName: Map<string, ParamEntry>
  total: number
  /** Elements [0, decayEnd) get weight decay; [decayEnd, total) never do. */
  decayEnd: number
}

/** The SimCSE training head: z = tanh(W·h_CLS + b), dropped when the model is saved. */
export const MLP_WEIGHT = 'mlp.dense.weight'
export const MLP_BIAS = 'mlp.dense.bias'

export function paramLayout(
  config: BertConfig,
  options: { mlp?: boolean; pooler?: boolean; dense?: readonly DenseShape[] } = {},
): ParamLayout {
  const specs: (ParamSpec & { saved: boolean })[] = parameterSpecs(config, { pooler: options.pooler ?? true }).map((s) => ({
    ...s,
    saved: true,
  }))
  if (options.mlp) {
    const H = config.hiddenSize
    specs.push({ name: MLP_WEIGHT, shape: [H, H], kind: 'weight', saved: false })
    specs.push({ name: MLP_BIAS, shape: [H], kind: 'bias', saved: false })
  }
  // sentence-transformers' Dense modules after the pooling (dense-head.ts): trained, saved in folders of their own.
  ;(options.dense ?? []).forEach((d, i) => {
    specs.push({ name: denseWeightName(i), shape: [d.outFeatures, d.inFeatures], kind: 'weight', saved: false })
    if (d.bias) specs.push({ name: denseBiasName(i), shape: [d.outFeatures], kind: 'bias', saved: false })
  })
  const decays = (s: ParamSpec) => s.kind === 'weight' || s.kind === 'embedding'
  const ordered = [...specs.filter(decays), ...specs.filter((s) => !decays(s))]
  const entries: ParamEntry[] = []
  let offset = 0
  let decayEnd = 0
  for (const s of ordered) {
    const size = s.shape.reduce((a, b) => a * b, 1)
    entries.push({ ...s, offset, size, decay: decays(s) })
    offset += size
    if (decays(s)) decayEnd = offset
  }
  return { entries, byName: new Map(entries.map((e) => [e.name, e])), total: offset, decayEnd }
}
