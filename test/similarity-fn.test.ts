// sentence-transformers' similarity functions (config_sentence_transformers.json's similarity_fn_name): the four
// functions by hand, their matrices, a VectorIndex ranking by dot product, SentenceEncoder comparing and searching
// by its model's function, and retrieval evaluated by dot product.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { evaluateReranking, evaluateRetrieval, SentenceEncoder, VectorIndex } from '../lib/index.js'
import { pairSimilarity, similarityMatrix, SIMILARITY_FNS } from '../lib/embed/similarity-fn.js'
import { cosineSimilarity, dot } from '../lib/util/vectors.js'
import { saveTinyModel, sentences } from './helpers/encoder-tiny-model.js'
import { randn } from './helpers/reference.js'

const close = (a: number, b: number, tol = 1e-5) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b))

t.test('the four functions of two vectors, by hand', async (t) => {
  const a = [1, 2, 2],
    b = [2, 0, 1]
  t.ok(close(pairSimilarity('cosine', a, b), 4 / (3 * Math.sqrt(5)), 1e-12), 'cosine: 4 / (3·√5)')
  t.equal(pairSimilarity('dot', a, b), 4, 'dot: 4')
  t.ok(close(pairSimilarity('euclidean', a, b), -Math.sqrt(6), 1e-12), 'euclidean: -√6 (the negative distance)')
  t.equal(pairSimilarity('manhattan', a, b), -4, 'manhattan: -4')
})

t.test('similarityMatrix: each pair as pairSimilarity gives it, vectors or one flat array', async (t) => {
  const D = 7
  const q = Array.from({ length: 3 }, (_, i) => randn(D, 10 + i))
  const c = Array.from({ length: 5 }, (_, i) => randn(D, 20 + i).map((x) => x * (1 + i)))
  const flat = new Float32Array(5 * D)
  c.forEach((v, i) => flat.set(v, i * D))
  for (const fn of SIMILARITY_FNS) {
    for (const [what, corpus] of [
      ['vectors', c],
      ['flat', flat],
    ] as const) {
      const m = similarityMatrix(fn, q, corpus, D)
      const worst = Math.max(
        ...m.flatMap((row, i) => Array.from(row, (s, j) => Math.abs(s - pairSimilarity(fn, q[i], c[j])) / Math.max(1, Math.abs(s)))),
      )
      t.ok(worst < 1e-5, `${fn} (${what}): within 1e-5 of the pairs (${worst.toExponential(1)})`)
    }
  }
})

t.test("VectorIndex similarityFn 'dot': ranks by the dot product of the vectors as they are", async (t) => {
  // A long vector along x and a short one along the query: cosine prefers the short one, the dot product the long.
  const corpus = [
    [10, 0],
    [1, 1],
    [-3, -3],
  ]
  const cosine = VectorIndex.from(corpus)
  const dotIndex = VectorIndex.from(corpus, undefined, { similarityFn: 'dot' })
  t.teardown(() => (cosine.dispose(), dotIndex.dispose()))
  t.equal(cosine.similarityFn, 'cosine', 'cosine by default')
  t.same(cosine.search([[1, 1]], { topK: 2 })[0].indices, [1, 0], 'cosine: the aligned vector first')
  const [hit] = dotIndex.search([[1, 1]], { topK: 3 })
  t.same(hit.indices, [0, 1, 2], 'dot: the long vector first')
  t.same(hit.scores, [10, 2, -6], 'the scores are the dot products')
  t.same((await dotIndex.searchAsync([[2, 0]], { topK: 1 }))[0], { indices: [0], scores: [20] }, 'searchAsync too, queries as they are')
  t.same(Array.from(dotIndex.similarity([[0, 1]])[0]), [0, 1, -3], 'similarity(): the dot products')
  t.throws(() => VectorIndex.from([[1, NaN]], undefined, { similarityFn: 'dot' }), /corpus\[0\]\[1\] is NaN, not a finite number/)
  t.throws(() => dotIndex.search([[Infinity, 0]]), /queries\[0\]\[0\] is Infinity, not a finite number/)
  t.throws(() => VectorIndex.from(corpus, undefined, { similarityFn: 'l2' as 'dot' }), /similarityFn must be 'cosine' or 'dot', got "l2"/)
})

t.test("SentenceEncoder: the model's similarity_fn_name in similarity() and search(), the option over it", async (t) => {
  const dir = await saveTinyModel({ seed: 8, pooling: 'mean' })
  const cfg = (v: unknown) =>
    writeFileSync(
      join(dir, 'config_sentence_transformers.json'),
      JSON.stringify({ prompts: {}, default_prompt_name: null, similarity_fn_name: v }),
    )
  const texts = sentences(9, 3)
  const plain = await SentenceEncoder.load(dir, { device: 'cpu' })
  t.equal(plain.similarityFn, 'cosine', 'no config file: cosine')
  const vectors = await plain.encode(texts)
  await plain.close()

  cfg('dot')
  const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
  t.teardown(() => enc.close())
  t.equal(enc.similarityFn, 'dot', "similarity_fn_name 'dot'")
  t.ok(close(enc.similarity(vectors[0], vectors[1]), dot(vectors[0], vectors[1])), 'similarity(a, b) is their dot product')
  const m = enc.similarity(vectors.slice(0, 2), vectors)
  t.ok(
    m.every((row, i) => row.every((s, j) => close(s, dot(vectors[i], vectors[j]), 1e-4))),
    'the matrix: dot products',
  )
  const [hits] = await enc.search([texts[0]], texts, { topK: texts.length })
  const byDot = texts.map((_, j) => j).sort((a, b) => dot(vectors[0], vectors[b]) - dot(vectors[0], vectors[a]))
  const byCos = texts.map((_, j) => j).sort((a, b) => cosineSimilarity(vectors[0], vectors[b]) - cosineSimilarity(vectors[0], vectors[a]))
  t.same(hits.indices, byDot, 'search ranks by the dot product')
  t.notSame(byDot, byCos, '(which orders these sentences otherwise than cosine)')
  t.ok(
    hits.scores.every((s, k) => close(s, dot(vectors[0], vectors[hits.indices[k]]), 1e-4)),
    'its scores are dot products',
  )

  const euclid = await SentenceEncoder.load(dir, { device: 'cpu', similarityFn: 'euclidean' })
  t.equal(euclid.similarityFn, 'euclidean', 'the option wins over the config')
  t.ok(close(euclid.similarity(vectors[2], vectors[3]), pairSimilarity('euclidean', vectors[2], vectors[3])), 'the negative distance')
  await euclid.close()

  await t.rejects(
    SentenceEncoder.load(dir, { similarityFn: 'l2' as 'dot' }),
    /similarityFn must be cosine, dot, euclidean, manhattan, got "l2"/,
  )
  cfg('dot_score')
  await t.rejects(
    SentenceEncoder.load(dir, { device: 'cpu' }),
    /config_sentence_transformers\.json: similarity_fn_name must be cosine, dot, euclidean, manhattan or null, got "dot_score"/,
  )
  cfg(null)
  const nulled = await SentenceEncoder.load(dir, { device: 'cpu' })
  t.equal(nulled.similarityFn, 'cosine', 'null: cosine')
  await nulled.close()
})

t.test("evaluateRetrieval similarityFn 'dot': the documents ranked by dot product", async (t) => {
  // Vectors by text: the relevant document is long and off-axis, a distractor short and aligned with the query.
  const table: Record<string, number[]> = { q: [1, 1], relevant: [10, 0], distractor: [1, 1.1] }
  const embed = async (s: string[]) => s.map((x) => Float32Array.from(table[x]))
  const data = {
    dir: 'synthetic',
    split: 'test',
    corpus: [
      { id: 'd1', text: 'relevant' },
      { id: 'd2', text: 'distractor' },
    ],
    queries: [{ id: 'q1', text: 'q' }],
    qrels: new Map([['q1', new Map([['d1', 1]])]]),
    unknownDocuments: 0,
  }
  const byCos = await evaluateRetrieval(embed, data)
  const byDot = await evaluateRetrieval(embed, data, { similarityFn: 'dot' })
  t.equal(byCos.search, 'exact')
  t.equal(byDot.search, 'exact, dot product')
  t.equal(byDot.scores.mrr[10], 1, 'dot: the relevant document first (MRR@10 1)')
  t.equal(byCos.scores.mrr[10], 0.5, 'cosine: second (MRR@10 0.5)')
})

t.test("evaluateReranking similarityFn 'dot': the candidates ordered by dot product", async (t) => {
  const table: Record<string, number[]> = { q: [1, 1], relevant: [10, 0], distractor: [1, 1.1] }
  const embed = async (s: string[]) => s.map((x) => Float32Array.from(table[x]))
  const set = { name: 'synthetic', queries: [{ query: 'q', positive: ['relevant'], negative: ['distractor'] }] }
  t.equal((await evaluateReranking(embed, set)).mrr10, 0.5, 'cosine: the relevant candidate second')
  t.equal((await evaluateReranking(embed, set, { similarityFn: 'dot' })).mrr10, 1, 'dot: first')
  t.equal((await evaluateReranking(embed, set, { similarityFn: 'euclidean' })).mrr10, 0.5, 'euclidean: the nearer distractor first')
})
