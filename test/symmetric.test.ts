// Symmetric supervised InfoNCE (sentence-transformers' MultipleNegativesSymmetricRankingLoss): losses.simcse's
// symmetric option against the float64 references of its two halves and finite differences; the training option
// (--symmetric): the step's loss, its parts on both backends (CUDA: graphs replayed, their losses read back),
// the model card, and the refusals.
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { cudaStatus, losses, Tensor } from '../lib/index.js'
import { train } from '../lib/train/train.js'
import type { StepInfo } from '../lib/train/events.js'
import { flat, randn, relErr, simcseRef, toMat, type Mat } from './helpers/reference.js'
import { compareWeights } from './helpers/compare-weights.js'
import { tempDir, TINY_RUN, WORDS } from './helpers/train-corpus.js'

const half = (a: Mat, b: Mat) => a.map((row, i) => row.map((v, k) => 0.5 * (v + b[i][k])))

t.test('symmetric simcse: the mean of the anchors’ and the positives’ InfoNCE, gradients included', async (t) => {
  for (const [n, m, d] of [
    [1, 0, 4],
    [5, 0, 3],
    [7, 14, 9],
    [130, 65, 20],
  ]) {
    const base = randn(n * d, n + d)
    const z = [1, 2].map((k) => base.map((v, i) => v + randn(n * d, 10 * n + k, 0.6)[i]))
    const z3 = randn(m * d, 3 * m + 1)
    const [m1, m2] = z.map((v) => toMat(v, n, d))
    const m3 = m ? toMat(z3, m, d) : undefined
    const tau = 0.05
    const fwd = simcseRef(m1, m2, tau, m3)
    const bwd = simcseRef(m2, m1, tau)
    const out = losses.simcse(Tensor.from(z[0], [n, d]), Tensor.from(z[1], [n, d]), {
      temperature: tau,
      symmetric: true,
      ...(m ? { hardNegatives: Tensor.from(z3, [m, d]) } : {}),
    })
    const what = `N=${n} M=${m} D=${d}`
    const want = 0.5 * (fwd.loss + bwd.loss)
    t.ok(Math.abs(out.loss - want) < 1e-5 * Math.max(1, want), `${what}: loss ${out.loss} vs ${want}`)
    t.ok(Math.abs(out.parts!.anchors - fwd.loss) < 1e-5 * Math.max(1, fwd.loss), `${what}: anchors part ${out.parts!.anchors}`)
    t.ok(Math.abs(out.parts!.positives - bwd.loss) < 1e-5 * Math.max(1, bwd.loss), `${what}: positives part ${out.parts!.positives}`)
    const grads: [string, Tensor, Mat][] = [
      ['dz1', out.grads.z1, half(fwd.g1, bwd.g2!)],
      ['dz2', out.grads.z2, half(fwd.g2!, bwd.g1)],
      ...(m ? ([['dz3', out.grads.z3!, fwd.g3!.map((r) => r.map((v) => 0.5 * v))]] as [string, Tensor, Mat][]) : []),
    ]
    for (const [name, got, ref] of grads) {
      const err = relErr(got.toFloat32Array(), flat(ref), 1e-6)
      t.ok(err < 2e-4, `${what} ${name}: relative error ${err.toExponential(2)}`)
    }
  }
})

t.test('symmetric simcse: gradients agree with finite differences of the float64 loss', async (t) => {
  const [n, m, d, tau] = [4, 4, 3, 0.5]
  const zs = [randn(n * d, 1), randn(n * d, 2), randn(m * d, 3)]
  const out = losses.simcse(Tensor.from(zs[0], [n, d]), Tensor.from(zs[1], [n, d]), {
    temperature: tau,
    symmetric: true,
    hardNegatives: Tensor.from(zs[2], [m, d]),
  })
  const mats = [toMat(zs[0], n, d), toMat(zs[1], n, d), toMat(zs[2], m, d)]
  const lossOf = () => 0.5 * (simcseRef(mats[0], mats[1], tau, mats[2]).loss + simcseRef(mats[1], mats[0], tau).loss)
  const native = [out.grads.z1, out.grads.z2, out.grads.z3!]
  mats.forEach((z, which) => {
    const fd = new Float64Array(z.length * d)
    for (let i = 0; i < z.length; i++)
      for (let k = 0; k < d; k++) {
        const keep = z[i][k]
        z[i][k] = keep + 1e-6
        const up = lossOf()
        z[i][k] = keep - 1e-6
        const down = lossOf()
        z[i][k] = keep
        fd[i * d + k] = (up - down) / 2e-6
      }
    const err = relErr(native[which].toFloat32Array(), fd, 1e-6)
    t.ok(err < 1e-3, `input ${which + 1}: relative error ${err.toExponential(2)}`)
  })
  t.throws(
    () => losses.simcse(Tensor.from(zs[0], [n, d]), Tensor.from(zs[1], [n, d]), { symmetric: 1 as never }),
    /symmetric must be a boolean/,
  )
})

const dir = tempDir('simcsepp-symmetric-')
let s = 5
const rnd = (k: number) => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) % k
const sentence = () => Array.from({ length: 3 + rnd(5) }, () => WORDS[rnd(WORDS.length)]).join(' ')
const rows = Array.from({ length: 32 }, () => {
  const a = sentence()
  return [a, a.split(' ').reverse().join(' '), sentence()]
})
const data = join(dir, 'nli.csv')
writeFileSync(data, ['sent0,sent1,hard_neg', ...rows.map((r) => r.join(','))].join('\n') + '\n')

t.test('--symmetric trains with both parts, shows them on the card, and is fixed on resume', async (t) => {
  const steps: StepInfo[] = []
  const out = join(dir, 'run')
  await train({ ...TINY_RUN, data, out, symmetric: true }, { onStep: (x) => void steps.push(x) })
  for (const x of steps) {
    t.same(Object.keys(x.parts).sort(), ['anchors', 'positives'])
    t.ok(Math.abs(x.loss - 0.5 * (x.parts.anchors + x.parts.positives)) < 1e-9 * x.loss, `step ${x.step}: loss = mean of the parts`)
  }
  t.match(readFileSync(join(out, 'README.md'), 'utf8'), /symmetric loss \| true/)
  await t.rejects(
    train({ ...TINY_RUN, data, out, resume: join(out, 'run', 'checkpoint'), steps: 4 }),
    /--resume: option symmetric was true in the checkpointed run, now false/,
  )
  const text = join(dir, 'sentences.txt')
  writeFileSync(text, rows.map((r) => r[0]).join('\n') + '\n')
  await t.rejects(
    train({ ...TINY_RUN, data: text, out: join(dir, 'text'), symmetric: true }),
    /train: symmetric applies to supervised pairs\/triplets/,
  )
})

const status = cudaStatus()
const skip = status.available ? false : `CUDA unavailable (${status.reason})`

t.test('a symmetric run on CUDA (fp32, graphs replayed) ends with the CPU losses, parts and weights', { skip }, async (t) => {
  const lr = 3e-5
  const run = { ...TINY_RUN, data, saveEvery: 0, lr, symmetric: true }
  const cpu: StepInfo[] = []
  const cuda: StepInfo[] = []
  await train({ ...run, device: 'cpu', out: join(dir, 'cpu') }, { onStep: (x) => void cpu.push(x) })
  await train({ ...run, device: 'cuda', precision: 'fp32', out: join(dir, 'cuda') }, { onStep: (x) => void cuda.push(x) })
  for (const [i, x] of cuda.entries())
    for (const k of ['anchors', 'positives']) {
      const [a, b] = [x.parts[k], cpu[i].parts[k]]
      t.ok(Math.abs(a - b) < 1e-4 * b, `step ${i + 1} (${x.cudaGraph}), ${k}: ${a} on CUDA, ${b} on the CPU`)
    }
  const { worst, keyBias } = await compareWeights(join(dir, 'cuda'), join(dir, 'cpu'))
  t.ok(worst < 1e-4, `weights within ${worst.toExponential(2)} relative`)
  t.ok(keyBias <= 2 * 3 * lr, `key bias within ${keyBias.toExponential(2)}`)
})
