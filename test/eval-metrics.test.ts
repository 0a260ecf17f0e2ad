// MTEB-style evaluation metrics: V-measure and k-means (clustering), best-threshold accuracy / F1 / AP (pair
// classification), MAP and MRR@10 (reranking). Each is checked against hand-computed values, values from
// scikit-learn's documentation, and a brute-force reference written here from the definitions.
import t from 'tap'
import { kMeans, vMeasure } from '../lib/eval/clustering-metrics.js'
import { pairMetrics, pairSimilarities } from '../lib/eval/pair-metrics.js'
import { averagePrecision, reciprocalRankAt, rerankingMetrics } from '../lib/eval/ranking-metrics.js'

/** A seeded LCG (Numerical Recipes constants), independent of the PRNG inside kMeans. */
function lcg(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    return state / 4294967296
  }
}

function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random())
}

const close = (a: number, b: number, eps = 1e-12) => Math.abs(a - b) <= eps

// ---------------------------------------------------------------------------------------------------------------
// V-measure

/** H(C), H(C|K) etc. straight from the definitions, by a double loop over the pairs of (class, cluster) labels. */
function referenceVMeasure(truth: number[], predicted: number[]) {
  const n = truth.length
  const classes = [...new Set(truth)]
  const clusters = [...new Set(predicted)]
  const size = (labels: number[], label: number) => labels.filter((l) => l === label).length
  const entropy = (labels: number[], values: number[]) =>
    -values.reduce((h, v) => h + (size(labels, v) / n) * Math.log(size(labels, v) / n), 0)
  let classGivenCluster = 0
  let clusterGivenClass = 0
  for (const c of classes)
    for (const k of clusters) {
      const nck = truth.filter((l, i) => l === c && predicted[i] === k).length
      if (nck === 0) continue
      classGivenCluster -= (nck / n) * Math.log(nck / size(predicted, k))
      clusterGivenClass -= (nck / n) * Math.log(nck / size(truth, c))
    }
  const hc = entropy(truth, classes)
  const hk = entropy(predicted, clusters)
  const homogeneity = hc === 0 ? 1 : 1 - classGivenCluster / hc
  const completeness = hk === 0 ? 1 : 1 - clusterGivenClass / hk
  const v = homogeneity + completeness === 0 ? 0 : (2 * homogeneity * completeness) / (homogeneity + completeness)
  return { homogeneity, completeness, vMeasure: v }
}

t.test('vMeasure: hand-computed and scikit-learn documented values', async (t) => {
  // H(C) = ln 2, H(K) = 1.5 ln 2, I = ln 2: h = 1, c = 2/3, v = 0.8.
  const a = vMeasure([0, 0, 1, 1], [0, 0, 1, 2])
  t.ok(close(a.homogeneity, 1), `${a.homogeneity}`)
  t.ok(close(a.completeness, 2 / 3), `${a.completeness}`)
  t.ok(close(a.vMeasure, 0.8), `${a.vMeasure}`)
  // scikit-learn's v_measure_score docs: [0,0,1,1] vs [0,1,2,3] -> 0.67 (h = 1, c = ln 2 / ln 4 = 0.5).
  t.ok(close(vMeasure([0, 0, 1, 1], [0, 1, 2, 3]).vMeasure, 2 / 3))
  t.same(vMeasure([0, 0, 0, 0], [0, 1, 2, 3]), { homogeneity: 1, completeness: 0, vMeasure: 0 }, 'one class: h = 1 by convention, c = 0')
  t.same(vMeasure([0, 0, 1, 1], [5, 5, 5, 5]), { homogeneity: 0, completeness: 1, vMeasure: 0 }, 'one cluster: h = 0, c = 1')
  const perfect = vMeasure([3, 3, 1, 1, 2], [0, 0, 9, 9, -4])
  for (const [name, value] of Object.entries(perfect)) t.ok(close(value, 1), `perfect clustering: ${name} = ${value}`)
  t.same(vMeasure([], []), { homogeneity: 1, completeness: 1, vMeasure: 1 }, 'empty: 1 as in scikit-learn')
})

t.test('vMeasure matches the brute-force definition on random labellings with arbitrary integer labels', async (t) => {
  const random = lcg(7)
  const alphabet = [-3, 0, 2, 7, 100, 41]
  for (let trial = 0; trial < 60; trial++) {
    const n = 1 + Math.floor(random() * 40)
    const classes = 1 + Math.floor(random() * 4)
    const clusters = 1 + Math.floor(random() * 6)
    const truth = Array.from({ length: n }, () => alphabet[Math.floor(random() * classes)])
    const predicted = Array.from({ length: n }, () => alphabet[Math.floor(random() * clusters)])
    const got = vMeasure(truth, predicted)
    const want = referenceVMeasure(truth, predicted)
    for (const key of ['homogeneity', 'completeness', 'vMeasure'] as const)
      if (!close(got[key], want[key], 1e-10)) t.fail(`trial ${trial} ${key}: ${got[key]} vs ${want[key]} (${truth} / ${predicted})`)
  }
  t.pass('60 random labellings')
})

t.test('vMeasure is invariant to relabelling and swaps h and c when truth and prediction swap', async (t) => {
  const truth = [0, 0, 0, 1, 1, 2, 2, 2, 2]
  const predicted = [1, 1, 0, 0, 0, 2, 2, 1, 2]
  const base = vMeasure(truth, predicted)
  const renamed = vMeasure(
    truth.map((l) => [10, -5, 3][l]),
    predicted.map((l) => [7, 8, 1000][l]),
  )
  t.ok(close(base.homogeneity, renamed.homogeneity) && close(base.completeness, renamed.completeness), 'renamed labels')
  const swapped = vMeasure(predicted, truth)
  t.ok(close(base.homogeneity, swapped.completeness) && close(base.completeness, swapped.homogeneity), 'swapped roles')
  t.ok(base.homogeneity < 1 && base.completeness < 1 && base.vMeasure > 0)
  t.throws(() => vMeasure([0, 1], [0]), /2 true labels but 1 predicted/)
  t.throws(() => vMeasure([0, 1.5], [0, 1]), /true label 1 is 1.5/)
})

// ---------------------------------------------------------------------------------------------------------------
// k-means

function blobs(seed: number, centres: number, perBlob: number, dim: number, spread: number) {
  const random = lcg(seed)
  const means = Array.from({ length: centres }, () => Array.from({ length: dim }, () => (random() - 0.5) * 40))
  const items: { vector: Float32Array; blob: number }[] = []
  for (let b = 0; b < centres; b++)
    for (let i = 0; i < perBlob; i++) items.push({ vector: Float32Array.from(means[b], (m) => m + spread * gaussian(random)), blob: b })
  // Shuffle so that the blobs are not contiguous runs of the input.
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[items[i], items[j]] = [items[j], items[i]]
  }
  return { vectors: items.map((x) => x.vector), blobs: items.map((x) => x.blob) }
}

function uniformPoints(seed: number, n: number, dim: number): Float32Array[] {
  const random = lcg(seed)
  return Array.from({ length: n }, () => Float32Array.from({ length: dim }, () => random()))
}

/** Means of each cluster, in float64. */
function clusterMeans(vectors: Float32Array[], labels: Int32Array, k: number): Float64Array[] {
  const means = Array.from({ length: k }, () => new Float64Array(vectors[0].length))
  const sizes = new Float64Array(k)
  vectors.forEach((v, i) => {
    sizes[labels[i]]++
    v.forEach((x, d) => (means[labels[i]][d] += x))
  })
  means.forEach((m, c) => m.forEach((_, d) => (m[d] /= sizes[c])))
  return means
}

const squared = (v: ArrayLike<number>, m: ArrayLike<number>) => Array.from(v).reduce((s, x, d) => s + (x - m[d]) ** 2, 0)

function inertia(vectors: Float32Array[], labels: Int32Array, k: number): number {
  const means = clusterMeans(vectors, labels, k)
  return vectors.reduce((s, v, i) => s + squared(v, means[labels[i]]), 0)
}

t.test('kMeans recovers well separated Gaussian blobs exactly, whatever the seed', async (t) => {
  const { vectors, blobs: truth } = blobs(3, 5, 30, 8, 0.7)
  for (const seed of [0, 1, 2, 17, 12345]) {
    const labels = kMeans(vectors, 5, { seed })
    t.equal(labels.length, vectors.length)
    t.ok(
      labels.every((l) => l >= 0 && l < 5),
      'labels in 0..k-1',
    )
    t.equal(vMeasure(truth, labels).vMeasure, 1, `seed ${seed}: v-measure 1`)
  }
})

t.test('kMeans is deterministic for a seed and returns a Lloyd fixed point', async (t) => {
  const vectors = uniformPoints(11, 200, 3)
  const a = kMeans(vectors, 6, { seed: 9 })
  t.same(a, kMeans(vectors, 6, { seed: 9 }), 'same seed, same labels')
  t.ok(a instanceof Int32Array)
  for (const seed of [0, 9, 31]) {
    const labels = kMeans(vectors, 6, { seed })
    t.equal(new Set(labels).size, 6, `seed ${seed}: every cluster non-empty`)
    const means = clusterMeans(vectors, labels, 6)
    let moved = 0
    vectors.forEach((v, i) => {
      const own = squared(v, means[labels[i]])
      if (means.some((m) => squared(v, m) < own - 1e-9)) moved++
    })
    t.equal(moved, 0, `seed ${seed}: every point is nearest to its own cluster's mean`)
  }
})

t.test('more restarts never raise the inertia; on a small instance kMeans finds the exhaustive optimum', async (t) => {
  const vectors = uniformPoints(5, 120, 2)
  let strictlyBetter = 0
  for (let seed = 0; seed < 10; seed++) {
    const one = inertia(vectors, kMeans(vectors, 7, { seed, restarts: 1 }), 7)
    const many = inertia(vectors, kMeans(vectors, 7, { seed, restarts: 20 }), 7)
    t.ok(many <= one + 1e-9, `seed ${seed}: 20 restarts ${many} <= 1 restart ${one}`)
    if (many < one - 1e-9) strictlyBetter++
  }
  t.ok(strictlyBetter > 0, 'restarts do find better solutions on some seeds')

  // 12 points, k = 2: every one of the 2^11 - 1 non-trivial bipartitions.
  const small = uniformPoints(21, 12, 2)
  let optimum = Infinity
  for (let mask = 1; mask < 1 << 11; mask++) {
    const labels = Int32Array.from(small, (_, i) => (i < 11 && mask & (1 << i) ? 1 : 0))
    optimum = Math.min(optimum, inertia(small, labels, 2))
  }
  const found = inertia(small, kMeans(small, 2, { seed: 4, restarts: 10 }), 2)
  t.ok(close(found, optimum, 1e-9), `kMeans ${found} vs optimum ${optimum}`)
})

t.test('kMeans with duplicated vectors, k = n and k = 1', async (t) => {
  const dup = [0, 0, 0, 1, 1, 1].map((x) => Float32Array.of(x, x))
  const labels = kMeans(dup, 3, { seed: 1 })
  t.equal(new Set(labels).size, 3, 'three non-empty clusters out of two distinct points')
  t.equal(inertia(dup, labels, 3), 0, 'each cluster holds copies of one point')
  const few = uniformPoints(2, 5, 4)
  t.same([...kMeans(few, 5)].sort(), [0, 1, 2, 3, 4], 'k = n: one point per cluster')
  t.same([...kMeans(few, 1)], [0, 0, 0, 0, 0])
})

t.test('kMeans rejects bad input', async (t) => {
  const v = uniformPoints(1, 4, 2)
  t.throws(() => kMeans(v, 0), /k must be an integer in 1\.\.4/)
  t.throws(() => kMeans(v, 5), /k must be an integer in 1\.\.4/)
  t.throws(() => kMeans(v, 1.5), /k must be/)
  t.throws(() => kMeans([], 1), /no vectors/)
  t.throws(() => kMeans([...v, new Float32Array(3)], 2), /vector 4 has length 3/)
  t.throws(() => kMeans(v, 2, { restarts: 0 }), /restarts must be a positive integer/)
  t.throws(() => kMeans([Float32Array.of(0, NaN), ...v], 2), /vector 0 has a non-finite component/)
})

// ---------------------------------------------------------------------------------------------------------------
// Pair classification

/** The sklearn-style AP from its definition: Σ (R_n − R_{n−1}) P_n over the distinct thresholds, most similar first. */
function referenceAp(scores: number[], positive: boolean[], higherIsMoreSimilar: boolean): number {
  const thresholds = [...new Set(scores)].sort((a, b) => (higherIsMoreSimilar ? b - a : a - b))
  const positives = positive.filter((p) => p).length
  let ap = 0
  let previousRecall = 0
  for (const threshold of thresholds) {
    const retrieved = scores.map((s) => (higherIsMoreSimilar ? s >= threshold : s <= threshold))
    const tp = retrieved.filter((r, i) => r && positive[i]).length
    const precision = tp / retrieved.filter((r) => r).length
    const recall = tp / positives
    ap += (recall - previousRecall) * precision
    previousRecall = recall
  }
  return ap
}

/** Every threshold midway between consecutive distinct scores, tried in order from most to least similar. */
function referencePair(scores: number[], labels: number[], higherIsMoreSimilar: boolean) {
  const distinct = [...new Set(scores)].sort((a, b) => (higherIsMoreSimilar ? b - a : a - b))
  const n = scores.length
  let accuracy = { accuracy: 0, accuracyThreshold: NaN }
  let f1 = { f1: 0, f1Threshold: NaN, precision: 0, recall: 0 }
  for (let j = 0; j + 1 < distinct.length; j++) {
    const threshold = (distinct[j] + distinct[j + 1]) / 2
    let tp = 0
    let fp = 0
    let tn = 0
    let fn = 0
    scores.forEach((s, i) => {
      const similar = higherIsMoreSimilar ? s > threshold : s < threshold
      if (similar && labels[i] === 1) tp++
      else if (similar) fp++
      else if (labels[i] === 1) fn++
      else tn++
    })
    if ((tp + tn) / n > accuracy.accuracy) accuracy = { accuracy: (tp + tn) / n, accuracyThreshold: threshold }
    const f = (2 * tp) / (2 * tp + fp + fn)
    if (tp > 0 && f > f1.f1) f1 = { f1: f, f1Threshold: threshold, precision: tp / (tp + fp), recall: tp / (tp + fn) }
  }
  const ap = referenceAp(
    scores,
    labels.map((l) => l === 1),
    higherIsMoreSimilar,
  )
  return { ...accuracy, ...f1, ap }
}

t.test('pairMetrics: hand examples', async (t) => {
  // Scores chosen as exact binary fractions so that the midway threshold is exact: (0.75 + 0.25) / 2 = 0.5.
  t.same(pairMetrics([0.875, 0.75, 0.25, 0.125], [1, 1, 0, 0], true), {
    accuracy: 1,
    accuracyThreshold: 0.5,
    f1: 1,
    f1Threshold: 0.5,
    precision: 1,
    recall: 1,
    ap: 1,
  })
  const distances = pairMetrics([0.25, 0.5, 1.5, 2], [1, 1, 0, 0], false)
  t.same(distances, { accuracy: 1, accuracyThreshold: 1, f1: 1, f1Threshold: 1, precision: 1, recall: 1, ap: 1 }, 'distances')

  // Sorted: 0.9(1) | 0.5(0) 0.5(1) | 0.1(0). Accuracy 3/4 at both cuts: the first (0.7) is kept. F1: 2/3 at the
  // first cut, 2·2/(3+2) = 0.8 at the second (0.3). AP: 1·1/2 + 2/3·1/2 = 5/6 (the tie enters as one threshold).
  const m = pairMetrics([0.5, 0.9, 0.1, 0.5], [0, 1, 0, 1], true)
  t.equal(m.accuracy, 0.75)
  t.ok(close(m.accuracyThreshold, 0.7))
  t.ok(close(m.f1, 0.8) && close(m.precision, 2 / 3) && m.recall === 1, JSON.stringify(m))
  t.ok(close(m.f1Threshold, 0.3))
  t.ok(close(m.ap, 5 / 6))
  // scikit-learn's average_precision_score docs: y = [0, 0, 1, 1], scores [0.1, 0.4, 0.35, 0.8] -> 0.8333...
  t.ok(close(pairMetrics([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], true).ap, 0.8333333333333333))
  // Distances are the negated similarities: every metric is the same, thresholds change sign.
  const neg = pairMetrics([-0.1, -0.4, -0.35, -0.8], [0, 0, 1, 1], false)
  const pos = pairMetrics([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], true)
  t.same({ ...neg, accuracyThreshold: -neg.accuracyThreshold, f1Threshold: -neg.f1Threshold }, pos)

  const tied = pairMetrics([0.3, 0.3, 0.3], [1, 0, 1], true)
  t.same({ accuracy: tied.accuracy, f1: tied.f1 }, { accuracy: 0, f1: 0 }, 'all scores tied: no cut')
  t.ok(Number.isNaN(tied.accuracyThreshold) && Number.isNaN(tied.f1Threshold))
  t.ok(close(tied.ap, 2 / 3), 'AP of one all-inclusive threshold = the positive rate')
})

t.test('pairMetrics matches a brute-force threshold sweep on random scores with ties, both directions', async (t) => {
  const random = lcg(99)
  let trials = 0
  for (let trial = 0; trial < 300; trial++) {
    const n = 1 + Math.floor(random() * 25)
    // Half the trials draw from a few values (many ties), the others from a fine grid.
    const levels = trial % 2 === 0 ? 5 : 1 << 20
    const scores = Array.from({ length: n }, () => Math.floor(random() * levels) / 4 - 0.5)
    const labels = Array.from({ length: n }, () => (random() < 0.4 ? 1 : 0))
    if (!labels.includes(1)) labels[Math.floor(random() * n)] = 1
    for (const higher of [true, false]) {
      const got = pairMetrics(scores, labels, higher)
      const want = referencePair(scores, labels, higher)
      const exact = ['accuracy', 'accuracyThreshold', 'f1', 'f1Threshold', 'precision', 'recall'] as const
      for (const key of exact)
        if (!Object.is(got[key], want[key])) t.fail(`trial ${trial} (${higher}) ${key}: ${got[key]} vs ${want[key]}`, { scores, labels })
      if (!close(got.ap, want.ap)) t.fail(`trial ${trial} (${higher}) ap: ${got.ap} vs ${want.ap}`, { scores, labels })
      trials++
    }
  }
  t.equal(trials, 600)
})

t.test('pairMetrics rejects bad labels and inputs', async (t) => {
  t.throws(() => pairMetrics([1, 2, 3], [0, 2, 1], true), /label 1 is 2; labels must be 0 or 1/)
  t.throws(() => pairMetrics([1, 2], [0, -1], true), /label 1 is -1/)
  t.throws(() => pairMetrics([1, 2], [0, 0], true), /no positive label/)
  t.throws(() => pairMetrics([1, 2], [0, 1, 1], true), /2 scores but 3 labels/)
  t.throws(() => pairMetrics([1, NaN], [0, 1], true), /score 1 is NaN/)
})

t.test('pairSimilarities: the four scores per pair, summed in float64', async (t) => {
  const s = pairSimilarities(
    [Float32Array.of(1, 0), Float32Array.of(1, 2, 3), Float32Array.of(0, 0)],
    [Float32Array.of(0, 1), Float32Array.of(2, 4, 6), Float32Array.of(3, 4)],
  )
  t.same([...s.dot], [0, 28, 0])
  t.same([s.cosine[0], s.cosine[2]], [0, 0], 'orthogonal; a zero vector gives 0, not NaN')
  t.ok(close(s.cosine[1], 1))
  t.same([...s.euclidean], [Math.SQRT2, Math.sqrt(14), 5])
  t.same([...s.manhattan], [2, 6, 7])
  // 1e8 + 1 is not a float32: a float32 accumulator would lose the 1.
  const big = pairSimilarities([Float32Array.of(1e8, 1, -1e8)], [Float32Array.of(1, 1, 1)])
  t.equal(big.dot[0], 1)
  t.throws(() => pairSimilarities([Float32Array.of(1)], []), /1 first vectors but 0 second/)
  t.throws(() => pairSimilarities([Float32Array.of(1)], [Float32Array.of(1, 2)]), /pair 0 has vectors of lengths 1 and 2/)
})

// ---------------------------------------------------------------------------------------------------------------
// Reranking

/** 1-based rank of candidate i: those scoring higher, or equal with a lower index, come first. */
function referenceReciprocalRank(scores: number[], relevant: boolean[], k: number): number {
  let best = Infinity
  relevant.forEach((r, i) => {
    if (!r) return
    const rank = 1 + scores.filter((s, j) => s > scores[i] || (s === scores[i] && j < i)).length
    best = Math.min(best, rank)
  })
  return best <= k ? 1 / best : 0
}

t.test('averagePrecision and reciprocalRankAt: hand examples', async (t) => {
  t.ok(close(averagePrecision([0.1, 0.4, 0.35, 0.8], [false, false, true, true]), 0.8333333333333333), 'scikit-learn docs')
  t.equal(averagePrecision([3, 2, 1], [true, false, false]), 1)
  t.ok(close(averagePrecision([3, 2, 1], [false, false, true]), 1 / 3))
  // Ties are one threshold whichever index comes first: 1/2 both ways (not 1 for one order and 1/2 for the other).
  t.equal(averagePrecision([1, 1], [true, false]), 0.5)
  t.equal(averagePrecision([1, 1], [false, true]), 0.5)
  // Thresholds 0.5 (P = 1/2, R = 1/2) and 0.2 (P = 2/3, R = 1): 1/4 + 1/3.
  t.ok(close(averagePrecision([0.5, 0.5, 0.2], [true, false, true]), 7 / 12))
  t.throws(() => averagePrecision([1, 2], [false, false]), /no relevant candidate/)
  t.throws(() => averagePrecision([1, 2], [true]), /2 scores but 1 relevance labels/)

  t.equal(reciprocalRankAt([0.1, 0.9, 0.5], [true, false, false], 10), 1 / 3)
  t.equal(reciprocalRankAt([0.1, 0.9, 0.5], [true, false, false], 2), 0, 'first relevant at rank 3 > k')
  t.equal(reciprocalRankAt([0.1, 0.9, 0.5], [false, true, true], 1), 1)
  t.equal(reciprocalRankAt([0.5, 0.5], [false, true], 10), 0.5, 'tie: the lower index ranks first')
  t.equal(reciprocalRankAt([0.5, 0.5], [true, false], 10), 1)
  t.equal(reciprocalRankAt([1, 2], [false, false], 10), 0)
  t.throws(() => reciprocalRankAt([1], [true], 0), /k must be a positive integer/)
})

t.test('averagePrecision and reciprocalRankAt match brute-force references on random queries', async (t) => {
  const random = lcg(2024)
  for (let trial = 0; trial < 300; trial++) {
    const n = 1 + Math.floor(random() * 30)
    const scores = Array.from({ length: n }, () => (trial % 3 === 0 ? Math.floor(random() * 4) : random()))
    const relevant = Array.from({ length: n }, () => random() < 0.3)
    const k = 1 + Math.floor(random() * 12)
    const rr = reciprocalRankAt(scores, relevant, k)
    if (rr !== referenceReciprocalRank(scores, relevant, k)) t.fail(`trial ${trial}: RR@${k} ${rr}`, { scores, relevant })
    if (!relevant.includes(true)) continue
    const ap = averagePrecision(scores, relevant)
    const want = referenceAp(scores, relevant, true)
    if (!close(ap, want)) t.fail(`trial ${trial}: AP ${ap} vs ${want}`, { scores, relevant })
  }
  t.pass('300 random queries')
})

t.test('rerankingMetrics averages over queries with both kinds of candidate', async (t) => {
  const m = rerankingMetrics([
    { scores: [0.9, 0.1, 0.5], relevant: [true, false, false] }, // AP 1, RR 1
    { scores: [1, 2, 3], relevant: [true, true, true] }, // no negative: skipped
    { scores: [1, 2, 3], relevant: [false, false, false] }, // no positive: skipped
    { scores: [0.1, 0.9, 0.5], relevant: [true, false, true] }, // relevant at ranks 2 and 3: AP 1/2·1/2 + 1/2·2/3, RR 1/2
  ])
  t.equal(m.queries, 2)
  t.ok(close(m.map, (1 + (1 / 4 + 1 / 3)) / 2), `map ${m.map}`)
  t.ok(close(m.mrr10, (1 + 1 / 2) / 2), `mrr10 ${m.mrr10}`)
  // MRR@10: a relevant candidate at rank 11 counts 0, while MAP still sees it.
  const deep = rerankingMetrics([
    { scores: Array.from({ length: 12 }, (_, i) => 12 - i), relevant: Array.from({ length: 12 }, (_, i) => i === 10) },
  ])
  t.equal(deep.mrr10, 0)
  t.ok(close(deep.map, 1 / 11))
  t.throws(() => rerankingMetrics([{ scores: [1], relevant: [true] }]), /none of the 1 queries/)
  t.throws(() => rerankingMetrics([]), /none of the 0 queries/)
})
