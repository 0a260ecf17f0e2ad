// CUDA against the CPU reference, op by op (ggml's test-backend-ops idea): normalised error per op.
// The cases, inputs and tolerances are in helpers/parity.mjs, which scripts/gpu-check.mjs runs too.
// Skipped, with the reason printed, when CUDA is not compiled in or no device is usable.
// SIMCSEPP_TEST_LARGE=1 adds N = 65,536 at D = 128 and 768 (minutes of CPU time for the reference).
// Against the host emulator (npm run test:emulated) the same checks run at EMULATED_SHAPES, and
// SIMCSEPP_EXPECT_EMULATED=1 makes a build that is not the emulated one a failure instead of a skip.
import t from 'tap'
import { Tensor, cudaStatus, dropout, losses } from 'simcsepp'
import { addon } from '../lib/native.js'
import { Tensor as LibTensor, nativeOf } from '../lib/tensor.js'
import {
  DROPOUT_SHAPES,
  EMULATED_SHAPES,
  GRAD_TOLERANCE,
  HARD_NEGATIVE_SHAPES,
  LOSS_CASES,
  UNFUSED_SHAPES,
  bitEqual,
  compareLossResults,
  dropoutOptions,
  hardNegativeViews,
  lossClose,
  lossShapes,
  lossViews,
  gradFloor,
  randn,
  relErr,
  runUnfused,
  sameBits,
} from './helpers/parity.mjs'
import { withEnvVars } from './helpers/encoder-parity.mjs'

const status = cudaStatus()
const skip = status.available ? false : `CUDA unavailable: ${status.reason}`
if (skip) console.log(`# skipping CUDA tests: ${skip}`)
const emulated = status.emulated === true
const lossShapeList = emulated ? EMULATED_SHAPES.loss : lossShapes(process.env.SIMCSEPP_TEST_LARGE === '1')
const unfusedShapes = emulated ? EMULATED_SHAPES.unfused : UNFUSED_SHAPES
const dropoutShapes = emulated ? EMULATED_SHAPES.dropout : DROPOUT_SHAPES

if (process.env.SIMCSEPP_EXPECT_EMULATED === '1') {
  t.test('the emulated build is the one loaded', async (t) => {
    t.ok(status.available && emulated, `cudaStatus: ${JSON.stringify(status)}`)
  })
}

t.test('losses: CUDA equals CPU', { skip }, async (t) => {
  for (const [n, d] of lossShapeList) {
    const views = lossViews(n, d)
    const cpu = views.map((v) => Tensor.from(v, [n, d]))
    const gpu = cpu.map((x) => x.to('cuda'))
    for (const c of LOSS_CASES) {
      const floor = gradFloor(c.floor, n, d, c.temperature, c.floor === 'cos' ? views : views[0])
      const a = c.run(losses, gpu)
      const b = c.run(losses, cpu)
      const r = compareLossResults(a, b, 'cuda', floor)
      t.ok(r.ok, `${c.name} N=${n} D=${d}: ${r.detail}`)
      const again = c.run(losses, gpu)
      const same = sameBits(a, again)
      t.ok(same.ok, `${c.name} N=${n} D=${d}: ${same.detail}`)
      for (const g of [...Object.values(a.grads), ...Object.values(b.grads), ...Object.values(again.grads)]) g?.dispose()
    }
    for (const x of [...cpu, ...gpu]) x.dispose()
  }
})

// Hard negatives of another count than the batch (the n-tuple format's k per example, or fewer).
t.test('simcse with M != N hard negatives: CUDA equals CPU', { skip }, async (t) => {
  for (const [n, m, d] of emulated ? HARD_NEGATIVE_SHAPES.emulated : HARD_NEGATIVE_SHAPES.gpu) {
    const views = hardNegativeViews(n, m, d)
    const cpu = views.map((v, k) => Tensor.from(v, [k === 2 ? m : n, d]))
    const gpu = cpu.map((x) => x.to('cuda'))
    const run = (z: Tensor[]) => losses.simcse(z[0], z[1], { hardNegatives: z[2] })
    const floor = gradFloor('cos', n, d, 0.05, views.slice(0, 2))
    const a = run(gpu),
      b = run(cpu)
    const r = compareLossResults(a, b, 'cuda', floor)
    t.ok(r.ok, `simcse N=${n} M=${m} D=${d}: ${r.detail}`)
    const again = run(gpu)
    const same = sameBits(a, again)
    t.ok(same.ok, `simcse N=${n} M=${m} D=${d}: ${same.detail}`)
    for (const x of [...Object.values(a.grads), ...Object.values(b.grads), ...Object.values(again.grads), ...cpu, ...gpu]) x?.dispose()
  }
})

// The benchmark's unfused baseline (kernels/infonce_unfused.cu) against the CPU one
// (native/cpu/infonce_unfused.cpp): loss, all three gradients, and the bytes it reports.
t.test('offDropoutUnfused: CUDA equals CPU', { skip }, async (t) => {
  const lib = { Tensor: LibTensor, nativeOf, addon }
  for (const [n, d] of unfusedShapes) {
    const views = lossViews(n, d)
    const a = runUnfused(lib, views, n, d, 'cuda')
    const b = runUnfused(lib, views, n, d, 'cpu')
    t.ok(lossClose(a.loss, b.loss), `unfused N=${n} D=${d}: loss ${a.loss} vs ${b.loss}`)
    const floor = gradFloor('cos', n, d, 0.05, views)
    for (let k = 0; k < 3; k++) {
      const err = relErr(a.grads[k], b.grads[k], floor)
      t.ok(
        err < GRAD_TOLERANCE && a.grads[k].every(Number.isFinite),
        `unfused N=${n} D=${d} dz${[1, 2, 0][k]}: normalised error ${err.toExponential(2)}`,
      )
    }
    t.ok(a.workspaceBytes >= n * n * 4, `unfused N=${n} D=${d}: reports ${a.workspaceBytes} workspace bytes`)
  }
})

// The fused losses cut each row tile's column tiles into runs over blocks (kernels/infonce.cu); SIMCSEPP_LOSS_SPLITS
// caps the runs ('off': one per row tile, the kernels before the runs). Every cap holds the CPU's results; the
// runs change the order of the sums, so the bits differ; anything else is an Error naming the variable.
t.test('SIMCSEPP_LOSS_SPLITS: off, 2 or the default runs, each equal to the CPU; a bad value an Error', { skip }, async (t) => {
  const [n, d] = [130, 17] // three row tiles: three runs by default
  const views = lossViews(n, d)
  const cpu = views.map((v) => Tensor.from(v, [n, d]))
  const gpu = cpu.map((x) => x.to('cuda'))
  const offDropout = LOSS_CASES.find((c) => c.name === 'offDropout')!
  const floor = gradFloor(offDropout.floor, n, d, offDropout.temperature, offDropout.floor === 'cos' ? views : views[0])
  const reference = offDropout.run(losses, cpu)
  const results = []
  for (const splits of ['off', '2', undefined]) {
    const r = withEnvVars({ SIMCSEPP_LOSS_SPLITS: splits }, () => offDropout.run(losses, gpu))
    const cmp = compareLossResults(r, reference, 'cuda', floor)
    t.ok(cmp.ok, `SIMCSEPP_LOSS_SPLITS=${splits ?? '(unset)'}: ${cmp.detail}`)
    results.push(r)
  }
  t.not(results[0].loss, results[2].loss, 'one run and three add in another order (not a vacuous switch)')
  for (const bad of ['0', 'on', '2x', '-1']) {
    t.throws(
      () => withEnvVars({ SIMCSEPP_LOSS_SPLITS: bad }, () => offDropout.run(losses, gpu)),
      new RegExp(`SIMCSEPP_LOSS_SPLITS must be 'off' or a positive whole number of runs, not '${bad}'`),
      `'${bad}' refused`,
    )
  }
  for (const g of [...results.flatMap((r) => Object.values(r.grads)), ...Object.values(reference.grads), ...cpu, ...gpu]) g?.dispose()
})

t.test('dropout: CUDA draws the same mask as the CPU, bit for bit', { skip }, async (t) => {
  for (const [rows, cols] of dropoutShapes) {
    const x = randn(rows * cols, rows)
    const opts = dropoutOptions(rows)
    const a = dropout(Tensor.from(x, [rows, cols], 'cuda'), opts).toFloat32Array()
    const b = dropout(Tensor.from(x, [rows, cols]), opts).toFloat32Array()
    const r = bitEqual(a, b)
    t.ok(r.equal, `[${rows}, ${cols}]: ${r.diff} of ${r.total} elements differ`)
  }
})

t.test('tensors move between devices exactly', { skip }, async (t) => {
  const x = randn(1000, 1)
  const back = Tensor.from(x, [10, 100]).to('cuda').to('cpu').toFloat32Array()
  t.ok(bitEqual(back, x).equal)
  t.throws(() => losses.simcse(Tensor.from(x, [10, 100]), Tensor.from(x, [10, 100], 'cuda')), /z2.*device/)
})

t.test('out of GPU memory is an Error that says what was asked and what is free; the process lives', { skip }, async (t) => {
  const kept = Tensor.from(Float32Array.from([1, 2, 3]), [3], 'cuda')
  t.throws(
    () => Tensor.zeros([1_000_000, 1_000_000], 'cuda'),
    /^out of GPU memory: 3725\.29 GiB requested, [\d.]+ GiB free of [\d.]+ GiB; use a smaller batch or shorter sequences/,
  )
  t.same(Array.from(kept.toFloat32Array()), [1, 2, 3], 'earlier tensors stay valid')
  kept.dispose()
})

t.test('cudaStatus().memory: the device memory, free falling as tensors are allocated', { skip }, async (t) => {
  const before = cudaStatus().memory!
  t.ok(before.totalBytes > 0 && before.freeBytes > 0 && before.freeBytes <= before.totalBytes, JSON.stringify(before))
  const big = Tensor.zeros([64 * 2 ** 20], 'cuda') // 256 MiB
  const during = cudaStatus().memory!
  // The emulator's free memory is the host's available memory, which the machine's other processes move.
  if (!emulated) t.ok(before.freeBytes - during.freeBytes >= 200 * 2 ** 20, `free: ${before.freeBytes} then ${during.freeBytes}`)
  else t.ok(during.freeBytes <= during.totalBytes, 'emulated: free within total')
  big.dispose()
})

t.test('cudaStatus().gemm names the GEMM library and why', { skip }, async (t) => {
  t.type(status.gemm, 'string')
  if (emulated) t.match(status.gemm!, /^simcsepp kernels \(the emulated device cannot run cuBLASLt\)$/)
  else t.match(status.gemm!, /^(cuBLASLt \d+ \(.+\)|simcsepp kernels \(.+\))$/)
  const { spawnSync } = await import('node:child_process')
  const r = spawnSync(
    process.execPath,
    ['--input-type=module', '-e', "import('./dist/index.js').then((m) => console.log(m.cudaStatus().gemm))"],
    { encoding: 'utf8', env: { ...process.env, SIMCSEPP_GEMM: 'kernels' } },
  )
  t.equal(r.stdout.trim(), 'simcsepp kernels (SIMCSEPP_GEMM=kernels)', r.stderr)
})
