// Search on CUDA: a VectorIndex in device memory, scored by the CUDA GEMM, against the same index on the
// CPU; and SentenceEncoder.search of an encoder on CUDA, which builds its index there. Runs on a GPU and on
// the host emulator (npm run test:emulated); skipped, saying why, when CUDA is unavailable.
import t from 'tap'
import { rmSync } from 'node:fs'
import { cudaStatus, SentenceEncoder, VectorIndex } from '../lib/index.js'
import { encoderCudaBlocker } from '../lib/model/cuda-support.js'
import { saveTinyModel, sentences } from './helpers/encoder-tiny-model.js'

const status = cudaStatus()
const skip = status.available ? false : `CUDA unavailable: ${status.reason}`
if (skip) console.log(`# skipping CUDA search tests: ${skip}`)

function randomVectors(n: number, dim: number, seed: number): Float32Array {
  let s = seed >>> 0
  return Float32Array.from({ length: n * dim }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1)
}

for (const similarityFn of ['cosine', 'dot'] as const)
  t.test(`a VectorIndex on CUDA gives the CPU index hits, scores within 1e-5 (${similarityFn})`, { skip }, async (t) => {
    const dim = 96
    const corpus = randomVectors(2500, dim, 1) // 3 blocks, the last one partial
    const queries = randomVectors(7, dim, 2)
    const cpu = VectorIndex.from(corpus, dim, { similarityFn })
    const gpu = VectorIndex.from(corpus, dim, { device: 'cuda', similarityFn })
    t.teardown(() => (cpu.dispose(), gpu.dispose()))
    t.equal(gpu.device, 'cuda')
    const want = cpu.search(queries, { topK: 6 })
    const got = await gpu.searchAsync(queries, { topK: 6, yieldAfterMs: 0 })
    t.same(
      got.map((r) => r.indices),
      want.map((r) => r.indices),
      'the same indices, best first',
    )
    const err = Math.max(...got.flatMap((r, q) => r.scores.map((s, j) => Math.abs(s - want[q].scores[j]))))
    t.ok(err <= 1e-5, `scores within 1e-5 of the CPU's (max ${err.toExponential(2)})`)
    const m = gpu.similarity(queries.subarray(0, 2 * dim))
    const mc = cpu.similarity(queries.subarray(0, 2 * dim))
    const merr = Math.max(...m.flatMap((row, q) => Array.from(row, (v, i) => Math.abs(v - mc[q][i]))))
    t.ok(merr <= 1e-5, `similarity matrix within 1e-5 (max ${merr.toExponential(2)})`)
  })

t.test('SentenceEncoder.search on a CUDA encoder searches on CUDA: the CPU encoder hits', async (t) => {
  const blocker = skip || encoderCudaBlocker(true)
  if (blocker) return t.skip(String(blocker), () => {})
  const dir = await saveTinyModel({ seed: 4 })
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const [cpu, gpu] = await Promise.all([
    SentenceEncoder.load(dir, { device: 'cpu' }),
    SentenceEncoder.load(dir, { device: 'cuda', precision: 'fp32' }),
  ])
  t.teardown(async () => (await cpu.close(), await gpu.close()))
  t.equal(gpu.device, 'cuda')
  const corpus = sentences(300, 3)
  const queries = sentences(4, 9)
  // Vectors from one encoder, so that only where the search runs differs.
  const cv = await cpu.encode(corpus)
  const qv = await cpu.encode(queries)
  const want = await cpu.search(qv, cv, { topK: 5 })
  // Where the encoder puts the index it builds for the corpus.
  const from = VectorIndex.from
  const devices: unknown[] = []
  VectorIndex.from = (c, d, o) => (devices.push(o?.device), from.call(VectorIndex, c, d, o))
  t.teardown(() => void (VectorIndex.from = from))
  const got = await gpu.search(qv, cv, { topK: 5 })
  t.same(devices, ['cuda'], 'the corpus index was built on CUDA')
  t.same(
    got.map((r) => r.indices),
    want.map((r) => r.indices),
    'the same hits',
  )
  const err = Math.max(...got.flatMap((r, q) => r.scores.map((s, j) => Math.abs(s - want[q].scores[j]))))
  t.ok(err <= 1e-5, `scores within 1e-5 (max ${err.toExponential(2)})`)
})
