#!/usr/bin/env node
// Search latency: N random corpus vectors (default 100,000 × 768) and batches of Q queries (default 16)
// through VectorIndex.search (on the CPU one fused native pass over the corpus, native/cpu/search.h; on
// CUDA the GEMM, a block of rows at a time, top k per block), which holds the event loop for the whole
// search, and searchAsync (what SentenceEncoder.search uses), which yields
// every few milliseconds: per batch, the median time of each and the longest the event loop waited.
// Run after the build: node scripts/bench/search.mjs [--corpus 100000] [--dim 768] [--queries 16] [--top-k 10]
// [--repeats 20] [--device cpu|cuda]
import { parseArgs } from 'node:util'
import { numThreads, VectorIndex } from '../../dist/index.js'

const { values } = parseArgs({
  options: {
    corpus: { type: 'string', default: '100000' },
    dim: { type: 'string', default: '768' },
    queries: { type: 'string', default: '16' },
    'top-k': { type: 'string', default: '10' },
    repeats: { type: 'string', default: '20' },
    device: { type: 'string', default: 'cpu' },
  },
})
const [N, D, Q, K, R] = ['corpus', 'dim', 'queries', 'top-k', 'repeats'].map((k) => Number(values[k]))

let s = 12345
const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1
const corpus = Float32Array.from({ length: N * D }, rnd)
const queries = Array.from({ length: Q }, () => Float32Array.from({ length: D }, rnd))

/** Runs f; its time, and the longest gap between event-loop turns meanwhile (a setImmediate chain). */
async function timed(f) {
  let last = performance.now(),
    stall = 0,
    running = true
  const tick = () => {
    const now = performance.now()
    stall = Math.max(stall, now - last)
    last = now
    if (running) setImmediate(tick)
  }
  setImmediate(tick)
  const start = performance.now()
  await f()
  const ms = performance.now() - start
  running = false
  return { ms, stall: Math.max(stall, performance.now() - last) }
}

const t0 = performance.now()
const index = VectorIndex.from(corpus, D, { device: values.device })
const buildMs = performance.now() - t0
index.search(queries, { topK: K }) // warm-up
const sync = [],
  async = []
for (let r = 0; r < R; r++) {
  sync.push(await timed(async () => index.search(queries, { topK: K })))
  async.push(await timed(() => index.searchAsync(queries, { topK: K })))
}
index.dispose()
const median = (xs) => +[...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)].toFixed(2)
const row = {
  corpus: N,
  dim: D,
  queries: Q,
  topK: K,
  device: values.device,
  threads: numThreads(),
  indexBuildMs: +buildMs.toFixed(1),
  medianMsPerBatch: median(sync.map((x) => x.ms)),
  minMsPerBatch: +Math.min(...sync.map((x) => x.ms)).toFixed(2),
  asyncMedianMsPerBatch: median(async.map((x) => x.ms)),
  medianEventLoopStallMs: median(sync.map((x) => x.stall)),
  asyncMedianEventLoopStallMs: median(async.map((x) => x.stall)),
}
process.stdout.write(JSON.stringify(row) + '\n')
