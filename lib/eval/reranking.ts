// Reranking (MTEB's reranking tasks: AskUbuntuDupQuestions, SciDocsRR, StackOverflowDupQuestions, ...): each query
// comes with its candidates, some relevant (positive) and some not (negative); the model orders them by the cosine
// similarity of their vectors to the query's (or the model's own similarity function, similarityFn). Scores: mean average precision (MTEB's main score) and MRR@10 over
// the queries that have both kinds of candidate. Queries take the query prefix, candidates the document prefix (the
// model's prompts, as `encodeQuery` and `encodeDocument`). Files: one query per row (query, positive: a list,
// negative: a list).
import type { Embed } from '../embed/memo-embed.js'
import { embedInBatches } from '../embed/embed-texts.js'
import { pairSimilarity, type SimilarityFn } from '../embed/similarity-fn.js'
import { rerankingMetrics } from './ranking-metrics.js'
import { fileOfSplit, readTable, textCell } from './table.js'

export interface RerankingQuery {
  query: string
  positive: string[]
  negative: string[]
}

export interface RerankingSet {
  name: string
  queries: RerankingQuery[]
}

export interface RerankingResult {
  dataset: string
  /** Queries scored (those with at least one positive and one negative candidate). */
  queries: number
  map: number
  mrr10: number
}

/** A reranking set: a file, or a folder's `split` (default 'test'). */
export async function readRerankingSet(path: string, split = 'test'): Promise<RerankingSet> {
  const file = fileOfSplit(path, split)
  const table = await readTable(file)
  if (table.rows === 0) throw new Error(`${file}: no rows`)
  for (const c of ['query', 'positive', 'negative'])
    if (!table.names.includes(c)) throw new Error(`${file}: no ${c} column (the columns are ${table.names.join(', ') || 'none'})`)
  const [q, p, n] = ['query', 'positive', 'negative'].map((c) => table.column(c))
  const list = (v: unknown, i: number, column: string): string[] => {
    // A single candidate may be stored as a string.
    const items = typeof v === 'string' ? [v] : v === null || v === undefined ? [] : v
    if (!Array.isArray(items)) throw new Error(`${file}: ${table.where(i)}: ${column} must be a list of texts`)
    return items.map((x) => textCell(table, x, i, column))
  }
  const queries = q.map((v, i) => ({
    query: textCell(table, v, i, 'query'),
    positive: list(p[i], i, 'positive'),
    negative: list(n[i], i, 'negative'),
  }))
  return { name: path, queries }
}

export interface RerankingOptions {
  queryPrefix?: string
  documentPrefix?: string
  /** Called after each batch of texts embedded: done so far of the task's total. */
  onProgress?: (p: { done: number; total: number }) => void
  /** How candidates are scored against the query (default 'cosine'; a dot-product model's 'dot', as MTEB's model.similarity). */
  similarityFn?: SimilarityFn
}

/** Embeds every distinct query and candidate once, then ranks each query's candidates. */
export async function evaluateReranking(embed: Embed, set: RerankingSet, options: RerankingOptions = {}): Promise<RerankingResult> {
  const qp = options.queryPrefix ?? ''
  const dp = options.documentPrefix ?? ''
  const docs = [...new Set(set.queries.flatMap((q) => [...q.positive, ...q.negative]))]
  const docIndex = new Map(docs.map((d, i) => [d, i]))
  const progress = { total: set.queries.length + docs.length, done: 0, onProgress: options.onProgress }
  const queryVectors = await embedInBatches(
    embed,
    set.queries.map((q) => qp + q.query),
    progress,
  )
  const docVectors = await embedInBatches(
    embed,
    docs.map((d) => dp + d),
    progress,
  )
  const metrics = rerankingMetrics(
    set.queries.map((q, i) => {
      const candidates = [...q.positive, ...q.negative]
      return {
        scores: candidates.map((d) => pairSimilarity(options.similarityFn ?? 'cosine', queryVectors[i], docVectors[docIndex.get(d)!])),
        relevant: candidates.map((_, k) => k < q.positive.length),
      }
    }),
  )
  return { dataset: set.name, queries: metrics.queries, map: metrics.map, mrr10: metrics.mrr10 }
}
