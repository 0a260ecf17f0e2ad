// Hard-negative mining: from (anchor, positive) pairs, (anchor, positive, hard negative) triplets for supervised
// SimCSE, the negatives being corpus sentences a model finds close to the anchor, picked as sentence-transformers'
// mine_hard_negatives picks them (its "triplet" output). The corpus (default: the positives) with the positives
// added, and the distinct anchors, are embedded (anchors as queries, with queryPrefix; the corpus with
// documentPrefix); for each distinct anchor its top rangeMax + P corpus sentences by cosine similarity (by dot
// product with similarityFn 'dot': a dot-product model's) (P: the
// most positives any anchor has) are the candidates, of which its own positives, and its own text (which
// sentence-transformers keeps), are taken out. With s = the lowest similarity of the anchor to one of its
// positives, a candidate stays when
//   score <= s - absoluteMargin,  score <= s - |s| relativeMargin,  score <= maxScore
// (each test only when its option is set). Of those, in order of similarity, ranks [rangeMin, rangeMax) are
// eligible, and the first numNegatives ('top') or a seeded uniform draw of them ('random', then ordered by
// similarity) become one triplet per negative and per positive of the anchor. A pair with none is counted.
// Skipping the closest ranks and a margin keep out "negatives" that are really paraphrases (false negatives),
// which hurt contrastive training.
import { embedQueriesAndDocuments, type PrefixedEmbedOptions } from '../embed/embed-texts.js'
import { VectorIndex, type IndexSimilarity } from '../embed/search.js'
import type { Device } from '../tensor.js'
import { pairSimilarity } from '../embed/similarity-fn.js'
import { permutation } from './sentences.js'

export interface MinePair {
  anchor: string
  positive: string
}

export interface MinedTriplet extends MinePair {
  negative: string
}

/** queryPrefix goes before the anchors, documentPrefix before the corpus and the positives. */
export interface MineOptions extends PrefixedEmbedOptions {
  /** Sentences to draw negatives from (default: the pairs' positives; the positives are added either way). */
  corpus?: readonly string[]
  /** Negatives per anchor (default 3): one triplet each, per positive. */
  numNegatives?: number
  /** Eligible ranks skipped first (default 0). */
  rangeMin?: number
  /**
   * Candidates per anchor before the positives are taken out, and the end of the eligible ranks. Default:
   * rangeMin + numNegatives + P, or rangeMin + 10 numNegatives + P with a margin or maxScore (sentence-transformers').
   */
  rangeMax?: number
  /** Largest similarity a negative may have. */
  maxScore?: number
  /** A negative's similarity must be at most the anchor's lowest positive similarity minus this. */
  absoluteMargin?: number
  /** ... at most that similarity minus its magnitude times this. */
  relativeMargin?: number
  /** 'top' (default): the most similar eligible candidates; 'random': a seeded uniform draw among them. */
  sampling?: 'top' | 'random'
  /** The draw of 'random' (default 42). */
  seed?: number
  /** Where the corpus vectors are searched (default 'cpu'). */
  device?: Device
  /**
   * The similarity the candidates are ranked and filtered by: 'cosine' (default) or 'dot' (a dot-product model's,
   * as sentence-transformers scores with model.similarity); maxScore and absoluteMargin are in its units.
   */
  similarityFn?: IndexSimilarity
}

export interface MineResult {
  /** By anchor (first appearance), then its positives, then the negatives by similarity. */
  triplets: MinedTriplet[]
  /** Distinct (anchor, positive) pairs that got no negative. */
  pairsWithout: number
  /** Mean similarity (similarityFn's) of the distinct pairs' anchors to their positives, and to the negatives mined. */
  meanPositiveScore: number
  meanNegativeScore: number
}

function fail(message: string): never {
  throw new RangeError(`mineHardNegatives: ${message}`)
}

const count = (name: string, v: unknown, min: number) => {
  if (!Number.isSafeInteger(v) || (v as number) < min) fail(`${name} must be an integer >= ${min}, got ${String(v)}`)
  return v as number
}

/** Distinct values in first-appearance order. */
const distinct = <T>(xs: Iterable<T>) => [...new Set(xs)]

/** Mines hard negatives for `pairs` with the sentence vectors of `embed` (see the header). */
export async function mineHardNegatives(
  embed: (texts: string[]) => Promise<Float32Array[]>,
  pairs: readonly MinePair[],
  options: MineOptions = {},
): Promise<MineResult> {
  const numNegatives = count('numNegatives', options.numNegatives ?? 3, 1)
  const rangeMin = count('rangeMin', options.rangeMin ?? 0, 0)
  for (const k of ['maxScore', 'absoluteMargin', 'relativeMargin'] as const)
    if (options[k] !== undefined && !Number.isFinite(options[k])) fail(`${k} must be a finite number, got ${String(options[k])}`)
  const sampling = options.sampling ?? 'top'
  if (sampling !== 'top' && sampling !== 'random') fail(`sampling must be 'top' or 'random', got ${JSON.stringify(sampling)}`)
  const seed = count('seed', options.seed ?? 42, 0)
  count('batchSize', options.batchSize ?? 256, 1)
  if (pairs.length === 0) fail('no pairs')

  // Each distinct anchor once, with its distinct positives in order.
  const positivesOf = new Map<string, string[]>()
  for (const p of pairs) {
    const own = positivesOf.get(p.anchor) ?? positivesOf.set(p.anchor, []).get(p.anchor)!
    if (!own.includes(p.positive)) own.push(p.positive)
  }
  const anchors = [...positivesOf.keys()]
  let maxPositives = 0 // (a loop: spreading hundreds of thousands of anchors into Math.max overflows the stack)
  for (const ps of positivesOf.values()) maxPositives = Math.max(maxPositives, ps.length)
  const filtered = options.maxScore !== undefined || options.absoluteMargin !== undefined || options.relativeMargin !== undefined
  const rangeMax = count(
    'rangeMax',
    options.rangeMax ?? rangeMin + numNegatives * (filtered ? 10 : 1) + maxPositives,
    rangeMin + numNegatives,
  )

  const corpus = distinct([...(options.corpus ?? []), ...pairs.map((p) => p.positive)])
  const at = new Map(corpus.map((s, i) => [s, i]))
  const { queries: anchorVectors, documents: corpusVectors } = await embedQueriesAndDocuments(embed, anchors, corpus, options)

  // One more for an anchor whose own text is in the corpus (taken out too).
  const depth = rangeMax + maxPositives
  const similarityFn = options.similarityFn ?? 'cosine'
  const index = VectorIndex.from(corpusVectors, undefined, { device: options.device ?? 'cpu', similarityFn })
  let hits
  try {
    hits = await index.searchAsync(anchorVectors, { topK: Math.min(corpus.length, depth + 1) })
  } finally {
    index.dispose()
  }

  const triplets: MinedTriplet[] = []
  let pairsWithout = 0,
    positiveSum = 0,
    negativeSum = 0
  anchors.forEach((anchor, q) => {
    const own = positivesOf.get(anchor)!
    const sPos = own.map((p) => pairSimilarity(similarityFn, anchorVectors[q], corpusVectors[at.get(p)!]))
    positiveSum += sPos.reduce((a, b) => a + b, 0)
    const s = Math.min(...sPos)
    const keep = (score: number) =>
      (options.absoluteMargin === undefined || score + options.absoluteMargin <= s) &&
      (options.relativeMargin === undefined || score <= s - Math.abs(s) * options.relativeMargin) &&
      (options.maxScore === undefined || score <= options.maxScore)
    const candidates = hits[q].indices
      .slice(0, depth + (at.has(anchor) ? 1 : 0))
      .map((j, r) => ({ text: corpus[j], score: hits[q].scores[r] }))
    const eligible = candidates.filter((c) => c.text !== anchor && !own.includes(c.text) && keep(c.score)).slice(rangeMin, rangeMax)
    const picked =
      sampling === 'top'
        ? eligible.slice(0, numNegatives)
        : Array.from(permutation(eligible.length, seed, q).subarray(0, numNegatives), (i) => eligible[i]).sort((a, b) => b.score - a.score)
    if (picked.length === 0) pairsWithout += own.length
    for (const positive of own)
      for (const c of picked) {
        triplets.push({ anchor, positive, negative: c.text })
        negativeSum += c.score
      }
  })
  const distinctPairs = [...positivesOf.values()].reduce((n, ps) => n + ps.length, 0)
  return {
    triplets,
    pairsWithout,
    meanPositiveScore: positiveSum / distinctPairs,
    meanNegativeScore: triplets.length ? negativeSum / triplets.length : NaN,
  }
}
