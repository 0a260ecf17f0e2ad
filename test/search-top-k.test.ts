// The fused CPU search op (native/cpu/search.h, addon.searchTopK) on its own: its top k against a float64
// brute force (many queries, a dimension that is not a multiple of its 16 lanes), ties (lower index
// first, across the parts threads search), k beyond the rows, hits merged over several calls, the same
// bits with 1 and 3 threads, and the argument errors.
import t from 'tap'
import { addon } from '../lib/native.js'
import { Tensor, nativeOf } from '../lib/tensor.js'
import { runWithThreads } from './helpers/threads-child.js'

/** Deterministic floats in [-1, 1) (a linear congruential generator). */
function randomFloats(n: number, seed: number): Float32Array {
  let s = seed >>> 0
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1)
}

/** searchTopK over rows [0, N) in calls of `step` rows: [Q, k] scores and indices. */
function topK(corpus: Tensor, queries: Float32Array, k: number, step = Infinity) {
  const rows = corpus.shape[0]
  const nq = queries.length / corpus.shape[1]
  const scores = new Float32Array(nq * k)
  const indices = new Int32Array(nq * k).fill(-1)
  for (let b = 0; b < rows; b += step)
    addon.searchTopK(nativeOf(corpus, 'corpus'), queries, k, b, Math.min(rows, b + step), scores, indices)
  return { scores, indices }
}

/** Every query's hits in float64, best first (ties: lower index first), and Σ|products| per pair for the tolerance. */
function bruteForce(corpus: Float32Array, queries: Float32Array, dim: number, k: number) {
  const rows = corpus.length / dim
  const out: { i: number; s: number; abs: number }[][] = []
  for (let q = 0; q < queries.length / dim; q++) {
    const all = []
    for (let r = 0; r < rows; r++) {
      let s = 0,
        abs = 0
      for (let j = 0; j < dim; j++) {
        const p = corpus[r * dim + j] * queries[q * dim + j]
        s += p
        abs += Math.abs(p)
      }
      all.push({ i: r, s, abs })
    }
    out.push(all.sort((a, b) => b.s - a.s || a.i - b.i).slice(0, k))
  }
  return out
}

const dim = 37 // two full 16-lane steps and a tail of 5
const rows = 5000
const corpusData = randomFloats(rows * dim, 1)
const queryData = randomFloats(70 * dim, 2) // 70 queries: odd tiles and more than one group of threads' work

t.test('equals a float64 brute force; one call or calls of 700 rows', async (t) => {
  const corpus = Tensor.from(corpusData, [rows, dim], 'cpu')
  t.teardown(() => corpus.dispose())
  const k = 9
  const got = topK(corpus, queryData, k)
  const want = bruteForce(corpusData, queryData, dim, k)
  let sameIndices = true,
    maxErr = 0
  for (let q = 0; q < 70; q++) {
    for (let j = 0; j < k; j++) {
      if (got.indices[q * k + j] !== want[q][j].i) sameIndices = false
      // float32 sums of dim products: within dim·2^-24 of Σ|products| (a loose bound on the rounding).
      maxErr = Math.max(maxErr, Math.abs(got.scores[q * k + j] - want[q][j].s) / want[q][j].abs)
    }
  }
  t.ok(sameIndices, 'indices equal the brute force, best first')
  t.ok(maxErr < dim * 2 ** -24, `scores within ${dim}·2^-24 of Σ|products| (max relative error ${maxErr.toExponential(2)})`)
  const chunked = topK(corpus, queryData, k, 700)
  t.same(chunked.indices, got.indices, 'hits merged over 8 calls: the same indices')
  t.same(chunked.scores, got.scores, '... and the same scores, bit for bit')
  const one = topK(corpus, queryData.subarray(5 * dim, 6 * dim), k)
  t.same(one.indices, got.indices.subarray(5 * k, 6 * k), 'one query: the same hits as within the batch')
  t.same(one.scores, got.scores.subarray(5 * k, 6 * k))
})

t.test('ties: the lower index first, across parts and calls; k beyond the rows', async (t) => {
  // 6000 equal rows: 2+ threads search them in several parts; each part's first hits must win.
  const same = new Float32Array(6000 * 4)
  for (let r = 0; r < 6000; r++) same.set([0.5, -0.25, 1, 2], r * 4)
  const corpus = Tensor.from(same, [6000, 4], 'cpu')
  t.teardown(() => corpus.dispose())
  const q = Float32Array.of(1, 1, 1, 1)
  const want = [0, 1, 2, 3, 4, 5, 6, 7]
  t.same(Array.from(topK(corpus, q, 8).indices), want, 'one call: indices 0..7')
  t.same(Array.from(topK(corpus, q, 8, 1000).indices), want, 'calls of 1000 rows: indices 0..7')
  t.same(Array.from(topK(corpus, q, 8).scores), new Array(8).fill(3.25), 'scores 3.25')

  const small = Tensor.from(Float32Array.of(1, 0, 0, 1, 1, 0, 2, 0, 1, 0), [5, 2], 'cpu')
  t.teardown(() => small.dispose())
  const r = topK(small, Float32Array.of(1, 0), 7)
  t.same(Array.from(r.indices), [3, 0, 2, 4, 1, -1, -1], 'k = 7 > 5 rows: every row, then -1')
  t.same(Array.from(r.scores), [2, 1, 1, 1, 0, -Infinity, -Infinity], 'scores, then -Infinity')
  const nan = Tensor.from(Float32Array.of(NaN, 0, 1, 0, 3, 0), [3, 2], 'cpu')
  t.teardown(() => nan.dispose())
  t.same(Array.from(topK(nan, Float32Array.of(1, 0), 3).indices), [2, 1, 0], 'a NaN score ranks last, as -Infinity')
})

t.test('1 and 3 threads: the same bits', async (t) => {
  // The child builds the same data (the generator's source) and searches it with the compiled library (dist/).
  const script = `
    import { addon } from './dist/native.js'
    import { Tensor, nativeOf } from './dist/tensor.js'
    ${randomFloats.toString()}
    const corpus = Tensor.from(randomFloats(4000 * 16, 1), [4000, 16], 'cpu')
    const q = randomFloats(3 * 16, 2)
    const s = new Float32Array(3 * 12), i = new Int32Array(3 * 12).fill(-1)
    addon.searchTopK(nativeOf(corpus, 'corpus'), q, 12, 0, 4000, s, i)
    console.log(JSON.stringify({ threads: addon.numThreads(), s: Array.from(new Uint32Array(s.buffer)), i: Array.from(i) }))`
  const run = (threads: string) => runWithThreads<{ threads: number; s: number[]; i: number[] }>(script, threads)
  const one = run('1'),
    three = run('3')
  t.equal(one.threads, 1)
  t.equal(three.threads, 3)
  t.same(three.i, one.i, 'the same indices')
  t.same(three.s, one.s, 'the same score bits')
  const corpus = Tensor.from(randomFloats(4000 * 16, 1), [4000, 16], 'cpu')
  t.teardown(() => corpus.dispose())
  const here = topK(corpus, randomFloats(3 * 16, 2), 12)
  t.same(Array.from(here.indices), one.i, `this process (${addon.numThreads()} threads): the same indices`)
  t.same(Array.from(new Uint32Array(here.scores.buffer)), one.s, '... and score bits')
})

t.test('bad arguments: an Error naming the argument', async (t) => {
  const corpus = Tensor.from(randomFloats(40, 3), [10, 4], 'cpu')
  const q = randomFloats(8, 4)
  const s = new Float32Array(6),
    i = new Int32Array(6).fill(-1)
  const call =
    (...args: unknown[]) =>
    () =>
      (addon.searchTopK as (...a: unknown[]) => void)(...args)
  const c = nativeOf(corpus, 'corpus')
  t.throws(call({}, q, 3, 0, 10, s, i), /corpus/)
  t.throws(call(c, [1, 2, 3, 4], 3, 0, 10, s, i), /Expected queries to be a Float32Array/)
  t.throws(
    call(c, new Float32Array(6), 3, 0, 10, s, i),
    /queries to hold a positive multiple of the corpus's dimension 4 floats but it holds 6/,
  )
  t.throws(call(c, new Float32Array(0), 3, 0, 10, s, i), /queries/)
  t.throws(call(c, q, 0, 0, 10, s, i), /Expected k to be an integer >= 1/)
  t.throws(call(c, q, 1.5, 0, 10, s, i), /Expected k to be an integer >= 1/)
  t.throws(call(c, q, 3, -1, 10, s, i), /rowBegin/)
  t.throws(call(c, q, 3, undefined, 10, s, i), /rowBegin/)
  t.throws(call(c, q, 3, 0, 11, s, i), /Expected rowEnd to be at most the corpus's 10 rows but received 11/)
  t.throws(call(c, q, 3, 5, 4, s, i), /Expected rowEnd to be at least rowBegin 5 but received 4/)
  t.throws(call(c, q, 3, 0, 10, new Float32Array(5), i), /Expected topScores to have 6 entries \(queries × k\) but it has 5/)
  t.throws(call(c, q, 3, 0, 10, new Float64Array(6), i), /Expected topScores to be a Float32Array/)
  t.throws(call(c, q, 3, 0, 10, s, new Uint32Array(6)), /Expected topIndices to be an Int32Array/)
  t.throws(call(c, q, 3, 0, 10, s, new Int32Array(7)), /Expected topIndices to have 6 entries/)
  // Garbage in the running top k cannot crash the op: it is only ever compared, never dereferenced.
  const junk = Int32Array.of(-5, 99999, 7, 2 ** 31 - 1, 0, 3)
  t.doesNotThrow(call(c, q, 3, 0, 10, s, junk))
  corpus.dispose()
  t.throws(call(c, q, 3, 0, 10, s, i), /disposed/)
})
