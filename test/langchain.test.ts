// The LangChain.js Embeddings adapter, against the real @langchain/core (a dev dependency): the adapter
// type-checks as its EmbeddingsInterface (`npm run lint` runs tsc over this file), and a LangChain
// VectorStore (core's in-memory FakeVectorStore, a VectorStore subclass) built on it retrieves what
// encoder.search() finds, with the same cosine scores.
import t from 'tap'
import { rmSync } from 'node:fs'
import type { EmbeddingsInterface } from '@langchain/core/embeddings'
import { FakeVectorStore } from '@langchain/core/utils/testing'
import { VectorStore } from '@langchain/core/vectorstores'
import { LangChainEmbeddings, SentenceEncoder } from '../lib/index.js'
import { saveTinyModel } from './helpers/encoder-tiny-model.js'

t.test('asLangChainEmbeddings: number arrays equal to encode()', async (t) => {
  const dir = await saveTinyModel()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
  t.teardown(() => enc.close())
  const embeddings: EmbeddingsInterface = enc.asLangChainEmbeddings({ batchSize: 2 }) // the type check
  t.ok(embeddings instanceof LangChainEmbeddings)
  const docs = ['the cat sat', 'a dog runs fast', 'the river']
  const got = await embeddings.embedDocuments(docs)
  const want = await enc.encode(docs)
  t.equal(got.length, 3)
  t.ok(Array.isArray(got[0]) && typeof got[0][0] === 'number', 'plain number arrays')
  t.same(
    got,
    want.map((v) => Array.from(v)),
    'the encoder vectors',
  )
  t.same(await embeddings.embedQuery('the river'), Array.from(want[2]))
  t.same(await embeddings.embedDocuments([]), [], 'no documents: no vectors')
  t.throws(() => enc.asLangChainEmbeddings({ batchSize: 0 }), /asLangChainEmbeddings: batchSize must be a positive integer/)
  t.throws(() => enc.asLangChainEmbeddings({ batch: 2 } as object), /unknown option 'batch'/)
})

t.test('a LangChain vector store and retriever on the adapter find what encoder.search finds', async (t) => {
  const dir = await saveTinyModel({ seed: 4, pooling: 'mean' })
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const enc = await SentenceEncoder.load(dir, { device: 'cpu' })
  t.teardown(() => enc.close())
  const corpus = ['the cat sat on the mat', 'a dog runs fast', 'the river is big', 'a small red house', 'the green tree', 'one blue model']
  const store = await FakeVectorStore.fromTexts(
    corpus,
    corpus.map((_, i) => ({ i })),
    enc.asLangChainEmbeddings(),
  )
  t.ok(store instanceof VectorStore, "a LangChain VectorStore (core's base class)")
  for (const query of ['the cat', 'a big river', 'red house']) {
    const [hits] = await enc.search([query], corpus, { topK: 3 })
    const found = await store.similaritySearchWithScore(query, 3)
    t.same(
      found.map(([doc]) => doc.metadata.i),
      Array.from(hits.indices),
      `${query}: the same 3 documents, in order`,
    )
    for (let k = 0; k < 3; k++) t.ok(Math.abs(found[k][1] - hits.scores[k]) < 1e-5, `${query}: hit ${k} cosine ${found[k][1].toFixed(6)}`)
  }
  const retrieved = await store.asRetriever({ k: 2 }).invoke('the cat')
  const { indices } = await enc.search('the cat', corpus, { topK: 2 })
  t.same(
    retrieved.map((d) => d.pageContent),
    Array.from(indices, (i) => corpus[i]),
    'the retriever returns the documents encoder.search ranks first',
  )
})
