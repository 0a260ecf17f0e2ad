// Internal: the BERT encoder ops (native/cpu/bert_ops.h) as typed functions on Tensors.
//
// Conventions (llm.c): outputs first, then inputs; every output is a caller-allocated Tensor that
// is written in place. Parameter gradients (dweight, dbias, dword, ...) always accumulate (+=);
// activation gradients (dinp, dq, ...) are overwritten unless an `accumulate` flag says otherwise.
// Sizes come from the tensors' shapes; the addon checks every size and names a bad argument.
// On 'cuda' tensors an op runs its kernel; one without a kernel yet (backendOps('cuda')) throws.
import { addon, type Int8Kernel, type Precision, type RowPlacement } from './native.js'
import { Tensor, nativeOf } from './tensor.js'
import { Bf16Values } from './bf16-values.js'

/** A dropout site: Philox(seed, offset) masks, per element index of the tensor viewed as [rows, cols]. */
export interface DropoutSite {
  /** Drop probability in [0, 1]. */
  p: number
  /** Philox key. */
  seed: number | bigint
  /** Philox stream offset (distinct per dropout site and step). */
  offset: number | bigint
  /** One byte per row (sentence): 0 leaves that row undropped. Default: every row gets dropout. */
  keepRows?: Uint8Array | null
  /**
   * Where the rows (sentences) sit in the whole batch (default 0: they are the whole batch): a micro-batch's
   * first row, or a data-parallel rank's runs of rows (RowPlacement); they then draw exactly that batch's
   * masks (keepRows still lists this call's own rows).
   */
  firstRow?: RowPlacement
}

/** A dropout site as the addon's trailing arguments (p, seed, offset, keepRows, firstRow); null: no dropout. */
function siteArgs(site: DropoutSite | null): [number, number | bigint, number | bigint, Uint8Array | null, RowPlacement] {
  return [site?.p ?? 0, site?.seed ?? 0, site?.offset ?? 0, site?.keepRows ?? null, site?.firstRow ?? 0]
}

/** out = dropout(x) with x viewed as [x.shape[0], rest] (out may be x); applied to a gradient it is the backward. */
export function dropout(x: Tensor, out: Tensor, site: DropoutSite): void {
  addon.dropout(nativeOf(x, 'x'), nativeOf(out, 'out'), site.p, site.seed, site.offset, site.keepRows ?? null, site.firstRow ?? 0)
}

/** out[r] = word[ids[r]] + pos[posIds[r]] + type[typeIds[r]]; out is [..., H] with ids.length rows. */
export function embeddingForward(
  out: Tensor,
  ids: Int32Array,
  posIds: Int32Array,
  typeIds: Int32Array,
  word: Tensor,
  pos: Tensor,
  type: Tensor,
): void {
  addon.embeddingForward(nativeOf(out, 'out'), ids, posIds, typeIds, nativeOf(word, 'word'), nativeOf(pos, 'pos'), nativeOf(type, 'type'))
}

/** Scatter-add: dword[ids[r]] += dout[r], dpos[posIds[r]] += dout[r], dtype[typeIds[r]] += dout[r]; a null table is skipped. */
export function embeddingBackward(
  dword: Tensor | null,
  dpos: Tensor | null,
  dtype: Tensor | null,
  dout: Tensor,
  ids: Int32Array,
  posIds: Int32Array,
  typeIds: Int32Array,
): void {
  addon.embeddingBackward(
    dword === null ? null : nativeOf(dword, 'dword'),
    dpos === null ? null : nativeOf(dpos, 'dpos'),
    dtype === null ? null : nativeOf(dtype, 'dtype'),
    nativeOf(dout, 'dout'),
    ids,
    posIds,
    typeIds,
  )
}

/**
 * out = (inp − mean)·rstd·weight + bias over the last dimension; saves mean and rstd (one per row). bf16Next: out is the input of a bf16 linearForward right after
 * (on CUDA this op then also writes out's bf16 copy for it: kernels/bf16_handoff.cuh; the result is the same).
 */
export function layerNormForward(
  out: Tensor,
  mean: Tensor,
  rstd: Tensor,
  inp: Tensor,
  weight: Tensor,
  bias: Tensor,
  eps: number,
  bf16Next = false,
): void {
  addon.layerNormForward(
    nativeOf(out, 'out'),
    nativeOf(mean, 'mean'),
    nativeOf(rstd, 'rstd'),
    nativeOf(inp, 'inp'),
    nativeOf(weight, 'weight'),
    nativeOf(bias, 'bias'),
    eps,
    bf16Next,
  )
}

/**
 * layerNormForward's out recomputed from its inp and the mean and rstd it saved, with the same bits: a backward
 * that reads a LayerNorm's output (the next linear layer's weight gradient) need not keep it. out may be inp.
 */
export function layerNormApply(out: Tensor, inp: Tensor, mean: Tensor, rstd: Tensor, weight: Tensor, bias: Tensor): void {
  addon.layerNormApply(
    nativeOf(out, 'out'),
    nativeOf(inp, 'inp'),
    nativeOf(mean, 'mean'),
    nativeOf(rstd, 'rstd'),
    nativeOf(weight, 'weight'),
    nativeOf(bias, 'bias'),
  )
}

/** dinp = rstd·(g − mean(g) − n·mean(g·n)) with g = dout·weight (overwritten); dweight += Σ dout·n, dbias += Σ dout. */
export function layerNormBackward(
  dinp: Tensor,
  dweight: Tensor,
  dbias: Tensor,
  dout: Tensor,
  inp: Tensor,
  weight: Tensor,
  mean: Tensor,
  rstd: Tensor,
): void {
  addon.layerNormBackward(
    nativeOf(dinp, 'dinp'),
    nativeOf(dweight, 'dweight'),
    nativeOf(dbias, 'dbias'),
    nativeOf(dout, 'dout'),
    nativeOf(inp, 'inp'),
    nativeOf(weight, 'weight'),
    nativeOf(mean, 'mean'),
    nativeOf(rstd, 'rstd'),
  )
}

/**
 * BERT's sublayer output, fused: res = x + dropout(y), out = LayerNorm(res) (saves res, mean, rstd). The rows
 * are the tokens of `sentences` sentences (R / sentences rows each); the dropout (null: none) is that of
 * `dropout(y viewed as [sentences, rest])`, keepRows and firstRow counting sentences. out, res and y may be one
 * tensor (inference, which keeps no LayerNorm input: res = out = y) but not partly overlap. x may be given as the
 * LayerNorm whose output it is (a LayerNormInput: its input and saved statistics), recomputed row by row with
 * layerNormApply's bits, so a training model need not keep the LayerNorms' outputs. bf16Next: as layerNormForward's;
 * 'only': and that product is out's only reader, so a CUDA op may leave out's fp32 values unwritten (as
 * linearForward's 'only'). y may be Bf16Values (apart from out and res): a sublayer output its product stored in
 * bfloat16 (linearForward with a Bf16Values out), as autocast's linear layers return it. outBf16 (out's shape): also receives bf16(out), a copy the model keeps for the weight
 * gradient of the linear layer that reads out (linearBackward with it as a Bf16Values inp: no LayerNorm recomputed,
 * no rounding pass); on CUDA it is also the copy that bf16Next hands to the next product.
 */
export function residualLayerNormForward(
  out: Tensor,
  res: Tensor,
  mean: Tensor,
  rstd: Tensor,
  y: Tensor | Bf16Values,
  x: Tensor | LayerNormInput,
  weight: Tensor,
  bias: Tensor,
  eps: number,
  sentences: number,
  site: DropoutSite | null,
  bf16Next: boolean | 'only' = false,
  outBf16: Bf16Values | null = null,
): void {
  const ln = x instanceof Tensor ? null : x
  if (outBf16 !== null && outBf16.numel !== out.numel)
    throw new RangeError(`residualLayerNormForward: outBf16 holds ${outBf16.numel} values, out ${out.numel}`)
  if (y instanceof Bf16Values && y.numel !== out.numel)
    throw new RangeError(`residualLayerNormForward: y holds ${y.numel} values, out ${out.numel}`)
  addon.residualLayerNormForward(
    nativeOf(out, 'out'),
    nativeOf(res, 'res'),
    nativeOf(mean, 'mean'),
    nativeOf(rstd, 'rstd'),
    nativeOf(storageOf(y), 'y'),
    ln === null ? nativeOf(x as Tensor, 'x') : null,
    nativeOf(weight, 'weight'),
    nativeOf(bias, 'bias'),
    eps,
    sentences,
    ...siteArgs(site),
    bf16Next,
    ln === null ? null : nativeOf(ln.x, 'x.x'),
    ln === null ? null : nativeOf(ln.mean, 'x.mean'),
    ln === null ? null : nativeOf(ln.rstd, 'x.rstd'),
    ln === null ? null : nativeOf(ln.weight, 'x.weight'),
    ln === null ? null : nativeOf(ln.bias, 'x.bias'),
    outBf16 === null ? null : nativeOf(outBf16.storage, 'outBf16'),
    y instanceof Bf16Values,
  )
}

/**
 * The backward of residualLayerNormForward: dres = the LayerNorm backward of dout at res (the gradient of x;
 * dweight, dbias accumulate), dy = dropout(dres) with the forward's mask (the gradient of y). dy may be null
 * without dropout (it would equal dres). bf16Next: dy (else dres) is the output gradient of a bf16 linearBackward
 * right after (on CUDA this op then also writes its bf16 copy: kernels/bf16_handoff.cuh); 'only' (with dy): and
 * that op's products are dy's only readers, so a CUDA op may leave dy's fp32 values unwritten (linearBackward's
 * 'only': that layer's bias gradient must then come from dyColumnSums).
 * dyColumnSums [C]: += Σ_rows dy (dres without dy), the bias gradient of the linear layer whose output y was, summed
 * where dy is made (on CUDA in one pass with the LayerNorm's own parameter sums).
 */
export function layerNormDropoutBackward(
  dres: Tensor,
  dy: Tensor | null,
  dweight: Tensor,
  dbias: Tensor,
  dout: Tensor,
  res: Tensor,
  weight: Tensor,
  mean: Tensor,
  rstd: Tensor,
  sentences: number,
  site: DropoutSite | null,
  bf16Next: boolean | 'only' = false,
  dyColumnSums: Tensor | null = null,
): void {
  addon.layerNormDropoutBackward(
    nativeOf(dres, 'dres'),
    dy === null ? null : nativeOf(dy, 'dy'),
    nativeOf(dweight, 'dweight'),
    nativeOf(dbias, 'dbias'),
    nativeOf(dout, 'dout'),
    nativeOf(res, 'res'),
    nativeOf(weight, 'weight'),
    nativeOf(mean, 'mean'),
    nativeOf(rstd, 'rstd'),
    sentences,
    ...siteArgs(site),
    bf16Next,
    dyColumnSums === null ? null : nativeOf(dyColumnSums, 'dyColumnSums'),
  )
}

/**
 * out[R, OC] = inp[R, C]·weightᵀ + bias, weight in torch layout [OC, C]; bias may be null. The product at
 * `precision` ('bf16': operands rounded to bfloat16, fp32 sums; see Precision). With `geluOut`, also
 * geluOut = GELU(out) (geluForward's), out keeping the pre-activation: the MLP's first layer, the GELU applied
 * while each tile of out is in cache instead of in a second pass. geluOut may be out itself: the GELU in place
 * (no pre-activation kept, as inference needs none). bf16Next (with geluOut): geluOut is the input of a bf16
 * linearForward right after (as layerNormForward's); 'only': and nothing else reads geluOut, whose fp32 values a
 * CUDA op may then leave unwritten (it writes only the bf16 copy that product reads; a product that would read
 * the fp32 values instead, because that copy was dropped, throws).
 * `out` as Bf16Values (at bf16): the product is kept in bfloat16 (rounded to nearest even), half the memory; with
 * geluOut (apart from it), geluOut is the GELU of those values (as autocast keeps a pre-activation; linearBackward
 * reads it as its geluInput); without, an output only bf16 products read (attention's packed q | k | v), or a
 * sublayer output that residualLayerNormForward reads as its y (autocast's bf16 linear output).
 * `geluOut` as Bf16Values too (with a Bf16Values out, no bf16Next): it receives only bf16(GELU(out)), which the next
 * linearForward reads as its Bf16Values inp and linearBackward as its Bf16Values inp beside the geluInput (the forward's
 * GELU kept for the weight gradient instead of recomputed and rounded there).
 * `inp` as Bf16Values (at bf16, no geluOut): values the product reads as they are (ctx kept in bf16).
 */
export function linearForward(
  out: Tensor | Bf16Values,
  inp: Tensor | Bf16Values,
  weight: Tensor,
  bias: Tensor | null,
  precision: Precision = 'fp32',
  geluOut: Tensor | Bf16Values | null = null,
  bf16Next: boolean | 'only' = false,
): void {
  addon.linearForward(
    nativeOf(storageOf(out), 'out'),
    nativeOf(storageOf(inp), 'inp'),
    nativeOf(weight, 'weight'),
    bias === null ? null : nativeOf(bias, 'bias'),
    precision,
    geluOut === null ? null : nativeOf(storageOf(geluOut), 'geluOut'),
    bf16Next,
    out instanceof Bf16Values,
    inp instanceof Bf16Values,
    out instanceof Bf16Values && inp instanceof Bf16Values ? out.numel / weight.shape[0] : undefined,
    geluOut instanceof Bf16Values,
  )
}

/**
 * dinp (= or, with accumulateInput, +=) dout·weight; dweight += doutᵀ·inp; dbias += Σ_rows dout (dinp, dbias may
 * be null); products at `precision`. With `geluInput` (inp having been GELU(geluInput); not with
 * accumulateInput): dinp = (dout·weight) ⊙ GELU'(geluInput), the gradient carried through the GELU as well
 * (geluBackward's), fused into the product; inp may then be null, and the weight gradient reads GELU(geluInput)
 * recomputed with geluForward's bits (a model need not keep the GELU's output for its backward). bf16Next (with
 * geluInput): dinp is the output gradient of a bf16 linearBackward right after (as layerNormDropoutBackward's);
 * 'only': and that op's products are dinp's only readers, so a CUDA op may leave its fp32 values unwritten, as
 * linearForward's 'only' (its bias gradient must then come from dinpColumnSums).
 * With `layerNormInput` (inp null, no geluInput): the layer's input is that LayerNorm's output, which the weight
 * gradient reads recomputed from its input and saved statistics with layerNormApply's bits (no buffer for it; at
 * bf16 on CUDA rounded as it is made, without an fp32 pass).
 * With `dinpColumnSums` [C] (needs dinp): dinpColumnSums += Σ_rows dinp as this op leaves it, the bias gradient of
 * the layer that produced inp, summed where dinp is made (on CUDA in the GELU's pass) instead of by a pass over it.
 * At bf16 the product that GELU' multiplies is rounded to bfloat16 first. geluInput may be Bf16Values (at bf16, inp
 * null, or inp as Bf16Values: GELU(geluInput) as linearForward's Bf16Values geluOut kept it): the pre-activation
 * linearForward kept in bfloat16. inp may be Bf16Values (at bf16): values the weight
 * gradient reads as they are. dinp may be Bf16Values (at bf16; no accumulateInput, geluInput or dinpColumnSums): it
 * receives the product rounded to bfloat16, for readers that round it anyway (attention's dctx).
 */
export function linearBackward(
  dinp: Tensor | Bf16Values | null,
  dweight: Tensor,
  dbias: Tensor | null,
  dout: Tensor,
  inp: Tensor | Bf16Values | null,
  weight: Tensor,
  accumulateInput = false,
  precision: Precision = 'fp32',
  geluInput: Tensor | Bf16Values | null = null,
  bf16Next: boolean | 'only' = false,
  layerNormInput: LayerNormInput | null = null,
  dinpColumnSums: Tensor | null = null,
): void {
  const ln = layerNormInput
  addon.linearBackward(
    dinp === null ? null : nativeOf(storageOf(dinp), 'dinp'),
    nativeOf(dweight, 'dweight'),
    dbias === null ? null : nativeOf(dbias, 'dbias'),
    nativeOf(dout, 'dout'),
    inp === null ? null : nativeOf(storageOf(inp), 'inp'),
    nativeOf(weight, 'weight'),
    accumulateInput,
    precision,
    geluInput === null ? null : nativeOf(storageOf(geluInput), 'geluInput'),
    bf16Next,
    ln === null ? null : nativeOf(ln.x, 'layerNormInput.x'),
    ln === null ? null : nativeOf(ln.mean, 'layerNormInput.mean'),
    ln === null ? null : nativeOf(ln.rstd, 'layerNormInput.rstd'),
    ln === null ? null : nativeOf(ln.weight, 'layerNormInput.weight'),
    ln === null ? null : nativeOf(ln.bias, 'layerNormInput.bias'),
    dinpColumnSums === null ? null : nativeOf(dinpColumnSums, 'dinpColumnSums'),
    geluInput instanceof Bf16Values,
    inp instanceof Bf16Values,
    dinp instanceof Bf16Values,
  )
}

/** A LayerNorm's input and saved statistics, from which its output is recomputed (layerNormApply's). */
export interface LayerNormInput {
  x: Tensor
  mean: Tensor
  rstd: Tensor
  weight: Tensor
  bias: Tensor
}

/** out = x·Φ(x) = x·½(1 + erf(x/√2)) (exact GELU). */
export function geluForward(out: Tensor, inp: Tensor): void {
  addon.geluForward(nativeOf(out, 'out'), nativeOf(inp, 'inp'))
}

/** dinp = dout·(Φ(x) + x·φ(x)) (overwritten). */
export function geluBackward(dinp: Tensor, inp: Tensor, dout: Tensor): void {
  addon.geluBackward(nativeOf(dinp, 'dinp'), nativeOf(inp, 'inp'), nativeOf(dout, 'dout'))
}

/** ModernBERT's GeGLU: u [R, 2I] holds [a | g]; out [R, I] = GELU(a) ⊙ g (geluForward's GELU). */
export function gegluForward(out: Tensor, u: Tensor): void {
  addon.gegluForward(nativeOf(out, 'out'), nativeOf(u, 'u'))
}

/** du [R, 2I] (overwritten) = [dout ⊙ g ⊙ GELU'(a) | dout ⊙ GELU(a)] for u = [a | g]. */
export function gegluBackward(du: Tensor, u: Tensor, dout: Tensor): void {
  addon.gegluBackward(nativeOf(du, 'du'), nativeOf(u, 'u'), nativeOf(dout, 'dout'))
}

/**
 * ModernBERT's rotary position embedding, in place on the q and k blocks of a packed [B, T, 3H] projection
 * (token t at position t; pairs i, i + HS/2 of each head turned by t·theta^(−2i/HS): native/common/rope.h).
 * inverse: turned back, the transpose, which is the backward when applied to the packed gradient.
 */
export function rope(qkv: Tensor, numHeads: number, theta: number, inverse = false): void {
  addon.rope(nativeOf(qkv, 'qkv'), numHeads, theta, inverse)
}

/** out = tanh(x). */
export function tanhForward(out: Tensor, inp: Tensor): void {
  addon.tanhForward(nativeOf(out, 'out'), nativeOf(inp, 'inp'))
}

/** dinp = dout·(1 − out²) (overwritten; takes the forward's output). */
export function tanhBackward(dinp: Tensor, out: Tensor, dout: Tensor): void {
  addon.tanhBackward(nativeOf(dinp, 'dinp'), nativeOf(out, 'out'), nativeOf(dout, 'dout'))
}

/** out = a + b (out may be a or b). */
export function add(out: Tensor, a: Tensor, b: Tensor): void {
  addon.add(nativeOf(out, 'out'), nativeOf(a, 'a'), nativeOf(b, 'b'))
}

/** dst += src. */
export function addInplace(dst: Tensor, src: Tensor): void {
  addon.addInplace(nativeOf(dst, 'dst'), nativeOf(src, 'src'))
}

/**
 * out [R, d] = the first d columns of inp [R, H] (d <= H): a Matryoshka dimension's vectors as rows of their own,
 * for the losses, which read contiguous rows.
 */
export function leadingColumns(out: Tensor, inp: Tensor): void {
  addon.leadingColumns(nativeOf(out, 'out'), nativeOf(inp, 'inp'))
}

/** dinp[:, :d] += scale · dout (dout [R, d], dinp [R, H]; its other columns untouched): leadingColumns' backward. */
export function addLeadingColumns(dinp: Tensor, dout: Tensor, scale = 1): void {
  addon.addLeadingColumns(nativeOf(dinp, 'dinp'), nativeOf(dout, 'dout'), scale)
}

/** x *= s. */
export function scaleInplace(x: Tensor, s: number): void {
  addon.scaleInplace(nativeOf(x, 'x'), s)
}

/**
 * ctx_h = dropout(softmax_realKeys(q_h·k_hᵀ/√HS))·v_h per head; q, k, v, ctx [B, T, H]; probs [B, NH, T, T]
 * saves the pre-dropout softmax for attentionBackward (null: not kept, as in inference or when the backward
 * forms it again); mask[b*T+t] = 1 for real tokens; dropout null = none. With k and v null, q
 * is the packed [B, T, 3H] output of one fused q/k/v projection (column blocks q | k | v). bf16Next: ctx is the
 * input of a bf16 linearForward right after (on CUDA this op then also writes its bf16 copy:
 * kernels/bf16_handoff.cuh). relBias [2T-1, NH] (MPNet's relative-position bias) is added to the scores:
 * S[b, h, i, j] += relBias[j - i + T - 1, h]. precision 'bf16': for T <= 128 and head sizes <= 64 the products
 * take bfloat16-rounded operands (q, k, v, the dropped probabilities; fp32 sums, softmax and probs; on CUDA the
 * tensor cores); other shapes run at fp32 (native/ops/encoder.h). At those shapes q (packed, k and v null) and ctx
 * may be Bf16Values, both or neither ([B, T, 3H] and [B, T, H]): the products read q, k, v as they are and ctx is
 * stored rounded, the values the fp32 arrays give (half the bytes; not with bf16Next: ctx is already bf16).
 */
export function attentionForward(
  ctx: Tensor | Bf16Values,
  probs: Tensor | null,
  q: Tensor | Bf16Values,
  k: Tensor | null,
  v: Tensor | null,
  mask: Int32Array,
  numHeads: number,
  dropout: DropoutSite | null = null,
  bf16Next = false,
  relBias: Tensor | null = null,
  precision: Precision = 'fp32',
): void {
  const bf16Shape = attentionBf16Shape(ctx, 'ctx', q)
  addon.attentionForward(
    nativeOf(storageOf(ctx), 'ctx'),
    probs === null ? null : nativeOf(probs, 'probs'),
    nativeOf(storageOf(q), 'q'),
    k === null ? null : nativeOf(k, 'k'),
    v === null ? null : nativeOf(v, 'v'),
    mask,
    numHeads,
    ...siteArgs(dropout),
    bf16Next,
    relBias === null ? null : nativeOf(relBias, 'relBias'),
    precision,
    bf16Shape,
  )
}

/**
 * dq, dk, dv (overwritten) from dctx, regenerating the forward's dropout mask (pass the forward's dropout
 * site). probs null: the softmax is formed again from q and k (with the forward's bits; on CUDA the tiled
 * path's, which T <= 128 forwards do not take by default). Packed as in the forward: with dk, dv, k, v null,
 * dq and q are [B, T, 3H] (q | k | v column blocks).
 * bf16Next (packed only): dq is the output gradient of a bf16 linearBackward right after (as in the forward);
 * 'only': and that op's products are its only readers (linearBackward's 'only': a CUDA op may leave dq's fp32
 * values unwritten, so the q/k/v bias gradient must then come from dqkvColumnSums).
 * relBias: the forward's; dRelBias [B, 2T-1, NH] (overwritten): each sentence's gradient of it, the score gradient
 * summed along each diagonal j - i + T - 1 (rows in order). precision: the forward's ('bf16': dctx, v, q, k, the
 * dropped probabilities and dS / sqrt(HS) rounded to bfloat16 as the products read them).
 * dqkvColumnSums [3H] (packed only): += Σ_rows dq, the q/k/v projection's bias gradient, summed where dq is made
 * (on CUDA at bf16 by the attention's blocks, a sentence each, then over the sentences in a fixed order).
 * q and dctx may be Bf16Values, both or neither, as the forward's q and ctx (dq stays a Tensor).
 */
export function attentionBackward(
  dq: Tensor,
  dk: Tensor | null,
  dv: Tensor | null,
  dctx: Tensor | Bf16Values,
  q: Tensor | Bf16Values,
  k: Tensor | null,
  v: Tensor | null,
  probs: Tensor | null,
  mask: Int32Array,
  numHeads: number,
  dropout: DropoutSite | null = null,
  bf16Next: boolean | 'only' = false,
  relBias: Tensor | null = null,
  dRelBias: Tensor | null = null,
  precision: Precision = 'fp32',
  dqkvColumnSums: Tensor | null = null,
): void {
  const bf16Shape = attentionBf16Shape(dctx, 'dctx', q)
  addon.attentionBackward(
    nativeOf(dq, 'dq'),
    dk === null ? null : nativeOf(dk, 'dk'),
    dv === null ? null : nativeOf(dv, 'dv'),
    nativeOf(storageOf(dctx), 'dctx'),
    nativeOf(storageOf(q), 'q'),
    k === null ? null : nativeOf(k, 'k'),
    v === null ? null : nativeOf(v, 'v'),
    probs === null ? null : nativeOf(probs, 'probs'),
    mask,
    numHeads,
    ...siteArgs(dropout),
    bf16Next,
    relBias === null ? null : nativeOf(relBias, 'relBias'),
    dRelBias === null ? null : nativeOf(dRelBias, 'dRelBias'),
    precision,
    dqkvColumnSums === null ? null : nativeOf(dqkvColumnSums, 'dqkvColumnSums'),
    bf16Shape,
  )
}

/** The storage of Bf16Values, or the Tensor itself. */
function storageOf(x: Tensor | Bf16Values): Tensor {
  return x instanceof Bf16Values ? x.storage : x
}

/**
 * The [B, T, H] of an attention op's bf16 arrays (ctx or dctx `o`, the packed q), or null when both are Tensors;
 * one without the other is a TypeError.
 */
function attentionBf16Shape(o: Tensor | Bf16Values, oName: string, q: Tensor | Bf16Values): number[] | null {
  const bf16 = o instanceof Bf16Values
  if (bf16 !== q instanceof Bf16Values)
    throw new TypeError(`Expected ${oName} and q to be both Bf16Values or both Tensors (bf16 storage holds both)`)
  if (!(o instanceof Bf16Values)) return null
  if (o.shape.length !== 3) throw new TypeError(`Expected ${oName} to be [B, T, H] Bf16Values, got [${o.shape.join(', ')}]`)
  return o.shape
}

/**
 * weight [OC, C] (CPU) quantized for linearInt8Forward: int8 with one scale per output channel (native/cpu/linear_int8.h),
 * in a new CPU tensor that holds the packed bytes (a quarter of the weight's size), not floats.
 */
export function int8PackWeight(weight: Tensor): Tensor {
  const shape = weight.shape
  if (shape.length !== 2) throw new TypeError(`Expected weight to be [OC, C] but received [${shape.join(', ')}]`)
  const [OC, C] = shape
  const packed = Tensor.zeros([addon.int8PackedFloats(OC, C)])
  try {
    addon.int8PackWeight(nativeOf(packed, 'packed'), nativeOf(weight, 'weight'))
  } catch (e) {
    packed.dispose()
    throw e
  }
  return packed
}

/**
 * out [R, OC] = inp [R, C] · Wᵀ + bias in int8 on the CPU: inp quantized per row, the products summed exactly in
 * int32, then scaled back (native/cpu/linear_int8.h). packed: int8PackWeight's; geluOut (out itself for the GELU in
 * place) gets GELU(out).
 */
export function linearInt8Forward(out: Tensor, inp: Tensor, packed: Tensor, bias: Tensor | null, geluOut: Tensor | null = null): void {
  addon.linearInt8Forward(
    nativeOf(out, 'out'),
    nativeOf(inp, 'inp'),
    nativeOf(packed, 'packed'),
    bias === null ? null : nativeOf(bias, 'bias'),
    geluOut === null ? null : nativeOf(geluOut, 'geluOut'),
  )
}

/** The int8 layer's tile kernel (force: use that one from now on; tests and benchmarks). */
export function int8Kernel(force?: Int8Kernel): Int8Kernel {
  return addon.int8Kernel(force)
}

/**
 * MPNet's relative-position bias for length T: out [2T-1, NH] (attentionForward's relBias) from the bucket table
 * [32, NH]: out[d, h] = table[bucket(d - (T - 1)), h] (native/common/relative_bucket.h).
 */
export function relativeBiasForward(out: Tensor, table: Tensor): void {
  addon.relativeBiasForward(nativeOf(out, 'out'), nativeOf(table, 'table'))
}

/** dtable += the table's gradient from the attention's dRelBias [B, 2T-1, NH] (summed over sentences, then diagonals). */
export function relativeBiasBackward(dtable: Tensor, dRel: Tensor): void {
  addon.relativeBiasBackward(nativeOf(dtable, 'dtable'), nativeOf(dRel, 'dRel'))
}

/** out[b] = hidden[b, 0] (the [CLS] token); out [B, H], hidden [B, T, H]. */
export function poolClsForward(out: Tensor, hidden: Tensor): void {
  addon.poolClsForward(nativeOf(out, 'out'), nativeOf(hidden, 'hidden'))
}

/** dhidden[b, 0] (= or +=) dout[b]; without accumulate the other rows are zeroed. */
export function poolClsBackward(dhidden: Tensor, dout: Tensor, accumulate = false): void {
  addon.poolClsBackward(nativeOf(dhidden, 'dhidden'), nativeOf(dout, 'dout'), accumulate)
}

/**
 * out[b] = mean of hidden[b, t] over real tokens (mask != 0); 0 for a sentence with none. With sqrtLen, the sum
 * divided by sqrt(count_b) instead (sentence-transformers' mean_sqrt_len_tokens).
 */
export function poolMeanForward(out: Tensor, hidden: Tensor, mask: Int32Array, sqrtLen = false): void {
  addon.poolMeanForward(nativeOf(out, 'out'), nativeOf(hidden, 'hidden'), mask, sqrtLen)
}

/** dhidden[b, t] (= or +=) mask ? dout[b]/count_b : 0 (/ sqrt(count_b) with sqrtLen). */
export function poolMeanBackward(dhidden: Tensor, dout: Tensor, mask: Int32Array, accumulate = false, sqrtLen = false): void {
  addon.poolMeanBackward(nativeOf(dhidden, 'dhidden'), nativeOf(dout, 'dout'), mask, accumulate, sqrtLen)
}

/**
 * out[b, c] = the largest hidden[b, t, c] over real tokens (mask != 0); 0 for a sentence with none
 * (sentence-transformers' max_tokens).
 */
export function poolMaxForward(out: Tensor, hidden: Tensor, mask: Int32Array): void {
  addon.poolMaxForward(nativeOf(out, 'out'), nativeOf(hidden, 'hidden'), mask)
}

/**
 * dhidden[b, t, c] (= or +=) dout[b, c] at the first real token t holding column c's largest value (found again
 * from hidden, the forward's input), 0 elsewhere (left as it is with accumulate).
 */
export function poolMaxBackward(dhidden: Tensor, dout: Tensor, hidden: Tensor, mask: Int32Array, accumulate = false): void {
  addon.poolMaxBackward(nativeOf(dhidden, 'dhidden'), nativeOf(dout, 'dout'), nativeOf(hidden, 'hidden'), mask, accumulate)
}

/**
 * One torch.optim.AdamW step in place on params, m, v (step is 1-based; decoupled weight decay). With
 * gradScale (one element on the params' device), every gradient is multiplied by gradScale[0] first: with
 * clipGradScale's factor, the bits of clipGradNorm then adamwStep, without writing the gradients.
 */
export function adamwStep(
  params: Tensor,
  grads: Tensor,
  m: Tensor,
  v: Tensor,
  lr: number,
  beta1: number,
  beta2: number,
  eps: number,
  weightDecay: number,
  step: number,
  gradScale: Tensor | null = null,
): void {
  addon.adamwStep(
    nativeOf(params, 'params'),
    nativeOf(grads, 'grads'),
    nativeOf(m, 'm'),
    nativeOf(v, 'v'),
    lr,
    beta1,
    beta2,
    eps,
    weightDecay,
    step,
    gradScale === null || gradScale === undefined ? null : nativeOf(gradScale, 'gradScale'),
  )
}

/** Σ g² in double (deterministic), for global gradient-norm clipping. */
export function gradSumSquares(g: Tensor): number {
  return addon.gradSumSquares(nativeOf(g, 'g'))
}

/**
 * torch.nn.utils.clip_grad_norm_ in one op: g *= maxNorm / (norm + 1e-6) when the norm is finite and that
 * is < 1. Returns the sum of squares before clipping (0 while a CUDA step graph is being captured).
 */
export function clipGradNorm(g: Tensor, maxNorm: number): number {
  return addon.clipGradNorm(nativeOf(g, 'g'), maxNorm)
}

/**
 * clipGradNorm folded into the optimizer: the same sum of squares (returned), and into scale[0] (one element
 * on g's device) the factor clipGradNorm would multiply g by, 1 when it would not; g is left as it is, for
 * adamwStep's gradScale to apply. One pass over the gradients instead of two.
 */
export function clipGradScale(g: Tensor, maxNorm: number, scale: Tensor): number {
  return addon.clipGradScale(nativeOf(g, 'g'), maxNorm, nativeOf(scale, 'scale'))
}
