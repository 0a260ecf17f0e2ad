// Pair classification as sentence-transformers' BinaryClassificationEvaluator and MTEB's PairClassification score
// it: each pair of sentences has a 0/1 label (duplicate / paraphrase or not) and a model score; the metrics are
// those of the best single threshold on the score.
// - accuracy and F1 (with its precision and recall): sentence-transformers' find_best_acc_and_threshold and
//   find_best_f1_and_threshold. Sort the pairs from most to least similar, cut after each position, keep the
//   first cut with the best value and report the threshold midway between the scores on either side of it.
//   Unlike those functions, a cut falls only between different scores, so that tied pairs always land on the
//   same side, as a threshold would put them; and a metric no cut reaches has a NaN threshold (theirs: -1 or 0).
// - ap: scikit-learn's average_precision_score of the labels against the similarity (ties as scikit-learn).
// - pairSimilarities: the four scores MTEB computes per pair (cosine, dot, Euclidean and Manhattan distance).
import { averagePrecision } from './ranking-metrics.js'
import { cosineSimilarity, dot } from '../util/vectors.js'

export interface PairMetrics {
  /** Best accuracy of "similar iff the score is past the threshold" (0 when there is no cut). */
  accuracy: number
  /** The threshold reaching it, in the score's own units (NaN when all scores are equal: there is no cut). */
  accuracyThreshold: number
  /** Best F1 of the positive class (0, with precision and recall 0, when no cut has a positive above it). */
  f1: number
  /** The threshold reaching it (NaN when no cut puts a positive pair on the similar side). */
  f1Threshold: number
  /** Precision at the best F1's threshold. */
  precision: number
  /** Recall at the best F1's threshold. */
  recall: number
  /** Average precision of the labels ranked by similarity. */
  ap: number
}

/**
 * The pair-classification metrics of scores against 0/1 labels. Scores are similarities when higherIsMoreSimilar,
 * distances otherwise (a pair is predicted similar when its distance is below the threshold); thresholds are
 * reported in the scores' own units either way.
 */
export function pairMetrics(scores: ArrayLike<number>, labels: ArrayLike<number>, higherIsMoreSimilar: boolean): PairMetrics {
  if (scores.length !== labels.length) throw new Error(`pairMetrics: ${scores.length} scores but ${labels.length} labels`)
  const positive = checkLabels(labels)
  // Distances are negated so that one sweep, from most to least similar, serves both kinds of score.
  const sign = higherIsMoreSimilar ? 1 : -1
  const similarity = Float64Array.from(scores, (s, i) => {
    if (Number.isNaN(s)) throw new Error(`pairMetrics: score ${i} is NaN`)
    return sign * s
  })
  const order = Array.from({ length: similarity.length }, (_, i) => i).sort((a, b) =>
    similarity[a] === similarity[b] ? 0 : similarity[a] > similarity[b] ? -1 : 1,
  )
  const accuracy = bestAccuracy(similarity, positive, order)
  const f1 = bestF1(similarity, positive, order)
  return {
    accuracy: accuracy.accuracy,
    accuracyThreshold: inOwnUnits(accuracy.threshold, sign),
    f1: f1.f1,
    f1Threshold: inOwnUnits(f1.threshold, sign),
    precision: f1.precision,
    recall: f1.recall,
    ap: averagePrecision(similarity, positive),
  }
}

/** A threshold on the similarity, back in the scores' units; + 0 turns the -0 that negating 0 gives into 0. */
function inOwnUnits(threshold: number, sign: number): number {
  return sign * threshold + 0
}

/** The labels as booleans, after checking that each is 0 or 1 and that at least one is 1. */
function checkLabels(labels: ArrayLike<number>): boolean[] {
  const positive = Array.from(labels, (label, i) => {
    if (label !== 0 && label !== 1) throw new Error(`pairMetrics: label ${i} is ${label}; labels must be 0 or 1`)
    return label === 1
  })
  if (!positive.includes(true)) throw new Error('pairMetrics: no positive label (1) among the pairs')
  return positive
}

/**
 * Calls visit for each cut of the pairs sorted by similarity (order), after position i when the next pair is less
 * similar: `above` pairs are then predicted similar, `positivesAbove` of them rightly, at the midway threshold.
 */
function forEachCut(
  similarity: Float64Array,
  positive: boolean[],
  order: number[],
  visit: (above: number, positivesAbove: number, threshold: number) => void,
): void {
  let positivesAbove = 0
  for (let i = 0; i + 1 < order.length; i++) {
    if (positive[order[i]]) positivesAbove++
    const here = similarity[order[i]]
    const next = similarity[order[i + 1]]
    if (next !== here) visit(i + 1, positivesAbove, (here + next) / 2)
  }
}

function bestAccuracy(similarity: Float64Array, positive: boolean[], order: number[]): { accuracy: number; threshold: number } {
  const n = order.length
  const negatives = positive.filter((p) => !p).length
  let best = { accuracy: 0, threshold: NaN }
  forEachCut(similarity, positive, order, (above, positivesAbove, threshold) => {
    const negativesBelow = negatives - (above - positivesAbove)
    const accuracy = (positivesAbove + negativesBelow) / n
    if (accuracy > best.accuracy) best = { accuracy, threshold }
  })
  return best
}

function bestF1(
  similarity: Float64Array,
  positive: boolean[],
  order: number[],
): { f1: number; precision: number; recall: number; threshold: number } {
  const positives = positive.filter((p) => p).length
  let best = { f1: 0, precision: 0, recall: 0, threshold: NaN }
  forEachCut(similarity, positive, order, (above, positivesAbove, threshold) => {
    if (positivesAbove === 0) return
    // 2PR/(P+R) written as 2TP/(retrieved + positives): the same value in one rounding, so that cuts of equal F1
    // compare equal and the first of them is kept, as intended.
    const f1 = (2 * positivesAbove) / (above + positives)
    if (f1 > best.f1) best = { f1, precision: positivesAbove / above, recall: positivesAbove / positives, threshold }
  })
  return best
}

export interface PairSimilarities {
  /** Cosine similarity (0 when either vector is all zeros). */
  cosine: Float64Array
  /** Dot product. */
  dot: Float64Array
  /** Euclidean distance: smaller is more similar. */
  euclidean: Float64Array
  /** Manhattan (L1) distance: smaller is more similar. */
  manhattan: Float64Array
}

/** The four scores of each pair (a[i], b[i]), computed in float64. */
export function pairSimilarities(a: Float32Array[], b: Float32Array[]): PairSimilarities {
  if (a.length !== b.length) throw new Error(`pairSimilarities: ${a.length} first vectors but ${b.length} second vectors`)
  const out = {
    cosine: new Float64Array(a.length),
    dot: new Float64Array(a.length),
    euclidean: new Float64Array(a.length),
    manhattan: new Float64Array(a.length),
  }
  for (let i = 0; i < a.length; i++) {
    const x = a[i]
    const y = b[i]
    if (x.length !== y.length) throw new Error(`pairSimilarities: pair ${i} has vectors of lengths ${x.length} and ${y.length}`)
    out.cosine[i] = cosineSimilarity(x, y)
    out.dot[i] = dot(x, y)
    let squares = 0
    let absolutes = 0
    for (let d = 0; d < x.length; d++) {
      const diff = x[d] - y[d]
      squares += diff * diff
      absolutes += Math.abs(diff)
    }
    out.euclidean[i] = Math.sqrt(squares)
    out.manhattan[i] = absolutes
  }
  return out
}
