// The CUDA-vs-CPU parity cases, shared by test/cuda.test.ts (tap, through TypeScript) and
// scripts/gpu-check.mjs (plain node on a GPU machine that has neither tap nor TypeScript). Plain
// JavaScript with JSDoc types, so both load this very file: the shapes, inputs, tolerances and
// error measure a GPU run reports are the ones CI's tests use.

/** ‖a − b‖ / max(‖b‖, floor): the normalised error used throughout the tests. */
export function relErr(/** @type {ArrayLike<number>} */ a, /** @type {ArrayLike<number>} */ b, floor = 1e-12) {
  let num = 0
  let den = 0
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2
    den += b[i] ** 2
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), floor)
}

/**
 * Seeded normal draws (mulberry32 + Box-Muller), so failures reproduce.
 * @param {number} n
 * @param {number} seed
 * @returns {Float32Array}
 */
export function randn(n, seed, scale = 1, shift = 0) {
  let s = seed >>> 0
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) {
    const u = Math.max(next(), 1e-12)
    const v = next()
    out[i] = shift + scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)
  }
  return out
}

/**
 * The natural scale of a loss gradient's norm. 'cos': row i of the gradient is at most ~2/(nτ|z_i|) (the
 * gradient with respect to the unit vector u_i is a difference of softmax-weighted unit vectors over nτ,
 * and normalisation divides it by |z_i|), so the scale is 2/(nτ) · sqrt(mean over the views of
 * Σ_i 1/|z_i|²); rows of tiny norm count for what they amplify. 'dcl': a row whose softmax put all its
 * mass on one wrong column, from the rms of z. fp32 logits carry ~1e-7·|S| absolute error, so where the
 * loss saturates or the exact gradient vanishes (D = 1 for cosines: every u_i is ±1 and the exact gradient
 * is 0; N = 2 for batch normalisation) the net gradient is far smaller than its terms; tests measure
 * errors against max(‖ref‖, 1% of this).
 * @param {'cos' | 'dcl'} kind
 * @param {number} n
 * @param {number} d
 * @param {number} temperature
 * @param {Float32Array | Float32Array[]} views one [n, d] input, or several (the scale averages over them)
 */
export function naturalScale(kind, n, d, temperature, views) {
  const list = Array.isArray(views) ? views : [views]
  if (kind === 'cos') {
    let inv = 0
    for (const z of list)
      for (let i = 0; i < n; i++) {
        let ss = 0
        for (let k = 0; k < d; k++) ss += z[i * d + k] ** 2
        inv += 1 / Math.max(ss, 1e-24)
      }
    return (2 / (n * temperature)) * Math.sqrt(inv / list.length)
  }
  let ss = 0
  for (const v of list[0]) ss += v * v
  const rms = Math.sqrt(ss / list[0].length) || 1
  return (2 * Math.sqrt(n * d)) / (n * temperature * d * rms)
}

/**
 * The floor of a CUDA-vs-CPU gradient comparison: 1% of naturalScale, and at D = 1 for cosines, where the exact
 * gradient is 0 and each computed row is the residue of two softmax-weighted sums of N terms of size up to the
 * scale that cancel (Σ_j p_ij u_j against (Σ_j p_ij c_ij) u_i, every u = ±1), also N·2^-24·scale / GRAD_TOLERANCE:
 * the rounding an fp32 sum of N terms may carry (the GPU's tiles sum in fp32 where the CPU sums in double). Measured on
 * an H200: that residue reached 1.6e-4 of the scale at N = 65,536 (N·2^-24 = 3.9e-3), 4.7e-5 at N = 4096.
 * @param {'cos' | 'dcl'} kind
 * @param {number} n
 * @param {number} d
 * @param {number} temperature
 * @param {Float32Array | Float32Array[]} views
 */
export function gradFloor(kind, n, d, temperature, views) {
  const scale = naturalScale(kind, n, d, temperature, views)
  const rounding = kind === 'cos' && d === 1 ? (n * 2 ** -24) / GRAD_TOLERANCE : 0
  return Math.max(0.01, rounding) * scale
}

/** Two losses agree: 1e-4 relative (absolute below 1). */
export function lossClose(/** @type {number} */ a, /** @type {number} */ b) {
  return Math.abs(a - b) <= 1e-4 * Math.max(1, Math.abs(b))
}

/** Gradients agree: normalised error below this (against the floor of naturalScale / 100). */
export const GRAD_TOLERANCE = 1e-3

/**
 * Three correlated [n, d] views (a shared base plus per-view noise), as a batch's z1, z2, z0 are.
 * @returns {Float32Array[]}
 */
export function lossViews(/** @type {number} */ n, /** @type {number} */ d) {
  const base = randn(n * d, n + d)
  return [1, 2, 3].map((k) => {
    const noise = randn(n * d, n * 7 + d + k, 0.5)
    return base.map((v, i) => v + noise[i])
  })
}

/**
 * The loss parity shapes: N crosses the 64-wide tiles (1, 7, 64, 1000, 4096, 65,536), D is 1, 128, 768;
 * N = 65,536 only at D = 1 unless `large` (minutes of CPU time for the reference).
 * @returns {[number, number][]}
 */
export function lossShapes(large = false) {
  /** @type {[number, number][]} */
  const shapes = []
  for (const n of [1, 7, 64, 1000, 4096, 65536])
    for (const d of [1, 128, 768]) {
      if (n === 65536 && d > 1 && !large) continue
      shapes.push([n, d])
    }
  return shapes
}

/**
 * Shapes for the host emulator (npm run test:emulated), which runs each thread as a fiber with every memory
 * access checked: small enough to run in seconds, yet crossing the 64-wide tiles and the 16-wide reduction
 * chunks (N = 1, 7, 65, 100, 130; D = 1, 17, 33, 100), so partial tiles, masks and multi-tile loops all execute.
 * N = 100 puts a many-row diagonal block in the last column tile, the one place where infonce_lse_kernel's
 * diag[] barrier orders anything (earlier tiles are ordered by the barriers of the tiles after them).
 * @type {{ loss: [number, number][], unfused: [number, number][], dropout: [number, number][] }}
 */
export const EMULATED_SHAPES = {
  // D = 1 at N = 65 and 130 as well: the exact gradient is 0 there, and what is compared is fp32 noise,
  // amplified by 1/|z_i| on rows of tiny norm, which naturalScale's per-row floor accounts for.
  loss: [
    [1, 1],
    [7, 1],
    [65, 1],
    [130, 1],
    [1, 17],
    [7, 17],
    [65, 33],
    [100, 100],
    [130, 17],
    [130, 100],
  ],
  unfused: [
    [1, 1],
    [7, 17],
    [130, 100],
  ],
  dropout: [
    [1, 1],
    [7, 33],
    [130, 100],
  ],
}

/**
 * Hard negatives of another count than the batch, [N, M, D] (M = k·N: the n-tuple format's k negatives per
 * example; and M < N): the simcse kernels' z3 column tiles and z3 gradient blocks end apart from z1's.
 * The GPU's shapes, then the host emulator's (tiles crossed by N, M or both).
 */
export const HARD_NEGATIVE_SHAPES = {
  gpu: /** @type {[number, number, number][]} */ ([
    [1, 7, 768],
    [64, 448, 768],
    [1000, 3000, 768],
    [4096, 28672, 128],
    [4096, 100, 768],
  ]),
  emulated: /** @type {[number, number, number][]} */ ([
    [1, 3, 17],
    [7, 2, 17],
    [65, 130, 33],
    [100, 17, 100],
    [7, 200, 1],
  ]),
}

/**
 * Inputs of a hard-negative parity check: z1, z2 [n, d] and z3 [m, d] around a shared component.
 * @returns {[Float32Array, Float32Array, Float32Array]}
 */
export function hardNegativeViews(/** @type {number} */ n, /** @type {number} */ m, /** @type {number} */ d) {
  const [z1, z2] = lossViews(n, d)
  const base = randn(n * d, n + d)
  const noise = randn(m * d, m * 5 + d, 0.5)
  return [z1, z2, noise.map((v, i) => v + base[i % (n * d)])]
}

/** Shapes of the unfused benchmark baseline's parity check (it holds N × N logits). */
export const UNFUSED_SHAPES = /** @type {[number, number][]} */ ([1, 7, 64, 1000].flatMap((n) => [1, 128, 768].map((d) => [n, d])))

/** Shapes of the dropout bit-equality check. */
export const DROPOUT_SHAPES = /** @type {[number, number][]} */ ([
  [1, 1],
  [7, 33],
  [3 * 64, 768],
  [1000, 129],
])

/** The dropout call of the bit-equality check: every third row is a dropout-free view. */
export function dropoutOptions(/** @type {number} */ rows) {
  const keepRows = Uint8Array.from({ length: rows }, (_, r) => (r % 3 === 2 ? 0 : 1))
  return { p: 0.1, seed: 12345678901n, offset: 5, keepRows }
}

/**
 * @typedef {{ toFloat32Array(): Float32Array, device: string, dispose(): void }} GradLike
 * @typedef {{ loss: number, grads: { z1?: GradLike, z2?: GradLike, z0?: GradLike, z3?: GradLike, z?: GradLike } }} LossResultLike
 * @typedef {{
 *   simcse(z1: any, z2: any, o?: any): LossResultLike,
 *   offDropout(z1: any, z2: any, z0: any, o?: any): LossResultLike,
 *   dcl(z1: any, z2: any, o?: any): LossResultLike,
 *   simcsePlusPlus(z1: any, z2: any, z0: any, o?: any): LossResultLike,
 *   cosent(z1: any, z2: any, scores: Float32Array, o?: any): LossResultLike,
 *   mse(z: any, target: Float32Array, o?: any): LossResultLike,
 * }} LossesLike
 */

/**
 * Every loss op with the floor kind of its gradients' error measure.
 * @type {{ name: string, floor: 'cos' | 'dcl', temperature: number, run(losses: LossesLike, z: any[]): LossResultLike }[]}
 */
export const LOSS_CASES = [
  { name: 'simcse', floor: 'cos', temperature: 0.05, run: (l, z) => l.simcse(z[0], z[1]) },
  { name: 'simcse+hard', floor: 'cos', temperature: 0.05, run: (l, z) => l.simcse(z[0], z[1], { hardNegatives: z[2] }) },
  {
    name: 'simcse+hard symmetric',
    floor: 'cos',
    temperature: 0.05,
    run: (l, z) => l.simcse(z[0], z[1], { hardNegatives: z[2], symmetric: true }),
  },
  { name: 'offDropout', floor: 'cos', temperature: 0.05, run: (l, z) => l.offDropout(z[0], z[1], z[2], { posScale: 0.9 }) },
  { name: 'dcl', floor: 'dcl', temperature: 5, run: (l, z) => l.dcl(z[0], z[1]) },
  { name: 'simcse++', floor: 'cos', temperature: 0.05, run: (l, z) => l.simcsePlusPlus(z[0], z[1], z[2]) },
  { name: 'cosent', floor: 'cos', temperature: 0.05, run: (l, z) => l.cosent(z[0], z[1], pairScores(z[0].shape[0])) },
  {
    name: 'angle',
    floor: 'cos',
    temperature: 0.05,
    run: (l, z) => l.cosent(z[0], z[1], pairScores(z[0].shape[0]), { similarity: 'angle' }),
  },
  // Distillation: z1 taught z2's rows (host values, as a step passes the teacher's vectors); then every row one target.
  { name: 'mse', floor: 'cos', temperature: 0.05, run: (l, z) => l.mse(z[0], z[1].toFloat32Array()) },
  { name: 'mse one target', floor: 'cos', temperature: 0.05, run: (l, z) => l.mse(z[0], z[1].toFloat32Array().subarray(0, z[1].shape[1])) },
]

/** Gold scores of n pairs (cosent): STS-B's steps of 0.5 in [0, 5], with ties. */
export function pairScores(/** @type {number} */ n) {
  return Float32Array.from({ length: n }, (_, i) => ((i * 7) % 11) / 2)
}

/**
 * Compares one loss result on the device against the CPU's: the loss, every gradient's device and
 * normalised error. Returns whether all agree and a one-line summary.
 * @param {LossResultLike} a the device result
 * @param {LossResultLike} b the CPU result
 * @param {string} device the device a's gradients must be on
 * @param {number} floor the error floor (1% of the natural scale)
 */
export function compareLossResults(a, b, device, floor) {
  let ok = lossClose(a.loss, b.loss)
  const parts = [`loss ${a.loss} vs ${b.loss}`]
  for (const k of /** @type {('z1' | 'z2' | 'z0' | 'z3' | 'z')[]} */ (Object.keys(b.grads))) {
    const ga = a.grads[k]
    const gb = b.grads[k]
    if (!ga || !gb) {
      ok = false
      parts.push(`d${k} missing`)
      continue
    }
    if (ga.device !== device) {
      ok = false
      parts.push(`d${k} on ${ga.device}, not ${device}`)
    }
    const x = ga.toFloat32Array()
    const err = relErr(x, gb.toFloat32Array(), floor)
    ok = ok && err < GRAD_TOLERANCE && x.every(Number.isFinite)
    parts.push(`d${k} ${err.toExponential(2)}`)
  }
  return { ok, detail: parts.join(', ') }
}

/**
 * Whether a second run of a loss on the device gave the first run's loss and gradients bit for bit (the
 * kernels sum across blocks in a fixed order: kernels/ordered_sum.cuh), with a one-line summary.
 * @param {LossResultLike} a the first run
 * @param {LossResultLike} b the second run
 */
export function sameBits(a, b) {
  let ok = Object.is(a.loss, b.loss)
  const parts = ok ? [] : [`loss ${a.loss} then ${b.loss}`]
  for (const k of /** @type {('z1' | 'z2' | 'z0' | 'z3' | 'z')[]} */ (Object.keys(a.grads))) {
    const ga = a.grads[k],
      gb = b.grads[k]
    const r = ga && gb ? bitEqual(ga.toFloat32Array(), gb.toFloat32Array()) : { equal: false, diff: -1, total: 0 }
    if (!r.equal) parts.push(`d${k}: ${r.diff} of ${r.total} differ`)
    ok = ok && r.equal
  }
  return { ok, detail: ok ? 'a second run gives the same bits' : `a second run differs: ${parts.join(', ')}` }
}

/** Whether two float32 arrays are equal bit for bit; with the count of differing elements. */
export function bitEqual(/** @type {Float32Array} */ a, /** @type {Float32Array} */ b) {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length)
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length)
  let diff = 0
  for (let i = 0; i < Math.min(ua.length, ub.length); i++) if (ua[i] !== ub[i]) diff++
  return { equal: ua.length === ub.length && diff === 0, diff, total: ub.length }
}

/**
 * The unfused benchmark baseline (addon.offDropoutUnfused) on one device: loss, workspace bytes and
 * the three gradients copied to the host (every tensor it made is disposed).
 * @param {{ Tensor: { from(d: Float32Array, s: number[], dev?: any): any, zeros(s: number[], dev?: any): any }, nativeOf(t: unknown, name: string): any, addon: { offDropoutUnfused(...a: any[]): { loss: number, workspaceBytes: number } } }} lib
 * @param {Float32Array[]} views
 * @param {number} n
 * @param {number} d
 * @param {string} device
 */
export function runUnfused(lib, views, n, d, device) {
  const z = views.map((v) => lib.Tensor.from(v, [n, d], device))
  const g = [0, 1, 2].map(() => lib.Tensor.zeros([n, d], device))
  try {
    const [z1, z2, z0] = z.map((x) => lib.nativeOf(x, 'z'))
    const [g1, g2, g0] = g.map((x) => lib.nativeOf(x, 'grad'))
    const r = lib.addon.offDropoutUnfused(z1, z2, z0, 0.05, 0.9, g1, g2, g0)
    return { loss: r.loss, workspaceBytes: r.workspaceBytes, grads: g.map((x) => /** @type {Float32Array} */ (x.toFloat32Array())) }
  } finally {
    for (const x of [...z, ...g]) x.dispose()
  }
}
