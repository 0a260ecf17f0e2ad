// Misuse from JavaScript throws an Error that names the argument; nothing crashes the process.
import t from 'tap'
import { Tensor, cudaStatus, dropout, losses } from 'simcsepp'
import { addon } from '../lib/native.js'

const m = (n: number, d: number, fill = 0.5) =>
  Tensor.from(
    new Float32Array(n * d).map((_, i) => Math.sin(i + fill)),
    [n, d],
  )

t.test('shapes: non-2-D, mismatched, N = 0 or D = 0', async (t) => {
  const a = m(4, 3),
    b = m(4, 3),
    c = m(4, 3)
  t.throws(() => losses.simcse(a, m(4, 2)), /z2.*\[4, 3\].*\[4, 2\]/)
  t.throws(() => losses.simcse(a, m(5, 3)), /z2/)
  t.throws(() => losses.offDropout(a, b, m(3, 3)), /z0/)
  t.throws(() => losses.dcl(Tensor.from(new Float32Array(12), [12]), b), /z1.*\[N, D\].*\[12\]/)
  t.throws(() => losses.simcse(Tensor.from(new Float32Array(24), [2, 4, 3]), b), /z1.*\[2, 4, 3\]/)
  t.throws(() => losses.simcse(Tensor.zeros([0, 3]), Tensor.zeros([0, 3])), /z1.*N >= 1/)
  t.throws(() => losses.dcl(Tensor.zeros([3, 0]), Tensor.zeros([3, 0])), /z1.*D >= 1/)
  t.throws(() => losses.simcse(a, b, { hardNegatives: m(2, 4) }), /hardNegatives to be a \[M, 3\]/)
  t.ok(Number.isFinite(losses.simcse(a, b, { hardNegatives: m(2, 3) }).loss), 'hard negatives may have fewer rows than z1')
  t.throws(() => losses.simcsePlusPlus(a, b, m(4, 4)), /z0/)
  t.ok(losses.simcsePlusPlus(a, b, c).loss > 0, 'valid inputs still work afterwards')
})

t.test('types: non-tensors, wrong dtype, wrong data length, bad shapes', async (t) => {
  const a = m(4, 3)
  t.throws(() => losses.simcse([1, 2, 3] as never, a), /z1 to be a Tensor.*array/)
  t.throws(() => losses.simcse(a, new Float32Array(12) as never), /z2 to be a Tensor.*Float32Array/)
  t.throws(() => losses.offDropout(a, a, null as never), /z0 to be a Tensor.*null/)
  t.throws(() => losses.simcse(a, a, { hardNegatives: 3 as never }), /hardNegatives to be a Tensor/)
  t.throws(() => Tensor.from(new Float64Array(12) as never, [4, 3]), /data to be a Float32Array.*Float64Array/)
  t.throws(() => Tensor.from([1, 2, 3] as never, [3]), /data to be a Float32Array/)
  t.throws(() => Tensor.from(new Float32Array(11), [4, 3]), /12 elements.*11/)
  t.throws(() => Tensor.zeros([2, -1]), /shape\[1\].*non-negative integer/)
  t.throws(() => Tensor.zeros([2, 1.5]), /shape\[1\]/)
  t.throws(() => Tensor.zeros('3' as never), /shape to be an array/)
  t.throws(() => Tensor.zeros([2, 2], 'gpu' as never), /device to be 'cpu' or 'cuda'.*gpu/)
  // The raw addon validates too: JavaScript that bypasses lib/ cannot crash the process.
  t.throws(() => addon.simcse({} as never, {} as never, null, 0.05, {} as never, {} as never, null, 1, false), /z1 to be a Tensor/)
  t.throws(() => addon.dcl(undefined as never, undefined as never, 5, undefined as never, undefined as never, 1, false), /z1/)
  t.throws(() => (addon.offDropout as unknown as () => number)(), /z1/)
  const n = new addon.NativeTensor([4, 3], 'cpu')
  t.throws(() => addon.dcl(n, n, -1, n, n, 1, false), /temperature.*> 0/)
  t.throws(() => addon.dcl(n, n, 5, n, n, 'x' as never, false), /weight to be a number/)
  t.throws(() => addon.dropout(n, n, 0.5, -1, 0, null), /seed/)
  t.throws(() => addon.dropout(n, n, 0.5, 1, 0, new Uint8Array(3)), /keepRows.*4/)
})

t.test('NaN or Inf in an input is reported by name', async (t) => {
  const bad = (n: number, d: number, at: number, v: number) => {
    const a = new Float32Array(n * d).map((_, i) => Math.cos(i))
    a[at] = v
    return Tensor.from(a, [n, d])
  }
  const a = m(5, 4),
    b = m(5, 4, 1)
  t.throws(() => losses.simcse(bad(5, 4, 7, NaN), b), /z1 contains NaN or Inf/)
  t.throws(() => losses.simcse(a, bad(5, 4, 0, Infinity)), /z2 contains NaN or Inf/)
  t.throws(() => losses.simcse(a, b, { hardNegatives: bad(5, 4, 19, -Infinity) }), /hardNegatives contains NaN or Inf/)
  t.throws(() => losses.offDropout(a, b, bad(5, 4, 3, NaN)), /z0 contains NaN or Inf/)
  t.throws(() => losses.dcl(a, bad(5, 4, 3, NaN)), /z2 contains NaN or Inf/)
  t.throws(() => losses.simcsePlusPlus(bad(5, 4, 3, NaN), b, a), /z1 contains NaN or Inf/)
})

t.test('options: unknown names and wrong types are named', async (t) => {
  const a = m(4, 3),
    b = m(4, 3),
    c = m(4, 3)
  t.throws(() => losses.simcse(a, b, { temprature: 0.05 } as never), /unknown option 'temprature'/)
  t.throws(() => losses.simcse(a, b, { temperature: '0.05' } as never), /temperature to be a number > 0/)
  t.throws(() => losses.simcse(a, b, { temperature: 0 }), /temperature/)
  t.throws(() => losses.offDropout(a, b, c, { posScale: NaN }), /posScale/)
  t.throws(() => losses.dcl(a, b, { temperature: -5 }), /temperature/)
  t.throws(() => losses.simcsePlusPlus(a, b, c, { dclWeight: 'x' } as never), /dclWeight/)
  t.throws(() => losses.simcsePlusPlus(a, b, c, { lambda: 0.1 } as never), /unknown option 'lambda'/)
  t.throws(() => losses.dcl(a, b, 5 as never), /options to be an object/)
  t.throws(() => dropout(a, { p: 2, seed: 1 }), /p to be in \[0, 1\]/)
  t.throws(() => dropout(a, { p: 0.1 } as never), /seed is required/)
  t.throws(() => dropout(a, { p: 0.1, seed: 1.5 }), /seed to be a non-negative integer/)
  t.throws(() => dropout(a, { p: 0.1, seed: 1, keepRows: 'yes' as never }), /keepRows/)
  t.throws(() => dropout(a, { p: 0.1, seed: 1, rate: 0.1 } as never), /unknown option 'rate'/)
})

t.test('disposed tensors', async (t) => {
  const a = m(4, 3),
    b = m(4, 3)
  b.dispose()
  t.ok(b.disposed)
  t.throws(() => losses.simcse(a, b), /z2 is a disposed Tensor/)
  t.throws(() => b.toFloat32Array(), /disposed/)
  t.throws(() => b.to('cpu'), /disposed/)
  b.dispose() // twice is harmless
  t.ok(losses.simcse(a, a).loss >= 0)
})

t.test('device: cuda without CUDA says why instead of crashing', async (t) => {
  const s = cudaStatus()
  t.type(s.compiled, 'boolean')
  t.type(s.available, 'boolean')
  if (s.available) {
    t.type(s.device, 'string')
    return
  }
  t.type(s.reason, 'string')
  t.ok(s.reason!.length > 10, `reason: ${s.reason}`)
  t.throws(() => Tensor.zeros([2, 2], 'cuda'), new RegExp('cuda.*cannot be used'))
  t.throws(() => m(2, 2).to('cuda'), /cannot be used/)
})

t.test('tensors round-trip exactly and are freed', async (t) => {
  const data = Float32Array.from([0, -0, 1.5, -3.25e-39, 3.4e38, 1e-45, Math.PI, -1])
  const x = Tensor.from(data, [2, 4])
  t.same(x.shape, [2, 4])
  t.equal(x.device, 'cpu')
  t.same(new Uint32Array(x.toFloat32Array().buffer), new Uint32Array(data.buffer), 'bit-exact copy')
  const y = x.to('cpu')
  x.dispose()
  t.same(new Uint32Array(y.toFloat32Array().buffer), new Uint32Array(data.buffer), 'copy survives the original')
  t.equal(Tensor.zeros([0, 5]).toFloat32Array().length, 0)
})
