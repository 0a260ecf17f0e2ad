#!/usr/bin/env node
// Search latency: N random corpus vectors (default 100,000 × 768) and batches of Q queries (default 16)
// through VectorIndex.search (the native CPU GEMM, a block of rows at a time, top k per block).
// Run after the build: node scripts/bench/search.mjs [--corpus 100000] [--dim 768] [--queries 16] [--top-k 10] [--repeats 20]
import { parseArgs } from 'node:util'
import { numThreads, VectorIndex } from '../../dist/index.js'

const { values } = parseArgs({
  options: {
    corpus: { type: 'string', default: '100000' },
    dim: { type: 'string', default: '768' },
    queries: { type: 'string', default: '16' },
    'top-k': { type: 'string', default: '10' },
    repeats: { type: 'string', default: '20' },
  },
})
const [N, D, Q, K, R] = ['corpus', 'dim', 'queries', 'top-k', 'repeats'].map((k) => Number(values[k]))

let s = 12345
const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1
const corpus = Float32Array.from({ length: N * D }, rnd)
const queries = Array.from({ length: Q }, () => Float32Array.from({ length: D }, rnd))

let t0 = performance.now()
const index = VectorIndex.from(corpus, D)
const buildMs = performance.now() - t0
index.search(queries, { topK: K }) // warm-up
const times = []
for (let r = 0; r < R; r++) {
  t0 = performance.now()
  index.search(queries, { topK: K })
  times.push(performance.now() - t0)
}
times.sort((a, b) => a - b)
const row = {
  corpus: N,
  dim: D,
  queries: Q,
  topK: K,
  threads: numThreads(),
  indexBuildMs: +buildMs.toFixed(1),
  medianMsPerBatch: +times[Math.floor(R / 2)].toFixed(2),
  minMsPerBatch: +times[0].toFixed(2),
}
index.dispose()
process.stdout.write(JSON.stringify(row) + '\n')
