// Clustering evaluation as MTEB runs it: embed the texts, cluster the embeddings with k-means (k = the number of
// gold classes), and score the clusters against the gold classes with the V-measure.
// - kMeans: Lloyd's algorithm in Euclidean space with k-means++ seeding (Arthur & Vassilvitskii), several seeded
//   restarts keeping the lowest inertia, as scikit-learn's KMeans does (without its greedy local trials); a small
//   seeded PRNG makes the result a function of (vectors, k, options) alone.
// - vMeasure: scikit-learn's homogeneity_completeness_v_measure with beta = 1 (Rosenberg & Hirschberg 2007), from
//   the contingency table with natural logarithms, including its conventions for single-class inputs.
// The assignment step, n·k·d multiply-adds an iteration, runs as one float32 product in the addon (x·c for every pair,
// then |x|² - 2 x·c + |c|²); the float64 distance then decides among the centres that product cannot tell apart from
// the nearest (within a bound on its rounding), so the clusters are those of float64 arithmetic throughout.
import { Tensor } from '../tensor.js'
import { linearForward } from '../ops.js'

export interface KMeansOptions {
  /** Seeds the PRNG behind k-means++ (default 0): the same seed gives the same clusters. */
  seed?: number
  /** Independent k-means++ initialisations; the run of lowest inertia wins (default 3). */
  restarts?: number
  /** Lloyd iterations per restart at most (default 300); a run stops earlier once no assignment changes. */
  maxIterations?: number
}

/**
 * Clusters the vectors into k groups with Lloyd's k-means (Euclidean) and returns each vector's cluster, 0..k-1.
 * Every restart draws its k-means++ centres from one PRNG stream seeded by `seed`, so the first restart of a run
 * with more restarts is the whole of a run with restarts = 1.
 */
export function kMeans(vectors: Float32Array[], k: number, options: KMeansOptions = {}): Int32Array {
  const dim = checkKMeansInput(vectors, k)
  const restarts = positiveInteger(options.restarts ?? 3, 'restarts')
  const maxIterations = positiveInteger(options.maxIterations ?? 300, 'maxIterations')
  const points = packRows(vectors, dim)
  const random = mulberry32(options.seed ?? 0)
  const products = new Products(vectors, dim, k)
  try {
    let best: LloydResult | undefined
    for (let r = 0; r < restarts; r++) {
      const run = lloyd(points, dim, kMeansPlusPlus(points, dim, k, random), maxIterations, products)
      // Strictly lower: on a tie the earlier restart stays, which keeps the choice independent of later draws.
      if (best === undefined || run.inertia < best.inertia) best = run
    }
    return best!.labels
  } finally {
    products.dispose()
  }
}

/**
 * Every point's product with every centre, x·c, in float32 on the addon (the points' tensor made once), with a bound on
 * each row's rounding error: a product of d terms rounded in float32 is within d·2⁻²⁴·Σ|x_j c_j| ≤ d·2⁻²⁴·|x|·|c| of
 * the exact one (the centres' own rounding to float32 adds 2⁻²⁴·|x|·|c| more).
 */
class Products {
  private readonly x: Tensor
  private readonly c: Tensor
  private readonly out: Tensor
  private readonly c32: Float32Array
  readonly values: Float32Array
  /** |x_i|², exact in float64 from the float32 inputs, and |x_i|. */
  readonly squaredNorms: Float64Array
  readonly norms: Float64Array
  readonly unit: number

  constructor(vectors: Float32Array[], dim: number, k: number) {
    const n = vectors.length
    const rows = new Float32Array(n * dim)
    vectors.forEach((v, i) => rows.set(v, i * dim))
    this.x = Tensor.from(rows, [n, dim])
    this.c = Tensor.zeros([k, dim])
    this.out = Tensor.zeros([n, k])
    this.c32 = new Float32Array(k * dim)
    this.values = new Float32Array(n * k)
    this.squaredNorms = Float64Array.from(vectors, (v) => v.reduce((s, x) => s + x * x, 0))
    this.norms = this.squaredNorms.map(Math.sqrt)
    this.unit = (dim + 2) * 2 ** -24
  }

  /** values[i * k + c] = x_i · centre_c (float32). */
  compute(centres: Float64Array): void {
    this.c32.set(centres)
    this.c.copyFrom(this.c32)
    linearForward(this.out, this.x, this.c, null)
    this.out.toFloat32Array(this.values)
  }

  dispose(): void {
    this.x.dispose()
    this.c.dispose()
    this.out.dispose()
  }
}

function checkKMeansInput(vectors: Float32Array[], k: number): number {
  if (vectors.length === 0) throw new Error('kMeans: no vectors')
  if (!Number.isInteger(k) || k < 1 || k > vectors.length)
    throw new Error(`kMeans: k must be an integer in 1..${vectors.length} (the number of vectors), got ${k}`)
  const dim = vectors[0].length
  for (let i = 1; i < vectors.length; i++)
    if (vectors[i].length !== dim) throw new Error(`kMeans: vector ${i} has length ${vectors[i].length}, vector 0 has ${dim}`)
  vectors.forEach((v, i) => {
    if (!v.every(Number.isFinite)) throw new Error(`kMeans: vector ${i} has a non-finite component`)
  })
  return dim
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) throw new Error(`kMeans: ${name} must be a positive integer, got ${value}`)
  return value
}

/** The vectors as one row-major float64 matrix, so that every distance and mean is computed in float64. */
function packRows(vectors: Float32Array[], dim: number): Float64Array {
  const out = new Float64Array(vectors.length * dim)
  vectors.forEach((v, i) => out.set(v, i * dim))
  return out
}

/** mulberry32: a 32-bit-state PRNG, uniform in [0, 1); tiny, fast and plenty for drawing seeds. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Squared Euclidean distance between row i of `a` and row j of `b`. */
function squaredDistance(a: Float64Array, i: number, b: Float64Array, j: number, dim: number): number {
  let s = 0
  for (let d = 0, p = i * dim, q = j * dim; d < dim; d++) {
    const diff = a[p + d] - b[q + d]
    s += diff * diff
  }
  return s
}

/**
 * k-means++ seeding: the first centre uniformly at random, each next one a point drawn with probability
 * proportional to its squared distance to the nearest centre so far (uniformly again if every point already
 * coincides with a centre, as happens with duplicated vectors).
 */
function kMeansPlusPlus(points: Float64Array, dim: number, k: number, random: () => number): Float64Array {
  const n = points.length / dim
  const centres = new Float64Array(k * dim)
  const nearest = new Float64Array(n).fill(Infinity)
  let pick = Math.floor(random() * n)
  for (let c = 0; c < k; c++) {
    if (c > 0) pick = drawProportional(nearest, random)
    centres.set(points.subarray(pick * dim, (pick + 1) * dim), c * dim)
    for (let i = 0; i < n; i++) nearest[i] = Math.min(nearest[i], squaredDistance(points, i, centres, c, dim))
  }
  return centres
}

/** An index drawn with probability weights[i] / sum(weights); uniform when the weights are all zero. */
function drawProportional(weights: Float64Array, random: () => number): number {
  let total = 0
  for (const w of weights) total += w
  if (!(total > 0)) return Math.floor(random() * weights.length)
  const r = random() * total
  let cumulative = 0
  let last = 0
  for (let i = 0; i < weights.length; i++) {
    if (weights[i] <= 0) continue
    cumulative += weights[i]
    last = i
    if (cumulative > r) return i
  }
  return last // r fell past the rounded total: the last point of positive weight
}

interface LloydResult {
  labels: Int32Array
  inertia: number
}

/** Lloyd iterations from the given centres until no assignment changes (or maxIterations). */
function lloyd(points: Float64Array, dim: number, centres: Float64Array, maxIterations: number, products: Products): LloydResult {
  const n = points.length / dim
  const k = centres.length / dim
  const labels = new Int32Array(n).fill(-1)
  const distances = new Float64Array(n)
  for (let iteration = 0; iteration < maxIterations; iteration++) {
    if (!assignNearest(points, dim, centres, labels, distances, products)) break
    fillEmptyClusters(labels, distances, k)
    updateCentres(points, dim, labels, centres)
  }
  // The centres are the means of the final labels here: either just updated, or the labels did not change.
  let inertia = 0
  for (let i = 0; i < n; i++) inertia += squaredDistance(points, i, centres, labels[i], dim)
  return { labels, inertia }
}

/**
 * Moves each point to its nearest centre and returns whether any label changed. On a tie a point keeps its
 * current cluster if that is among the nearest (else the lowest index): with duplicated vectors, a point that
 * re-seeded an empty cluster sits on two equal centres and would otherwise flip back and forth forever.
 */
function assignNearest(
  points: Float64Array,
  dim: number,
  centres: Float64Array,
  labels: Int32Array,
  distances: Float64Array,
  products: Products,
): boolean {
  const n = points.length / dim
  const k = centres.length / dim
  products.compute(centres)
  const g = products.values
  const cc = new Float64Array(k)
  let cMax = 0
  for (let c = 0; c < k; c++) {
    for (let d = 0; d < dim; d++) cc[c] += centres[c * dim + d] * centres[c * dim + d]
    cMax = Math.max(cMax, Math.sqrt(cc[c]))
  }
  const approx = new Float64Array(k)
  let changed = false
  for (let i = 0; i < n; i++) {
    // |x|² - 2 x·c + |c|² from the float32 products; any centre within twice the rounding bound of the smallest is a
    // candidate, and only candidates (the nearest in float64 among them) get their exact distance.
    let least = Infinity
    for (let c = 0; c < k; c++) {
      approx[c] = products.squaredNorms[i] - 2 * g[i * k + c] + cc[c]
      least = Math.min(least, approx[c])
    }
    const within = least + 4 * products.unit * products.norms[i] * cMax + 1e-300
    let bestCentre = labels[i]
    let bestDistance = bestCentre >= 0 && approx[bestCentre] <= within ? squaredDistance(points, i, centres, bestCentre, dim) : Infinity
    if (bestDistance === Infinity) bestCentre = -1
    for (let c = 0; c < k; c++) {
      if (approx[c] > within) continue
      const d = squaredDistance(points, i, centres, c, dim)
      if (d < bestDistance || bestCentre < 0) {
        bestDistance = d
        bestCentre = c
      }
    }
    distances[i] = bestDistance
    if (labels[i] !== bestCentre) {
      labels[i] = bestCentre
      changed = true
    }
  }
  return changed
}

/**
 * Re-seeds every empty cluster with the point farthest from its own centre (the lower index on a tie), taken
 * only from clusters that keep at least one other point, so that filling one cluster never empties another.
 * Such a point exists whenever a cluster is empty, since there are at least k points.
 */
function fillEmptyClusters(labels: Int32Array, distances: Float64Array, k: number): void {
  const sizes = new Int32Array(k)
  for (const label of labels) sizes[label]++
  for (let c = 0; c < k; c++) {
    if (sizes[c] > 0) continue
    let farthest = -1
    for (let i = 0; i < labels.length; i++) if (sizes[labels[i]] > 1 && (farthest < 0 || distances[i] > distances[farthest])) farthest = i
    sizes[labels[farthest]]--
    sizes[c]++
    labels[farthest] = c
    distances[farthest] = 0 // it is its new cluster's centre: never the farthest point for the next empty cluster
  }
}

/** Sets each centre to the mean of its points (every cluster is non-empty here). */
function updateCentres(points: Float64Array, dim: number, labels: Int32Array, centres: Float64Array): void {
  const k = centres.length / dim
  const sizes = new Float64Array(k)
  centres.fill(0)
  for (let i = 0; i < labels.length; i++) {
    const c = labels[i]
    sizes[c]++
    for (let d = 0; d < dim; d++) centres[c * dim + d] += points[i * dim + d]
  }
  for (let c = 0; c < k; c++) for (let d = 0; d < dim; d++) centres[c * dim + d] /= sizes[c]
}

export interface VMeasure {
  /** 1 - H(C|K)/H(C): each cluster holds members of a single class (1 when there is only one class). */
  homogeneity: number
  /** 1 - H(K|C)/H(K): each class falls in a single cluster (1 when there is only one cluster). */
  completeness: number
  /** Their harmonic mean (0 when both are 0). */
  vMeasure: number
}

/**
 * Homogeneity, completeness and V-measure of a predicted clustering against the true classes, as scikit-learn
 * computes them: homogeneity = I(C;K)/H(C) and completeness = I(C;K)/H(K) (equal to the 1 - H(·|·)/H(·) forms),
 * with the mutual information summed over the non-zero contingency cells. Labels are any integers; only equality
 * between them matters. Empty inputs score 1 throughout, as in scikit-learn.
 */
export function vMeasure(truth: ArrayLike<number>, predicted: ArrayLike<number>): VMeasure {
  if (truth.length !== predicted.length) throw new Error(`vMeasure: ${truth.length} true labels but ${predicted.length} predicted`)
  if (truth.length === 0) return { homogeneity: 1, completeness: 1, vMeasure: 1 }
  const classes = denseLabels(truth, 'true')
  const clusters = denseLabels(predicted, 'predicted')
  const table = contingency(classes, clusters)
  const classSizes = marginal(classes)
  const clusterSizes = marginal(clusters)
  const mi = mutualInformation(table, classSizes, clusterSizes, truth.length)
  const hc = entropy(classSizes, truth.length)
  const hk = entropy(clusterSizes, truth.length)
  const homogeneity = hc !== 0 ? mi / hc : 1
  const completeness = hk !== 0 ? mi / hk : 1
  const v = homogeneity + completeness === 0 ? 0 : (2 * homogeneity * completeness) / (homogeneity + completeness)
  return { homogeneity, completeness, vMeasure: v }
}

interface DenseLabels {
  ids: Int32Array
  count: number
}

/** Renumbers arbitrary integer labels to 0..count-1 in order of first appearance. */
function denseLabels(labels: ArrayLike<number>, which: string): DenseLabels {
  const ids = new Int32Array(labels.length)
  const seen = new Map<number, number>()
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i]
    if (!Number.isInteger(label)) throw new Error(`vMeasure: ${which} label ${i} is ${label}, not an integer`)
    let id = seen.get(label)
    if (id === undefined) seen.set(label, (id = seen.size))
    ids[i] = id
  }
  return { ids, count: seen.size }
}

function marginal(labels: DenseLabels): Float64Array {
  const sizes = new Float64Array(labels.count)
  for (const id of labels.ids) sizes[id]++
  return sizes
}

/** The non-zero cells of the class × cluster contingency table, keyed by class * clusterCount + cluster. */
function contingency(classes: DenseLabels, clusters: DenseLabels): Map<number, number> {
  const cells = new Map<number, number>()
  for (let i = 0; i < classes.ids.length; i++) {
    const key = classes.ids[i] * clusters.count + clusters.ids[i]
    cells.set(key, (cells.get(key) ?? 0) + 1)
  }
  return cells
}

/** Shannon entropy (nats) of a labelling given its class sizes. */
function entropy(sizes: Float64Array, n: number): number {
  let h = 0
  for (const size of sizes) h -= (size / n) * (Math.log(size) - Math.log(n))
  return h
}

/**
 * I(C;K) = Σ n_ck/N · log(N n_ck / (n_c n_k)) over the non-zero cells. Like scikit-learn, terms below machine
 * epsilon in magnitude count as 0 and a negative total (rounding) is clipped to 0.
 */
function mutualInformation(cells: Map<number, number>, classSizes: Float64Array, clusterSizes: Float64Array, n: number): number {
  const clusterCount = clusterSizes.length
  const logN = Math.log(n)
  let mi = 0
  for (const [key, count] of cells) {
    const c = Math.floor(key / clusterCount)
    const k = key - c * clusterCount
    const term = (count / n) * (Math.log(count) + logN - Math.log(classSizes[c]) - Math.log(clusterSizes[k]))
    if (Math.abs(term) >= Number.EPSILON) mi += term
  }
  return Math.max(mi, 0)
}
