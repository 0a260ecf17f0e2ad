// Cosine search (lib/embed/search.ts): the native GEMM's top k against a float64 brute force, across
// several blocks, topK beyond the corpus, ties, and the argument errors.
import t from 'tap'
import { cosineSimilarity as cosine64 } from '../lib/util/vectors.js' // float64 arithmetic: the reference
import { cosineMatrix, searchVectors, VectorIndex } from '../lib/embed/search.js'

/** Deterministic vectors in [-1, 1) (a linear congruential generator). */
function randomVectors(n: number, dim: number, seed: number): Float32Array[] {
  let s = seed >>> 0
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1
  return Array.from({ length: n }, () => Float32Array.from({ length: dim }, next))
}

/** Brute force in float64: every score, sorted best first (ties: lower index first). */
function bruteForce(queries: Float32Array[], corpus: Float32Array[], k: number) {
  return queries.map((q) => {
    const all = corpus.map((c, i) => ({ i, s: cosine64(q, c) })).sort((a, b) => b.s - a.s || a.i - b.i)
    return all.slice(0, k)
  })
}

t.test('matches a float64 brute force, across blocks', async (t) => {
  const dim = 48
  const corpus = randomVectors(3000, dim, 1)
  const queries = randomVectors(1500, dim, 2) // 1500 queries: blocks of 1024 rows, so three blocks
  const got = searchVectors(queries, corpus, { topK: 7 })
  const want = bruteForce(queries, corpus, 7)
  let maxErr = 0,
    sameIndices = true
  for (let q = 0; q < queries.length; q++) {
    if (got[q].indices.join() !== want[q].map((h) => h.i).join()) sameIndices = false
    for (let j = 0; j < 7; j++) maxErr = Math.max(maxErr, Math.abs(got[q].scores[j] - want[q][j].s))
  }
  t.ok(sameIndices, 'indices equal the brute force, best first')
  t.ok(maxErr < 1e-5, `scores within 1e-5 (max error ${maxErr.toExponential(2)})`)

  const flat = new Float32Array(corpus.length * dim)
  corpus.forEach((v, i) => flat.set(v, i * dim))
  // Five queries take another GEMM path than 1500: the same hits, scores equal to float32 rounding.
  const few = searchVectors(queries.slice(0, 5), flat, { topK: 7, dimension: dim })
  t.same(
    few.map((r) => r.indices),
    got.slice(0, 5).map((r) => r.indices),
    'a flat Float32Array corpus: the same hits',
  )
  t.ok(Math.max(...few.flatMap((r, q) => r.scores.map((s, j) => Math.abs(s - got[q].scores[j])))) < 1e-6)

  const m = cosineMatrix(queries.slice(0, 3), corpus)
  t.equal(m.length, 3)
  t.equal(m[0].length, corpus.length)
  let mErr = 0
  for (let q = 0; q < 3; q++)
    for (let i = 0; i < corpus.length; i++) mErr = Math.max(mErr, Math.abs(m[q][i] - cosine64(queries[q], corpus[i])))
  t.ok(mErr < 1e-5, `similarity matrix within 1e-5 (${mErr.toExponential(2)})`)
})

t.test('an index is reused; topK beyond the corpus; ties', async (t) => {
  const index = VectorIndex.from([
    [1, 0],
    [0, 1],
    [2, 0], // same direction as [0]: a tie
    [0, 0], // zero vector: scores 0
  ])
  t.equal(index.size, 4)
  t.equal(index.dimension, 2)
  const [r] = index.search([[1, 0]], { topK: 100 })
  t.same(r.indices, [0, 2, 1, 3], 'the whole corpus, ties by lower index first')
  t.same(r.scores, [1, 1, 0, 0])
  t.same(index.search([[1, 0]], { topK: 1 })[0].indices, [0], 'topK 1 keeps the lower index of a tie')
  t.same(index.search([[0, 3]], { topK: 2 })[0], { indices: [1, 0], scores: [1, 0] }, 'ties at 0: lower index first')
  index.dispose()
  t.throws(() => index.search([[1, 0]]), /disposed/)
})

t.test('errors name the argument', async (t) => {
  t.throws(() => searchVectors([], [[1, 2]]), /search: queries is empty/)
  t.throws(() => searchVectors([[1, 2]], []), /search: corpus is empty/)
  t.throws(() => searchVectors([[1, 2]], new Float32Array(0), { dimension: 2 }), /corpus is empty/)
  t.throws(() => searchVectors([[1, 2, 3]], [[1, 2]]), /queries\[0\] has 3 dimensions, expected 2/)
  t.throws(() => searchVectors([[1, 2]], [[1, 2], [1]]), /corpus\[1\] has 1 dimensions, expected 2/)
  t.throws(() => searchVectors([[1, 2]], new Float32Array(3), { dimension: 2 }), /corpus holds 3 floats, not a multiple of the dimension 2/)
  t.throws(() => searchVectors([[1, 2]], new Float32Array(4)), /corpus is a flat Float32Array: its dimension is needed/)
  t.throws(() => searchVectors([[1, NaN]], [[1, 2]]), /queries\[0\]\[1\] is NaN/)
  t.throws(() => searchVectors([[1, 2]], [[1, 2]], { topK: 0 }), /topK must be a positive integer/)
})

t.test('searchAsync: the same hits as search, with the event loop running between blocks', async (t) => {
  const dim = 32
  const corpus = randomVectors(20000, dim, 5) // 5 chunks of 4096 rows on the CPU
  const queries = randomVectors(6, dim, 6)
  const index = VectorIndex.from(corpus)
  t.teardown(() => index.dispose())
  const want = bruteForce(queries, corpus, 5)
  const sync = index.search(queries, { topK: 5 })
  t.same(
    sync.map((r) => r.indices),
    want.map((w) => w.map((h) => h.i)),
    'search equals the float64 brute force',
  )

  let turns = 0
  const tick = () => {
    turns++
    timer = setImmediate(tick)
  }
  let timer = setImmediate(tick)
  const got = await index.searchAsync(queries, { topK: 5, yieldAfterMs: 0 })
  clearImmediate(timer)
  t.same(got, sync, 'searchAsync: identical indices and scores')
  t.ok(turns >= 4, `the event loop turned ${turns} times during a 5-chunk search (at least once between chunks)`)
  t.same(await index.searchAsync(queries, { topK: 5 }), sync, 'the default yield interval: identical too')

  const pending = index.searchAsync(queries, { yieldAfterMs: 0 })
  setImmediate(() => index.dispose())
  await t.rejects(pending, /search: the index was disposed during the search/, 'an index disposed while a search waits: a clear error')
  await t.rejects(VectorIndex.from(corpus).searchAsync(queries, { yieldAfterMs: -1 }), /search: yieldAfterMs must be a number >= 0, got -1/)
  t.throws(
    () => VectorIndex.from(corpus, undefined, { device: 'gpu' as 'cuda' }),
    /search: VectorIndex.from: device must be 'cpu' or 'cuda', got "gpu"/,
  )
  t.equal(VectorIndex.from([[1, 2]]).device, 'cpu', "default device: 'cpu'")
})
