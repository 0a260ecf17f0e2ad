// SentenceEncoder.search and the similarity matrix on a tiny model: sentences or vectors as corpus,
// the same hits as a brute force over encode()'s vectors, errors with the argument's name, and the
// empty string embedded as [CLS][SEP].
import t from 'tap'
import { cosineSimilarity as cosine64 } from '../lib/util/vectors.js' // float64 arithmetic: the reference
import { rmSync } from 'node:fs'
import { SentenceEncoder, VectorIndex } from '../lib/index.js'
import { BertModel } from '../lib/model/bert.js'
import { Tokenizer } from '../lib/tokenizer.js'
import { saveTinyModel, sentences } from './helpers/encoder-tiny-model.js'

const dir = await saveTinyModel()
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
t.teardown(() => enc.close())

t.test('search: sentences, vectors and an index give the brute force hits', async (t) => {
  const corpus = sentences(200, 3)
  const queries = sentences(5, 11)
  const cv = await enc.encode(corpus)
  const qv = await enc.encode(queries)
  const want = qv.map((q) =>
    cv
      .map((c, i) => ({ i, s: cosine64(q, c) }))
      .sort((a, b) => b.s - a.s || a.i - b.i)
      .slice(0, 4),
  )
  const hits = await enc.search(queries, corpus, { topK: 4 })
  t.same(
    hits.map((h) => h.indices),
    want.map((w) => w.map((h) => h.i)),
    'indices equal the brute force',
  )
  const err = Math.max(...hits.flatMap((h, q) => h.scores.map((s, j) => Math.abs(s - want[q][j].s))))
  t.ok(err < 1e-5, `scores within 1e-5 (${err.toExponential(2)})`)

  t.same(await enc.search(qv, cv, { topK: 4 }), hits, 'precomputed vectors: the same')
  const flat = new Float32Array(cv.length * enc.dimension)
  cv.forEach((v, i) => flat.set(v, i * enc.dimension))
  t.same(await enc.search(queries, flat, { topK: 4 }), hits, 'a flat Float32Array corpus: the same')
  const index = VectorIndex.from(cv)
  t.same(await enc.search(queries, index, { topK: 4 }), hits, 'a VectorIndex: the same')
  index.dispose()
  // One query row takes another GEMM path: the same hits, scores equal to float32 rounding.
  const one = await enc.search(queries[0], corpus, { topK: 4 })
  t.same(one.indices, hits[0].indices, 'one query string: one result')
  t.ok(Math.max(...one.scores.map((s, j) => Math.abs(s - hits[0].scores[j]))) < 1e-6)
  t.equal((await enc.search(queries[0], corpus.slice(0, 3), { topK: 50 })).indices.length, 3, 'topK beyond the corpus: all of it')

  const m = enc.similarity(qv, cv)
  t.equal(m.length, 5)
  t.equal(m[0].length, 200)
  t.ok(Math.abs(m[2][17] - cosine64(qv[2], cv[17])) < 1e-5, 'similarity matrix: cosine of each pair')
  t.ok(Math.abs(enc.similarity(qv[0], cv[0]) - cosine64(qv[0], cv[0])) < 1e-6, 'two vectors: still one number')
})

t.test('search errors name the argument', async (t) => {
  await t.rejects(enc.search([], ['a cat']), /SentenceEncoder: search: queries is empty/)
  await t.rejects(enc.search('a cat', []), /SentenceEncoder: search: corpus is empty/)
  await t.rejects(enc.search('a cat', [[1, 2, 3]]), /search: corpus\[0\] has 3 dimensions, expected 32/)
  await t.rejects(enc.search([new Float32Array(5)], ['a cat']), /search: queries\[0\] has 5 dimensions, expected 32/)
  await t.rejects(enc.search('a cat', ['a dog'], { topK: -1 }), /topK must be a positive integer/)
  await t.rejects(enc.search('a cat', ['a dog'], { topk: 3 } as object), /unknown option 'topk'/)
  t.throws(() => enc.similarity([[1, 2]], [[1, 2, 3]]), /SentenceEncoder: similarity: corpus\[0\] has 3 dimensions, expected 2/)
})

t.test("encode('') embeds [CLS][SEP], as sentence-transformers does", async (t) => {
  const [empty, other] = await enc.encode(['', 'a cat'])
  t.equal(empty.length, enc.dimension)
  t.ok(
    empty.every((x) => Number.isFinite(x)),
    'finite',
  )
  const model = await BertModel.load(dir)
  const tok = await Tokenizer.load(dir)
  const batch = await tok.encodeBatch([''], { maxLength: enc.maxLength })
  t.same(Array.from(batch.inputIds.slice(0, 2)), [2, 3], 'tokenized as [CLS] [SEP]')
  const out = model.embed(batch, enc.pooling)
  const ref = out.toFloat32Array()
  out.dispose()
  model.dispose()
  t.ok(Math.max(...Array.from(empty, (x, i) => Math.abs(x - ref[i]))) < 1e-4, "the model's own vector for ''")
  t.same(await enc.encode(''), empty, 'alone: the same vector')
  t.notSame(empty, other)
})
