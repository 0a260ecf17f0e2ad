// The encoder on the device under test against the CPU backend, end to end: SentenceEncoder vectors, and a
// micro model trained 3 steps from the same seed (same data order and dropout masks) ending with the same
// weights. Shared by test/cuda-encoder.test.ts (tap, lib/) and scripts/gpu-check.mjs (plain node, dist/):
// plain JavaScript with JSDoc types, written against an injected `lib`. Each check is { ok, message }.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { maxErr } from './encoder-parity.mjs'
import { WORDS, writeSentences } from './sentences.mjs'

/**
 * @typedef {'cpu' | 'cuda'} Device
 * @typedef {'bert' | 'distilbert' | 'mpnet' | 'modernbert'} ModelType
 * @typedef {import('./encoder-parity.mjs').Check} Check
 * @typedef {{
 *   BertModel: typeof import('../../lib/model/bert.js').BertModel,
 *   namedConfig: typeof import('../../lib/model/config.js').namedConfig,
 *   buildVocab: typeof import('../../lib/train/vocab.js').buildVocab,
 *   writeVocab: typeof import('../../lib/train/vocab.js').writeVocab,
 *   SentenceEncoder: typeof import('../../lib/embed/sentence-encoder.js').SentenceEncoder,
 *   train: typeof import('../../lib/train/train.js').train,
 *   readSafetensors: typeof import('../../lib/safetensors.js').readSafetensors,
 * }} E2eLib what the checks run: lib/ in the tests, dist/ in gpu-check
 */

/** Both checks compare with max|a − b| / max|b| below this in fp32. */
export const E2E_TOL = 1e-4

/**
 * The tolerance at `precision`. bf16 is looser although both backends round the products' operands the
 * same way: an operand whose fp32 value differs by one ulp between them (summation order: the host emulator
 * and the CPU add in one order, cuBLASLt on a GPU in its own) can round to the neighbouring bf16 value, a
 * 2^-8 step, and the products carry that into the gradients and so the weights. So one bf16 step, 2^-8
 * (measured after 3 steps: 1.6e-4 under the emulator; 1.44e-3 on an H200 with cuBLASLt, value.bias).
 * At bf16 an element may instead differ by up to BF16_STEP_FLOOR of the learning rate (see there).
 * @param {'fp32' | 'bf16'} precision
 */
export const e2eTolerance = (precision) => (precision === 'fp32' ? E2E_TOL : 2 ** -8)

/**
 * At bf16, the absolute difference (in units of the learning rate) an element may show whatever its tensor's
 * scale. AdamW moves an element by lr · m̂ / (√v̂ + ε) a step, about lr whatever the gradient's size: an element
 * whose gradient nearly cancels (a q or v bias component) takes steps that a rounding flip of one operand can
 * change by a good fraction of lr, while a bias that starts at 0 has max|b| ≈ steps · lr, so 2^-8 of it is
 * 0.01 lr. Measured: 0.05 lr on one of 48 components of layer 0's value bias under the emulator once attention
 * rounds its operands too (2.56e-2 of max|b|; the other components within 0.006 lr). A wrong gradient moves
 * elements by whole steps of lr, which stays far outside 1/8 lr (and the op tables hold every gradient to the
 * CPU's directly).
 */
export const BF16_STEP_FLOOR = 1 / 8

/** max|a − b| / max|b| over one tensor. */
const relDiff = (/** @type {Float32Array} */ a, /** @type {Float32Array} */ b) => maxErr(a, b, 1e-30)

/**
 * Writes a random micro model to `dir/name` and returns its path. Small enough for the emulator (every
 * thread a fiber, every access checked), yet with two layers, two heads, and sizes that are not multiples
 * of the kernels' tiles. A DistilBERT has no token types (its embeddings add a row of zeros) and no dropout on
 * the attention's output; an MPNet adds its relative-position bias to the attention scores; a ModernBERT runs its own
 * layers (rotary positions, GeGLU, a sliding window).
 * @param {E2eLib} lib
 * @param {string} dir
 * @param {string} name
 * @param {ModelType} [modelType]
 */
export async function microModel(lib, dir, name, modelType = 'bert') {
  const out = join(dir, name)
  mkdirSync(out, { recursive: true })
  const vocab = lib.buildVocab([WORDS.join(' ')], 64)
  await lib.writeVocab(join(out, 'vocab.txt'), vocab)
  const config = {
    ...lib.namedConfig('tiny', vocab.length),
    hiddenSize: 48,
    numAttentionHeads: 2,
    intermediateSize: 80,
    numHiddenLayers: 2,
    maxPositionEmbeddings: 40,
    ...(modelType === 'distilbert' ? { modelType, typeVocabSize: 0 } : {}),
    // MPNet: RoBERTa's positions after padding id 1 (two more rows), the relative-position bias table.
    ...(modelType === 'mpnet'
      ? { modelType, typeVocabSize: 0, padTokenId: 1, maxPositionEmbeddings: 42, relativeAttentionNumBuckets: 32 }
      : {}),
    // ModernBERT: a global layer then a local one whose window (two tokens each way) is shorter than the sentences;
    // dropout at its three kinds of site.
    ...(modelType === 'modernbert'
      ? {
          modelType,
          typeVocabSize: 0,
          layerNormEps: 1e-5,
          modern: {
            globalAttnEveryNLayers: 3,
            localAttention: 4,
            globalRopeTheta: 160000,
            localRopeTheta: 10000,
            embeddingDropoutProb: 0.1,
            initializerCutoffFactor: 2,
            bosTokenId: 2,
            eosTokenId: 3,
            clsTokenId: 2,
            sepTokenId: 3,
          },
        }
      : {}),
  }
  const model = lib.BertModel.create(config, { seed: 3 })
  await model.save(out)
  model.dispose()
  return out
}

const SENTENCES = ['the cat sees a dog', 'a small red bird', 'the', 'tree river house likes the small dog bird']

/**
 * SentenceEncoder vectors of a micro model on `device` against 'cpu', within E2E_TOL per sentence (fp32
 * on both: 'auto' would be bf16 on CUDA).
 * @param {E2eLib} lib
 * @param {string} dir a scratch directory
 * @param {Device} device
 * @param {ModelType} [modelType]
 * @returns {Promise<Check[]>}
 */
export async function encodeChecks(lib, dir, device, modelType = 'bert') {
  const model = await microModel(lib, dir, `micro-encode-${modelType}`, modelType)
  const cpu = await lib.SentenceEncoder.load(model, { device: 'cpu', precision: 'fp32' })
  try {
    const gpu = await lib.SentenceEncoder.load(model, { device, precision: 'fp32' })
    try {
      /** @type {Check[]} */
      const checks = [{ ok: gpu.device === device, message: `the encoder runs on ${gpu.device}, asked ${device}` }]
      const a = await gpu.encode(SENTENCES)
      const b = await cpu.encode(SENTENCES)
      for (let i = 0; i < SENTENCES.length; i++) {
        const d = relDiff(a[i], b[i])
        checks.push({
          ok: d < E2E_TOL,
          message: `sentence ${i}: relative difference ${d.toExponential(2)} < ${E2E_TOL}`,
          measure: { op: 'encode', value: d, unit: 'max-normalised' },
        })
      }
      if (device === 'cuda') checks.push(...(await graphChecks(lib, model, gpu)))
      return checks
    } finally {
      await gpu.close()
    }
  } finally {
    await cpu.close()
  }
}

/**
 * On CUDA the encoder runs each batch shape as a CUDA graph from its second batch on: the sentences in
 * batches of 2 (sorted by length: shapes 2x10 and 2x6 for these), encoded 3 times (eager, captured,
 * replayed), give the vectors of an encoder without graphs (SIMCSEPP_CUDA_GRAPHS=0 when its worker
 * starts), bit for bit.
 * @param {E2eLib} lib
 * @param {string} model
 * @param {import('../../lib/embed/sentence-encoder.js').SentenceEncoder} gpu
 * @returns {Promise<Check[]>}
 */
async function graphChecks(lib, model, gpu) {
  const before = process.env.SIMCSEPP_CUDA_GRAPHS
  process.env.SIMCSEPP_CUDA_GRAPHS = '0'
  let eager
  try {
    eager = await lib.SentenceEncoder.load(model, { device: 'cuda', precision: 'fp32' })
  } finally {
    if (before === undefined) delete process.env.SIMCSEPP_CUDA_GRAPHS
    else process.env.SIMCSEPP_CUDA_GRAPHS = before
  }
  try {
    const want = (await eager.encode(SENTENCES, { batchSize: 2 })).flatMap((v) => Array.from(v))
    /** @type {Check[]} */
    const checks = []
    for (const run of ['eager', 'captured', 'replayed']) {
      const got = (await gpu.encode(SENTENCES, { batchSize: 2 })).flatMap((v) => Array.from(v))
      const differ = got.filter((x, i) => !Object.is(x, want[i])).length
      checks.push({
        ok: got.length === want.length && differ === 0,
        message: `CUDA graphs (${run} batches): ${differ} values differ from the encoder without graphs`,
      })
    }
    return checks
  } finally {
    await eager.close()
  }
}

/**
 * A micro model trained 3 steps at `precision` on `device` and on 'cpu' (which rounds bf16 operands as the
 * tensor cores do) from the same seed: the same tensors, each within e2eTolerance(precision), except the
 * attention key biases (see below).
 * @param {E2eLib} lib
 * @param {string} dir a scratch directory
 * @param {Device} device
 * @param {'fp32' | 'bf16'} [precision]
 * @param {ModelType} [modelType]
 * @returns {Promise<Check[]>}
 */
export async function trainChecks(lib, dir, device, precision = 'fp32', modelType = 'bert') {
  const tag = `${modelType}-${precision}`
  const model = await microModel(lib, dir, `micro-train-${tag}`, modelType)
  const data = writeSentences(join(dir, `data-${tag}.txt`), 40)
  /** @type {RunOptions} */
  const run = { model, data, steps: 3, batchSize: 6, maxLen: 10, evalEvery: 0, saveEvery: 0, seed: 5, lr: 1e-3, precision }
  return compareRuns(lib, dir, tag, run, device, e2eTolerance(precision))
}

/**
 * A run over three datasets in turn, 9 fp32 steps (each dataset's steps eager, captured, replayed): sentences with
 * SimCSE++, scored pairs with CoSENT (the scores a bound array of the step graph) and parallel pairs distilled from a
 * teacher (the micro model itself; its vectors a bound array), on `device` and on the CPU: the same weights as
 * trainChecks holds them.
 * @param {E2eLib} lib
 * @param {string} dir a scratch directory
 * @param {Device} device
 * @returns {Promise<Check[]>}
 */
export async function mixtureChecks(lib, dir, device) {
  const model = await microModel(lib, dir, 'micro-mixture')
  const sentences = writeSentences(join(dir, 'mixture-text.txt'), 30)
  const lines = Array.from({ length: 24 }, (_, i) => [0, 1, 2, 3].map((k) => WORDS[(i * 5 + k * 7) % WORDS.length]).join(' '))
  const scored = join(dir, 'mixture-scored.csv')
  writeFileSync(scored, ['sentence1,sentence2,score', ...lines.map((a, i) => `${a},${lines[(i + 3) % 24]},${i % 6}`)].join('\n') + '\n')
  const parallel = join(dir, 'mixture-parallel.csv')
  writeFileSync(parallel, ['english,non_english', ...lines.map((a) => `${a},${a.split(' ').reverse().join(' ')}`)].join('\n') + '\n')
  /** @type {RunOptions} */
  const run = {
    model,
    data: [sentences, scored, parallel],
    objective: ['simcse++', 'cosent', 'distill'],
    teacher: model,
    datasetSampler: 'round-robin',
    pooling: 'cls',
    steps: 9,
    batchSize: 6,
    maxLen: 10,
    evalEvery: 0,
    saveEvery: 0,
    seed: 5,
    lr: 1e-4,
    precision: 'fp32',
  }
  return compareRuns(lib, dir, 'mixture', run, device, e2eTolerance('fp32'))
}

/** @typedef {Omit<Parameters<E2eLib['train']>[0], 'out'> & { steps: number, lr: number, precision: 'fp32' | 'bf16' }} RunOptions */

/**
 * `run` trained on `device` and on the CPU: the same tensors, each within `tol` relative to its largest value, the
 * attention key biases within 2·steps·lr (their exact gradient is zero: AdamW turns either backend's rounding
 * noise into updates of up to lr per step there).
 * @param {E2eLib} lib
 * @param {string} dir
 * @param {string} tag
 * @param {RunOptions} run
 * @param {Device} device
 * @param {number} tol
 * @returns {Promise<Check[]>}
 */
async function compareRuns(lib, dir, tag, run, device, tol) {
  await lib.train({ ...run, device, out: join(dir, `device-${tag}`) })
  await lib.train({ ...run, device: 'cpu', out: join(dir, `cpu-${tag}`) })
  const a = await lib.readSafetensors(join(dir, `device-${tag}`, 'model.safetensors'))
  const b = await lib.readSafetensors(join(dir, `cpu-${tag}`, 'model.safetensors'))
  const [namesA, namesB] = [[...a.keys()].sort().join(','), [...b.keys()].sort().join(',')]
  /** @type {Check[]} */
  const checks = [{ ok: namesA === namesB, message: `the same tensors (${a.size} vs ${b.size})` }]
  for (const [name, tb] of b) {
    const ta = a.get(name)
    if (!ta) continue // reported by the check above
    if (/attention\.(self\.key|k_lin|attn\.k)\.bias$/.test(name)) {
      const worst = ta.data.reduce((w, v, i) => Math.max(w, Math.abs(v - tb.data[i])), 0)
      const limit = 2 * run.steps * run.lr
      checks.push({ ok: worst <= limit, message: `${name}: ${worst.toExponential(2)} (zero-gradient bias, within 2·steps·lr)` })
    } else {
      const d = relDiff(ta.data, tb.data)
      const worst = ta.data.reduce((w, v, i) => Math.max(w, Math.abs(v - tb.data[i])), 0)
      const floor = run.precision === 'bf16' ? BF16_STEP_FLOOR * run.lr : 0
      checks.push({
        ok: d < tol || worst <= floor,
        message:
          `${name}: relative difference ${d.toExponential(2)} < ${tol} (${run.precision})` +
          (floor > 0 ? `, or at most ${BF16_STEP_FLOOR} lr: ${(worst / run.lr).toExponential(2)} lr` : ''),
        measure: { op: `train ${tag === 'mixture' ? 'mixture' : run.precision}`, value: d, unit: 'max-normalised' },
      })
    }
  }
  return checks
}
