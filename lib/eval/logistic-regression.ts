// Multinomial (softmax) logistic regression with an L2 penalty, fitted by L-BFGS: the classifier MTEB's and SentEval's
// classification tasks train on a model's frozen vectors (scikit-learn's LogisticRegression with its defaults, C = 1).
// The objective is scikit-learn's, scaled by 1/n as it is since its 1.1 release:
//
//   f(W, b) = (1/n) Σ_i -log softmax(W x_i + b)[y_i]  +  ||W||² / (2 C n)        (the intercepts b are not penalised)
//   ∇_W f = (P - Y)ᵀ X / n + W / (C n),   ∇_b f = Σ_i (p_i - y_i) / n
//
// with P the rows' class probabilities and Y their one-hot labels. The two products (the logits X Wᵀ and the weight
// gradient) run in the addon's float32 linear layer (n·d·k flops each, where the rest is n·k); the parameters, the
// loss and the L-BFGS updates are float64. The objective is strictly convex but for a common shift of the intercepts,
// which the gradient's intercept part never moves (it sums to zero) from the start at zero: so the minimum reached is
// unique, and how (L-BFGS's memory, the line search) moves the fitted classifier only within the stopping tolerance.
// Two classes: scikit-learn fits one weight vector w (the binomial model) with the penalty ||w||² / (2 C n). The
// softmax of two rows depends on w = w1 - w0 alone, and for a given w the penalty of the two rows is least at
// w1 = -w0 = w/2, where it is ||w||² / (4 C n): so the two-row model with C halved is scikit-learn's binary one.
import { Tensor } from '../tensor.js'
import { linearBackward, linearForward } from '../ops.js'

export interface LogisticRegressionOptions {
  /** Inverse penalty strength (scikit-learn's C). Default 1. */
  c?: number
  /** L-BFGS iterations at most (scikit-learn's and MTEB's max_iter). Default 100. */
  maxIterations?: number
  /** Stop when every coordinate of the gradient is at most this (scipy's gtol, scikit-learn's tol). Default 1e-4. */
  tolerance?: number
}

/** A fitted classifier: weights [classes, dim] row-major, one intercept per class. */
export interface LogisticRegressionModel {
  classes: number
  dim: number
  weights: Float64Array
  bias: Float64Array
  /** Iterations run, and whether the gradient reached the tolerance within them. */
  iterations: number
  converged: boolean
}

/** Past steps L-BFGS keeps (scipy's default maxcor). */
const MEMORY = 10

/**
 * Fits the classifier to n rows of `x` (row-major [n, dim]) labelled `y` (each in 0 .. classes - 1). Throws when the
 * sizes disagree or a label is out of range.
 */
export function fitLogisticRegression(
  x: Float32Array,
  y: Int32Array,
  classes: number,
  options: LogisticRegressionOptions = {},
): LogisticRegressionModel {
  const n = y.length
  const c = options.c ?? 1
  const maxIterations = options.maxIterations ?? 100
  const tolerance = options.tolerance ?? 1e-4
  if (n === 0) throw new Error('logistic regression: no rows to fit')
  if (!Number.isInteger(classes) || classes < 2) throw new Error(`logistic regression: classes must be an integer >= 2, got ${classes}`)
  if (x.length % n !== 0 || x.length === 0) throw new Error(`logistic regression: x holds ${x.length} values, not n = ${n} rows`)
  if (!(c > 0)) throw new Error(`logistic regression: c must be positive, got ${c}`)
  const dim = x.length / n
  for (let i = 0; i < n; i++)
    if (!(y[i] >= 0 && y[i] < classes)) throw new Error(`logistic regression: label ${y[i]} of row ${i} is not in 0 .. ${classes - 1}`)
  const objective = new Objective(x, y, n, dim, classes, (classes === 2 ? 2 : 1) / (c * n))
  try {
    return lbfgs(objective, maxIterations, tolerance)
  } finally {
    objective.dispose()
  }
}

/** The class of each row of `x` (row-major [rows, dim]) with the highest score (ties: the lower class). */
export function predictClasses(model: LogisticRegressionModel, x: Float32Array): Int32Array {
  const { dim, classes, weights, bias } = model
  const rows = x.length / dim
  const out = new Int32Array(rows)
  for (let i = 0; i < rows; i++) {
    let best = 0
    let bestScore = -Infinity
    for (let k = 0; k < classes; k++) {
      let s = bias[k]
      for (let j = 0; j < dim; j++) s += weights[k * dim + j] * x[i * dim + j]
      if (s > bestScore) [best, bestScore] = [k, s]
    }
    out[i] = best
  }
  return out
}

/** f and its gradient at a parameter vector [W (classes x dim), b (classes)], with the products on the addon's tensors. */
class Objective {
  readonly size: number
  private readonly xT: Tensor
  private readonly weightT: Tensor
  private readonly biasT: Tensor
  private readonly logitsT: Tensor
  private readonly dW: Tensor
  private readonly db: Tensor
  private readonly w32: Float32Array
  private readonly logits: Float32Array

  constructor(
    x: Float32Array,
    private readonly y: Int32Array,
    private readonly n: number,
    readonly dim: number,
    readonly classes: number,
    /** 1 / (C n): the penalty's weight. */
    private readonly penalty: number,
  ) {
    this.size = classes * dim + classes
    this.xT = Tensor.from(x, [n, dim])
    this.weightT = Tensor.zeros([classes, dim])
    this.biasT = Tensor.zeros([classes])
    this.logitsT = Tensor.zeros([n, classes])
    this.dW = Tensor.zeros([classes, dim])
    this.db = Tensor.zeros([classes])
    this.w32 = new Float32Array(classes * dim)
    this.logits = new Float32Array(n * classes)
  }

  /** f(p), with its gradient written into `grad`. */
  evaluate(p: Float64Array, grad: Float64Array): number {
    const { n, classes, dim, y, penalty } = this
    const nw = classes * dim
    for (let i = 0; i < nw; i++) this.w32[i] = p[i]
    this.weightT.copyFrom(this.w32)
    this.biasT.copyFrom(Float32Array.from(p.subarray(nw)))
    linearForward(this.logitsT, this.xT, this.weightT, this.biasT)
    this.logitsT.toFloat32Array(this.logits)
    // Softmax rows in float64 (shifted by the row's largest logit); dZ = (P - Y) / n goes back into logits' storage.
    let loss = 0
    const dz = this.logits
    for (let i = 0; i < n; i++) {
      const row = i * classes
      let max = -Infinity
      for (let k = 0; k < classes; k++) max = Math.max(max, dz[row + k])
      let sum = 0
      for (let k = 0; k < classes; k++) sum += Math.exp(dz[row + k] - max)
      loss += Math.log(sum) + max - dz[row + y[i]]
      for (let k = 0; k < classes; k++) dz[row + k] = (Math.exp(dz[row + k] - max) / sum - (k === y[i] ? 1 : 0)) / n
    }
    this.logitsT.copyFrom(dz)
    this.dW.fill(0)
    this.db.fill(0)
    linearBackward(null, this.dW, this.db, this.logitsT, this.xT, this.weightT)
    const gw = this.dW.toFloat32Array()
    const gb = this.db.toFloat32Array()
    let norm = 0
    for (let i = 0; i < nw; i++) {
      grad[i] = gw[i] + penalty * p[i]
      norm += p[i] * p[i]
    }
    for (let k = 0; k < classes; k++) grad[nw + k] = gb[k]
    return loss / n + (penalty / 2) * norm
  }

  dispose(): void {
    for (const t of [this.xT, this.weightT, this.biasT, this.logitsT, this.dW, this.db]) t.dispose()
  }
}

function dotOf(a: Float64Array, b: Float64Array): number {
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i] * b[i]
  return s
}

function maxAbs(a: Float64Array): number {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]))
  return m
}

/**
 * L-BFGS from zero (scikit-learn's start): the two-loop recursion over the last MEMORY steps, a backtracking line
 * search to the Armijo condition (step 1, or 1/|g| on the first iteration, when the direction has no scale yet), and a
 * pair (s, y) kept only where sᵀy > 0 (curvature the inverse-Hessian estimate can use).
 */
function lbfgs(f: Objective, maxIterations: number, tolerance: number): LogisticRegressionModel {
  const size = f.size
  let p = new Float64Array(size)
  let g = new Float64Array(size)
  let value = f.evaluate(p, g)
  const ss: Float64Array[] = []
  const ys: Float64Array[] = []
  const direction = new Float64Array(size)
  const alpha = new Float64Array(MEMORY)
  let iterations = 0
  let converged = maxAbs(g) <= tolerance
  while (!converged && iterations < maxIterations) {
    // direction = -H g (two-loop recursion); H0 = (sᵀy / yᵀy) I from the latest pair.
    direction.set(g)
    for (let k = ss.length - 1; k >= 0; k--) {
      alpha[k] = dotOf(ss[k], direction) / dotOf(ys[k], ss[k])
      for (let i = 0; i < size; i++) direction[i] -= alpha[k] * ys[k][i]
    }
    const scale = ss.length ? dotOf(ss[ss.length - 1], ys[ys.length - 1]) / dotOf(ys[ys.length - 1], ys[ys.length - 1]) : 1
    for (let i = 0; i < size; i++) direction[i] *= scale
    for (let k = 0; k < ss.length; k++) {
      const beta = dotOf(ys[k], direction) / dotOf(ys[k], ss[k])
      for (let i = 0; i < size; i++) direction[i] += ss[k][i] * (alpha[k] - beta)
    }
    for (let i = 0; i < size; i++) direction[i] = -direction[i]
    let slope = dotOf(g, direction)
    if (!(slope < 0)) {
      // Not a descent direction (rounding in the history): restart from steepest descent.
      ss.length = ys.length = 0
      for (let i = 0; i < size; i++) direction[i] = -g[i]
      slope = dotOf(g, direction)
    }
    let step = ss.length ? 1 : 1 / Math.sqrt(dotOf(g, g))
    const next = new Float64Array(size)
    const nextG = new Float64Array(size)
    let nextValue = Infinity
    for (let tries = 0; tries < 50; tries++) {
      for (let i = 0; i < size; i++) next[i] = p[i] + step * direction[i]
      nextValue = f.evaluate(next, nextG)
      if (nextValue <= value + 1e-4 * step * slope) break
      step /= 2
    }
    if (!(nextValue < value)) break // no decrease left at float32 products' resolution: as converged as it gets
    const s = new Float64Array(size)
    const yv = new Float64Array(size)
    for (let i = 0; i < size; i++) [s[i], yv[i]] = [next[i] - p[i], nextG[i] - g[i]]
    if (dotOf(s, yv) > 1e-12 * dotOf(yv, yv)) {
      ss.push(s)
      ys.push(yv)
      if (ss.length > MEMORY) {
        ss.shift()
        ys.shift()
      }
    }
    ;[p, g, value] = [next, nextG, nextValue]
    iterations++
    converged = maxAbs(g) <= tolerance
  }
  const nw = f.classes * f.dim
  return { classes: f.classes, dim: f.dim, weights: p.slice(0, nw), bias: p.slice(nw), iterations, converged }
}
