// The BERT/RoBERTa/DistilBERT/MPNet encoder as ONNX ops (opset 17), computing what BertModel.forward and embed compute:
//   embeddings   Gather(word, ids) + Gather(position, pos) + Gather(type, types) -> LayerNormalization
//                (DistilBERT: no token types, no token_type_ids input)
//   each layer   q, k, v = x·Wᵀ + b; softmax(q·kᵀ/√d (+ MPNet's relative bias) + mask) · v; dense; LayerNorm(x + ·);
//                GELU(x·W1ᵀ + b1) with the exact erf; dense; LayerNorm(h + ·)
//   q8 weights   the linear layers and the word embeddings in int8 (quantized-ops.ts)
//   outputs      last_hidden_state [batch, seq, H]; sentence_embedding [batch, D]: the [CLS] row, the mean over
//                real tokens, each column's largest value over them (max) or their sum over √count (mean_sqrt_len),
//                through the sentence-transformers Dense modules (tanh(x·Wᵀ + b) or x·Wᵀ + b; D their last
//                width, else H), optionally scaled to unit length.
// The mask is additive, (1 - mask) · float32 min, as transformers applies it. RoBERTa's position ids
// are computed from the input ids in the graph as transformers' create_position_ids_from_input_ids
// does: padding_idx + cumsum(ids != padding_idx) on real tokens, padding_idx on padding.
import { headDim, paddingAwarePositions, positionOffset, type BertConfig } from '../model/config.js'
import { RELATIVE_ATTENTION_BIAS } from '../model/names.js'
import { relativeBucket } from '../model/relative-bucket.js'
import type { Pooling } from '../model/bert.js'
import { DataType, type GraphSpec, type ValueInfo } from './onnx-model.js'
import { GraphBuilder, ReusedBuffer, type WeightStorage } from './graph-builder.js'
import { quantizedGather, quantizedLinear } from './quantized-ops.js'

/**
 * A parameter by its checkpoint name (transformers' BertModel names; linear weights [out, in]): its shape
 * now, its values when the file is written (one weight at a time), into an array of exactly its size.
 */
export type WeightSource = (name: string) => { shape: readonly number[]; values(into: Float32Array): void }

/** A sentence-transformers Dense module (lib/embed/dense.ts) for the graph: its weight [out, in] and bias [out]. */
export interface GraphDense {
  weight: ReturnType<WeightSource>
  bias: ReturnType<WeightSource> | null
  activation: 'tanh' | 'identity'
}

export interface BertGraphOptions {
  pooling: Pooling
  /** Scale sentence_embedding to unit length. */
  normalize: boolean
  weights?: WeightStorage
  /** Dense modules applied to the pooled vector, in order (before the normalisation). */
  dense?: readonly GraphDense[]
}

const FLOAT32_MIN = -3.4028234663852886e38
const BATCH = 'batch_size'
const SEQUENCE = 'sequence_length'

/**
 * Inputs the graph takes: RoBERTa has one token type and DistilBERT none, so (as transformers' own exports) they
 * take no token_type_ids.
 */
export function graphInputNames(c: BertConfig): string[] {
  return c.modelType === 'bert' ? ['input_ids', 'attention_mask', 'token_type_ids'] : ['input_ids', 'attention_mask']
}

/** The weights of a graph over a WeightSource: as stored (w), and the linear layers' (MatMul's [in, out] layout). */
export function graphWeights(g: GraphBuilder, weight: WeightSource) {
  const w = (name: string) => {
    const t = weight(name)
    return g.weight(name, t.shape, (into) => t.values(into))
  }
  // Linear layers are stored as checkpoints hold them, [out, in]; MatMul wants [in, out].
  const stored = new ReusedBuffer(Float32Array)
  const linearWeight = (name: string, t = weight(name)) => {
    const [out, inp] = t.shape
    return g.weight(name, [inp, out], (into) => {
      const a = stored.take(into.length)
      t.values(a)
      transposeInto(a, into, out, inp)
    })
  }
  /** x·Wᵀ + b for `${prefix}.weight` (and `${prefix}.bias` unless bias is false); q8 in integers. */
  const linear = (x: string, prefix: string, bias = true) => {
    const b = bias ? w(`${prefix}.bias`) : null
    if (g.storage === 'q8') return quantizedLinear(g, x, `${prefix}.weight`, weight(`${prefix}.weight`), b)
    const y = g.op('MatMul', [x, linearWeight(`${prefix}.weight`)])
    return b ? g.op('Add', [y, b]) : y
  }
  return { w, linearWeight, linear }
}

/** The attention mask as floats [B, T] and as the additive mask [B, 1, 1, T]: 0 on real keys, float32 min on padding. */
export function attentionMasks(g: GraphBuilder): { maskF: string; maskAdd: string } {
  const maskF = g.op('Cast', ['attention_mask'], { to: DataType.FLOAT })
  const maskAdd = g.op('Unsqueeze', [g.op('Mul', [g.op('Sub', [g.floats([1]), maskF]), g.floats([FLOAT32_MIN])]), g.ints([1, 2])])
  return { maskF, maskAdd }
}

/** The sequence length T of the input, as a scalar int64. */
export function sequenceLength(g: GraphBuilder): string {
  return g.op('Gather', [g.op('Shape', ['input_ids']), g.ints([1], [])])
}

export function bertGraph(c: BertConfig, weight: WeightSource, options: BertGraphOptions): GraphSpec {
  const g = new GraphBuilder(options.weights ?? 'fp32')
  const { w, linearWeight, linear } = graphWeights(g, weight)
  const layerNorm = (x: string, prefix: string) =>
    g.op('LayerNormalization', [x, w(`${prefix}.weight`), w(`${prefix}.bias`)], { axis: -1, epsilon: { float: c.layerNormEps } })
  const { maskF, maskAdd } = attentionMasks(g)

  // Embeddings.
  const wordTable = 'embeddings.word_embeddings.weight'
  let x = g.storage === 'q8' ? quantizedGather(g, wordTable, weight(wordTable), 'input_ids') : g.op('Gather', [w(wordTable), 'input_ids'])
  x = g.op('Add', [x, g.op('Gather', [w('embeddings.position_embeddings.weight'), positionIds(g, c)])])
  if (c.typeVocabSize > 0) {
    const types = graphInputNames(c).includes('token_type_ids') ? 'token_type_ids' : g.ints([0], []) // one type: row 0, broadcast
    x = g.op('Add', [x, g.op('Gather', [w('embeddings.token_type_embeddings.weight'), types])])
  }
  x = layerNorm(x, 'embeddings.LayerNorm')
  const relBias = c.modelType === 'mpnet' ? relativeBias(g, c, w(RELATIVE_ATTENTION_BIAS)) : null

  for (let l = 0; l < c.numHiddenLayers; l++) {
    const p = `encoder.layer.${l}`
    const ctx = attention(g, c, x, maskAdd, relBias, (name) => linear(x, `${p}.attention.self.${name}`))
    const h1 = layerNorm(g.op('Add', [x, linear(ctx, `${p}.attention.output.dense`)]), `${p}.attention.output.LayerNorm`)
    const inter = gelu(g, linear(h1, `${p}.intermediate.dense`))
    x = layerNorm(g.op('Add', [h1, linear(inter, `${p}.output.dense`)]), `${p}.output.LayerNorm`)
  }
  return finishGraph(g, c, x, maskF, options, linearWeight)
}

/**
 * The graph's outputs from the last hidden states x: last_hidden_state, and sentence_embedding pooled, through the
 * Dense modules and normalised as options say; its inputs (graphInputNames) and the GraphSpec.
 */
export function finishGraph(
  g: GraphBuilder,
  c: BertConfig,
  x: string,
  maskF: string,
  options: BertGraphOptions,
  linearWeight: ReturnType<typeof graphWeights>['linearWeight'],
): GraphSpec {
  const H = c.hiddenSize
  g.output('last_hidden_state', x)
  let pooled =
    options.pooling === 'cls'
      ? g.op('Gather', [x, g.ints([0], [])], { axis: 1 })
      : options.pooling === 'max'
        ? maxPool(g, x, maskF)
        : meanPool(g, x, maskF, options.pooling === 'mean_sqrt_len')
  for (const [k, d] of (options.dense ?? []).entries()) {
    // Small next to the encoder: float products (not q8's integer ones), its weights stored as the encoder's.
    pooled = g.op('MatMul', [pooled, linearWeight(`dense.${k}.linear.weight`, d.weight)])
    if (d.bias) {
      const b = d.bias
      pooled = g.op('Add', [pooled, g.weight(`dense.${k}.linear.bias`, b.shape, (into) => b.values(into))])
    }
    if (d.activation === 'tanh') pooled = g.op('Tanh', [pooled])
  }
  if (options.normalize) {
    // As normalizeRows: x / ‖x‖ (a zero row stays zero: its norm is clamped, not divided by).
    const norm = g.op('ReduceL2', [pooled], { axes: [-1], keepdims: 1 })
    pooled = g.op('Div', [pooled, g.op('Max', [norm, g.floats([1e-30])])])
  }
  g.output('sentence_embedding', pooled)

  const inputs: ValueInfo[] = graphInputNames(c).map((name) => ({ name, elemType: DataType.INT64, dims: [BATCH, SEQUENCE] }))
  const outputs: ValueInfo[] = [
    { name: 'last_hidden_state', elemType: DataType.FLOAT, dims: [BATCH, SEQUENCE, H] },
    { name: 'sentence_embedding', elemType: DataType.FLOAT, dims: [BATCH, options.dense?.at(-1)?.weight.shape[0] ?? H] },
  ]
  return g.graph(`simcsepp_${c.modelType}`, inputs, outputs)
}

/**
 * `out` = the [cols, rows] transpose of the row-major [rows, cols] `a`, in 64 x 64 blocks written a column
 * of `a` at a time (contiguous writes, the block's rows of `a` stay in cache): 4x the speed of the plain
 * double loop on 3072 x 768.
 */
export function transposeInto(a: Float32Array, out: Float32Array, rows: number, cols: number): void {
  const B = 64
  for (let r0 = 0; r0 < rows; r0 += B)
    for (let c0 = 0; c0 < cols; c0 += B) {
      const r1 = Math.min(r0 + B, rows),
        c1 = Math.min(c0 + B, cols)
      for (let c = c0; c < c1; c++) {
        let o = c * rows + r0
        for (let i = r0 * cols + c, r = r0; r < r1; r++, i += cols) out[o++] = a[i]
      }
    }
}

/**
 * MPNet's relative-position bias [1, NH, T, T] for the input's length: bias[h, i, j] = table[bucket(j - i), h], the
 * buckets looked up in a constant over every relative position the positions allow (relative-bucket.ts).
 */
function relativeBias(g: GraphBuilder, c: BertConfig, table: string): string {
  const maxT = c.maxPositionEmbeddings - positionOffset(c)
  const buckets = g.ints(Array.from({ length: 2 * maxT - 1 }, (_, r) => relativeBucket(r - (maxT - 1))))
  const t = g.op('Range', [g.ints([0], []), sequenceLength(g), g.ints([1], [])])
  // rel[i, j] = j - i, shifted to index the constant.
  const rel = g.op('Sub', [g.op('Unsqueeze', [t, g.ints([0])]), g.op('Unsqueeze', [t, g.ints([1])])])
  const bucket = g.op('Gather', [buckets, g.op('Add', [rel, g.ints([maxT - 1], [])])])
  const bias = g.op('Transpose', [g.op('Gather', [table, bucket])], { perm: [2, 0, 1] }) // [NH, T, T]
  return g.op('Unsqueeze', [bias, g.ints([0])])
}

/** Position ids: BERT's 0..T-1 ([T], broadcast over the batch), RoBERTa's and MPNet's from the ids ([B, T]). */
function positionIds(g: GraphBuilder, c: BertConfig): string {
  if (!paddingAwarePositions(c)) return g.op('Range', [g.ints([0], []), sequenceLength(g), g.ints([1], [])])
  const real = g.op('Cast', [g.op('Not', [g.op('Equal', ['input_ids', g.ints([c.padTokenId], [])])])], { to: DataType.INT64 })
  const counted = g.op('Mul', [g.op('CumSum', [real, g.ints([1], [])]), real])
  // The first real token gets padTokenId + 1, model/config.ts's positionOffset.
  return g.op('Add', [counted, g.ints([c.padTokenId], [])])
}

/** Multi-head self-attention: the context [B, T, H] before the output projection. */
function attention(
  g: GraphBuilder,
  c: BertConfig,
  x: string,
  maskAdd: string,
  relBias: string | null,
  project: (name: string) => string,
): string {
  const heads = c.numAttentionHeads,
    d = headDim(c)
  const split = g.ints([0, 0, heads, d]) // Reshape's 0 keeps B and T
  const q = g.op('Transpose', [g.op('Reshape', [project('query'), split])], { perm: [0, 2, 1, 3] }) // [B, h, T, d]
  const kT = g.op('Transpose', [g.op('Reshape', [project('key'), split])], { perm: [0, 2, 3, 1] }) // [B, h, d, T]
  const v = g.op('Transpose', [g.op('Reshape', [project('value'), split])], { perm: [0, 2, 1, 3] })
  return attend(g, c, q, kT, v, relBias ? [relBias, maskAdd] : [maskAdd])
}

/**
 * softmax(q·kᵀ/√d + the additive biases, in order) · v for q, v [B, h, T, d] and kT [B, h, d, T]: the context
 * [B, T, H] before the output projection.
 */
export function attend(g: GraphBuilder, c: BertConfig, q: string, kT: string, v: string, biases: readonly string[]): string {
  let scores = g.op('Mul', [g.op('MatMul', [q, kT]), g.floats([1 / Math.sqrt(headDim(c))])])
  for (const b of biases) scores = g.op('Add', [scores, b])
  const probs = g.op('Softmax', [scores], { axis: -1 })
  const ctx = g.op('Transpose', [g.op('MatMul', [probs, v])], { perm: [0, 2, 1, 3] }) // [B, T, h, d]
  return g.op('Reshape', [ctx, g.ints([0, 0, c.hiddenSize])])
}

/** Exact GELU, x · ½ (1 + erf(x / √2)), as transformers' "gelu". */
export function gelu(g: GraphBuilder, x: string): string {
  const erf = g.op('Erf', [g.op('Div', [x, g.floats([Math.SQRT2])])])
  return g.op('Mul', [g.op('Mul', [x, g.op('Add', [erf, g.floats([1])])]), g.floats([0.5])])
}

/** The mean over real tokens: Σ mask·h / Σ mask, [B, H] (sqrtLen: Σ mask·h / √Σ mask). */
function meanPool(g: GraphBuilder, h: string, maskF: string, sqrtLen: boolean): string {
  const m = g.op('Unsqueeze', [maskF, g.ints([2])]) // [B, T, 1]
  const sum = g.op('ReduceSum', [g.op('Mul', [h, m]), g.ints([1])], { keepdims: 0 }) // [B, H]
  const count = g.op('Max', [g.op('ReduceSum', [m, g.ints([1])], { keepdims: 0 }), g.floats([1])]) // [B, 1]
  return g.op('Div', [sum, sqrtLen ? g.op('Sqrt', [count]) : count])
}

/**
 * Each column's largest value over the real tokens, [B, H]: the padding's values replaced by float32's lowest first
 * (sentence-transformers sets them to -1e9), so a sentence without real tokens (which no tokenizer gives) would
 * pool to that value where BertModel's op gives 0.
 */
function maxPool(g: GraphBuilder, h: string, maskF: string): string {
  const real = g.op('Cast', [g.op('Unsqueeze', [maskF, g.ints([2])])], { to: DataType.BOOL }) // [B, T, 1]
  const kept = g.op('Where', [real, h, g.floats([-3.4028234663852886e38])])
  return g.op('ReduceMax', [kept], { axes: [1], keepdims: 0 }) // opset 17: axes is an attribute
}
