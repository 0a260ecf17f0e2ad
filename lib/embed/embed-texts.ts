// Embedding the two sides of a search, as retrieval evaluation and hard-negative mining do: documents with one
// prefix (a model's document prompt), queries with another (its query prompt), in batches of similar length
// (little padding), with progress over both.
export interface PrefixedEmbedOptions {
  /** Prepended to every query (e5's 'query: ', ...). */
  queryPrefix?: string
  /** Prepended to every document (e5's 'passage: ', ...). */
  documentPrefix?: string
  /** Texts per embed call (default 256). */
  batchSize?: number
  /** Called as texts are embedded: documents and queries done so far of `total`. */
  onProgress?: (p: { done: number; total: number }) => void
}

/** Progress over several embed calls: `done` of `total` texts, reported after every batch. */
export interface EmbedProgress {
  total: number
  done: number
  onProgress?: (p: { done: number; total: number }) => void
}

/**
 * The vectors of `texts` in input order, embedded in batches of `batchSize` (256) texts of similar length (little
 * padding), each batch counted into `progress`.
 */
export async function embedInBatches(
  embed: (texts: string[]) => Promise<Float32Array[]>,
  texts: readonly string[],
  progress?: EmbedProgress,
  batchSize = 256,
): Promise<Float32Array[]> {
  const order = texts.map((_, i) => i).sort((a, b) => texts[a].length - texts[b].length)
  const out: Float32Array[] = new Array(texts.length)
  for (let s = 0; s < order.length; s += batchSize) {
    const idx = order.slice(s, s + batchSize)
    const vectors = await embed(idx.map((i) => texts[i]))
    if (vectors.length !== idx.length) throw new Error(`embed returned ${vectors.length} vectors for ${idx.length} texts`)
    idx.forEach((i, k) => (out[i] = vectors[k]))
    if (progress) {
      progress.done += idx.length
      progress.onProgress?.({ done: progress.done, total: progress.total })
    }
  }
  return out
}

/** The vectors of `documents` then `queries` (each in input order) by `embed`, prefixed as the options say. */
export async function embedQueriesAndDocuments(
  embed: (texts: string[]) => Promise<Float32Array[]>,
  queries: readonly string[],
  documents: readonly string[],
  options: PrefixedEmbedOptions = {},
): Promise<{ queries: Float32Array[]; documents: Float32Array[] }> {
  const progress = { total: queries.length + documents.length, done: 0, onProgress: options.onProgress }
  const docPrefix = options.documentPrefix ?? '',
    queryPrefix = options.queryPrefix ?? ''
  const documentVectors = await embedInBatches(
    embed,
    documents.map((d) => docPrefix + d),
    progress,
    options.batchSize,
  )
  const queryVectors = await embedInBatches(
    embed,
    queries.map((q) => queryPrefix + q),
    progress,
    options.batchSize,
  )
  return { queries: queryVectors, documents: documentVectors }
}
