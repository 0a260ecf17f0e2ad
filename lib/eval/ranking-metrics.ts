// Reranking evaluation as MTEB's RerankingEvaluator scores it: each query has a list of candidates, some relevant,
// ranked by the model's similarity to the query.
// - averagePrecision: scikit-learn's average_precision_score for one query, i.e. Σ (R_n − R_{n−1}) P_n over the
//   distinct score values from the highest down, where all candidates tied at a score enter together.
// - reciprocalRankAt: MRR@k's per-query term, 1 / the rank of the first relevant candidate within the top k.
// - rerankingMetrics: MAP and MRR@10 averaged over the queries that have both a relevant and an irrelevant
//   candidate (MTEB skips the others, whose scores say nothing about the model).

/**
 * Average precision of scores (higher = more relevant) against relevance, with scikit-learn's treatment of ties:
 * each distinct score is one threshold, at which all the candidates scoring at least that much are retrieved.
 */
export function averagePrecision(scores: ArrayLike<number>, relevant: ArrayLike<boolean>): number {
  checkLengths(scores, relevant, 'averagePrecision')
  const positives = countTrue(relevant)
  if (positives === 0) throw new Error('averagePrecision: no relevant candidate (average precision is undefined)')
  const order = descendingOrder(scores)
  let ap = 0
  let truePositives = 0
  let retrieved = 0
  let previousTruePositives = 0
  for (let i = 0; i < order.length; i++) {
    retrieved++
    if (relevant[order[i]]) truePositives++
    // Only at the end of a run of tied scores: the threshold takes the whole run or none of it.
    if (i + 1 < order.length && scores[order[i + 1]] === scores[order[i]]) continue
    ap += ((truePositives - previousTruePositives) / positives) * (truePositives / retrieved)
    previousTruePositives = truePositives
  }
  return ap
}

/**
 * 1 / rank of the first relevant candidate among the k best scores (descending, the lower index first on a tie),
 * 0 when none of the top k is relevant.
 */
export function reciprocalRankAt(scores: ArrayLike<number>, relevant: ArrayLike<boolean>, k: number): number {
  checkLengths(scores, relevant, 'reciprocalRankAt')
  if (!Number.isInteger(k) || k < 1) throw new Error(`reciprocalRankAt: k must be a positive integer, got ${k}`)
  const order = descendingOrder(scores)
  for (let rank = 0; rank < Math.min(k, order.length); rank++) if (relevant[order[rank]]) return 1 / (rank + 1)
  return 0
}

export interface RerankingQuery {
  /** The model's score of each candidate (higher = more relevant). */
  scores: ArrayLike<number>
  /** Whether each candidate is relevant. */
  relevant: ArrayLike<boolean>
}

export interface RerankingMetrics {
  /** Mean average precision over the kept queries. */
  map: number
  /** Mean reciprocal rank at 10 over the kept queries. */
  mrr10: number
  /** How many queries were kept (those with at least one relevant and one irrelevant candidate). */
  queries: number
}

/** MAP and MRR@10 over the queries, skipping those with no relevant or no irrelevant candidate, as MTEB does. */
export function rerankingMetrics(queries: RerankingQuery[]): RerankingMetrics {
  let apSum = 0
  let rrSum = 0
  let kept = 0
  for (const query of queries) {
    checkLengths(query.scores, query.relevant, 'rerankingMetrics')
    const positives = countTrue(query.relevant)
    if (positives === 0 || positives === query.relevant.length) continue
    apSum += averagePrecision(query.scores, query.relevant)
    rrSum += reciprocalRankAt(query.scores, query.relevant, 10)
    kept++
  }
  if (kept === 0) throw new Error(`rerankingMetrics: none of the ${queries.length} queries has both a relevant and an irrelevant candidate`)
  return { map: apSum / kept, mrr10: rrSum / kept, queries: kept }
}

function checkLengths(scores: ArrayLike<number>, relevant: ArrayLike<boolean>, fn: string): void {
  if (scores.length !== relevant.length) throw new Error(`${fn}: ${scores.length} scores but ${relevant.length} relevance labels`)
  for (let i = 0; i < scores.length; i++) if (Number.isNaN(scores[i])) throw new Error(`${fn}: score ${i} is NaN`)
}

function countTrue(flags: ArrayLike<boolean>): number {
  let count = 0
  for (let i = 0; i < flags.length; i++) if (flags[i]) count++
  return count
}

/** Indices by score, highest first; the sort is stable, so tied scores keep their index order (±Infinity included). */
function descendingOrder(scores: ArrayLike<number>): number[] {
  return Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => (scores[a] === scores[b] ? 0 : scores[a] > scores[b] ? -1 : 1))
}
