// Hard-negative mining: from (anchor, positive) pairs, (anchor, positive, hard negative) triplets for supervised
// SimCSE, the negatives being corpus sentences a model finds close to the anchor, as sentence-transformers'
// mine_hard_negatives picks them. For each distinct anchor, the corpus (default: the distinct positives) is
// ranked by cosine similarity to it; the anchor's own text and every positive it is paired with are taken out;
// of the rest, ranks [rangeMin, rangeMax) are candidates, and for each pair a candidate is eligible when
//   score <= maxScore,  score <= s_pos - absoluteMargin,  score <= s_pos * (1 - relativeMargin)
// (each test only when its option is set; s_pos = cos(anchor, that pair's positive)). Up to numNegatives
// eligible candidates become triplets: the most similar ('top') or a seeded uniform draw ('random'). A pair
// with none is left out and counted. Skipping the closest ranks and a margin keep out "negatives" that are
// really paraphrases (false negatives), which hurt contrastive training.
import { VectorIndex } from '../embed/search.js'
import type { Device } from '../tensor.js'
import { cosineSimilarity } from '../util/vectors.js'
import { permutation } from './sentences.js'

export interface MinePair {
  anchor: string
  positive: string
}

export interface MinedTriplet extends MinePair {
  negative: string
}

export interface MineOptions {
  /** Sentences to draw negatives from (default: the pairs' distinct positives). */
  corpus?: readonly string[]
  /** Negatives per pair (default 3): one triplet each. */
  numNegatives?: number
  /** Ranks skipped first, after the anchor and its positives are taken out (default 0). */
  rangeMin?: number
  /** Ranks considered: [rangeMin, rangeMax) (default 100). */
  rangeMax?: number
  /** Largest similarity a negative may have. */
  maxScore?: number
  /** A negative's similarity must be at most the positive's minus this. */
  absoluteMargin?: number
  /** A negative's similarity must be at most the positive's times (1 - this). */
  relativeMargin?: number
  /** 'top' (default): the most similar eligible candidates; 'random': a seeded uniform draw among them. */
  sampling?: 'top' | 'random'
  /** The draw of 'random' (default 42). */
  seed?: number
  /** Texts per embed call (default 256). */
  batchSize?: number
  /** Where the corpus vectors are searched (default 'cpu'). */
  device?: Device
  /** Called as texts are embedded: done of total. */
  onProgress?: (p: { done: number; total: number }) => void
}

export interface MineResult {
  triplets: MinedTriplet[]
  /** Pairs that got no negative (none eligible). */
  pairsWithout: number
  /** Mean cosine similarity of the pairs' anchors to their positives, and to the negatives mined. */
  meanPositiveScore: number
  meanNegativeScore: number
}

function fail(message: string): never {
  throw new RangeError(`mineHardNegatives: ${message}`)
}

function checkOptions(
  o: MineOptions,
): Required<Pick<MineOptions, 'numNegatives' | 'rangeMin' | 'rangeMax' | 'sampling' | 'seed' | 'batchSize'>> {
  const count = (name: string, v: unknown, min: number) => {
    if (!Number.isSafeInteger(v) || (v as number) < min) fail(`${name} must be an integer >= ${min}, got ${String(v)}`)
    return v as number
  }
  const numNegatives = count('numNegatives', o.numNegatives ?? 3, 1)
  const rangeMin = count('rangeMin', o.rangeMin ?? 0, 0)
  const rangeMax = count('rangeMax', o.rangeMax ?? 100, rangeMin + 1)
  for (const k of ['maxScore', 'absoluteMargin', 'relativeMargin'] as const)
    if (o[k] !== undefined && !Number.isFinite(o[k])) fail(`${k} must be a finite number, got ${String(o[k])}`)
  const sampling = o.sampling ?? 'top'
  if (sampling !== 'top' && sampling !== 'random') fail(`sampling must be 'top' or 'random', got ${JSON.stringify(sampling)}`)
  const seed = count('seed', o.seed ?? 42, 0)
  const batchSize = count('batchSize', o.batchSize ?? 256, 1)
  return { numNegatives, rangeMin, rangeMax, sampling, seed, batchSize }
}

/** Mines hard negatives for `pairs` with the sentence vectors of `embed` (see the header). */
export async function mineHardNegatives(
  embed: (texts: string[]) => Promise<Float32Array[]>,
  pairs: readonly MinePair[],
  options: MineOptions = {},
): Promise<MineResult> {
  const o = checkOptions(options)
  if (pairs.length === 0) fail('no pairs')
  const corpus = [...new Set(options.corpus ?? pairs.map((p) => p.positive))]
  if (corpus.length === 0) fail('an empty corpus')
  // Each distinct anchor once, with the positives it is paired with.
  const anchors = new Map<string, Set<string>>()
  for (const p of pairs) (anchors.get(p.anchor) ?? anchors.set(p.anchor, new Set()).get(p.anchor)!).add(p.positive)
  const anchorList = [...anchors.keys()]
  const positives = [...new Set(pairs.map((p) => p.positive))]

  const texts = [...corpus, ...anchorList, ...positives]
  let done = 0
  const vectors: Float32Array[] = []
  for (let s = 0; s < texts.length; s += o.batchSize) {
    const chunk = texts.slice(s, s + o.batchSize)
    const out = await embed(chunk)
    if (out.length !== chunk.length) fail(`embed returned ${out.length} vectors for ${chunk.length} texts`)
    vectors.push(...out)
    done += chunk.length
    options.onProgress?.({ done, total: texts.length })
  }
  const corpusVectors = vectors.slice(0, corpus.length)
  const anchorVectors = vectors.slice(corpus.length, corpus.length + anchorList.length)
  const positiveVectors = new Map(positives.map((p, i) => [p, vectors[corpus.length + anchorList.length + i]]))

  // Deep enough that rangeMax candidates remain after taking out the anchor and its positives.
  const maxExcluded = 1 + Math.max(...[...anchors.values()].map((s) => s.size))
  const topK = Math.min(corpus.length, o.rangeMax + maxExcluded)
  const index = VectorIndex.from(corpusVectors, undefined, { device: options.device ?? 'cpu' })
  let hits
  try {
    hits = await index.searchAsync(anchorVectors, { topK })
  } finally {
    index.dispose()
  }

  const triplets: MinedTriplet[] = []
  let pairsWithout = 0,
    positiveSum = 0,
    negativeSum = 0
  const anchorAt = new Map(anchorList.map((a, i) => [a, i]))
  pairs.forEach((p, pairIndex) => {
    const a = anchorAt.get(p.anchor)!
    const own = anchors.get(p.anchor)!
    const sPos = cosineSimilarity(anchorVectors[a], positiveVectors.get(p.positive)!)
    positiveSum += sPos
    const ranked = hits[a].indices
      .map((j, r) => ({ text: corpus[j], score: hits[a].scores[r] }))
      .filter((c) => c.text !== p.anchor && !own.has(c.text))
    const eligible = ranked
      .slice(o.rangeMin, o.rangeMax)
      .filter(
        (c) =>
          (options.maxScore === undefined || c.score <= options.maxScore) &&
          (options.absoluteMargin === undefined || c.score <= sPos - options.absoluteMargin) &&
          (options.relativeMargin === undefined || c.score <= sPos * (1 - options.relativeMargin)),
      )
    if (eligible.length === 0) {
      pairsWithout++
      return
    }
    const picked =
      o.sampling === 'top'
        ? eligible.slice(0, o.numNegatives)
        : Array.from(permutation(eligible.length, o.seed, pairIndex).subarray(0, o.numNegatives), (i) => eligible[i])
    for (const c of picked) {
      triplets.push({ anchor: p.anchor, positive: p.positive, negative: c.text })
      negativeSum += c.score
    }
  })
  return {
    triplets,
    pairsWithout,
    meanPositiveScore: positiveSum / pairs.length,
    meanNegativeScore: triplets.length ? negativeSum / triplets.length : NaN,
  }
}
