// AdamW over the flat layout (decay only on the weight range), grad-norm clipping, LR schedule.
import t from 'tap'
import { AdamW, BertModel, Tensor, clipGradNorm, linearSchedule } from '../lib/index.js'
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
