// Matryoshka training (train()'s matryoshkaDims): the ops that cut the vectors to their first d columns and add
// the gradient back, the step's loss (the weighted sum of the objective over each size) against the same losses
// run by hand and against finite differences, the numbers a CUDA step graph reads back, and training runs: one
// size equal to the hidden size trains bit for bit as without Matryoshka; the log, training_args.json, the model
// card and resume carry the sizes. On CUDA (a GPU, or the host emulator in CI) the same run ends with the CPU's
// weights.
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { cudaStatus, evaluateSts, readStsFile, SentenceEncoder, Tensor } from '../lib/index.js'
import * as ops from '../lib/ops.js'
import { train } from '../lib/train/train.js'
import type { EvalInfo, StepInfo } from '../lib/train/events.js'
import { objectiveLoss, type LossSettings } from '../lib/train/objective.js'
import { StepObjective } from '../lib/train/matryoshka.js'
import { checkMatryoshkaOptions, matryoshkaPlan } from '../lib/train/matryoshka-options.js'
import { compareWeights } from './helpers/compare-weights.js'
import { cli, needsCli, tempDir, TINY_RUN, writeSentences, writeStsFile } from './helpers/train-corpus.js'
import { randn } from './helpers/parity.mjs'

const SETTINGS: LossSettings = { objective: 'simcse++', temperature: 0.05, posScale: 1, dclWeight: 0.1, dclTemperature: 5 }

t.test('leadingColumns copies the first d columns; addLeadingColumns adds a weighted gradient back', async (t) => {
  const [R, d, H] = [5, 3, 7]
  const x = randn(R * H, 1)
  const g = randn(R * d, 2)
  const out = Tensor.zeros([R, d])
  ops.leadingColumns(out, Tensor.from(x, [R, H]))
  const want = new Float32Array(R * d)
  for (let r = 0; r < R; r++) for (let c = 0; c < d; c++) want[r * d + c] = x[r * H + c]
  t.same(out.toFloat32Array(), want, 'out[r, c] = inp[r, c], bit for bit')

  const dinp = Tensor.from(x, [R, H])
  ops.addLeadingColumns(dinp, Tensor.from(g, [R, d]), 0.3)
  const got = dinp.toFloat32Array()
  let differ = 0
  for (let r = 0; r < R; r++)
    for (let c = 0; c < H; c++) {
      const i = r * H + c
      const expect = c < d ? Math.fround(x[i] + Math.fround(Math.fround(0.3) * g[r * d + c])) : x[i]
      if (got[i] !== expect) differ++
    }
  t.equal(differ, 0, 'dinp[:, :d] += 0.3 · dout in float32, the other columns untouched')

  const wide = Tensor.zeros([R, H])
  t.throws(() => ops.leadingColumns(Tensor.zeros([R, H + 1]), wide), /Expected out's last dimension \(8\) to be at most inp's \(7\)/)
  t.throws(() => ops.leadingColumns(Tensor.zeros([R + 1, d]), wide), /inp/, 'rows must match')
  t.throws(() => ops.addLeadingColumns(wide, wide), /dout.*dinp|dinp.*dout/, 'the same tensor both ways')
  t.throws(() => ops.addLeadingColumns(wide, Tensor.zeros([R, d]), NaN), /scale/)
  t.throws(() => ops.leadingColumns(out, 'x' as never), /inp/)
})

/** z [3n, H] and the losses of its first d columns run by hand: the objective's loss and its gradient. */
function byHand(z: Float32Array, n: number, H: number, d: number) {
  const rows = 3 * n
  const cut = new Float32Array(rows * d)
  for (let r = 0; r < rows; r++) cut.set(z.subarray(r * H, r * H + d), r * d)
  const grad = Tensor.zeros([rows, d])
  const r = objectiveLoss(SETTINGS, Tensor.from(cut, [rows, d]), grad, n)
  return { ...r, grad: grad.toFloat32Array() }
}

t.test("the step's loss: each size's objective, weighted and summed, with its gradient", async (t) => {
  const [n, H] = [6, 24]
  const rows = 3 * n
  const z = randn(rows * H, 7)
  const plan = matryoshkaPlan([8, 24, 16], [0.25, 1, 0.5], H)!
  t.same(
    plan.map((p) => p.dim),
    [24, 16, 8],
    'largest first, each with its weight',
  )
  const objective = new StepObjective(SETTINGS, plan, rows, H, 'cpu')
  t.teardown(() => objective.dispose())
  const grad = Tensor.zeros([rows, H])
  const got = objective.loss(Tensor.from(z, [rows, H]), grad, n)

  const parts = plan.map((p) => ({ ...p, ...byHand(z, n, H, p.dim) }))
  const loss = parts.reduce((s, p) => s + p.weight * p.loss, 0)
  t.ok(Math.abs(got.loss - loss) < 1e-6 * loss, `loss ${got.loss} = Σ w·L_d ${loss}`)
  t.same(Object.keys(got.dimLosses!).sort(), ['16', '24', '8'])
  for (const p of parts) t.equal(got.dimLosses![p.dim], p.loss, `the loss of the first ${p.dim} dimensions, unweighted`)
  const offDropout = parts.reduce((s, p) => s + p.weight * p.parts.offDropout, 0)
  t.ok(Math.abs(got.parts.offDropout - offDropout) < 1e-6, 'parts summed with the weights')
  t.ok(Math.abs(got.loss - (got.parts.offDropout + 0.1 * got.parts.dcl)) < 1e-5, 'loss = offDropout + λ·dcl of the sums')

  const g = grad.toFloat32Array()
  let worst = 0
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < H; c++) {
      let want = 0
      for (const p of parts) if (c < p.dim) want += p.weight * p.grad[r * p.dim + c]
      worst = Math.max(worst, Math.abs(g[r * H + c] - want))
    }
  t.ok(worst < 1e-7, `dL/dz = Σ w·dL_d/dz in the first d columns (worst ${worst.toExponential(2)})`)

  // Central differences in float64 of the float32 losses, at columns inside 8, between 8 and 16, beyond 16.
  const total = (zz: Float32Array) => plan.reduce((s, p) => s + p.weight * byHand(zz, n, H, p.dim).loss, 0)
  for (const [r, c] of [
    [0, 3],
    [n + 2, 11],
    [2 * n + 4, 20],
    [5, 7],
  ]) {
    const eps = 2e-3
    const plus = Float32Array.from(z),
      minus = Float32Array.from(z)
    plus[r * H + c] += eps
    minus[r * H + c] -= eps
    const fd = (total(plus) - total(minus)) / (plus[r * H + c] - minus[r * H + c])
    const analytic = g[r * H + c]
    t.ok(
      Math.abs(fd - analytic) < 2e-3 + 0.02 * Math.abs(analytic),
      `z[${r}, ${c}]: finite difference ${fd.toFixed(5)}, gradient ${analytic.toFixed(5)}`,
    )
  }

  // What a CUDA step graph reads back: every loss op's value in call order (offDropout, λ·dcl per size).
  const values = parts.flatMap((p) => [p.parts.offDropout, 0.1 * p.parts.dcl])
  const read = objective.fromResults(values)
  t.ok(Math.abs(read.loss - got.loss) < 1e-6 * got.loss, 'fromResults: the same loss')
  t.same(read.dimLosses, got.dimLosses, 'fromResults: the same losses per size')

  // Without the hidden size among the sizes, the last columns get no gradient.
  const partial = new StepObjective(SETTINGS, matryoshkaPlan([16, 8], undefined, H), rows, H, 'cpu')
  t.teardown(() => partial.dispose())
  const g2 = Tensor.from(new Float32Array(rows * H).fill(9), [rows, H])
  const r2 = partial.loss(Tensor.from(z, [rows, H]), g2, n)
  const a2 = g2.toFloat32Array()
  let beyond = 0
  for (let r = 0; r < rows; r++) for (let c = 16; c < H; c++) beyond = Math.max(beyond, Math.abs(a2[r * H + c]))
  t.equal(beyond, 0, 'columns 16.. of dL/dz are 0 (the buffer is cleared first)')
  t.ok(Math.abs(r2.loss - (parts[1].loss + parts[2].loss)) < 1e-6 * r2.loss, 'weights default to 1')
})

t.test('matryoshkaDims and matryoshkaWeights are checked', async (t) => {
  t.doesNotThrow(() => checkMatryoshkaOptions(undefined, undefined))
  t.throws(() => checkMatryoshkaOptions(undefined, [1]), /matryoshkaWeights needs matryoshkaDims/)
  t.throws(() => checkMatryoshkaOptions([], undefined), /matryoshkaDims must be a non-empty array/)
  t.throws(() => checkMatryoshkaOptions([64, 0], undefined), /integers >= 1 \(got 0\)/)
  t.throws(() => checkMatryoshkaOptions([64, 32.5], undefined), /integers >= 1 \(got 32.5\)/)
  t.throws(() => checkMatryoshkaOptions([64, 64], undefined), /lists 64 twice/)
  t.throws(() => checkMatryoshkaOptions([64, 32], [1]), /one weight per dimension of matryoshkaDims \(2\)/)
  t.throws(() => checkMatryoshkaOptions([64, 32], [1, -1]), /matryoshkaWeights must hold numbers in \[0, 1000\] \(got -1\)/)
  t.throws(() => checkMatryoshkaOptions([64, 32], [0, 0]), /all 0/)
  t.throws(() => matryoshkaPlan([129, 64], undefined, 128), /matryoshkaDims 129 is more than the model's vectors have \(128\)/)
  const dir = tempDir('simcsepp-matryoshka-options-')
  const data = writeSentences(join(dir, 'data.txt'), 20)
  await t.rejects(
    train({ ...TINY_RUN, data, out: join(dir, 'x'), matryoshkaDims: [256] }),
    /matryoshkaDims 256 is more than the model's vectors have \(128\)/,
  )
  await t.rejects(
    train({ ...TINY_RUN, data, out: join(dir, 'y'), matryoshkaDims: 64 as never }),
    /matryoshkaDims must be a non-empty array/,
  )
})

t.test('one size, the hidden size, trains bit for bit as without Matryoshka; its weight scales the loss', async (t) => {
  const dir = tempDir('simcsepp-matryoshka-same-')
  const data = writeSentences(join(dir, 'data.txt'), 40)
  const run = { ...TINY_RUN, data, device: 'cpu' as const, saveEvery: 0 }
  const plain: StepInfo[] = []
  await train({ ...run, out: join(dir, 'plain') }, { onStep: (s) => void plain.push(s) })
  const one: StepInfo[] = []
  await train({ ...run, out: join(dir, 'one'), matryoshkaDims: [128] }, { onStep: (s) => void one.push(s) })
  t.same(
    one.map((s) => s.loss),
    plain.map((s) => s.loss),
    'the same losses',
  )
  t.same(
    one.map((s) => s.dimLosses),
    plain.map((s) => ({ 128: s.loss })),
    'dimLosses: the one size',
  )
  t.same(
    readFileSync(join(dir, 'one', 'model.safetensors')),
    readFileSync(join(dir, 'plain', 'model.safetensors')),
    'the same weights, bit for bit',
  )
  const doubled: StepInfo[] = []
  await train(
    { ...run, steps: 1, out: join(dir, 'two'), matryoshkaDims: [128], matryoshkaWeights: [2] },
    { onStep: (s) => void doubled.push(s) },
  )
  t.equal(doubled[0].loss, 2 * plain[0].loss, 'weight 2: twice the loss')
})

t.test('in micro-batches, a Matryoshka run ends with the weights of the whole-batch run', async (t) => {
  const dir = tempDir('simcsepp-matryoshka-micro-')
  const data = writeSentences(join(dir, 'data.txt'), 40)
  const lr = 3e-5
  const run = { ...TINY_RUN, data, device: 'cpu' as const, saveEvery: 0, lr, matryoshkaDims: [128, 32], matryoshkaWeights: [1, 0.5] }
  const passes: number[] = []
  await train({ ...run, out: join(dir, 'whole'), microBatch: 0 })
  await train({ ...run, out: join(dir, 'm7'), microBatch: 7 }, { onStep: (s) => void passes.push(s.microBatches) })
  t.same(passes, [4, 4, 4], '24 rows in 4 passes per step')
  const { worst, keyBias, worstName } = await compareWeights(join(dir, 'm7'), join(dir, 'whole'))
  t.ok(worst < 1e-5, `weights within ${worst.toExponential(2)} relative (worst: ${worstName})`)
  t.ok(keyBias <= 2 * 3 * lr, `key bias within ${keyBias.toExponential(2)}`)
})

t.test('a Matryoshka run: its log, training_args.json, model card and resume', async (t) => {
  const dir = tempDir('simcsepp-matryoshka-run-')
  const data = writeSentences(join(dir, 'data.txt'), 40)
  const out = join(dir, 'out')
  const steps: StepInfo[] = []
  const options = {
    ...TINY_RUN,
    data,
    device: 'cpu' as const,
    out,
    steps: 2,
    matryoshkaDims: [128, 64, 16],
    matryoshkaWeights: [1, 1, 0.5],
  }
  await train(options, { onStep: (s) => void steps.push(s) })
  for (const s of steps) {
    const d = s.dimLosses!
    t.same(Object.keys(d).sort(), ['128', '16', '64'], `step ${s.step}: a loss per size`)
    const sum = d[128] + d[64] + 0.5 * d[16]
    t.ok(Math.abs(s.loss - sum) < 1e-5 * sum, `step ${s.step}: loss ${s.loss} = the weighted sum ${sum}`)
    t.ok(
      Object.values(d).every((l) => Number.isFinite(l) && l > 0),
      'finite, positive losses',
    )
  }
  const log = readFileSync(join(out, 'run', 'train.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
  t.same(
    log.filter((e) => e.type === 'step').map((e) => e.dimLosses),
    steps.map((s) => s.dimLosses),
    'train.jsonl holds them',
  )
  const args = JSON.parse(readFileSync(join(out, 'run', 'training_args.json'), 'utf8'))
  t.same(
    [args.matryoshkaDims, args.matryoshkaWeights],
    [
      [128, 64, 16],
      [1, 1, 0.5],
    ],
    'training_args.json records the sizes',
  )
  const card = readFileSync(join(out, 'README.md'), 'utf8')
  t.match(card, /- matryoshka\n/, 'tagged')
  t.match(card, /first 128, 64, 16 dimensions \(weights 1, 1, 0\.5\)/)
  t.match(card, /Final loss per dimension: 128: \d\.\d{4}, 64: \d\.\d{4}, 16: \d\.\d{4}/)
  t.match(card, /truncate_dim=16\)/)
  t.match(card, /\{ truncateDim: 16 \}/)
  const svg = readFileSync(join(out, 'run', 'loss_curve.svg'), 'utf8')
  for (const d of [128, 64, 16]) t.match(svg, `${d} dims (EMA)`, `the loss curve of ${d} dims`)

  // The sizes are fixed on resume; a checkpoint written before the option existed resumes as without it.
  await t.rejects(
    train({ ...options, matryoshkaDims: [128, 32], matryoshkaWeights: undefined, resume: out }),
    /option matryoshkaDims was \[128,64,16\] in the checkpointed run, now \[128,32\]/,
  )
  const plainOut = join(dir, 'plain')
  await train({ ...TINY_RUN, data, device: 'cpu', out: plainOut, steps: 2 })
  const state = join(plainOut, 'run', 'checkpoint', 'state.json')
  const s = JSON.parse(readFileSync(state, 'utf8'))
  delete s.options.matryoshkaDims
  delete s.options.matryoshkaWeights
  writeFileSync(state, JSON.stringify(s))
  const resumed = await train({ ...TINY_RUN, data, device: 'cpu', out: plainOut, steps: 2, resume: plainOut })
  t.equal(resumed.steps, 2, 'an older checkpoint (no Matryoshka keys) resumes')
})

t.test('evaluation scores the first STS file on the vectors cut to each size, as SentenceEncoder truncateDim does', async (t) => {
  const dir = tempDir('simcsepp-matryoshka-eval-')
  const data = writeSentences(join(dir, 'data.txt'), 40)
  const sts = writeStsFile(join(dir, 'sts-dev.tsv'))
  const out = join(dir, 'out')
  const evals: EvalInfo[] = []
  const run = { ...TINY_RUN, data, device: 'cpu' as const, out, steps: 2, evalFiles: [sts], evalEvery: 2, lr: 2e-4 }
  await train({ ...run, matryoshkaDims: [128, 32, 8] }, { onEval: (e) => void evals.push(e) })
  t.equal(evals.length, 2, 'steps 0 and 2')
  for (const e of evals) t.same(Object.keys(e.dimSpearman!).sort(), ['32', '8'], `step ${e.step}: the sizes below the hidden size`)
  // The model in out/ is the best evaluation's: its vectors cut by SentenceEncoder give the logged numbers.
  const best = evals.filter((e) => e.best).at(-1)!
  const pairs = await readStsFile(sts)
  for (const [d, logged] of [...Object.entries(best.dimSpearman!), ['128', best.spearman] as const]) {
    const enc = await SentenceEncoder.load(out, { device: 'cpu', truncateDim: Number(d) })
    const { spearman } = await evaluateSts((s) => enc.encode(s), pairs)
    await enc.close()
    t.ok(
      Math.abs(spearman - Number(logged)) < 1e-6,
      `size ${d}: ${Number(logged).toFixed(4)} logged, ${spearman.toFixed(4)} from SentenceEncoder`,
    )
  }
  const card = readFileSync(join(out, 'README.md'), 'utf8')
  t.match(card, /\| step \| sts-dev\.tsv \| average \| @32 \| @8 \|/, 'the card adds a column per size')
  t.match(card, `| ${best.dimSpearman![32].toFixed(2)} | ${best.dimSpearman![8].toFixed(2)} |`)
  const plain: EvalInfo[] = []
  await train({ ...run, out: join(dir, 'plain') }, { onEval: (e) => void plain.push(e) })
  t.notOk('dimSpearman' in plain[0], 'none without Matryoshka')
})

t.test('simcsepp train --matryoshka-dims / --matryoshka-weights', needsCli, async (t) => {
  const dir = tempDir('simcsepp-matryoshka-cli-')
  const data = writeSentences(join(dir, 'data.txt'), 20)
  const base = ['train', '--config', 'tiny', '--batch-size', '8', '--max-len', '12', '--eval-every', '0', '--data', data, '--steps', '1']
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...base, ...args], { encoding: 'utf8' })
  const ok = run('--out', join(dir, 'ok'), '--device', 'cpu', '--matryoshka-dims', '128, 32', '--matryoshka-weights', '1,0.5')
  t.equal(ok.status, 0, ok.stderr)
  const args = JSON.parse(readFileSync(join(dir, 'ok', 'run', 'training_args.json'), 'utf8'))
  t.same(
    [args.matryoshkaDims, args.matryoshkaWeights],
    [
      [128, 32],
      [1, 0.5],
    ],
  )
  const bad = run('--out', join(dir, 'bad'), '--matryoshka-dims', '128,x')
  t.not(bad.status, 0)
  t.match(bad.stderr, /--matryoshka-dims must be an integer >= 1 \(got "x" in "128,x"\)/)
  const over = run('--out', join(dir, 'over'), '--matryoshka-dims', '512')
  t.not(over.status, 0)
  t.match(over.stderr, /matryoshkaDims 512 is more than the model's vectors have \(128\)/)
})

const status = cudaStatus()
const skip = status.available ? false : `CUDA unavailable (${status.reason})`

t.test('a Matryoshka run on CUDA (fp32, step graphs) ends with the CPU weights', { skip }, async (t) => {
  const dir = tempDir('simcsepp-matryoshka-cuda-')
  const data = writeSentences(join(dir, 'data.txt'), 40)
  const lr = 3e-5
  const run = { ...TINY_RUN, data, saveEvery: 0, lr, matryoshkaDims: [64, 16], matryoshkaWeights: [1, 0.5] }
  const cpu: StepInfo[] = []
  const cuda: StepInfo[] = []
  await train({ ...run, device: 'cpu', out: join(dir, 'cpu') }, { onStep: (s) => void cpu.push(s) })
  await train({ ...run, device: 'cuda', precision: 'fp32', out: join(dir, 'cuda') }, { onStep: (s) => void cuda.push(s) })
  t.same(
    cuda.map((s) => s.cudaGraph),
    ['eager', 'captured', 'replayed'],
    'steps 2 and 3 ran as one graph',
  )
  for (const [i, s] of cuda.entries())
    for (const d of ['64', '16']) {
      const [a, b] = [s.dimLosses![d], cpu[i].dimLosses![d]]
      t.ok(Math.abs(a - b) < 1e-4 * b, `step ${i + 1}, size ${d}: loss ${a} on CUDA, ${b} on the CPU`)
    }
  const { worst, keyBias, worstName } = await compareWeights(join(dir, 'cuda'), join(dir, 'cpu'))
  t.ok(worst < 1e-4, `weights within ${worst.toExponential(2)} relative (worst: ${worstName})`)
  t.ok(keyBias <= 2 * 3 * lr, `key bias within ${keyBias.toExponential(2)}`)
})
