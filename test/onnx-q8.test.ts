// The q8 export (onnx/model_quantized.onnx): the quantizer's arithmetic; the file read back field by field
// (every linear weight and the word embeddings int8, within half a step of the model's weights, the rest
// fp32); onnxruntime fusing every linear layer into its integer kernels; the vectors' measured error against
// SentenceEncoder's; transformers.js loading it as dtype 'q8'.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import type * as ort from 'onnxruntime-node'
import { SentenceEncoder } from '../lib/index.js'
import { BertModel } from '../lib/model/bert.js'
import { cosineSimilarity } from '../lib/util/vectors.js'
import { exportOnnx } from '../lib/export/export-onnx.js'
import { MATMUL_LEVELS, TABLE_LEVELS, quantizeRowsInto, rowScales } from '../lib/export/quantize.js'
import { saveTinyModel, sentences } from './helpers/encoder-tiny-model.js'
import { saveTinyRoberta } from './helpers/tiny-roberta.js'
import { tempDir } from './helpers/train-corpus.js'
import { opCounts, readOnnxGraph, type ReadInitializer } from './helpers/onnx-read.js'
import { ortRun } from './helpers/onnx-run.js'

const INT8 = 3,
  FLOAT = 1
const MAX_LENGTH = 24

t.test('quantizeRowsInto: within half a step of every weight, the row maximum at ±levels, zero rows zero, half to even', async (t) => {
  const rows = 5,
    cols = 7
  const a = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 3)))
  a.fill(0, 2 * cols, 3 * cols) // row 2 all zero
  for (const levels of [MATMUL_LEVELS, TABLE_LEVELS]) {
    const s = rowScales(a, rows, cols, levels)
    for (const transpose of [false, true]) {
      const q = new Int8Array(rows * cols)
      quantizeRowsInto(a, rows, cols, s, levels, q, transpose)
      let worst = 0
      const peaks: number[] = []
      for (let r = 0; r < rows; r++) {
        let peak = 0
        for (let c = 0; c < cols; c++) {
          const v = q[transpose ? c * rows + r : r * cols + c]
          peak = Math.max(peak, Math.abs(v))
          if (s[r] > 0) worst = Math.max(worst, Math.abs(v * s[r] - a[r * cols + c]) / s[r])
        }
        peaks.push(peak)
      }
      const what = `levels ${levels}${transpose ? ', transposed' : ''}`
      t.same(peaks, [levels, levels, 0, levels, levels], `${what}: each row's largest weight at ±levels, the zero row all zeros`)
      t.ok(worst <= 0.5 + 1e-6, `${what}: within half a step (${worst.toFixed(4)})`)
    }
  }
  // Exactly half a step: to the even neighbour, on both sides of zero.
  const halves = Float32Array.from([2.5, -2.5, 3.5, -3.5, 0.5, -0.5, 63])
  const q = new Int8Array(halves.length)
  quantizeRowsInto(halves, 1, halves.length, Float32Array.of(1), MATMUL_LEVELS, q, false)
  t.same(Array.from(q), [2, -2, 4, -4, 0, -0, 63])
})

/** [rows, cols] fp32 values of a checkpoint tensor, dequantized from an int8 initializer and its scales. */
function dequantized(q: ReadInitializer, s: ReadInitializer, transposed: boolean): { values: Float32Array; scales: Float32Array } {
  const ints = new Int8Array(q.raw.buffer, q.raw.byteOffset, q.raw.byteLength)
  const scales = new Float32Array(new Uint8Array(s.raw).buffer) // a copy: aligned, and not a Buffer's shared pool
  const [d0, d1] = q.dims
  const rows = transposed ? d1 : d0,
    cols = transposed ? d0 : d1
  const values = new Float32Array(rows * cols)
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) values[r * cols + c] = ints[transposed ? c * rows + r : r * cols + c] * scales[r]
  return { values, scales }
}

async function ortVectors(
  file: string,
  model: string,
  texts: string[],
  inputs: string[],
  options: ort.InferenceSession.SessionOptions = {},
) {
  const { out, enc } = await ortRun(file, model, texts, inputs, MAX_LENGTH, options)
  const data = out.sentence_embedding.data as Float32Array
  const H = data.length / enc.shape[0]
  return Array.from({ length: enc.shape[0] }, (_, i) => data.slice(i * H, (i + 1) * H))
}

const CASES = [
  {
    name: 'BERT, mean pooling',
    make: (dir: string) => saveTinyModel({ dir, pooling: 'mean', seed: 11, config: { hiddenSize: 64, intermediateSize: 256 } }),
  },
  { name: 'RoBERTa, cls pooling', make: (dir: string) => saveTinyRoberta({ dir, pooling: 'cls', seed: 12 }) },
]

for (const c of CASES) {
  t.test(
    `${c.name}: model_quantized.onnx holds int8 weights within half a step, runs fused, and near SentenceEncoder's vectors`,
    async (t) => {
      const model = await c.make(tempDir('simcsepp-q8-model-'))
      const root = tempDir('simcsepp-q8-out-')
      const fp32 = await exportOnnx(model, join(root, 'fp32'), { maxLength: MAX_LENGTH })
      const q8 = await exportOnnx(model, join(root, 'q8'), { maxLength: MAX_LENGTH, weights: 'q8' })
      t.equal(basename(q8.onnxFile), 'model_quantized.onnx', 'the file transformers.js loads for dtype q8')
      // A list: each file from one load, the same bytes as written alone.
      const both = await exportOnnx(model, join(root, 'both'), { maxLength: MAX_LENGTH, weights: ['q8', 'fp32'] })
      t.same(
        both.files.map((f) => [f.weights, basename(f.file), f.bytes]),
        [
          ['q8', 'model_quantized.onnx', q8.bytes],
          ['fp32', 'model.onnx', fp32.bytes],
        ],
      )
      t.equal(both.onnxFile, both.files[0].file)
      for (const [f, alone] of [
        [both.files[0].file, q8.onnxFile],
        [both.files[1].file, fp32.onnxFile],
      ])
        t.ok(readFileSync(f).equals(readFileSync(alone)), `${basename(f)}: the bytes of a single export`)

      const bert = await BertModel.load(model)
      t.teardown(() => bert.dispose())
      const L = bert.config.numHiddenLayers
      const graph = readOnnxGraph(readFileSync(q8.onnxFile))
      const linears = Array.from({ length: L }, (_, l) =>
        [
          'attention.self.query',
          'attention.self.key',
          'attention.self.value',
          'attention.output.dense',
          'intermediate.dense',
          'output.dense',
        ].map((n) => `encoder.layer.${l}.${n}.weight`),
      ).flat()
      let worst = 0
      for (const name of linears) {
        const q = graph.initializers.get(`${name}_quantized`)!
        const s = graph.initializers.get(`${name}_scale`)!
        const [out, inp] = bert.param(name).shape
        t.ok(q && s && q.dataType === INT8 && s.dataType === FLOAT, `${name}: int8 values and fp32 scales`)
        t.same([q.dims, s.dims], [[inp, out], [out]], `${name}: [in, out] for MatMulInteger, a scale per output`)
        t.notOk(graph.initializers.has(name), `${name}: no fp32 copy`)
        const { values, scales } = dequantized(q, s, true)
        const w = bert.param(name).toFloat32Array()
        for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(values[i] - w[i]) / scales[Math.floor(i / inp)])
      }
      t.ok(worst <= 0.5 + 1e-5, `every linear weight within half a step of the model's (${worst.toFixed(4)} steps)`)
      const table = 'embeddings.word_embeddings.weight'
      const { values, scales } = dequantized(
        graph.initializers.get(`${table}_quantized`)!,
        graph.initializers.get(`${table}_scale`)!,
        false,
      )
      const E = bert.param(table).toFloat32Array(),
        H = bert.config.hiddenSize
      let worstE = 0
      for (let i = 0; i < E.length; i++) {
        const step = scales[Math.floor(i / H)] // 0 for an all-zero row (the padding token's): stored as zeros
        worstE = Math.max(worstE, step > 0 ? Math.abs(values[i] - E[i]) / step : Math.abs(values[i] - E[i]))
      }
      t.ok(worstE <= 0.5 + 1e-5, `word embeddings within half a step (${worstE.toFixed(4)}), ${TABLE_LEVELS} levels`)
      const floats = [...graph.initializers.values()].filter(
        (i) => i.dataType === FLOAT && i.dims.length === 2 && !i.name.endsWith('_scale'),
      )
      t.same(
        floats.map((i) => i.name).sort(),
        ['embeddings.position_embeddings.weight', 'embeddings.token_type_embeddings.weight'],
        'the only fp32 matrices: the position and token type embeddings',
      )
      const counts = opCounts(graph)
      t.equal(counts.MatMulInteger, 6 * L, 'every linear layer in integers')
      t.equal(counts.MatMul, 2 * L, 'float MatMul only in attention (scores, context)')
      // Each quantized weight takes 1 byte instead of 4 and each of their rows a 4-byte scale; the rest is the integer
      // ops' nodes and the initializers' names.
      const shapes = [...linears, table].map((name) => bert.param(name).shape)
      const expected = shapes.reduce((n, [rows, cols]) => n + 3 * rows * cols - 4 * rows, 0)
      const overhead = expected - (fp32.bytes - q8.bytes)
      t.ok(overhead > 0 && overhead < 600 * shapes.length, `3 bytes saved per weight, less ${overhead} bytes of nodes and names`)

      // onnxruntime fuses each linear layer into DynamicQuantizeMatMul (or MatMulIntegerToFloat where q, k and v
      // share one quantized input): the pattern quantize_dynamic writes, so no float product is left.
      const optimized = join(root, 'optimized.onnx')
      const texts = ['a', 'the cat sat on the mat.', ...sentences(5, 13, 4)]
      const got = await ortVectors(q8.onnxFile, model, texts, q8.inputs, {
        optimizedModelFilePath: optimized,
        graphOptimizationLevel: 'extended',
      })
      const fused = opCounts(readOnnxGraph(readFileSync(optimized)))
      t.equal((fused.DynamicQuantizeMatMul ?? 0) + (fused.MatMulIntegerToFloat ?? 0), 6 * L, `onnxruntime fuses all ${6 * L} linear layers`)
      t.notOk(fused.MatMulInteger, 'no unfused MatMulInteger left')

      const enc = await SentenceEncoder.load(model, { device: 'cpu', maxLength: MAX_LENGTH })
      t.teardown(() => enc.close())
      const want = await enc.encode(texts)
      const distances = got.map((v, i) => 1 - cosineSimilarity(v, want[i]))
      const worstD = Math.max(...distances)
      // Measured on these models: 1 - cos up to 1.1e-3 (random bert-base: 7e-4 to 8e-4); fp32's export is ~1e-12.
      t.ok(worstD > 1e-6 && worstD < 2e-3, `1 - cos against SentenceEncoder up to ${worstD.toExponential(2)}`)

      const { env, pipeline } = await import('@huggingface/transformers')
      env.allowRemoteModels = false
      env.localModelPath = root
      const extractor = await pipeline('feature-extraction', 'q8', { dtype: 'q8' })
      t.teardown(() => extractor.dispose())
      const pooling = c.name.includes('mean') ? 'mean' : 'cls'
      const js = (await extractor(texts, { pooling, normalize: false })).tolist() as number[][]
      const jsWorst = Math.max(...js.map((v, i) => 1 - cosineSimilarity(Float32Array.from(v), got[i])))
      t.ok(jsWorst < 1e-6, `transformers.js (dtype q8) runs model_quantized.onnx as onnxruntime does (1 - cos ${jsWorst.toExponential(2)})`)
    },
  )
}
