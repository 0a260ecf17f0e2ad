// The encoder's activation buffers for one batch shape, carved out of one flat allocation that grows only when a
// larger batch arrives (no native allocation inside a training step once warm).
// Forward saves what backward needs (llm.c's ActivationTensors): LayerNorm inputs, mean and rstd, attention
// probabilities before dropout (up to KEEP_PROBS_MAX_T), GELU inputs. Not the outputs that the backward can
// recompute with the forward's bits: GELU(inter) (output.dense's weight gradient reads it: linearBackward recomputes
// it), so every layer's interAct is one buffer, which output.dense reads right after the GELU writes it, and which
// is also gI2's memory (a forward never needs gI2 and a backward never reads interAct); and the LayerNorm outputs h1
// and h2 (the next products' weight gradients read them: linearBackward recomputes them from res, mean and rstd with
// layerNormApply's bits, its layerNormInput), so all layers write h1 into one buffer and h2 into another. One of each is enough: a layer's
// input (the h2 before) is last read by its first LayerNorm, before its output is written. On CUDA at bf16 they are
// not even written (but the last layer's h2): their products read the bf16 copies, and the residual LayerNorms read
// their x recomputed from the LayerNorm before (residualLayerNormForward with a LayerNormInput). At bf16 the GELU
// inputs (inter) are kept in bfloat16 (Bf16Values: half the floats), as autocast keeps them; on CUDA also the
// attention's packed q | k | v, its output ctx and ctx's gradient (gCtx), where the attention takes bf16 operands
// (attentionKeptBf16): its products and the linear layer after it round them to those values anyway. There (bf16
// training on CUDA) each layer also keeps the bf16 copies of h1 and h2 that the next products read (h1Bf16, h2Bf16;
// keepsNormCopies): the weight gradients read them as they are, instead of a pass that recomputes the LayerNorm's
// output from res, mean and rstd and rounds it (a 4-byte read and a 2-byte write per element, for 2 bytes kept).
// Likewise the MLP's GELU output (actBf16; keepsGeluCopies): the GELU writes bf16(GELU(inter)) there, which
// output.dense's product reads in the forward and its weight gradient in the backward, whose GELU' pass then no
// longer rounds GELU(inter) again (a 2-byte write per element, for 2 bytes kept).
// And bf16 training (both backends) stores each sublayer's output y (attention.output.dense's, output.dense's) in
// bfloat16, as autocast's linear layers return it, in one buffer for all layers (yBf16; keepsSublayerBf16): the
// residual LayerNorm after it reads 2 bytes a value instead of 4.
// Inference saves nothing for a backward: one set of buffers serves every layer, so its memory does not grow with
// the depth. Within it the GELU runs in place (interAct = inter), each LayerNorm over its input (res1 = h1, res2 =
// h2), the embedding output is h2 (layer 0's input), and embSum and h1 live in qkv's memory (embSum is dead once the
// embedding LayerNorm has written layer 0's input, qkv once the attention has written ctx, h1 once the layer's
// output is written); the attention keeps no probabilities (B·NH·T² floats, the one term that grows with T²).
// BERT-base at 64 x 128: 217 MiB (whole layers' buffers taking turns in two sets, with probs, held 721).
import { headDim, type BertConfig } from './config.js'
import type { Tensor, Device } from '../tensor.js'
import { ViewArena, viewFloats } from './view-arena.js'
import { Bf16Values } from '../bf16-values.js'
import { addon } from '../native.js'

/**
 * Training keeps each layer's attention probabilities (B·NH·T² floats) for sequences up to this length, where
 * CUDA's fused backward reads them and they are at most a sixth of a layer's activations (BERT-base: 5% at
 * T = 32, 17% at 128). Longer batches do not keep them: the backward forms them again from q and k with the
 * forward's bits (one more T x T x HS product per head), where they would be 44% of a layer at T = 512. On CUDA at
 * bf16 none are kept up to 32 tokens either (keepsProbs).
 */
export const KEEP_PROBS_MAX_T = 128

export interface LayerActivations {
  qkv: Tensor | Bf16Values // [B, T, 3H]: the fused q/k/v projection (column blocks q | k | v); bf16 at attentionBf16
  probs: Tensor | null // [B, NH, T, T] softmax before dropout (training, where keepsProbs; else null)
  ctx: Tensor | Bf16Values // [BT, H] (Bf16Values: [B, T, H], at attentionBf16)
  res1: Tensor
  mean1: Tensor
  rstd1: Tensor // attention output + residual (LayerNorm input), [BT, H], [BT]
  h1: Tensor // [BT, H] (training: one buffer for all layers, recomputed in the backward)
  inter: Tensor | Bf16Values // [BT, I] the GELU's input (bf16 training: kept in bfloat16, half the memory)
  interAct: Tensor // [BT, I] before / after GELU (training: one buffer for all layers; inference: inter itself)
  res2: Tensor
  mean2: Tensor
  rstd2: Tensor
  h2: Tensor // [BT, H] the layer's output (one buffer for all layers, as h1)
  h1Bf16: Bf16Values | null // [BT, H] bf16(h1), kept for intermediate.dense's weight gradient (keepsNormCopies)
  h2Bf16: Bf16Values | null // [BT, H] bf16(h2), kept for the next layer's q/k/v weight gradient (not the last layer)
  actBf16: Bf16Values | null // [BT, I] bf16(GELU(inter)), output.dense's input, kept for its weight gradient
}

export interface Activations {
  B: number
  T: number
  embSum: Tensor
  embMean: Tensor
  embRstd: Tensor
  embOut: Tensor // [BT, H] after LayerNorm and dropout: layer 0's input
  layers: LayerActivations[]
  pooled: Tensor // [B, H] CLS or mean
  z: Tensor // [B, H] tanh(MLP(pooled)) when training with the MLP
  relBias: Tensor | null // [2T - 1, NH] MPNet's relative-position bias for this T (every layer's), else null
  dRelBias: Tensor | null // [B, 2T - 1, NH] a layer's gradient of it (training; each layer in turn), else null
  // Gradient scratch.
  gH: Tensor
  gRes: Tensor
  gTmp: Tensor
  gQkv: Tensor // [B, T, 3H]
  gCtx: Tensor | Bf16Values // [B, T, H] (Bf16Values at attentionBf16)
  gI2: Tensor // [BT, I]: the gradient at the GELU's input (linearBackward carries it through the GELU)
  gPooled: Tensor // [B, H]
  yBf16: Bf16Values | null // [BT, H] a sublayer's output before its residual LayerNorm (keepsSublayerBf16), else null
}

/**
 * Whether a training pass of this length keeps the attention's packed q | k | v, its output ctx and ctx's gradient in
 * bfloat16 (Bf16Values), given that the model does (attentionBf16: bf16 training on CUDA): where the attention takes
 * bf16 operands (T <= 128, head size <= 64: the addon's limits, asked rather than repeated here; ops.attentionForward),
 * which round those values anyway, so they are the same values in half the bytes.
 */
export function attentionKeptBf16(c: BertConfig, T: number, attentionBf16: boolean): boolean {
  return attentionBf16 && T >= 1 && addon.attentionTakesBf16(T, headDim(c))
}

/**
 * Whether a training pass of this length keeps each layer's attention probabilities: up to KEEP_PROBS_MAX_T, but not
 * where the model keeps the attention's arrays in bf16 (attentionBf16: bf16 on CUDA) and CUDA's backward forms P in its
 * own kernel (T <= 32: addon.attentionFormsProbs), with the forward's bits and no pass of its own, so that the B·NH·T²
 * floats a layer are neither written nor read (BERT-base at B = 512, T = 32: 75 MB a layer each way).
 */
export function keepsProbs(c: BertConfig, T: number, attentionBf16: boolean): boolean {
  if (T > KEEP_PROBS_MAX_T) return false
  // SIMCSEPP_ATTENTION_PROBS=keep keeps them wherever T <= KEEP_PROBS_MAX_T (as before; gpu-check times both ways).
  const how = process.env.SIMCSEPP_ATTENTION_PROBS ?? 'auto'
  if (how !== 'auto' && how !== 'keep') throw new Error(`SIMCSEPP_ATTENTION_PROBS must be auto or keep, got ${JSON.stringify(how)}`)
  return how === 'keep' || !(attentionKeptBf16(c, T, attentionBf16) && addon.attentionFormsProbs(T, headDim(c)))
}

/**
 * Whether a training pass keeps each layer's bf16 copies of its LayerNorm outputs h1 and h2 (h1Bf16, h2Bf16), given
 * that the model keeps the attention's arrays in bf16 (attentionBf16: bf16 on CUDA). 2 bytes an element kept (BERT-base
 * at B = 512, T = 32: 1.7 GB in all) for 6 moved in the backward (5.4 GB a step there). SIMCSEPP_LAYERNORM_COPIES=
 * recompute keeps none (the backward recomputes and rounds them, as before; gpu-check times both ways).
 */
export function keepsNormCopies(attentionBf16: boolean): boolean {
  const how = process.env.SIMCSEPP_LAYERNORM_COPIES ?? 'keep'
  if (how !== 'keep' && how !== 'recompute')
    throw new Error(`SIMCSEPP_LAYERNORM_COPIES must be keep or recompute, got ${JSON.stringify(how)}`)
  return attentionBf16 && how === 'keep'
}

/**
 * Whether a training pass keeps each layer's GELU output in bfloat16 (actBf16), given that the model keeps the MLP's
 * pre-activation in bf16 (interBf16) and the attention's arrays too (attentionBf16: bf16 on CUDA): the GELU writes only
 * that copy, output.dense reads it in both directions, and the backward's GELU' pass no longer rounds GELU(inter) for
 * the weight gradient. 2 bytes an element kept (BERT-base at B = 512, T = 32: 3.6 GB in all) for 2 written (3.6 GB a
 * step). SIMCSEPP_GELU_COPIES=recompute keeps none (the backward recomputes and rounds them, as before; gpu-check times
 * both ways).
 */
export function keepsGeluCopies(interBf16: boolean, attentionBf16: boolean): boolean {
  const how = process.env.SIMCSEPP_GELU_COPIES ?? 'keep'
  if (how !== 'keep' && how !== 'recompute') throw new Error(`SIMCSEPP_GELU_COPIES must be keep or recompute, got ${JSON.stringify(how)}`)
  return interBf16 && attentionBf16 && how === 'keep'
}

/**
 * Whether a training pass stores each sublayer's output y in bfloat16 (yBf16), given that the model trains at bf16
 * (interBf16): its product rounds it, as autocast's linear layers do, and the residual LayerNorm reads 2 bytes a value
 * (BERT-base at B = 512, T = 32: 3.6 GB less traffic a step). SIMCSEPP_SUBLAYER_OUTPUT=fp32 keeps it in fp32 (as
 * before; gpu-check times both ways).
 */
export function keepsSublayerBf16(interBf16: boolean): boolean {
  const how = process.env.SIMCSEPP_SUBLAYER_OUTPUT ?? 'bf16'
  if (how !== 'bf16' && how !== 'fp32') throw new Error(`SIMCSEPP_SUBLAYER_OUTPUT must be bf16 or fp32, got ${JSON.stringify(how)}`)
  return interBf16 && how === 'bf16'
}

/**
 * Number of floats one batch of B×T needs (train() sizes a batch with it before allocating). interBf16: training
 * keeps the MLP's pre-activation in bfloat16 (BertModel at bf16), half its floats; attentionBf16: and the attention's
 * q | k | v, ctx and its gradient where attentionKeptBf16 says (BertModel at bf16 on CUDA); without them, an upper
 * bound. normCopies: training keeps the LayerNorms' bf16 copies (keepsNormCopies, read now when not given);
 * sublayerBf16: and stores the sublayers' outputs in bf16 (keepsSublayerBf16, likewise); geluCopies: and keeps the
 * GELU outputs in bf16 (keepsGeluCopies, likewise).
 */
export function floatsFor(
  c: BertConfig,
  B: number,
  T: number,
  training: boolean,
  interBf16 = false,
  attentionBf16 = false,
  normCopies = keepsNormCopies(attentionBf16),
  sublayerBf16 = keepsSublayerBf16(interBf16),
  geluCopies = keepsGeluCopies(interBf16, attentionBf16),
): number {
  const H = c.hiddenSize,
    I = c.intermediateSize,
    NH = c.numAttentionHeads,
    BT = B * T
  const v = viewFloats // each view's floats in the arena (aligned)
  const probs = keepsProbs(c, T, attentionBf16) ? v(B * NH * T * T) : 0 // training's
  const relative = c.modelType === 'mpnet' ? v((2 * T - 1) * NH) + (training ? v(B * (2 * T - 1) * NH) : 0) : 0 // relBias (, dRelBias)
  const outputs = 2 * v(B * H) + relative // pooled, z, relBias, dRelBias
  const stats = 2 * v(BT) // a LayerNorm's mean and rstd
  // The buffers of acquire, in its order.
  if (!training) return 3 * stats + 2 * v(BT * H) + v(3 * BT * H) + v(BT * I) + outputs
  const half = attentionKeptBf16(c, T, attentionBf16)
  const floats = (n: number, bf16: boolean) => v(bf16 ? Math.ceil(n / 2) : n)
  const perLayer = floats(3 * BT * H, half) + probs + floats(BT * H, half) + 2 * v(BT * H) + 2 * stats + floats(BT * I, interBf16)
  const grads = 3 * v(BT * H) + v(3 * BT * H) + floats(BT * H, half) + v(B * H) // gH, gRes, gTmp, gQkv, gCtx, gPooled
  const L = c.numHiddenLayers
  const copies = normCopies ? (2 * L - 1) * floats(BT * H, true) : 0 // h1Bf16, h2Bf16 (not the last layer's)
  const y = sublayerBf16 ? floats(BT * H, true) : 0 // yBf16
  const acts = geluCopies ? L * floats(BT * I, true) : 0 // actBf16
  // embSum, embOut, h1, h2, the embedding statistics, interAct (also gI2).
  return 4 * v(BT * H) + stats + v(BT * I) + L * perLayer + copies + acts + outputs + grads + y
}

/**
 * BERT's activation buffers (the views of carveActivations), in one growing allocation. interBf16: training keeps each
 * layer's MLP pre-activation in bfloat16 (Bf16Values; the model at bf16, whose products and GELU passes read it so);
 * attentionBf16: and the attention's q | k | v, ctx and ctx's gradient where attentionKeptBf16 says, and the
 * LayerNorms' bf16 copies where keepsNormCopies says, the GELU outputs where keepsGeluCopies says. At bf16 also the
 * sublayers' outputs where keepsSublayerBf16 says (the switches read once, here).
 */
export class ActivationArena extends ViewArena<Activations> {
  constructor(config: BertConfig, device: Device, interBf16 = false, attentionBf16 = false) {
    const normCopies = keepsNormCopies(attentionBf16),
      yBf16 = keepsSublayerBf16(interBf16),
      geluCopies = keepsGeluCopies(interBf16, attentionBf16)
    const copies = { normCopies, yBf16, geluCopies }
    super(
      device,
      (B, T, training) => floatsFor(config, B, T, training, interBf16, attentionBf16, normCopies, yBf16, geluCopies),
      (take, B, T, training) => carveActivations(config, take, B, T, training, interBf16, attentionBf16, copies),
      'ActivationArena',
    )
  }
}

/** The views of a [B, T] pass, in floatsFor's order. */
function carveActivations(
  c: BertConfig,
  take: (shape: number[]) => Tensor,
  B: number,
  T: number,
  training: boolean,
  interBf16: boolean,
  attentionBf16: boolean,
  kept: { normCopies: boolean; yBf16: boolean; geluCopies: boolean },
): Activations {
  const { normCopies, yBf16: sublayerBf16, geluCopies } = kept
  const H = c.hiddenSize,
    I = c.intermediateSize,
    NH = c.numAttentionHeads,
    BT = B * T
  const L = c.numHiddenLayers
  let embeddings: Pick<Activations, 'embSum' | 'embMean' | 'embRstd' | 'embOut'>
  let layers: LayerActivations[]
  let gI2: Tensor | null = null
  if (training) {
    embeddings = { embSum: take([BT, H]), embMean: take([BT]), embRstd: take([BT]), embOut: take([BT, H]) }
    const interAct = take([BT, I]) // gI2 too
    gI2 = interAct
    const [h1, h2] = [take([BT, H]), take([BT, H])] // every layer's (the header comment)
    const half = attentionKeptBf16(c, T, attentionBf16)
    const keep = keepsProbs(c, T, attentionBf16)
    layers = Array.from({ length: L }, (_, l) => ({
      qkv: half ? bf16Values(take, [B, T, 3 * H]) : take([B, T, 3 * H]),
      probs: keep ? take([B, NH, T, T]) : null,
      ctx: half ? bf16Values(take, [B, T, H]) : take([BT, H]),
      res1: take([BT, H]),
      mean1: take([BT]),
      rstd1: take([BT]),
      h1,
      inter: interBf16 ? bf16Values(take, [BT, I]) : take([BT, I]),
      interAct,
      res2: take([BT, H]),
      mean2: take([BT]),
      rstd2: take([BT]),
      h2,
      h1Bf16: normCopies ? bf16Values(take, [BT, H]) : null,
      h2Bf16: normCopies && l < L - 1 ? bf16Values(take, [BT, H]) : null,
      actBf16: geluCopies ? bf16Values(take, [BT, I]) : null,
    }))
  } else {
    // One set for every layer (the header comment).
    const [embMean, embRstd, h2] = [take([BT]), take([BT]), take([BT, H])]
    const qkv = take([B, T, 3 * H])
    const inter = take([BT, I])
    const h1 = qkv.view(0, [BT, H])
    const set = {
      qkv,
      probs: null,
      ctx: take([BT, H]),
      res1: h1,
      mean1: take([BT]),
      rstd1: take([BT]),
      h1,
      inter,
      interAct: inter,
      res2: h2,
      mean2: take([BT]),
      rstd2: take([BT]),
      h2,
      h1Bf16: null,
      h2Bf16: null,
      actBf16: null,
    }
    embeddings = { embSum: qkv.view(0, [BT, H]), embMean, embRstd, embOut: h2 }
    layers = Array.from({ length: L }, () => set)
  }
  const acts = {
    B,
    T,
    ...embeddings,
    layers,
    pooled: take([B, H]),
    z: take([B, H]),
    relBias: c.modelType === 'mpnet' ? take([2 * T - 1, NH]) : null,
    dRelBias: c.modelType === 'mpnet' && training ? take([B, 2 * T - 1, NH]) : null,
  } as Activations
  if (training) {
    Object.assign(acts, {
      gH: take([BT, H]),
      gRes: take([BT, H]),
      gTmp: take([BT, H]),
      gQkv: take([B, T, 3 * H]),
      gCtx: attentionKeptBf16(c, T, attentionBf16) ? bf16Values(take, [B, T, H]) : take([B, T, H]),
      gI2,
      gPooled: take([B, H]),
      yBf16: sublayerBf16 ? bf16Values(take, [BT, H]) : null,
    })
  } else {
    acts.yBf16 = null
  }
  return acts
}

/** Bf16Values of `shape` in the next ceil(numel / 2) floats. */
function bf16Values(take: (shape: number[]) => Tensor, shape: number[]): Bf16Values {
  const n = shape.reduce((a, b) => a * b, 1)
  return new Bf16Values(take([Math.ceil(n / 2)]), shape)
}
