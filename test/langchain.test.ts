// The LangChain.js Embeddings adapter. @langchain/core is not installed here (not in the offline npm
// cache), so its shape is checked structurally: EmbeddingsInterface below is copied from
// @langchain/core/dist/embeddings.d.ts, and `npm run lint` type-checks this file against it.
import t from 'tap'
import { rmSync } from 'node:fs'
import { LangChainEmbeddings, SentenceEncoder } from '../lib/index.js'
import { saveTinyModel } from './helpers/encoder-tiny-model.js'

/** @langchain/core's EmbeddingsInterface (what its VectorStore and retrievers take). */
interface EmbeddingsInterface {
  embedDocuments(documents: string[]): Promise<number[][]>
  embedQuery(document: string): Promise<number[]>
}

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
