// losses.cosent (CoSENT over scored pairs, sentence-transformers' CoSENTLoss) on the CPU: its loss against a float64
// reference written as sentence-transformers computes it (every ordered pair of pairs a term, log(1 + Σ exp)), its
// gradients against central differences of that reference, the cases without terms, large logits, and misuse.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Tensor, losses } from '../lib/index.js'
import { randn, relErr } from './helpers/parity.mjs'

/**
 * sentence-transformers' pairwise_angle_sim in float64, step by step as it computes it: the vectors padded to an even
 * width and chunked into real and imaginary halves, their complex quotient's real and imaginary parts scaled by the
 * norms, summed, absolute.
 */
function angleSim(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const h = Math.ceil(x.length / 2)
  const at = (v: ArrayLike<number>, i: number) => (i < v.length ? v[i] : 0)
  let z = 0,
    dz = 0
  for (let k = 0; k < 2 * h; k++) {
    z += at(y, k) ** 2
    dz += at(x, k) ** 2
  }
  const scale = Math.sqrt(z) / Math.sqrt(dz) // re /= dz / dw
  let sum = 0
  for (let k = 0; k < h; k++) {
    const [a, b, c, e] = [at(x, k), at(x, h + k), at(y, k), at(y, h + k)]
    sum += ((a * c + b * e) / z) * scale + ((b * c - a * e) / z) * scale
  }
  return Math.abs(sum)
}

/** A reference case: pairs z1_i, z2_i ([n, d] each, float64), their scores y, τ and the similarity. */
interface Case {
  z1: Float64Array
  z2: Float64Array
  y: ArrayLike<number>
  n: number
  d: number
  tau: number
  similarity?: 'cosine' | 'angle'
}

/** CoSENTLoss (or AnglELoss) in float64: s = sim · scale; log(1 + Σ_{y_i < y_j} exp(s_i - s_j)), stabilised by its largest term. */
function reference({ z1, z2, y, n, d, tau, similarity = 'cosine' }: Case): number {
  const s: number[] = []
  for (let i = 0; i < n; i++) {
    let dot = 0,
      a = 0,
      b = 0
    for (let k = 0; k < d; k++) {
      dot += z1[i * d + k] * z2[i * d + k]
      a += z1[i * d + k] ** 2
      b += z2[i * d + k] ** 2
    }
    if (similarity === 'angle') s.push(angleSim(z1.subarray(i * d, (i + 1) * d), z2.subarray(i * d, (i + 1) * d)) / tau)
    else s.push(dot / Math.max(Math.sqrt(a), 1e-12) / Math.max(Math.sqrt(b), 1e-12) / tau)
  }
  const terms = [0]
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (y[i] < y[j]) terms.push(s[i] - s[j])
  const m = Math.max(...terms)
  return m + Math.log(terms.reduce((acc, x) => acc + Math.exp(x - m), 0))
}

/** The reference's gradient by central differences (float64: step 1e-6, error ~1e-9). */
function referenceGrads(c: Case) {
  const h = 1e-6
  return [c.z1, c.z2].map((z) =>
    Float64Array.from(z, (v, e) => {
      z[e] = v + h
      const up = reference(c)
      z[e] = v - h
      const down = reference(c)
      z[e] = v
      return (up - down) / (2 * h)
    }),
  )
}

/** Pairs whose cosines loosely follow their scores: z2 = z1 pulled towards a shared direction by the score. */
function scoredPairs(n: number, d: number, seed: number) {
  const z1 = randn(n * d, seed)
  const noise = randn(n * d, seed + 1)
  const y = Float32Array.from({ length: n }, (_, i) => ((i * 5 + seed) % 11) / 2)
  const z2 = z1.map((v, e) => v * (y[Math.floor(e / d)] / 5) + noise[e])
  return { z1, z2, y }
}

t.test('loss and gradients equal the float64 reference (central differences)', async (t) => {
  for (const [n, d, tau] of [
    [2, 3, 0.05],
    [7, 16, 0.05],
    [37, 24, 0.05],
    [70, 5, 0.2],
    [130, 4, 1],
  ] as const) {
    const { z1, z2, y } = scoredPairs(n, d, n + d)
    const r = losses.cosent(Tensor.from(z1, [n, d]), Tensor.from(z2, [n, d]), y, { temperature: tau })
    const [a, b] = [Float64Array.from(z1), Float64Array.from(z2)]
    const want = reference({ z1: a, z2: b, y, n, d, tau })
    t.ok(Math.abs(r.loss - want) <= 1e-5 * Math.max(1, want), `N=${n} D=${d} τ=${tau}: loss ${r.loss} vs ${want}`)
    const [g1, g2] = referenceGrads({ z1: a, z2: b, y, n, d, tau })
    const e1 = relErr(r.grads.z1.toFloat32Array(), g1)
    const e2 = relErr(r.grads.z2.toFloat32Array(), g2)
    t.ok(e1 < 2e-5 && e2 < 2e-5, `N=${n} D=${d} τ=${tau}: gradient errors ${e1.toExponential(2)}, ${e2.toExponential(2)}`)
  }
})

t.test('AnglE (similarity angle): loss and gradients equal sentence-transformers’ AnglELoss in float64', async (t) => {
  for (const [n, d, tau] of [
    [2, 4, 0.05],
    [9, 7, 0.05], // odd: padded with a zero, as pairwise_angle_sim pads
    [37, 24, 0.05],
    [70, 5, 0.2],
  ] as const) {
    const { z1, z2, y } = scoredPairs(n, d, 2 * n + d)
    const r = losses.cosent(Tensor.from(z1, [n, d]), Tensor.from(z2, [n, d]), y, { temperature: tau, similarity: 'angle' })
    const [a, b] = [Float64Array.from(z1), Float64Array.from(z2)]
    const want = reference({ z1: a, z2: b, y, n, d, tau, similarity: 'angle' })
    t.ok(Math.abs(r.loss - want) <= 1e-5 * Math.max(1, want), `N=${n} D=${d} τ=${tau}: loss ${r.loss} vs ${want}`)
    const [g1, g2] = referenceGrads({ z1: a, z2: b, y, n, d, tau, similarity: 'angle' })
    const e1 = relErr(r.grads.z1.toFloat32Array(), g1)
    const e2 = relErr(r.grads.z2.toFloat32Array(), g2)
    t.ok(e1 < 2e-5 && e2 < 2e-5, `N=${n} D=${d} τ=${tau}: gradient errors ${e1.toExponential(2)}, ${e2.toExponential(2)}`)
    const cos = losses.cosent(Tensor.from(z1, [n, d]), Tensor.from(z2, [n, d]), y, { temperature: tau }).loss
    t.not(r.loss, cos, 'not the cosine loss')
  }
  const z = Tensor.from(randn(8, 4), [2, 4])
  t.throws(() => losses.cosent(z, z, Float32Array.of(1, 2), { similarity: 'dot' as never }), /similarity must be 'cosine' or 'angle'/)
})

// sentence-transformers itself (SIMCSEPP_PYTHON, else python3; .ci/run installs it when it can): skipped without.
const python = process.env.SIMCSEPP_PYTHON || 'python3'
const hasSt = spawnSync(python, ['-c', 'import torch, sentence_transformers'], { stdio: 'ignore' }).status === 0
t.test(
  'sentence-transformers’ CoSENTLoss and AnglELoss (their code, float64 autograd) give our losses and gradients',
  { skip: hasSt ? false : `${python} cannot import torch and sentence_transformers (set SIMCSEPP_PYTHON to one that can)` },
  async (t) => {
    const shapes = [
      [6, 4],
      [33, 17],
      [64, 48],
    ] as const
    const cases = shapes.map(([n, d]) => {
      const { z1, z2, y } = scoredPairs(n, d, 3 * n + d)
      return { n, d, z1: Array.from(z1), z2: Array.from(z2), scores: Array.from(y) }
    })
    const dir = mkdtempSync(join(tmpdir(), 'simcsepp-st-losses-'))
    writeFileSync(join(dir, 'in.json'), JSON.stringify(cases))
    const r = spawnSync(python, [join(import.meta.dirname, 'helpers', 'st_losses.py'), join(dir, 'in.json'), join(dir, 'out.json')], {
      encoding: 'utf8',
      timeout: 300_000,
    })
    t.equal(r.status, 0, r.stderr)
    const theirs = JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8')) as Record<
      'cosent' | 'angle',
      { loss: number; g1: number[]; g2: number[] }
    >[]
    cases.forEach((c, i) => {
      for (const similarity of ['cosine', 'angle'] as const) {
        const ref = theirs[i][similarity === 'angle' ? 'angle' : 'cosent']
        const ours = losses.cosent(
          Tensor.from(Float32Array.from(c.z1), [c.n, c.d]),
          Tensor.from(Float32Array.from(c.z2), [c.n, c.d]),
          Float32Array.from(c.scores),
          {
            similarity,
          },
        )
        const what = `${similarity} N=${c.n} D=${c.d}`
        t.ok(Math.abs(ours.loss - ref.loss) <= 1e-5 * Math.max(1, ref.loss), `${what}: loss ${ours.loss}, theirs ${ref.loss}`)
        const e1 = relErr(ours.grads.z1.toFloat32Array(), ref.g1)
        const e2 = relErr(ours.grads.z2.toFloat32Array(), ref.g2)
        t.ok(e1 < 1e-5 && e2 < 1e-5, `${what}: gradients within ${e1.toExponential(2)}, ${e2.toExponential(2)}`)
      }
    })
  },
)

t.test('only the order of the scores counts; ties and a single pair make no term', async (t) => {
  const n = 9,
    d = 6
  const { z1, z2, y } = scoredPairs(n, d, 3)
  const [a, b] = [Tensor.from(z1, [n, d]), Tensor.from(z2, [n, d])]
  const base = losses.cosent(a, b, y).loss
  // A monotone map of the scores (0..5 to 0..1, then cubed) keeps every order, so every term.
  t.equal(
    losses.cosent(
      a,
      b,
      y.map((v) => (v / 5) ** 3),
    ).loss,
    base,
    'the same bits for any monotone rescaling',
  )
  const tied = losses.cosent(a, b, new Float32Array(n).fill(2.5))
  t.equal(tied.loss, 0, 'all tied: log(1) = 0')
  t.ok(tied.grads.z1.toFloat32Array().every((v) => v === 0) && tied.grads.z2.toFloat32Array().every((v) => v === 0), 'no gradient')
  const one = losses.cosent(Tensor.from(z1.subarray(0, d), [1, d]), Tensor.from(z2.subarray(0, d), [1, d]), y.subarray(0, 1))
  t.equal(one.loss, 0)
  // Two pairs: the cosines in the gold order give a small loss, reversed a large one.
  const two = (ya: number, yb: number) => {
    const u = Tensor.from(Float32Array.of(1, 0, 1, 0.2), [2, 2])
    const v = Tensor.from(Float32Array.of(1, 0.1, 0, 1), [2, 2])
    return losses.cosent(u, v, Float32Array.of(ya, yb)).loss
  }
  const gap = (Math.cos(Math.atan(0.1)) - Math.cos(Math.atan2(1, 0) - Math.atan(0.2))) / 0.05
  t.ok(Math.abs(two(5, 0) - Math.log1p(Math.exp(-gap))) < 1e-5, `in order: ${two(5, 0)}`)
  t.ok(Math.abs(two(0, 5) - Math.log1p(Math.exp(gap))) < 1e-4, `reversed: ${two(0, 5)}`)
})

t.test('large logits stay finite: the largest term is factored out', async (t) => {
  const n = 5,
    d = 3
  const { z1, z2, y } = scoredPairs(n, d, 11)
  const tau = 1e-4 // differences of cosines of ~1 become logits of ~1e4: exp would overflow
  const r = losses.cosent(Tensor.from(z1, [n, d]), Tensor.from(z2, [n, d]), y, { temperature: tau })
  const want = reference({ z1: Float64Array.from(z1), z2: Float64Array.from(z2), y, n, d, tau })
  t.ok(want > 100 && Math.abs(r.loss - want) <= 1e-6 * want, `loss ${r.loss} vs ${want}`)
  t.ok(r.grads.z1.toFloat32Array().every(Number.isFinite))
})

t.test('misuse throws an Error naming the argument', async (t) => {
  const z = Tensor.from(randn(12, 1), [4, 3])
  const y = Float32Array.of(1, 2, 3, 4)
  t.throws(() => losses.cosent(z, z, [1, 2, 3, 4] as unknown as Float32Array), /Expected scores to be a Float32Array but received/)
  t.throws(() => losses.cosent(z, z, Float32Array.of(1, 2, 3)), /Expected scores to have one entry per row of z1 \(4\) but it has 3/)
  t.throws(() => losses.cosent(z, z, Float32Array.of(1, NaN, 3, 4)), /scores\[1\] is NaN: every pair needs a finite score/)
  t.throws(() => losses.cosent(z, Tensor.from(randn(15, 2), [5, 3]), y), /z2/)
  t.throws(() => losses.cosent(z, z, y, { temperature: 0 }), /temperature/)
  t.throws(() => losses.cosent(z, z, y, { scale: 20 } as never), /unknown option/)
  const bad = Tensor.from(Float32Array.of(1, 2, 3, Infinity, 0, 0, 1, 1, 1, 2, 2, 2), [4, 3])
  t.throws(() => losses.cosent(z, bad, y), /z2 contains NaN or Inf values/)
})
