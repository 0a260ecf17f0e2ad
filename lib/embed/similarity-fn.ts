// sentence-transformers' similarity functions (config_sentence_transformers.json's similarity_fn_name, its
// SimilarityFunction): cosine, dot, and the negative euclidean and manhattan distances, each higher for closer
// vectors, as SentenceTransformer.similarity computes them. A model trained with dot-product scores (msmarco's
// and multi-qa's *-dot-* models) is meant to be compared by the dot product of its unnormalised vectors.
import { checkedRows, cosineMatrix, VectorIndex, type IndexSimilarity, type VectorsInput } from './search.js'
import { cosineSimilarity, dot } from '../util/vectors.js'

export const SIMILARITY_FNS = ['cosine', 'dot', 'euclidean', 'manhattan'] as const
export type SimilarityFn = (typeof SIMILARITY_FNS)[number]

export const isSimilarityFn = (v: unknown): v is SimilarityFn => typeof v === 'string' && (SIMILARITY_FNS as readonly string[]).includes(v)

/** The score a VectorIndex searches a model's vectors by: the dot product for a dot model, else cosine (the distances' too). */
export const searchSimilarity = (fn: SimilarityFn): IndexSimilarity => (fn === 'dot' ? 'dot' : 'cosine')

/** The similarity of two equal-length vectors (checked by the caller). */
export function pairSimilarity(fn: SimilarityFn, a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (fn === 'cosine') return cosineSimilarity(a, b)
  if (fn === 'dot') return dot(a, b)
  let s = 0
  for (let i = 0; i < a.length; i++) s += fn === 'euclidean' ? (a[i] - b[i]) ** 2 : Math.abs(a[i] - b[i])
  return -(fn === 'euclidean' ? Math.sqrt(s) : s)
}

/** The similarities of queries × corpus, one Float32Array per query (cosine and dot by the native GEMM). */
export function similarityMatrix(fn: SimilarityFn, queries: VectorsInput, corpus: VectorsInput, dimension?: number): Float32Array[] {
  if (fn === 'cosine') return cosineMatrix(queries, corpus, dimension)
  if (fn === 'dot') {
    const index = VectorIndex.from(corpus, dimension, { similarityFn: 'dot' })
    try {
      return index.similarity(queries)
    } finally {
      index.dispose()
    }
  }
  const c = checkedRows('corpus', corpus, dimension)
  const q = checkedRows('queries', queries, c.dim)
  return Array.from({ length: q.rows }, (_, i) => {
    const qi = q.data.subarray(i * c.dim, (i + 1) * c.dim)
    return Float32Array.from({ length: c.rows }, (_, j) => pairSimilarity(fn, qi, c.data.subarray(j * c.dim, (j + 1) * c.dim)))
  })
}
