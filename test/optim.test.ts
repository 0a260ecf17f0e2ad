// AdamW over the flat layout (decay only on the weight range), grad-norm clipping, LR schedule.
import t from 'tap'
import { AdamW, BertModel, Tensor, clipGradNorm, clipGradScale, linearSchedule } from '../lib/index.js'
import * as ops from '../lib/ops.js'
import { adamwRef } from './helpers/bert-reference.js'
import { randn } from './helpers/reference.js'

t.test('AdamW decays [0, decayEnd) only and matches torch.optim.AdamW', async (t) => {
  const n = 50,
    decayEnd = 30
  const p0 = randn(n, 1),
    params = Tensor.from(p0, [n]),
    grads = Tensor.zeros([n])
  const opt = new AdamW(params, grads, decayEnd, { lr: 0.01, weightDecay: 0.1 })
  const p = Float64Array.from(p0),
    m = new Float64Array(n),
    v = new Float64Array(n)
  const pd = p.subarray(0, decayEnd),
    pn = p.subarray(decayEnd)
  for (let step = 1; step <= 4; step++) {
    const g = randn(n, 10 + step)
    grads.copyFrom(g)
    opt.stepWith()
    adamwRef(pd, g.subarray(0, decayEnd), m.subarray(0, decayEnd), v.subarray(0, decayEnd), 0.01, 0.9, 0.999, 1e-8, 0.1, step)
    adamwRef(pn, g.subarray(decayEnd), m.subarray(decayEnd), v.subarray(decayEnd), 0.01, 0.9, 0.999, 1e-8, 0, step)
  }
  const got = params.toFloat32Array()
  const err = Math.max(...got.map((x, i) => Math.abs(x - p[i])))
  t.ok(err < 1e-6, `max |param − torch formula| = ${err.toExponential(2)} after 4 steps`)
  t.equal(opt.step, 4)
  // State round trip: a restored optimizer continues identically.
  const state = opt.state()
  const params2 = Tensor.from(got, [n]),
    grads2 = Tensor.zeros([n])
  const opt2 = new AdamW(params2, grads2, decayEnd, { lr: 0.01, weightDecay: 0.1 })
  opt2.loadState(state)
  const g = randn(n, 99)
  grads.copyFrom(g)
  grads2.copyFrom(g)
  opt.stepWith(0.005)
  opt2.stepWith(0.005)
  t.same(params2.toFloat32Array(), params.toFloat32Array(), 'resumed optimizer gives identical parameters')
  t.throws(() => new AdamW(params, grads, decayEnd, { lr: 0.1, betas: [0.9, 0.99] } as never), /unknown option 'betas'/)
})

t.test('the model layout puts biases and LayerNorm after the decayed weights', async (t) => {
  const model = BertModel.create('tiny', { mlp: true })
  for (const e of model.layout.entries) {
    const decays = e.offset < model.layout.decayEnd
    t.equal(decays, !/bias$|LayerNorm/.test(e.name), `${e.name} ${decays ? 'decays' : 'never decays'}`)
  }
  model.dispose()
})

t.test('clipGradNorm scales to maxNorm as torch does; linearSchedule', async (t) => {
  const g = Tensor.from(Float32Array.from([3, 4]), [2])
  const norm = clipGradNorm(g, 1)
  t.ok(Math.abs(norm - 5) < 1e-9, 'returns the norm before clipping')
  const c = g.toFloat32Array()
  t.ok(Math.abs(Math.hypot(c[0], c[1]) - 5 / (5 + 1e-6)) < 1e-6, 'clipped to maxNorm (torch coefficient max/(norm+1e-6))')
  const small = Tensor.from(Float32Array.from([0.3, 0.4]), [2])
  clipGradNorm(small, 1)
  t.same(Array.from(small.toFloat32Array()), [Math.fround(0.3), Math.fround(0.4)], 'unchanged under the limit')
  t.equal(linearSchedule(1, 0, 100), 1)
  t.equal(linearSchedule(1, 50, 100), 0.5)
  t.equal(linearSchedule(1, 100, 100), 0)
  t.equal(linearSchedule(2, 5, 100, 10), 1, 'warm-up')
  t.equal(linearSchedule(2, 55, 100, 10), 1, 'decay after warm-up')
})

const sameBits = (a: Float32Array, b: Float32Array) =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))

t.test('clipGradScale + AdamW with gradScale: the bits of clipGradNorm then AdamW, gradients untouched', async (t) => {
  const n = 70_001, // past 4 chunks of 16384 and not a multiple of a vector
    decayEnd = 50_000
  // Norms of about 0.03 (not clipped at 1), 30 (clipped) and 3e4 (clipped hard); zero gradients; a norm a
  // hair under maxNorm, whose coefficient rounds to 1 in float.
  const cases: [string, (i: number) => number, number][] = [
    ['under maxNorm', (i) => 1e-4 * Math.sin(i), 1],
    ['clipped', (i) => 0.1 * Math.sin(i * 1.3), 1],
    ['clipped hard', (i) => 100 * Math.cos(i), 0.5],
    ['zero gradients', () => 0, 1],
  ]
  for (const [name, gen, maxNorm] of cases) {
    const p0 = randn(n, 3)
    const g0 = Float32Array.from({ length: n }, (_, i) => gen(i))
    const run = (fused: boolean) => {
      const params = Tensor.from(p0, [n]),
        grads = Tensor.from(g0, [n]),
        scale = Tensor.zeros([1])
      const opt = new AdamW(params, grads, decayEnd, { lr: 0.01, weightDecay: 0.1 })
      let norm = 0
      for (let step = 1; step <= 3; step++) {
        grads.copyFrom(g0.map((x) => x * step))
        if (fused) {
          norm = clipGradScale(grads, maxNorm, scale)
          opt.stepWith(0.01 / step, scale)
        } else {
          norm = clipGradNorm(grads, maxNorm)
          opt.stepWith(0.01 / step)
        }
      }
      const out = {
        params: params.toFloat32Array(),
        m: opt.m.toFloat32Array(),
        v: opt.v.toFloat32Array(),
        grads: grads.toFloat32Array(),
        scale: scale.toFloat32Array()[0],
        norm,
      }
      for (const x of [params, grads, scale]) x.dispose()
      opt.dispose()
      return out
    }
    const apart = run(false),
      fused = run(true)
    t.ok(sameBits(fused.params, apart.params), `${name}: parameters bit for bit`)
    t.ok(sameBits(fused.m, apart.m), `${name}: first moments bit for bit`)
    t.ok(sameBits(fused.v, apart.v), `${name}: second moments bit for bit`)
    t.equal(fused.norm, apart.norm, `${name}: the same norm (${fused.norm.toPrecision(4)})`)
    const g3 = g0.map((x) => x * 3)
    t.ok(sameBits(fused.grads, g3), `${name}: the gradients are not written`)
    const coef = maxNorm / (fused.norm + 1e-6)
    t.equal(fused.scale, coef < 1 ? Math.fround(coef) : 1, `${name}: the scale is torch's coefficient (${fused.scale})`)
  }
  // A coefficient just under 1 that rounds to 1 in float: the scale is 1 and nothing changes.
  const g = Tensor.from(Float32Array.from([1]), [1]),
    scale = Tensor.zeros([1])
  clipGradScale(g, 1 + 1e-6 - 1e-9, scale)
  t.equal(scale.toFloat32Array()[0], 1, 'a coefficient within float rounding of 1 is 1')
  // Non-finite gradients: an Error, as clipGradNorm's; the op alone reports the sum and leaves a scale of 1.
  const bad = Tensor.from(Float32Array.from([1, NaN]), [2])
  t.throws(() => clipGradScale(bad, 1, scale), /the gradient norm is NaN/)
  t.equal(scale.toFloat32Array()[0], 1, 'NaN gradients: scale 1 (clipGradNorm leaves them as they are)')
  t.throws(() => clipGradScale(g, 0, scale), /clipGradScale: expected maxNorm to be a number > 0 but received number 0/)
  t.equal(clipGradScale(Tensor.zeros([0]), 2, scale), 0, 'no gradients: norm 0')
  for (const x of [g, scale, bad]) x.dispose()
})

t.test('clipGradScale and adamwStep gradScale: argument errors name the argument', async (t) => {
  const n = 8
  const params = Tensor.zeros([n]),
    grads = Tensor.zeros([n]),
    m = Tensor.zeros([n]),
    v = Tensor.zeros([n]),
    two = Tensor.zeros([2]),
    one = Tensor.zeros([1])
  const step = (s: unknown) => ops.adamwStep(params, grads, m, v, 0.1, 0.9, 0.999, 1e-8, 0, 1, s as Tensor)
  t.throws(() => step(two), /Expected gradScale to hold one element but it holds 2/)
  t.throws(() => step(params.view(3, [1])), /gradScale.*params|params.*gradScale/, 'gradScale inside params')
  t.throws(() => step(m.view(0, [1])), /gradScale.*\bm\b|\bm\b.*gradScale/, 'gradScale inside m')
  t.throws(() => step(v.view(7, [1])), /gradScale.*\bv\b|\bv\b.*gradScale/, 'gradScale inside v')
  t.throws(() => step(0), /Expected gradScale to be a Tensor but received number 0/)
  step(grads.view(0, [1])) // read-only gradients may hold it: they are only read
  t.throws(() => ops.clipGradScale(grads, 1, two), /Expected scale to hold one element but it holds 2/)
  t.throws(() => ops.clipGradScale(grads, 1, grads.view(2, [1])), /scale.*\bg\b|\bg\b.*scale/, 'scale inside g')
  t.throws(() => ops.clipGradScale(grads, -1, one), /maxNorm/)
  t.throws(() => ops.clipGradScale(grads, 1, null as never), /Expected scale to be a Tensor but received null/)
  one.dispose()
  t.throws(() => ops.clipGradScale(grads, 1, one), /scale is a disposed Tensor/)
  for (const x of [params, grads, m, v, two]) x.dispose()
})
