// Prints a JSON fingerprint (SHA-256 prefixes) of what a tiny model computes with the addon this process loads:
// its initial weights, eval vectors, a training pass (Philox dropout) and its gradients in fp32 and bf16, and int8
// eval vectors. test/aarch64.test.ts runs it here with the portable kernels forced and on aarch64 under qemu.
// Plain JavaScript over dist/, so that an arm64 Node.js without the TypeScript loader runs it.
import { createHash } from 'node:crypto'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const dist = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist')
const { BertModel } = await import(pathToFileURL(join(dist, 'model', 'bert.js')).href)
const { addon } = await import(pathToFileURL(join(dist, 'native.js')).href)

const config = {
  modelType: 'bert',
  vocabSize: 60,
  hiddenSize: 48,
  numHiddenLayers: 2,
  numAttentionHeads: 3,
  intermediateSize: 96,
  hiddenAct: 'gelu',
  hiddenDropoutProb: 0.1,
  attentionProbsDropoutProb: 0.1,
  maxPositionEmbeddings: 32,
  typeVocabSize: 2,
  layerNormEps: 1e-12,
  padTokenId: 0,
  initializerRange: 0.2,
}
const B = 4,
  T = 7,
  lengths = [7, 5, 2, 6]
const inputIds = Int32Array.from({ length: B * T }, (_, i) => (i % T < lengths[Math.floor(i / T)] ? 3 + ((i * 11) % 50) : 0))
const attentionMask = Int32Array.from(inputIds, (v) => (v ? 1 : 0))
const batch = { inputIds, attentionMask, tokenTypeIds: new Int32Array(B * T), shape: [B, T] }
const hash = (/** @type {Float32Array} */ a) =>
  createHash('sha256')
    .update(Buffer.from(a.buffer, a.byteOffset, a.byteLength))
    .digest('hex')
    .slice(0, 16)

const info = addon.gemmInfo()
/** @type {Record<string, string>} */
const out = { arch: process.arch, kernels: [info.kernel, info.geluKernel, info.attentionKernel, addon.int8Kernel()].join('/') }
for (const precision of ['fp32', 'bf16']) {
  const m = BertModel.create(config, { seed: 5, precision, mlp: true })
  out[`${precision} initial weights`] = hash(m.params.toFloat32Array())
  out[`${precision} eval vectors`] = hash(m.embed(batch, 'mean').toFloat32Array())
  m.zeroGrad()
  const z = m.trainForward(batch, { seed: 9, step: 1 })
  out[`${precision} training pass`] = hash(z.toFloat32Array())
  const dz = z.to('cpu').fill(0.01)
  m.trainBackward(dz)
  out[`${precision} gradients`] = hash(m.grads.toFloat32Array())
  dz.dispose()
  m.dispose()
}
// The int8 op at the tile and vector edges (6 rows, 4 k per group, 16 and 64 outputs), from a seeded generator.
const { Tensor } = await import(pathToFileURL(join(dist, 'tensor.js')).href)
const ops = await import(pathToFileURL(join(dist, 'ops.js')).href)
let seed = 12345
const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1
for (const [R, C, OC] of [
  [1, 1, 1],
  [7, 77, 65],
  [13, 130, 130],
  [6, 256, 192],
]) {
  const w = Tensor.from(Float32Array.from({ length: OC * C }, rand), [OC, C])
  const x = Tensor.from(
    Float32Array.from({ length: R * C }, () => 3 * rand()),
    [R, C],
  )
  const y = Tensor.zeros([R, OC])
  ops.linearInt8Forward(y, x, ops.int8PackWeight(w), Tensor.from(Float32Array.from({ length: OC }, rand), [OC]))
  out[`int8 op [${R}, ${C}] x [${OC}, ${C}]`] = hash(y.toFloat32Array())
}
const m = BertModel.create(config, { seed: 5 })
m.quantizeInt8()
out['int8 eval vectors'] = hash(m.embed(batch, 'mean').toFloat32Array())
m.dispose()
process.stdout.write(JSON.stringify(out) + '\n')
