// Retrieval evaluation as BEIR and MTEB score it (pytrec_eval's trec_eval measures, BEIR's MRR): embed the
// corpus and the judged queries, rank the corpus by cosine similarity for each query (exact search), and
// average each query's measures at the cut-offs. Per query, with its ranked list d_1, d_2, ... (the top
// max(K) documents), rel(d) its qrels grade (0 when unjudged) and R the number of documents it judges
// relevant (grade >= 1):
//   nDCG@k      sum_{i<=k} rel(d_i) / log2(i + 1), over the same sum of its grades sorted best first
//               (linear gains, as trec_eval's ndcg_cut; 0 when it judges nothing relevant)
//   MAP@k       sum over relevant d_i, i <= k, of (relevant among d_1..d_i) / i, divided by R (map_cut)
//   Recall@k    relevant among d_1..d_k, divided by R
//   P@k         relevant among d_1..d_k, divided by k
//   MRR@k       1 / the rank of the first relevant d_i, i <= k (0 when none)
// A document whose id equals the query's is dropped from its ranking first (BEIR's and MTEB's default,
// for the datasets that hold their queries in the corpus: ArguAna, Quora, ...). Equal scores rank as
// trec_eval ranks them: the greater document id first. The headline number is nDCG@10.
import { embedQueriesAndDocuments, type PrefixedEmbedOptions } from '../embed/embed-texts.js'
import { BinaryIndex } from '../embed/binary-index.js'
import { VectorIndex, type IndexSimilarity } from '../embed/search.js'
import type { Device } from '../tensor.js'
import type { RetrievalDataset } from './beir.js'
import type { EmbedFn } from './sts.js'

/** The cut-offs reported (BEIR's, without 1000). */
export const RETRIEVAL_CUTOFFS = [1, 3, 5, 10, 100] as const

export type RetrievalMeasure = 'ndcg' | 'map' | 'recall' | 'precision' | 'mrr'
export const RETRIEVAL_MEASURES: readonly RetrievalMeasure[] = ['ndcg', 'map', 'recall', 'precision', 'mrr']

/** measure -> cut-off -> its mean over the queries. */
export type RetrievalScores = Record<RetrievalMeasure, Record<number, number>>

export interface RetrievalResult {
  dataset: string
  split: string
  queries: number
  documents: number
  /** Judged documents that the corpus lacks (relevant, never retrieved). */
  unknownDocuments: number
  /**
   * How the documents were ranked: 'exact' (cosine), 'exact, dot product' (similarityFn 'dot'), 'binary' (Hamming
   * distance of the signs), 'binary, rescore N'.
   */
  search: string
  /** nDCG@10, the headline number of BEIR and MTEB. */
  ndcgAt10: number
  scores: RetrievalScores
}

export interface RetrievalEvalOptions extends PrefixedEmbedOptions {
  /** Drop a document whose id is the query's from its ranking (default true, as BEIR and MTEB). */
  ignoreIdenticalIds?: boolean
  /** Where the corpus vectors are searched (default 'cpu'). */
  device?: Device
  /**
   * The exact search's score: 'cosine' (default) or 'dot', a dot-product model's similarity, by which MTEB ranks
   * its documents (SentenceTransformer.similarity).
   */
  similarityFn?: IndexSimilarity
  /**
   * Rank by a BinaryIndex of the documents' signs instead of exact cosine search: what a binary vector store keeps of
   * the measures. `rescore`: its oversampling (0: Hamming order; BinarySearchOptions.rescore); `byVectors`: the
   * candidates rescored by the documents' vectors rather than their signs (rescoreWith).
   */
  binary?: { rescore: number; byVectors?: boolean }
}

/** One query's ranked document ids, best first. */
export type Ranking = readonly string[]

/** The measures of one query at every cut-off (see the header), from its ranking and its judgements. */
export function queryScores(
  ranking: Ranking,
  judged: ReadonlyMap<string, number>,
  cutoffs: readonly number[] = RETRIEVAL_CUTOFFS,
): RetrievalScores {
  const out = emptyScores(cutoffs)
  const relevant = [...judged.values()].filter((g) => g >= 1).length
  const ideal = [...judged.values()].filter((g) => g > 0).sort((a, b) => b - a)
  for (const k of cutoffs) {
    let dcg = 0,
      idcg = 0,
      hits = 0,
      ap = 0,
      rr = 0
    for (let i = 0; i < Math.min(k, ranking.length); i++) {
      const grade = judged.get(ranking[i]) ?? 0
      if (grade > 0) dcg += grade / Math.log2(i + 2)
      if (grade >= 1) {
        hits++
        ap += hits / (i + 1)
        if (rr === 0) rr = 1 / (i + 1)
      }
    }
    for (let i = 0; i < Math.min(k, ideal.length); i++) idcg += ideal[i] / Math.log2(i + 2)
    out.ndcg[k] = idcg > 0 ? dcg / idcg : 0
    out.map[k] = relevant > 0 ? ap / relevant : 0
    out.recall[k] = relevant > 0 ? hits / relevant : 0
    out.precision[k] = hits / k
    out.mrr[k] = rr
  }
  return out
}

function emptyScores(cutoffs: readonly number[]): RetrievalScores {
  const zeros = () => Object.fromEntries(cutoffs.map((k) => [k, 0])) as Record<number, number>
  return { ndcg: zeros(), map: zeros(), recall: zeros(), precision: zeros(), mrr: zeros() }
}

/** The mean of each measure over queries. */
export function meanScores(perQuery: RetrievalScores[], cutoffs: readonly number[] = RETRIEVAL_CUTOFFS): RetrievalScores {
  const out = emptyScores(cutoffs)
  for (const s of perQuery) for (const m of RETRIEVAL_MEASURES) for (const k of cutoffs) out[m][k] += s[m][k] / perQuery.length
  return out
}

/** Scores `embed` on a retrieval dataset (readBeirDataset): the measures of the header, averaged over its queries. */
export async function evaluateRetrieval(
  embed: EmbedFn,
  data: RetrievalDataset,
  options: RetrievalEvalOptions = {},
): Promise<RetrievalResult> {
  const ignoreIdentical = options.ignoreIdenticalIds ?? true
  const { queries: queryVectors, documents: docVectors } = await embedQueriesAndDocuments(
    embed,
    data.queries.map((q) => q.text),
    data.corpus.map((d) => d.text),
    options,
  )
  const depth = Math.max(...RETRIEVAL_CUTOFFS)
  // One more hit than the deepest cut-off, for the query's own document when the corpus holds it.
  const topK = Math.min(data.corpus.length, depth + (ignoreIdentical ? 1 : 0))
  const binary = options.binary
  const index = binary
    ? BinaryIndex.from(docVectors)
    : VectorIndex.from(docVectors, undefined, { device: options.device ?? 'cpu', similarityFn: options.similarityFn ?? 'cosine' })
  try {
    const hits =
      index instanceof BinaryIndex
        ? await index.searchAsync(queryVectors, {
            topK,
            rescore: binary!.rescore,
            ...(binary!.byVectors ? { rescoreWith: docVectors } : {}),
          })
        : await index.searchAsync(queryVectors, { topK })
    const perQuery = data.queries.map((q, qi) => {
      const ranked = hits[qi].indices
        .map((d, r) => ({ id: data.corpus[d].id, score: hits[qi].scores[r] }))
        .filter((h) => !(ignoreIdentical && h.id === q.id))
        // trec_eval's order: score, then the greater id first.
        .sort((a, b) => b.score - a.score || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
        .slice(0, depth)
      return queryScores(
        ranked.map((h) => h.id),
        data.qrels.get(q.id)!,
      )
    })
    const scores = meanScores(perQuery)
    return {
      dataset: data.dir,
      split: data.split,
      queries: data.queries.length,
      documents: data.corpus.length,
      unknownDocuments: data.unknownDocuments,
      search: !binary
        ? options.similarityFn === 'dot'
          ? 'exact, dot product'
          : 'exact'
        : binary.rescore > 0
          ? `binary, rescore ${binary.rescore}${binary.byVectors ? ' by vectors' : ''}`
          : 'binary',
      ndcgAt10: scores.ndcg[10],
      scores,
    }
  } finally {
    if (index instanceof VectorIndex) index.dispose()
  }
}
