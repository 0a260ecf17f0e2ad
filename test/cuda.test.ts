// CUDA against the CPU reference, op by op (ggml's test-backend-ops idea): normalised error per op.
// Skipped, with the reason printed, when CUDA is not compiled in or no device is usable.
// SIMCSEPP_TEST_LARGE=1 adds N = 65,536 at D = 128 and 768 (minutes of CPU time for the reference).
import t from 'tap'
import { Tensor, cudaStatus, dropout, losses } from 'simcsepp'
import { addon } from '../lib/native.js'
import { Tensor as LibTensor, nativeOf } from '../lib/tensor.js'
import { naturalScale, randn, relErr } from './helpers/reference.js'

const status = cudaStatus()
const skip = status.available ? false : `CUDA unavailable: ${status.reason}`
if (skip) console.log(`# skipping CUDA tests: ${skip}`)

const large = process.env.SIMCSEPP_TEST_LARGE === '1'
const shapes: [number, number][] = []
for (const n of [1, 7, 64, 1000, 4096, 65536])
  for (const d of [1, 128, 768]) {
    if (n === 65536 && d > 1 && !large) continue
    shapes.push([n, d])
  }

// Normalised error ‖cuda − cpu‖ / max(‖cpu‖, floor): the floor (1% of the gradient's natural scale,
// helpers/reference.ts) covers gradients that vanish exactly (N = 1, D = 1) or nearly (saturation).
type HasData = { toFloat32Array(): Float32Array }
function compare(t: Tap, what: string, cuda: HasData, cpu: HasData, tol: number, floor = 1e-9) {
  const a = cuda.toFloat32Array(), b = cpu.toFloat32Array()
  const err = relErr(a, b, floor)
  t.ok(err < tol && a.every(Number.isFinite), `${what}: normalised error ${err.toExponential(2)}`)
}
type Tap = typeof t

t.test('losses: CUDA equals CPU', { skip }, async (t) => {
  for (const [n, d] of shapes) {
    const base = randn(n * d, n + d)
    const views = [1, 2, 3].map((k) => {
      const noise = randn(n * d, n * 7 + d + k, 0.5)
      return base.map((v, i) => v + noise[i])
    })
    const cpu = views.map((v) => Tensor.from(v, [n, d]))
    const gpu = cpu.map((x) => x.to('cuda'))
    const cos = 0.01 * naturalScale('cos', n, d, 0.05, views[0]), dcl = 0.01 * naturalScale('dcl', n, d, 5, views[0])
    const cases: [string, (z: Tensor[]) => ReturnType<typeof losses.dcl>, number][] = [
      ['simcse', (z) => losses.simcse(z[0], z[1]), cos],
      ['simcse+hard', (z) => losses.simcse(z[0], z[1], { hardNegatives: z[2] }), cos],
      ['offDropout', (z) => losses.offDropout(z[0], z[1], z[2], { posScale: 0.9 }), cos],
      ['dcl', (z) => losses.dcl(z[0], z[1]), dcl],
      ['simcse++', (z) => losses.simcsePlusPlus(z[0], z[1], z[2]), cos],
    ]
    for (const [name, f, floor] of cases) {
      const a = f(gpu), b = f(cpu)
      t.ok(Math.abs(a.loss - b.loss) <= 1e-4 * Math.max(1, Math.abs(b.loss)), `${name} N=${n} D=${d}: loss ${a.loss} vs ${b.loss}`)
      for (const k of Object.keys(b.grads) as (keyof typeof b.grads)[]) {
        t.equal(a.grads[k]!.device, 'cuda', `${name} gradient ${k} stays on the GPU`)
        compare(t, `${name} N=${n} D=${d} d${k}`, a.grads[k]!, b.grads[k]!, 1e-3, floor)
      }
    }
  }
})

// The benchmark's unfused baseline (kernels/infonce_unfused.cu) against the CPU one
// (native/cpu/infonce_unfused.cpp): loss, all three gradients, and the bytes it reports.
t.test('offDropoutUnfused: CUDA equals CPU', { skip }, async (t) => {
  for (const n of [1, 7, 64, 1000])
    for (const d of [1, 128, 768]) {
      const base = randn(n * d, n + d)
      const views = [1, 2, 3].map((k) => {
        const noise = randn(n * d, n * 7 + d + k, 0.5)
        return base.map((v, i) => v + noise[i])
      })
      const run = (device: 'cpu' | 'cuda') => {
        const z = views.map((v) => LibTensor.from(v, [n, d], device))
        const g = [0, 1, 2].map(() => LibTensor.zeros([n, d], device))
        const [z1, z2, z0] = z.map((x) => nativeOf(x, 'z'))
        const [g1, g2, g0] = g.map((x) => nativeOf(x, 'grad'))
        const r = addon.offDropoutUnfused(z1, z2, z0, 0.05, 0.9, g1, g2, g0)
        return { ...r, z, g }
      }
      const a = run('cuda'), b = run('cpu')
      t.ok(Math.abs(a.loss - b.loss) <= 1e-4 * Math.max(1, Math.abs(b.loss)), `unfused N=${n} D=${d}: loss ${a.loss} vs ${b.loss}`)
      const floor = 0.01 * naturalScale('cos', n, d, 0.05, views[0])
      for (let k = 0; k < 3; k++) compare(t, `unfused N=${n} D=${d} dz${[1, 2, 0][k]}`, a.g[k], b.g[k], 1e-3, floor)
      t.ok(a.workspaceBytes >= n * n * 4, `unfused N=${n} D=${d}: reports ${a.workspaceBytes} workspace bytes`)
      for (const x of [...a.z, ...a.g, ...b.z, ...b.g]) x.dispose()
    }
})

t.test('dropout: CUDA draws the same mask as the CPU, bit for bit', { skip }, async (t) => {
  for (const [rows, cols] of [[1, 1], [7, 33], [3 * 64, 768], [1000, 129]]) {
    const x = randn(rows * cols, rows)
    const keepRows = Uint8Array.from({ length: rows }, (_, r) => (r % 3 === 2 ? 0 : 1))
    const opts = { p: 0.1, seed: 12345678901n, offset: 5, keepRows }
    const a = dropout(Tensor.from(x, [rows, cols], 'cuda'), opts).toFloat32Array()
    const b = dropout(Tensor.from(x, [rows, cols]), opts).toFloat32Array()
    t.same(new Uint32Array(a.buffer), new Uint32Array(b.buffer), `[${rows}, ${cols}]`)
  }
})

t.test('tensors move between devices exactly', { skip }, async (t) => {
  const x = randn(1000, 1)
  const back = Tensor.from(x, [10, 100]).to('cuda').to('cpu').toFloat32Array()
  t.same(new Uint32Array(back.buffer), new Uint32Array(x.buffer))
  t.throws(() => losses.simcse(Tensor.from(x, [10, 100]), Tensor.from(x, [10, 100], 'cuda')), /z2.*device/)
})
