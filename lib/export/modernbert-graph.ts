// The ModernBERT encoder as ONNX ops (opset 17), computing what BertModel.forward and embed compute for a ModernBERT
// (lib/model/modernbert.ts):
//   embeddings   LayerNormalization(Gather(tok, ids)), no bias (q8: the table in int8, quantized-ops.ts)
//   each layer   n = LN(x) (layer 0: x); q | k | v = n·Wqkvᵀ, split; q and k turned by the rotary embedding,
//                x·cos + rotate_half(x)·sin, rotate_half(x) = [−x2, x1] over the head's halves, with cos and sin
//                [T, d] sliced from tables over every position the model has (one pair of tables per RoPE base);
//                softmax(q·kᵀ/√d + the window bias (local layers) + the mask)·v; x += ctx·Woᵀ;
//                [a | g] = LN(x)·Wiᵀ; x += (GELU(a)·g)·Wo2ᵀ. No biases anywhere.
//   final        LN_final(x); then the pooling, Dense modules and normalisation of bert-graph.ts (finishGraph).
// The tables' angles are rope-angle.ts's, the kernels' floats. The window bias is −1e30 where |i − j| exceeds
// local_attention / 2, as the kernels' (model/modernbert.ts): beside the mask's float32 min it stays finite, so a
// padded query with no real key in its window averages the real keys instead of giving NaN.
import { headDim, isGlobalLayer, type BertConfig } from '../model/config.js'
import { ropeAngle } from '../model/rope-angle.js'
import { DataType, float32Bytes, type GraphSpec } from './onnx-model.js'
import { GraphBuilder } from './graph-builder.js'
import { quantizedGather } from './quantized-ops.js'
import {
  attend,
  attentionMasks,
  finishGraph,
  gelu,
  graphWeights,
  sequenceLength,
  type BertGraphOptions,
  type WeightSource,
} from './bert-graph.js'

const OUTSIDE_WINDOW = -1e30

export function modernBertGraph(c: BertConfig, weight: WeightSource, options: BertGraphOptions): GraphSpec {
  const m = c.modern
  if (!m) throw new Error('modernBertGraph: not a ModernBERT config')
  const g = new GraphBuilder(options.weights ?? 'fp32')
  const { w, linearWeight, linear } = graphWeights(g, weight)
  const layerNorm = (x: string, name: string) => g.op('LayerNormalization', [x, w(name)], { axis: -1, epsilon: { float: c.layerNormEps } })
  const { maskF, maskAdd } = attentionMasks(g)
  const H = c.hiddenSize,
    I = c.intermediateSize,
    d = headDim(c)

  const tok = 'embeddings.tok_embeddings.weight'
  let x = g.storage === 'q8' ? quantizedGather(g, tok, weight(tok), 'input_ids') : g.op('Gather', [w(tok), 'input_ids'])
  x = layerNorm(x, 'embeddings.norm.weight')

  const T = sequenceLength(g)
  const tables = new Map<number, { cos: string; sin: string }>()
  const rotary = (theta: number) => {
    if (!tables.has(theta)) tables.set(theta, rotaryTables(g, c, theta, T, tables.size))
    return tables.get(theta)!
  }
  let window: string | null = null
  const heads = g.ints([0, 0, c.numAttentionHeads, d]) // Reshape's 0 keeps B and T
  const toHeads = (t: string) => g.op('Transpose', [g.op('Reshape', [t, heads])], { perm: [0, 2, 1, 3] }) // [B, h, T, d]
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const p = `layers.${l}`
    const global = isGlobalLayer(c, l)
    const n = l > 0 ? layerNorm(x, `${p}.attn_norm.weight`) : x
    const [q, k, v] = g.opOutputs('Split', [linear(n, `${p}.attn.Wqkv`, false), g.ints([H, H, H])], 3, { axis: -1 })
    const { cos, sin } = rotary(global ? m.globalRopeTheta : m.localRopeTheta)
    const qr = rotate(g, toHeads(q), cos, sin, d)
    const kT = g.op('Transpose', [rotate(g, toHeads(k), cos, sin, d)], { perm: [0, 1, 3, 2] })
    if (!global) window ??= windowBias(g, T, m.localAttention / 2)
    const ctx = attend(g, c, qr, kT, toHeads(v), global ? [maskAdd] : [window!, maskAdd])
    x = g.op('Add', [x, linear(ctx, `${p}.attn.Wo`, false)])
    const u = linear(layerNorm(x, `${p}.mlp_norm.weight`), `${p}.mlp.Wi`, false)
    const [a, gate] = g.opOutputs('Split', [u, g.ints([I, I])], 2, { axis: -1 })
    x = g.op('Add', [x, linear(g.op('Mul', [gelu(g, a), gate]), `${p}.mlp.Wo`, false)])
  }
  x = layerNorm(x, 'final_norm.weight')
  return finishGraph(g, c, x, maskF, options, linearWeight)
}

/** x·cos + rotate_half(x)·sin for x [B, h, T, d], cos and sin [1, 1, T, d]. */
function rotate(g: GraphBuilder, x: string, cos: string, sin: string, d: number): string {
  const [x1, x2] = g.opOutputs('Split', [x, g.ints([d / 2, d / 2])], 2, { axis: -1 })
  const turned = g.op('Concat', [g.op('Neg', [x2]), x1], { axis: -1 })
  return g.op('Add', [g.op('Mul', [x, cos]), g.op('Mul', [turned, sin])])
}

/**
 * cos and sin of the angles of base `theta` for the input's T positions, [1, 1, T, d]: rows 0..T-1 of constant
 * tables over every position (max_position_embeddings of them), each row [cos a_0 .. cos a_{d/2-1}] twice (as
 * transformers concatenates its frequencies).
 */
function rotaryTables(g: GraphBuilder, c: BertConfig, theta: number, T: string, index: number): { cos: string; sin: string } {
  const P = c.maxPositionEmbeddings,
    d = headDim(c),
    half = d / 2
  const table = (fn: (a: number) => number, name: string) => {
    const raw = {
      byteLength: 4 * P * d,
      bytes: () => {
        const values = new Float32Array(P * d)
        for (let t = 0; t < P; t++) for (let j = 0; j < d; j++) values[t * d + j] = fn(ropeAngle(t, j % half, d, theta))
        return float32Bytes(values)
      },
    }
    const full = g.initializer(`rotary_${index}_${name}`, [P, d], DataType.FLOAT, raw)
    const rows = g.op('Slice', [full, g.ints([0]), g.op('Unsqueeze', [T, g.ints([0])]), g.ints([0])]) // [T, d]
    return g.op('Unsqueeze', [rows, g.ints([0, 1])])
  }
  return { cos: table(Math.cos, 'cos'), sin: table(Math.sin, 'sin') }
}

/** The local layers' window, [1, 1, T, T]: 0 where |i − j| <= reach, −1e30 beyond. */
function windowBias(g: GraphBuilder, T: string, reach: number): string {
  const t = g.op('Range', [g.ints([0], []), T, g.ints([1], [])])
  const distance = g.op('Abs', [g.op('Sub', [g.op('Unsqueeze', [t, g.ints([0])]), g.op('Unsqueeze', [t, g.ints([1])])])])
  const bias = g.op('Where', [g.op('Greater', [distance, g.ints([reach], [])]), g.floats([OUTSIDE_WINDOW]), g.floats([0])])
  return g.op('Unsqueeze', [bias, g.ints([0, 1])])
}
