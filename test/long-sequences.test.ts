// Training batches longer than KEEP_PROBS_MAX_T keep no attention probabilities: each layer's backward forms them
// again from q and k (lib/model/activations.ts; micro-batch.test.ts checks the arena's layout). The encoder's
// gradients at T = 130 against float64 finite differences on the CPU, with dropout (fixed Philox masks) and padded
// rows; on CUDA (a GPU or the host emulator) against the CPU's gradients.
import t from 'tap'
import { cudaStatus, Tensor } from '../lib/index.js'
import type { BertConfig } from '../lib/model/config.js'
import { BertModel } from '../lib/model/bert.js'
import { KEEP_PROBS_MAX_T } from '../lib/model/activations.js'
import * as ops from '../lib/ops.js'
import { encoderRef, gradientError, type RefBatch } from './helpers/encoder-reference.js'
import { randn, relErr } from './helpers/reference.js'

const config: BertConfig = {
  modelType: 'bert',
  vocabSize: 40,
  hiddenSize: 16,
  numHiddenLayers: 2,
  numAttentionHeads: 2,
  intermediateSize: 32,
  hiddenAct: 'gelu',
  hiddenDropoutProb: 0.1,
  attentionProbsDropoutProb: 0.1,
  maxPositionEmbeddings: 140,
  typeVocabSize: 2,
  layerNormEps: 1e-12,
  padTokenId: 0,
  initializerRange: 0.2,
}
const [B, T] = [2, KEEP_PROBS_MAX_T + 2]
const lengths = [T, 57]
const mask = Int32Array.from({ length: B * T }, (_, i) => (i % T < lengths[Math.floor(i / T)] ? 1 : 0))
const ids = Int32Array.from({ length: B * T }, (_, i) => (mask[i] ? 1 + ((i * 7) % 39) : 0))
const types = new Int32Array(B * T)
const batch = { inputIds: ids, attentionMask: mask, tokenTypeIds: types, shape: [B, T] as [number, number] }
const refBatch: RefBatch = { ids, mask, types, positions: Int32Array.from({ length: B * T }, (_, i) => i % T), B, T }
const sites = 1 + 3 * config.numHiddenLayers
const [seed, step] = [5, 3]
const keepRows = Uint8Array.of(1, 1)
const R = randn(B * config.hiddenSize, 17)

/** z and the parameter gradients of one training step on `device` (the same initial weights everywhere). */
function gradients(device: 'cpu' | 'cuda') {
  const model = BertModel.create(config, { mlp: true, seed: 11, device })
  const z = model.trainForward(batch, { seed, step, keepRows, pooling: 'cls' }).toFloat32Array()
  model.zeroGrad()
  model.trainBackward(Tensor.from(R, [B, config.hiddenSize], device))
  const grads = model.grads.toFloat32Array()
  const params = model.params.toFloat32Array()
  const layout = model.layout.entries
  model.dispose()
  return { z, grads, params, layout }
}

t.test(`T = ${T}: gradients against float64 finite differences (CPU)`, async (t) => {
  const { z, grads, params, layout } = gradients('cpu')
  const P = new Map(layout.map((e) => [e.name, Float64Array.from(params.subarray(e.offset, e.offset + e.size))]))
  // The native masks of each site, read back by dropping out a tensor of ones (rows = sentences).
  const factors = (site: number, length: number) => {
    const p = site === 0 || (site - 1) % 3 !== 0 ? config.hiddenDropoutProb : config.attentionProbsDropoutProb
    const ones = Tensor.from(new Float32Array(length).fill(1), [B, length / B])
    ops.dropout(ones, ones, { p, seed, offset: BigInt(step) * BigInt(sites) + BigInt(site), keepRows })
    return Float64Array.from(ones.toFloat32Array())
  }
  const ref = () => encoderRef(P, config, refBatch, factors, 'cls', true)
  t.ok(relErr(z, ref()) < 1e-5, `forward z matches the float64 reference (${relErr(z, ref()).toExponential(2)})`)
  const loss = () => ref().reduce((s, v, i) => s + v * R[i], 0)
  // Four coordinates of every attention and FFN tensor (the layers whose backward formed P again), and of the
  // embeddings' rows the batch uses.
  for (const e of layout) {
    const values = P.get(e.name)!
    const idx =
      e.name === 'embeddings.word_embeddings.weight'
        ? [0, 1, 2, 3].map((i) => ids[i * 5] * config.hiddenSize + i)
        : [0, 1, 2, 3].map((i) => Math.floor(((i + 0.5) * e.size) / 4))
    const err = gradientError(
      values,
      idx,
      idx.map((i) => grads[e.offset + i]),
      loss,
    )
    t.ok(err < 2e-3, `${e.name}: max |native − FD| / max |FD| = ${err.toExponential(2)}`)
  }
})

const status = cudaStatus()
t.test(
  `T = ${T} on CUDA: the CPU's gradients (fp32)`,
  { skip: status.available ? false : `CUDA unavailable: ${status.reason}` },
  async (t) => {
    const [gpu, cpu] = [gradients('cuda'), gradients('cpu')]
    const [ez, eg] = [relErr(gpu.z, cpu.z), relErr(gpu.grads, cpu.grads)]
    t.ok(ez < 1e-5, `z: relative error ${ez.toExponential(2)}`)
    t.ok(eg < 1e-4, `parameter gradients: relative error ${eg.toExponential(2)}`)
  },
)
