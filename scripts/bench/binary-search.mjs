#!/usr/bin/env node
// Binary search against exact search, in one run: N random corpus vectors (default 100,000 x 768) searched by batches
// of Q queries (default 16) through VectorIndex.search (float32 cosine, one fused native pass) and BinaryIndex.search
// (Hamming distance over the signs, native/cpu/hamming_search.cpp) without and with rescoring, the three alternated
// R times; per way the median time per batch, its ratio to exact search, and the index's bytes. (How much of exact
// search's ranking the signs keep depends on the model's vectors, not on random ones: `simcsepp eval --retrieval DIR
// --binary` measures it.)
// Run after the build: node scripts/bench/binary-search.mjs [--corpus 100000] [--dim 768] [--queries 16] [--top-k 10]
// [--rescore 4] [--repeats 15]; SIMCSEPP_SEARCH_KERNEL=avx2 times the scalar popcnt kernel instead of AVX-512's.
import { parseArgs } from 'node:util'
import { BinaryIndex, numThreads, VectorIndex } from '../../dist/index.js'
import { addon } from '../../dist/native.js'

const { values } = parseArgs({
  options: {
    corpus: { type: 'string', default: '100000' },
    dim: { type: 'string', default: '768' },
    queries: { type: 'string', default: '16' },
    'top-k': { type: 'string', default: '10' },
    rescore: { type: 'string', default: '4' },
    repeats: { type: 'string', default: '15' },
  },
})
const [N, D, Q, K, M, R] = ['corpus', 'dim', 'queries', 'top-k', 'rescore', 'repeats'].map((k) => Number(values[k]))

let s = 12345
const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1
const corpus = Float32Array.from({ length: N * D }, rnd)
const queries = Array.from({ length: Q }, () => Float32Array.from({ length: D }, rnd))

const exact = VectorIndex.from(corpus, D)
const binary = BinaryIndex.from(corpus, D)
const ways = [
  { name: 'exact float32', bytes: N * D * 4, run: () => exact.search(queries, { topK: K }) },
  { name: 'binary, Hamming only', bytes: N * binary.bytesPerRow, run: () => binary.search(queries, { topK: K, rescore: 0 }) },
  { name: `binary, rescore ${M}`, bytes: N * binary.bytesPerRow, run: () => binary.search(queries, { topK: K, rescore: M }) },
]
for (const w of ways) w.run() // warm-up
const times = ways.map(() => [])
for (let r = 0; r < R; r++)
  ways.forEach((w, i) => {
    const t0 = performance.now()
    w.run()
    times[i].push(performance.now() - t0)
  })
exact.dispose()
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const base = median(times[0])
const rows = ways.map((w, i) => ({
  search: w.name,
  medianMsPerBatch: +median(times[i]).toFixed(2),
  speedup: +(base / median(times[i])).toFixed(1),
  indexMB: +(w.bytes / 1e6).toFixed(1),
}))
const kernel = addon.gemmInfo().hammingKernel
console.log(JSON.stringify({ corpus: N, dim: D, queries: Q, topK: K, threads: numThreads(), hammingKernel: kernel, results: rows }))
console.table(rows)
