// The encoder's activation buffers for one batch shape, carved out of one flat allocation that grows
// only when a larger batch arrives (no native allocation inside a training step once warm).
// Forward saves what backward needs (llm.c's ActivationTensors): LayerNorm inputs, mean and rstd,
// attention probabilities before dropout, GELU inputs (not their outputs: the backward recomputes GELU(inter)
// for output.dense's weight gradient, so in training every layer's interAct is one buffer, which output.dense
// reads right after the GELU writes it, and it is also gI2's memory: a forward never needs gI2 and a backward
// never reads interAct). Inference saves nothing for a backward: layer l reads only layer l - 1's output, so
// its layers take turns in two sets of buffers (layers[l] is set l % 2) and its memory does not grow with the
// depth (BERT-base: 2 layers' buffers instead of 12, ~6x less in all); its GELU runs in place (interAct is
// inter). Either way a layer holds one [BT, I] buffer of its own.
import type { BertConfig } from './config.js'
import { Tensor, type Device } from '../tensor.js'

export interface LayerActivations {
  qkv: Tensor // [B, T, 3H]: the fused q/k/v projection (column blocks q | k | v)
  probs: Tensor // [B, NH, T, T] softmax before dropout
  ctx: Tensor // [BT, H]
  res1: Tensor
  mean1: Tensor
  rstd1: Tensor // attention output + residual (LayerNorm input), [BT, H], [BT]
  h1: Tensor // [BT, H]
  inter: Tensor
  interAct: Tensor // [BT, I] before / after GELU (training: one buffer for all layers; inference: inter itself)
  res2: Tensor
  mean2: Tensor
  rstd2: Tensor
  h2: Tensor // [BT, H] the layer's output
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
  // Gradient scratch.
  gH: Tensor
  gRes: Tensor
  gTmp: Tensor
  gQkv: Tensor // [B, T, 3H]
  gCtx: Tensor // [BT, H]
  gI2: Tensor // [BT, I]: the gradient at the GELU's input (linearBackward carries it through the GELU)
  gPooled: Tensor // [B, H]
}

/** The sets of layer buffers a pass holds: one per layer in training, two taking turns in inference. */
export function layerSets(c: BertConfig, training: boolean): number {
  return training ? c.numHiddenLayers : Math.min(c.numHiddenLayers, 2)
}

/** Number of floats one batch of B×T needs (train() sizes a batch with it before allocating). */
export function floatsFor(c: BertConfig, B: number, T: number, training: boolean): number {
  const H = c.hiddenSize,
    I = c.intermediateSize,
    NH = c.numAttentionHeads,
    BT = B * T
  const perLayer = 8 * BT * H + 4 * BT + BT * I + B * NH * T * T
  const grads = training ? 7 * BT * H + BT * I + B * H : 0 // gI2 included: also every layer's interAct
  return 2 * BT * H + 2 * BT + layerSets(c, training) * perLayer + 2 * B * H + grads
}

export class ActivationArena {
  private buffer: Tensor | null = null
  private capacity = 0
  /** Incremented whenever the buffer is replaced: views (and step graphs) of an older one are stale. */
  generation = 0

  constructor(
    private readonly config: BertConfig,
    private readonly device: Device,
  ) {}

  /** Bytes the arena holds (its largest batch so far). */
  get bytes(): number {
    return this.capacity * 4
  }

  /** The last acquire's views: the next one of the same shape returns them (base has ~170 views per batch). */
  private last: { B: number; T: number; training: boolean; generation: number; acts: Activations } | null = null

  /** Views for a batch of shape [B, T]; reuses the buffer when it is large enough. */
  acquire(B: number, T: number, training: boolean): Activations {
    const c = this.config
    const need = floatsFor(c, B, T, training)
    if (need > this.capacity) {
      this.buffer?.dispose()
      this.buffer = Tensor.zeros([need], this.device)
      this.capacity = need
      this.generation++
    }
    const l = this.last
    if (l && l.B === B && l.T === T && l.training === training && l.generation === this.generation) return l.acts
    const buf = this.buffer!
    let offset = 0
    const take = (shape: number[]) => {
      const t = buf.view(offset, shape)
      offset += shape.reduce((a, b) => a * b, 1)
      return t
    }
    const H = c.hiddenSize,
      I = c.intermediateSize,
      NH = c.numAttentionHeads,
      BT = B * T
    const embeddings = { embSum: take([BT, H]), embMean: take([BT]), embRstd: take([BT]), embOut: take([BT, H]) }
    const gI2 = training ? take([BT, I]) : null // training's interAct too
    const sets: LayerActivations[] = Array.from({ length: layerSets(c, training) }, () => {
      const set = {
        qkv: take([B, T, 3 * H]),
        probs: take([B, NH, T, T]),
        ctx: take([BT, H]),
        res1: take([BT, H]),
        mean1: take([BT]),
        rstd1: take([BT]),
        h1: take([BT, H]),
        inter: take([BT, I]),
        res2: take([BT, H]),
        mean2: take([BT]),
        rstd2: take([BT]),
        h2: take([BT, H]),
      }
      return { ...set, interAct: gI2 ?? set.inter }
    })
    const acts = {
      B,
      T,
      ...embeddings,
      layers: Array.from({ length: c.numHiddenLayers }, (_, l) => sets[l % sets.length]),
      pooled: take([B, H]),
      z: take([B, H]),
    } as Activations
    if (training) {
      Object.assign(acts, {
        gH: take([BT, H]),
        gRes: take([BT, H]),
        gTmp: take([BT, H]),
        gQkv: take([B, T, 3 * H]),
        gCtx: take([B, T, H]),
        gI2,
        gPooled: take([B, H]),
      })
    }
    this.last = { B, T, training, generation: this.generation, acts }
    return acts
  }

  dispose(): void {
    this.buffer?.dispose()
    this.buffer = null
    this.capacity = 0
    this.last = null
  }
}
