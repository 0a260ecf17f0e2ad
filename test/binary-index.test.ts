// Binary search (lib/embed/binary-index.ts over native/cpu/hamming_search.cpp): the native Hamming top k against a
// JavaScript brute force (ties, part bytes, k past the corpus, a corpus searched in chunks, the portable kernel in a
// child process); BinaryIndex's rescoring against a float64 reference; quantized rows read back; search through a
// SentenceEncoder; how much of exact search the signs keep, with and without rescoring; misuse.
import t from 'tap'
import { addon } from '../lib/native.js'
import { BinaryIndex, quantizeEmbeddings, searchVectors, SentenceEncoder } from '../lib/index.js'
import { randn } from './helpers/parity.mjs'
import { runSelfAsChild } from './helpers/self-child.js'
import { microModel, tempDir, WORDS } from './helpers/train-corpus.js'

/** Deterministic bytes. */
function bytes(n: number, seed: number): Uint8Array {
  let s = seed >>> 0
  return Uint8Array.from({ length: n }, () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 24)
}

function popcount(x: number): number {
  let c = 0
  for (; x; x &= x - 1) c++
  return c
}

/** Brute force: each query's k nearest rows, ties to the lower row, as [indices, distances]. */
function bruteForce(corpus: Uint8Array, queries: Uint8Array, width: number, k: number): [number[], number[]][] {
  const rows = corpus.length / width
  return Array.from({ length: queries.length / width }, (_, q) => {
    const d = Array.from({ length: rows }, (_, r) => {
      let s = 0
      for (let j = 0; j < width; j++) s += popcount(corpus[r * width + j] ^ queries[q * width + j])
      return s
    })
    const order = d.map((_, r) => r).sort((a, b) => d[a] - d[b] || a - b)
    const kept = order.slice(0, Math.min(k, rows))
    return [kept, kept.map((r) => d[r])]
  })
}

// [rows, bytes per row, queries, k]: one byte (ties everywhere), a part word (13 bytes), 768 bits (12 words), several
// parts (rows past 256 per part), k past the corpus, 150 bytes (two whole 64-byte chunks and a part one; rows and
// queries not multiples of the avx512 kernel's 4 x 4 tile).
const CASES: [number, number, number, number][] = [
  [40, 1, 3, 7],
  [300, 13, 5, 10],
  [2000, 96, 4, 25],
  [9, 3, 2, 20],
  [1030, 150, 7, 6],
]

function nativeTopK(corpus: Uint8Array, queries: Uint8Array, width: number, k: number, chunk?: number) {
  const rows = corpus.length / width,
    nq = queries.length / width
  const scores = new Float32Array(nq * k)
  const indices = new Int32Array(nq * k).fill(-1)
  for (let r = 0; r < rows; r += chunk ?? rows)
    addon.hammingTopK(corpus, width, queries, k, r, Math.min(rows, r + (chunk ?? rows)), scores, indices)
  return { scores: [...scores], indices: [...indices] }
}

function kernelResults() {
  return CASES.map(([rows, width, nq, k], i) => nativeTopK(bytes(rows * width, 10 + i), bytes(nq * width, 20 + i), width, k))
}

if (process.env.SIMCSEPP_HAMMING_TEST_CHILD) {
  process.stdout.write(JSON.stringify({ kernel: addon.gemmInfo().hammingKernel, results: kernelResults() }))
} else {
  t.test('hammingTopK: the brute force’s rows and distances; in chunks; the portable kernel', async (t) => {
    const mine = kernelResults()
    CASES.forEach(([rows, width, nq, k], i) => {
      const want = bruteForce(bytes(rows * width, 10 + i), bytes(nq * width, 20 + i), width, k)
      const got = mine[i]
      for (let q = 0; q < nq; q++) {
        const [idx, dist] = want[q]
        const pad = k - idx.length // slots past the corpus: index -1, score -Infinity
        t.same(got.indices.slice(q * k, (q + 1) * k), [...idx, ...Array(pad).fill(-1)], `case ${i} query ${q}: rows`)
        t.same(
          got.scores.slice(q * k, (q + 1) * k),
          [...dist.map((d) => -d), ...Array(pad).fill(-Infinity)],
          `case ${i} query ${q}: -distances`,
        )
      }
      const [c0, w0] = [bytes(rows * width, 10 + i), bytes(nq * width, 20 + i)]
      t.same(nativeTopK(c0, w0, width, k, 7), got, `case ${i}: searched 7 rows at a time, the same`)
    })
    // Every kernel this CPU has, each in its own process (the variable is read once): the same hits and distances.
    const best = addon.gemmInfo().hammingKernel
    t.ok(['avx512', 'popcnt', 'generic'].includes(best), `this CPU's: ${best}`)
    for (const [forced, kernel] of [
      ['generic', 'generic'],
      ['avx2', 'popcnt'],
    ]) {
      const child = runSelfAsChild<{ kernel: string; results: typeof mine }>(import.meta.url, 'SIMCSEPP_HAMMING_TEST_CHILD', {
        SIMCSEPP_SEARCH_KERNEL: forced,
      })
      if (kernel === 'popcnt' && child.kernel !== 'popcnt') {
        t.comment(`popcnt: this CPU has none (${child.kernel})`)
        continue
      }
      t.equal(child.kernel, kernel)
      t.same(JSON.parse(JSON.stringify(child.results)), JSON.parse(JSON.stringify(mine)), `${kernel} gives ${best}'s results`)
    }
  })

  t.test('BinaryIndex: Hamming candidates rescored by the cosine with their sign vectors (float64 reference)', async (t) => {
    const D = 45,
      N = 500
    const flat = randn(N * D, 7)
    const corpus = Array.from({ length: N }, (_, r) => flat.subarray(r * D, (r + 1) * D))
    const queries = Array.from({ length: 6 }, (_, q) => {
      const v = randn(D, 100 + q)
      // Half the queries lie near a corpus vector, so that the nearest are not all near ties.
      if (q % 2 === 0) for (let j = 0; j < D; j++) v[j] = corpus[q * 50][j] + 0.3 * v[j]
      return v
    })
    const index = BinaryIndex.from(corpus)
    t.same([index.size, index.dimension, index.bytesPerRow], [N, D, 6])
    const signs = (v: ArrayLike<number>) => Array.from(v, (x) => (x > 0 ? 1 : -1))
    const ham = (a: number[], b: number[]) => a.reduce((s, x, j) => s + (x !== b[j] ? 1 : 0), 0)
    for (const [topK, rescore] of [
      [5, 4],
      [10, 1],
      [3, 0],
      [N + 5, 2],
    ]) {
      const got = index.search(queries, { topK, rescore })
      queries.forEach((q, i) => {
        const sq = signs(q)
        const d = corpus.map((c) => ham(signs(c), sq))
        const order = d.map((_, r) => r).sort((a, b) => d[a] - d[b] || a - b)
        const k = Math.min(topK, N)
        const candidates = order.slice(0, Math.min(N, k * Math.max(1, rescore)))
        let want: { r: number; s: number }[]
        if (rescore === 0) want = candidates.map((r) => ({ r, s: 1 - (2 * d[r]) / D }))
        else {
          const qn = Math.sqrt(Array.from(q).reduce((s, x) => s + x * x, 0))
          want = candidates
            .map((r) => ({ r, s: signs(corpus[r]).reduce((s, x, j) => s + x * q[j], 0) / (qn * Math.sqrt(D)) }))
            .sort((a, b) => b.s - a.s) // stable: equal scores keep the Hamming order
            .slice(0, k)
        }
        t.same(
          got[i].indices,
          want.map((w) => w.r),
          `topK ${topK}, rescore ${rescore}, query ${i}: rows`,
        )
        const err = Math.max(...got[i].scores.map((s, j) => Math.abs(s - want[j].s)))
        if (err > 1e-12) t.fail(`topK ${topK}, rescore ${rescore}, query ${i}: scores off by ${err}`)
      })
    }
    t.same(await index.searchAsync(queries, { topK: 4, yieldAfterMs: 0 }), index.search(queries, { topK: 4 }), 'searchAsync: the same')
  })

  t.test('rescoreWith: the candidates reranked by their full vectors (an array, a function, an async function)', async (t) => {
    const D = 40,
      N = 300
    const flat = randn(N * D, 17)
    const corpus = Array.from({ length: N }, (_, r) => flat.subarray(r * D, (r + 1) * D))
    const queries = [0, 1, 2].map((q) => randn(D, 200 + q))
    const index = BinaryIndex.from(corpus)
    const cos = (a: ArrayLike<number>, b: ArrayLike<number>) => {
      let d = 0,
        p = 0,
        q = 0
      for (let j = 0; j < D; j++) [d, p, q] = [d + a[j] * b[j], p + a[j] * a[j], q + b[j] * b[j]]
      return d / Math.sqrt(p * q)
    }
    // The reference: the Hamming candidates (rescore 0 over topK · 3) reranked by float64 cosine.
    const candidates = index.search(queries, { topK: 15, rescore: 0 })
    const want = candidates.map((c, i) => {
      const ranked = c.indices
        .map((r, order) => ({ r, order, s: cos(queries[i], corpus[r]) }))
        .sort((a, b) => b.s - a.s || a.order - b.order)
      return { indices: ranked.slice(0, 5).map((h) => h.r), scores: ranked.slice(0, 5).map((h) => h.s) }
    })
    const asked: number[][] = []
    const fetch = (rows: number[]) => (asked.push(rows), rows.map((r) => corpus[r]))
    const got = [
      index.search(queries, { topK: 5, rescore: 3, rescoreWith: corpus }),
      index.search(queries, { topK: 5, rescore: 3, rescoreWith: fetch }),
      await index.searchAsync(queries, { topK: 5, rescore: 3, rescoreWith: async (rows) => rows.map((r) => corpus[r]) }),
    ]
    for (const [w, g] of got.entries())
      want.forEach((x, i) => {
        t.same(g[i].indices, x.indices, `way ${w}, query ${i}: rows`)
        if (Math.max(...g[i].scores.map((s, j) => Math.abs(s - x.scores[j]))) > 1e-12) t.fail(`way ${w}, query ${i}: scores`)
      })
    t.same(
      asked[0],
      [...new Set(candidates.flatMap((c) => c.indices))].sort((a, b) => a - b),
      'one call: every candidate row, ascending',
    )
    // Int8 rows as stored: ranked by their cosine with the query (as sentence-transformers' int8 rescoring ranks).
    const int8 = quantizeEmbeddings(corpus, 'int8')
    t.equal(index.search(queries, { topK: 5, rescore: 3, rescoreWith: int8 }).length, 3)
    t.throws(
      () => index.search(queries, { rescoreWith: async (rows: number[]) => rows.map((r) => corpus[r]) }),
      /rescoreWith returned a Promise: use searchAsync/,
    )
    t.throws(() => index.search(queries, { rescoreWith: corpus.slice(1) }), /rescoreWith holds 299 vectors, the index 300/)
    t.throws(() => index.search(queries, { rescoreWith: () => [] }), /rescoreWith gave 0 vectors for \d+ rows/)
    t.throws(
      () => index.search(queries, { rescoreWith: (rows: number[]) => rows.map(() => new Float32Array(3)) }),
      /rescoreWith's vector of row \d+ has 3 values, the index 40 dimensions/,
    )
    t.throws(() => index.search(queries, { rescoreWith: corpus, rescore: 0 }), /rescoreWith rescores: give a rescore of 1 or more/)
    t.throws(() => index.search(queries, { rescoreWith: 3 as never }), /rescoreWith must be an array of the corpus vectors or a function/)
  })

  t.test('quantized rows read back: binary and ubinary, arrays and flat', async (t) => {
    const D = 20
    const flat = randn(30 * D, 3)
    const rows = Array.from({ length: 30 }, (_, r) => flat.subarray(r * D, (r + 1) * D))
    const queries = rows.slice(0, 3)
    const want = BinaryIndex.from(flat, D).search(queries, { topK: 5 })
    const ub = BinaryIndex.from(rows).toUbinary()
    t.equal(ub.length, 30 * 3)
    t.same(BinaryIndex.fromQuantized(quantizeEmbeddings(rows, 'binary'), D).search(queries, { topK: 5 }), want, 'binary rows')
    t.same(BinaryIndex.fromQuantized(quantizeEmbeddings(rows, 'ubinary'), D).search(queries, { topK: 5 }), want, 'ubinary rows')
    t.same(BinaryIndex.fromQuantized(ub, D).search(queries, { topK: 5 }), want, 'flat ubinary bytes')
    t.same([...BinaryIndex.fromQuantized(ub, D).toUbinary()], [...ub], 'round trip')
  })

  t.test('how much of exact cosine search the signs keep: rescoring recovers more', async (t) => {
    // 3,000 vectors around 300 centres (D = 64) and 100 queries near corpus vectors: recall@10 against exact search.
    const D = 64,
      N = 3000
    const centres = randn(300 * D, 41)
    const noise = randn(N * D, 42)
    const corpus = new Float32Array(N * D)
    for (let i = 0; i < N * D; i++) corpus[i] = centres[(Math.floor(i / D) % 300) * D + (i % D)] + 0.5 * noise[i]
    const qn = randn(100 * D, 43)
    const queries = new Float32Array(100 * D)
    for (let i = 0; i < 100 * D; i++) queries[i] = corpus[Math.floor(i / D) * 29 * D + (i % D)] + 0.3 * qn[i]
    const exact = searchVectors(queries, corpus, { topK: 10, dimension: D })
    const index = BinaryIndex.from(corpus, D)
    const recall = (rescore: number) => {
      const got = index.search(queries, { topK: 10, rescore })
      let hit = 0
      got.forEach((g, q) => (hit += g.indices.filter((r) => exact[q].indices.includes(r)).length))
      return hit / 1000
    }
    const [none, four, ten] = [recall(0), recall(4), recall(10)]
    t.comment(`recall@10: Hamming only ${none}, rescored 4x ${four}, 10x ${ten}`)
    t.ok(four > none, 'rescoring 4x finds more of the exact top 10')
    t.ok(ten >= four, 'more oversampling, no fewer')
  })

  t.test('SentenceEncoder.search over a BinaryIndex', async (t) => {
    const dir = tempDir('simcsepp-binary-')
    const encoder = await SentenceEncoder.load(await microModel(dir, 'micro'), { device: 'cpu', precision: 'fp32' })
    try {
      const corpus = Array.from({ length: 12 }, (_, i) => [0, 1, 2, 3].map((j) => WORDS[(i * 7 + j * 5) % WORDS.length]).join(' '))
      const vectors = (await encoder.encode(corpus)) as Float32Array[]
      const index = BinaryIndex.from(vectors)
      const queries = [corpus[2] + ' ' + WORDS[1], WORDS.slice(3, 7).join(' ')]
      const hits = await encoder.search(queries, index, { topK: 2, rescore: 2 })
      t.same(hits, index.search((await encoder.encode(queries)) as Float32Array[], { topK: 2, rescore: 2 }))
      // q · sign(q) = Σ|q_j| is the largest q · s over sign vectors s: a sentence of the corpus finds its own signs
      // (its row, or a lower one with the same signs: a tiny random model's vectors share many).
      const one = await encoder.search(corpus[5], index, { topK: 1 })
      const bits = index.toUbinary(),
        w = index.bytesPerRow
      const row = (r: number) => [...bits.subarray(r * w, (r + 1) * w)]
      t.same(row(one.indices[0]), row(5), 'a sentence of the corpus finds its own signs')
      t.ok(one.indices[0] <= 5)
      const v = vectors[5]
      const l1 = v.reduce((s, x) => s + Math.abs(x), 0) / Math.sqrt(v.reduce((s, x) => s + x * x, 0) * v.length)
      t.ok(Math.abs(one.scores[0] - l1) < 1e-6, `scored Σ|q| / (|q| √D) = ${l1}`)
      await t.rejects(encoder.search('x', corpus, { rescore: 2 }), /rescore and rescoreWith apply to a BinaryIndex corpus/)
      await t.rejects(encoder.search('x', index, { rescore: -1 }), /rescore must be a non-negative integer/)
    } finally {
      await encoder.close()
    }
  })

  t.test('misuse is refused by name', async (t) => {
    const c = new Uint8Array(12),
      s = new Float32Array(2),
      i = new Int32Array(2)
    t.throws(() => addon.hammingTopK(new Float32Array(3) as never, 4, c, 2, 0, 3, s, i), /Expected corpus to be a Uint8Array or Int8Array/)
    t.throws(() => addon.hammingTopK(c, 0, c, 2, 0, 3, s, i), /bytesPerRow/)
    t.throws(() => addon.hammingTopK(c, 5, c, 2, 0, 2, s, i), /corpus to hold whole rows of bytesPerRow 5 bytes but it holds 12/)
    t.throws(() => addon.hammingTopK(c, 4, new Uint8Array(3), 2, 0, 3, s, i), /queries to hold a positive multiple of bytesPerRow 4/)
    t.throws(() => addon.hammingTopK(c, 4, c.subarray(0, 4), 2, 0, 4, s, i), /rowEnd to be at most the corpus's 3 rows/)
    t.throws(() => addon.hammingTopK(c, 4, c.subarray(0, 4), 2, 2, 1, s, i), /rowEnd to be at least rowBegin 2/)
    t.throws(() => addon.hammingTopK(c, 4, c.subarray(0, 4), 2, 0, 3, new Float32Array(3), i), /topScores to have 2 entries/)
    t.throws(() => addon.hammingTopK(c, 4, c.subarray(0, 4), 2, 0, 3, s, new Int32Array(1)), /topIndices/)
    const index = BinaryIndex.from([Float32Array.of(1, -1, 1)])
    t.throws(() => index.search([Float32Array.of(1, 2)]), /queries have 2 dimensions, the corpus 3/)
    t.throws(() => index.search([Float32Array.of(1, 2, 3)], { topK: 0 }), /topK must be a positive integer/)
    t.throws(() => index.search([Float32Array.of(1, 2, 3)], { rescore: 1.5 }), /rescore must be a non-negative integer/)
    t.throws(() => index.search([Float32Array.of(1, 2, NaN)]), /queries\[0\]\[2\] is NaN/)
    t.throws(() => index.search([Float32Array.of(1, 2, 3)], { top: 2 } as never), /unknown option "top"/)
    t.throws(() => BinaryIndex.from([]), /corpus is empty/)
    t.throws(() => BinaryIndex.fromQuantized([new Uint8Array(3)], 9), /rows\[0\] has 3 bytes, 9 dimensions pack into 2/)
    t.throws(() => BinaryIndex.fromQuantized(new Uint8Array(3), 9), /3 bytes are not whole rows of 2 bytes/)
    t.throws(() => BinaryIndex.fromQuantized([new Float32Array(2)] as never, 9), /rows\[0\] is not a Uint8Array or Int8Array/)
    t.throws(() => BinaryIndex.fromQuantized([], 9), /rows is empty/)
  })
}
