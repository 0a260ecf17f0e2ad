// ModernBERT's passes (transformers' ModernBertModel) over BertModel's flat parameters: the op sequence of its
// forward and backward, its activation buffers, and the attention window of its local layers. BertModel owns the
// parameters, the batch checks, pooling, the MLP head and the step graphs, and hands a ModernBERT model's layers
// to this file.
//
// Per layer l (pre-LayerNorm, no biases; layer 0 has no attention norm):
//   n1 = LN(x)                         (l > 0; x itself at l = 0)
//   qkv = n1·Wqkvᵀ, q and k turned by the rotary embedding (theta: global or local, isGlobalLayer)
//   ctx = attention(qkv) over all keys (global layers) or those at most localAttention / 2 tokens away
//   h = x + drop(ctx·Woᵀ)
//   u = LN(h)·Wiᵀ = [a | g];  out = h + drop(GELU(a) ⊙ g)·Wo2ᵀ
// and the embeddings drop(LN(tok[ids])) before the first layer, LN_final(out) after the last. The LayerNorms have
// no bias: they run the LayerNorm ops with a shared row of zeros as β, and their β gradient goes to a scratch row
// that nothing reads. The window is an additive score bias (the attention ops' relBias, as MPNet's relative bias):
// 0 within the window, −1e30 outside, so exp gives 0 there exactly, and a padded query whose every key lies outside
// gets a finite (uniform) row rather than NaN; it is formed once per sequence length, on the model's device.
//
// Dropout sites, one Philox stream each per step as BertModel's: 0 the embeddings, then per layer 1 + 3l the
// attention probabilities, 2 + 3l the attention output, 3 + 3l the GeGLU's output (all zero in the released
// checkpoints: SimCSE sets them, e.g. with --dropout).
import { isGlobalLayer, type BertConfig } from './config.js'
import { keepsProbs } from './activations.js'
import { ViewArena, viewFloats } from './view-arena.js'
import { Tensor, type Device } from '../tensor.js'
import type { Precision } from '../native.js'
import * as ops from '../ops.js'
import type { Int8Layer } from './int8-weights.js'

/** One ModernBERT layer's weights (views of the flat buffer, or of the gradients). */
export interface ModernLayerParams {
  /** attn_norm (γ); null in layer 0 (transformers' nn.Identity). */
  attnNorm: Tensor | null
  wqkv: Tensor
  wo: Tensor
  mlpNorm: Tensor
  wi: Tensor
  mlpWo: Tensor
}

export interface ModernParams {
  tokEmbeddings: Tensor
  embNorm: Tensor
  layers: ModernLayerParams[]
  finalNorm: Tensor
}

/** The views of `views` (parameters or gradients, by name) grouped per layer. */
export function modernParams(views: ReadonlyMap<string, Tensor>, numLayers: number): ModernParams {
  const get = (name: string) => {
    const t = views.get(name)
    if (!t) throw new Error(`BertModel: no parameter named ${name}`)
    return t
  }
  return {
    tokEmbeddings: get('embeddings.tok_embeddings.weight'),
    embNorm: get('embeddings.norm.weight'),
    layers: Array.from({ length: numLayers }, (_, l) => ({
      attnNorm: l > 0 ? get(`layers.${l}.attn_norm.weight`) : null,
      wqkv: get(`layers.${l}.attn.Wqkv.weight`),
      wo: get(`layers.${l}.attn.Wo.weight`),
      mlpNorm: get(`layers.${l}.mlp_norm.weight`),
      wi: get(`layers.${l}.mlp.Wi.weight`),
      mlpWo: get(`layers.${l}.mlp.Wo.weight`),
    })),
    finalNorm: get('final_norm.weight'),
  }
}

export interface ModernLayerActivations {
  x: Tensor // [BT, H] the layer's input (the embeddings' output or the layer before's out)
  n1: Tensor // [BT, H] LN(x) (layer 0: x)
  mean1: Tensor
  rstd1: Tensor
  qkv: Tensor // [B, T, 3H] after the rotary embedding
  probs: Tensor | null // [B, NH, T, T] (training, where keepsProbs; else null: the backward forms them)
  ctx: Tensor // [BT, H]
  attnOut: Tensor // [BT, H] drop(ctx·Woᵀ): h itself in training, a scratch buffer in inference
  h: Tensor // [BT, H] x + attnOut
  n2: Tensor
  mean2: Tensor
  rstd2: Tensor
  u: Tensor // [BT, 2I] [a | g]
  g: Tensor // [BT, I] drop(GELU(a) ⊙ g)
  mlpOut: Tensor // [BT, H] g·Wo2ᵀ: out itself in training, scratch in inference
  out: Tensor // [BT, H] h + mlpOut
}

export interface ModernActivations {
  B: number
  T: number
  embSum: Tensor // [BT, H] tok[ids]
  embMean: Tensor
  embRstd: Tensor
  embOut: Tensor // [BT, H] drop(LN(embSum)): layer 0's x
  layers: ModernLayerActivations[]
  final: Tensor // [BT, H] LN_final(the last out): the last hidden state
  finalMean: Tensor
  finalRstd: Tensor
  pooled: Tensor // [B, H]
  z: Tensor // [B, H]
  // Gradient scratch (training).
  gH: Tensor // [BT, H] the last hidden state's (pooling's backward writes it)
  gX: Tensor // [BT, H] the running gradient of the residual stream
  gTmp: Tensor // [BT, H]
  gN: Tensor // [BT, H] a LayerNorm output's
  gCtx: Tensor // [BT, H]
  gQkv: Tensor // [B, T, 3H]
  gG: Tensor // [BT, I]
  gU: Tensor // [BT, 2I]
  gPooled: Tensor // [B, H]
}

/**
 * Floats of the activation buffers of a [B, T] batch (ModernArena.acquire's). attentionBf16: bf16 training on CUDA
 * (BertModel.attentionBf16), where the attention's backward forms the probabilities itself at short lengths, so training
 * keeps none there (keepsProbs; ModernBERT's q | k | v and ctx stay fp32 arrays, which the attention rounds as it reads).
 */
export function modernFloatsFor(c: BertConfig, B: number, T: number, training: boolean, attentionBf16 = false): number {
  const H = c.hiddenSize,
    I = c.intermediateSize,
    NH = c.numAttentionHeads,
    BT = B * T
  const v = viewFloats // each view's floats in the arena (aligned)
  const stats = 2 * v(BT) // a LayerNorm's mean and rstd
  const rows = v(BT * H)
  const common = 2 * rows + 2 * stats + 2 * v(B * H) // embSum, final, their statistics, pooled, z
  // Inference (acquire): X, n, their statistics, qkv, ctx, a scratch row set, u, g.
  if (!training) return common + 4 * rows + stats + v(3 * BT * H) + v(2 * BT * I) + v(BT * I)
  const probs = keepsProbs(c, T, attentionBf16) ? v(B * NH * T * T) : 0
  const perLayer = 2 * stats + v(3 * BT * H) + 5 * rows + v(2 * BT * I) + v(BT * I) + probs
  const grads = 5 * rows + v(3 * BT * H) + v(BT * I) + v(2 * BT * I) + v(B * H) // gH .. gCtx, gQkv, gG, gU, gPooled
  return common + rows + c.numHiddenLayers * perLayer + grads // embOut
}

/** ModernBERT's activation buffers (the views of carveModern), in one growing allocation as BERT's. */
export class ModernArena extends ViewArena<ModernActivations> {
  constructor(config: BertConfig, device: Device, attentionBf16 = false) {
    super(
      device,
      (B, T, training) => modernFloatsFor(config, B, T, training, attentionBf16),
      (take, B, T, training) => carveModern(config, take, B, T, training, attentionBf16),
      'ModernArena',
    )
  }
}

/** The views of a [B, T] pass, in modernFloatsFor's order. */
function carveModern(
  c: BertConfig,
  take: (shape: number[]) => Tensor,
  B: number,
  T: number,
  training: boolean,
  attentionBf16: boolean,
): ModernActivations {
  const H = c.hiddenSize,
    I = c.intermediateSize,
    NH = c.numAttentionHeads,
    BT = B * T,
    L = c.numHiddenLayers
  const embSum = take([BT, H]),
    embMean = take([BT]),
    embRstd = take([BT])
  const final = take([BT, H]),
    finalMean = take([BT]),
    finalRstd = take([BT])
  const pooled = take([B, H]),
    z = take([B, H])
  let embOut: Tensor
  let layers: ModernLayerActivations[]
  if (!training) {
    // One residual stream X, updated in place (h = X + attnOut, out = h + mlpOut), and one set of buffers for
    // every layer: inference keeps nothing for a backward.
    const X = take([BT, H])
    const n = take([BT, H])
    const [mean, rstd] = [take([BT]), take([BT])]
    const qkv = take([B, T, 3 * H])
    const ctx = take([BT, H])
    const scratch = take([BT, H])
    const u = take([BT, 2 * I])
    const g = take([BT, I])
    embOut = X
    const set: ModernLayerActivations = {
      x: X,
      n1: n,
      mean1: mean,
      rstd1: rstd,
      qkv,
      probs: null,
      ctx,
      attnOut: scratch,
      h: X,
      n2: n,
      mean2: mean,
      rstd2: rstd,
      u,
      g,
      mlpOut: scratch,
      out: X,
    }
    layers = Array.from({ length: L }, () => set)
  } else {
    embOut = take([BT, H])
    let x = embOut
    layers = []
    const keep = keepsProbs(c, T, attentionBf16)
    for (let layer = 0; layer < L; layer++) {
      const [mean1, rstd1, mean2, rstd2] = [take([BT]), take([BT]), take([BT]), take([BT])]
      const qkv = take([B, T, 3 * H])
      const n1 = take([BT, H])
      const ctx = take([BT, H])
      const h = take([BT, H])
      const n2 = take([BT, H])
      const u = take([BT, 2 * I])
      const g = take([BT, I])
      const out = take([BT, H])
      const probs = keep ? take([B, NH, T, T]) : null
      layers.push({ x, n1: layer > 0 ? n1 : x, mean1, rstd1, qkv, probs, ctx, attnOut: h, h, n2, mean2, rstd2, u, g, mlpOut: out, out })
      x = out
    }
  }
  const acts = { B, T, embSum, embMean, embRstd, embOut, layers, final, finalMean, finalRstd, pooled, z } as ModernActivations
  if (training) {
    Object.assign(acts, {
      gH: take([BT, H]),
      gX: take([BT, H]),
      gTmp: take([BT, H]),
      gN: take([BT, H]),
      gCtx: take([BT, H]),
      gQkv: take([B, T, 3 * H]),
      gG: take([BT, I]),
      gU: take([BT, 2 * I]),
      gPooled: take([B, H]),
    })
  }
  return acts
}

/** The dropout of site `site` (null: none), as BertModel forms it. */
export type SiteDropout = (site: number, p: number) => ops.DropoutSite | null

/** The checked batch the passes read (BertModel's). */
export interface ModernBatch {
  inputIds: Int32Array
  attentionMask: Int32Array
  tokenTypeIds: Int32Array
  positionIds: Int32Array
}

/** Score bias outside the window: exp of it is 0 beside any real score, and it stays finite (no NaN rows). */
const OUTSIDE_WINDOW = -1e30

export class ModernBertPasses {
  /** β of every LayerNorm (zeros) and the scratch its gradient goes to. */
  private readonly zeroBias: Tensor
  private readonly biasGradSink: Tensor
  /** The [1, H] zeros the embedding op adds as position and type rows. */
  private readonly zeroRow: Tensor
  /** The local layers' window bias tables, by the power of two of lengths each serves (window()). */
  private readonly windows = new Map<number, Tensor>()

  constructor(
    private readonly config: BertConfig,
    private readonly device: Device,
    private readonly precision: Precision,
  ) {
    this.zeroBias = Tensor.zeros([config.hiddenSize], device)
    this.biasGradSink = Tensor.zeros([config.hiddenSize], device)
    this.zeroRow = Tensor.zeros([1, config.hiddenSize], device)
  }

  /**
   * The [2T - 1, NH] window bias of length T, or null when every key is within reach of every query: a view of the
   * table of the smallest power of two P >= T made so far (rows P - T .. P + T - 2 of its 2P - 1, centred on the
   * same diagonal). Tables are made once per power of two and kept (a CUDA graph captured at one length reads the
   * table it saw), so lengths up to 8192 hold less than 2 tables of the longest.
   */
  private window(T: number): Tensor | null {
    const c = this.config
    const reach = c.modern!.localAttention / 2
    if (T - 1 <= reach) return null
    let P = 64
    while (P < T) P *= 2
    let table = this.windows.get(P)
    if (!table) {
      const NH = c.numAttentionHeads
      const bias = new Float32Array((2 * P - 1) * NH)
      for (let d = 0; d < 2 * P - 1; d++) if (Math.abs(d - (P - 1)) > reach) bias.fill(OUTSIDE_WINDOW, d * NH, (d + 1) * NH)
      this.windows.set(P, (table = Tensor.from(bias, [2 * P - 1, NH], this.device)))
    }
    return table.view((P - T) * c.numAttentionHeads, [2 * T - 1, c.numAttentionHeads])
  }

  private theta(l: number): number {
    const m = this.config.modern!
    return isGlobalLayer(this.config, l) ? m.globalRopeTheta : m.localRopeTheta
  }

  /**
   * The forward over a checked batch into `acts`; drop(site, p) gives each site's dropout (null in eval). int8: the
   * layers' packed weights (BertModel.quantizeInt8), whose products then run in int8.
   */
  encode(P: ModernParams, input: ModernBatch, acts: ModernActivations, drop: SiteDropout, int8: readonly Int8Layer[] | null = null): void {
    const c = this.config,
      m = c.modern!,
      eps = c.layerNormEps,
      NH = c.numAttentionHeads
    const { B } = acts
    const zero = this.zeroBias
    // tok[ids] through the embedding op, its position and type tables a row of zeros read at the (all zero) token
    // types: x + 0 + 0 is x exactly. The rotary embedding places the tokens instead.
    const zeros = input.tokenTypeIds
    ops.embeddingForward(acts.embSum, input.inputIds, zeros, zeros, P.tokEmbeddings, this.zeroRow, this.zeroRow)
    ops.layerNormForward(acts.embOut, acts.embMean, acts.embRstd, acts.embSum, P.embNorm, zero, eps)
    dropoutInPlace(acts.embOut, drop(0, m.embeddingDropoutProb), B)
    for (let l = 0; l < c.numHiddenLayers; l++) {
      const a = acts.layers[l],
        w = P.layers[l],
        q = int8?.[l]
      const linear = (out: Tensor, inp: Tensor, weight: Tensor, packed: Tensor | undefined) =>
        packed ? ops.linearInt8Forward(out, inp, packed, null) : ops.linearForward(out, inp, weight, null, this.precision)
      if (w.attnNorm) ops.layerNormForward(a.n1, a.mean1, a.rstd1, a.x, w.attnNorm, zero, eps)
      const qkv = a.qkv.view(0, [B * acts.T, 3 * c.hiddenSize])
      linear(qkv, w.attnNorm ? a.n1 : a.x, w.wqkv, q?.qkv)
      ops.rope(a.qkv, NH, this.theta(l))
      const window = isGlobalLayer(c, l) ? null : this.window(acts.T)
      ops.attentionForward(
        a.ctx.view(0, [B, acts.T, c.hiddenSize]),
        a.probs,
        a.qkv,
        null,
        null,
        input.attentionMask,
        NH,
        drop(1 + 3 * l, c.attentionProbsDropoutProb),
        false,
        window,
        this.precision,
      )
      linear(a.attnOut, a.ctx, w.wo, q?.attentionOutput)
      dropoutInPlace(a.attnOut, drop(2 + 3 * l, c.attentionProbsDropoutProb), B)
      ops.add(a.h, a.x, a.attnOut)
      ops.layerNormForward(a.n2, a.mean2, a.rstd2, a.h, w.mlpNorm, zero, eps)
      linear(a.u, a.n2, w.wi, q?.intermediate)
      ops.gegluForward(a.g, a.u)
      dropoutInPlace(a.g, drop(3 + 3 * l, c.hiddenDropoutProb), B)
      linear(a.mlpOut, a.g, w.mlpWo, q?.output)
      ops.add(a.out, a.h, a.mlpOut)
    }
    const last = c.numHiddenLayers ? acts.layers[c.numHiddenLayers - 1].out : acts.embOut
    ops.layerNormForward(acts.final, acts.finalMean, acts.finalRstd, last, P.finalNorm, zero, eps)
  }

  /**
   * Back-propagates acts.gH (the gradient at the last hidden state, which the pooling's backward wrote) into G,
   * accumulating; the forward's dropout sites come from drop.
   */
  backward(P: ModernParams, G: ModernParams, input: ModernBatch, acts: ModernActivations, drop: SiteDropout): void {
    const c = this.config,
      m = c.modern!,
      NH = c.numAttentionHeads,
      L = c.numHiddenLayers
    const { B } = acts
    const sink = this.biasGradSink
    const last = L ? acts.layers[L - 1].out : acts.embOut
    ops.layerNormBackward(acts.gX, G.finalNorm, sink, acts.gH, last, P.finalNorm, acts.finalMean, acts.finalRstd)
    for (let l = L - 1; l >= 0; l--) {
      const a = acts.layers[l],
        w = P.layers[l],
        gw = G.layers[l]
      // The MLP: out = h + drop(GeGLU(u))·Wo2ᵀ, u = LN(h)·Wiᵀ. gX holds dL/d out.
      ops.linearBackward(acts.gG, gw.mlpWo, null, acts.gX, a.g, w.mlpWo, false, this.precision)
      dropoutBack(acts.gG, drop(3 + 3 * l, c.hiddenDropoutProb), B)
      ops.gegluBackward(acts.gU, a.u, acts.gG)
      ops.linearBackward(acts.gN, gw.wi, null, acts.gU, a.n2, w.wi, false, this.precision)
      ops.layerNormBackward(acts.gTmp, gw.mlpNorm, sink, acts.gN, a.h, w.mlpNorm, a.mean2, a.rstd2)
      ops.addInplace(acts.gX, acts.gTmp) // dL/dh
      // The attention: h = x + drop(ctx·Woᵀ).
      const outDrop = drop(2 + 3 * l, c.attentionProbsDropoutProb)
      let dAttnOut = acts.gX
      if (outDrop) {
        ops.dropout(rowsOf(acts.gX, B), rowsOf(acts.gTmp, B), outDrop)
        dAttnOut = acts.gTmp
      }
      ops.linearBackward(acts.gCtx, gw.wo, null, dAttnOut, a.ctx, w.wo, false, this.precision)
      const window = isGlobalLayer(c, l) ? null : this.window(acts.T)
      ops.attentionBackward(
        acts.gQkv,
        null,
        null,
        acts.gCtx.view(0, [B, acts.T, c.hiddenSize]),
        a.qkv,
        null,
        null,
        a.probs,
        input.attentionMask,
        NH,
        drop(1 + 3 * l, c.attentionProbsDropoutProb),
        false,
        window,
        null,
        this.precision,
      )
      ops.rope(acts.gQkv, NH, this.theta(l), true)
      const gQkv = acts.gQkv.view(0, [B * acts.T, 3 * c.hiddenSize])
      if (w.attnNorm) {
        ops.linearBackward(acts.gN, gw.wqkv, null, gQkv, a.n1, w.wqkv, false, this.precision)
        ops.layerNormBackward(acts.gTmp, gw.attnNorm!, sink, acts.gN, a.x, w.attnNorm, a.mean1, a.rstd1)
        ops.addInplace(acts.gX, acts.gTmp) // dL/dx
      } else {
        ops.linearBackward(acts.gX, gw.wqkv, null, gQkv, a.x, w.wqkv, true, this.precision)
      }
    }
    // The embeddings: embOut = drop(LN(tok[ids])).
    const embDrop = drop(0, m.embeddingDropoutProb)
    if (embDrop) ops.dropout(rowsOf(acts.gX, B), rowsOf(acts.gX, B), embDrop)
    ops.layerNormBackward(acts.gTmp, G.embNorm, sink, acts.gX, acts.embSum, P.embNorm, acts.embMean, acts.embRstd)
    ops.embeddingBackward(G.tokEmbeddings, null, null, acts.gTmp, input.inputIds, input.tokenTypeIds, input.tokenTypeIds)
  }

  /** Frees what it holds besides the arena (the zero rows, the β gradient sink, the window biases). */
  dispose(): void {
    this.zeroBias.dispose()
    this.biasGradSink.dispose()
    this.zeroRow.dispose()
    for (const t of this.windows.values()) t.dispose()
    this.windows.clear()
  }
}

/** t viewed as [B, rest]: the dropout ops' per-sentence rows. */
function rowsOf(t: Tensor, B: number): Tensor {
  return t.view(0, [B, t.numel / B])
}

function dropoutInPlace(t: Tensor, site: ops.DropoutSite | null, B: number): void {
  if (!site) return
  const rows = rowsOf(t, B)
  ops.dropout(rows, rows, site)
}

/** The backward of a dropout in place: the same mask and scale (dropout is its own transpose). */
function dropoutBack(t: Tensor, site: ops.DropoutSite | null, B: number): void {
  dropoutInPlace(t, site, B)
}
