// The step's column reductions over all rows (native/cpu/column_sums.h): the linear layers' bias gradient
// and LayerNorm's parameter gradients, summed in double over fixed blocks of rows. Each sum against a
// float64 sum of the same terms (a double sum rounded once to float: within half a float ulp), at sizes
// around the 128-row block; the same bits with 1, 2 and 3 threads; and LayerNorm's one pass over the rows
// (parameter terms, then the row's input gradient) with the gradient written over dout.
import t from 'tap'
import * as ops from '../lib/ops.js'
import { Tensor } from '../lib/tensor.js'
import { runWithThreads } from './helpers/threads-child.js'

/** Deterministic floats in [-1, 1) (a linear congruential generator), shifted by `offset`. */
function randomFloats(n: number, seed: number, offset = 0): Float32Array {
  let s = seed >>> 0
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1 + offset)
}

/**
 * dbias of linearBackward, and dweight, dbias of layerNormBackward, for an [R, C] dout (zeroed gradients).
 * With `spikes`, dout's first row is 2^55 and its last -2^55: a double holding 2^55 drops every later term
 * below 4, so how the rows are grouped decides which terms count (the sums are then order-sensitive).
 */
function columnSums(R: number, C: number, spikes = false) {
  const T = (a: Float32Array, shape: number[]) => Tensor.from(a, shape)
  const dout = randomFloats(R * C, 1, 0.25),
    x = randomFloats(R * C, 2),
    mean = randomFloats(R, 3, 0).map((v) => 0.1 * v),
    rstd = randomFloats(R, 4, 2)
  if (spikes) {
    dout.fill(2 ** 55, 0, C)
    dout.fill(-(2 ** 55), (R - 1) * C)
  }
  const linearBias = Tensor.zeros([C])
  ops.linearBackward(
    null,
    Tensor.zeros([C, 3]),
    linearBias,
    T(dout, [R, C]),
    T(randomFloats(R * 3, 5), [R, 3]),
    T(randomFloats(C * 3, 6), [C, 3]),
  )
  const dgamma = Tensor.zeros([C]),
    dbeta = Tensor.zeros([C])
  ops.layerNormBackward(
    Tensor.zeros([R, C]),
    dgamma,
    dbeta,
    T(dout, [R, C]),
    T(x, [R, C]),
    T(randomFloats(C, 7), [C]),
    T(mean, [R]),
    T(rstd, [R]),
  )
  const [bias, gamma, beta] = [linearBias, dgamma, dbeta].map((g) => g.toFloat32Array())
  return { dout, x, mean, rstd, bias, gamma, beta }
}

/** The distance of got from the exact want in units of want's float spacing. */
function ulps(got: number, want: number): number {
  if (want === 0) return got === 0 ? 0 : Infinity
  return Math.abs(got - want) / 2 ** (Math.floor(Math.log2(Math.abs(want))) - 23)
}

t.test('bias and LayerNorm parameter sums: a float64 sum rounded once', async (t) => {
  for (const [R, C] of [
    [1, 7],
    [127, 97],
    [128, 129],
    [129, 33],
    [1000, 300],
    [2049, 17],
  ]) {
    const s = columnSums(R, C)
    const want = { bias: new Float64Array(C), gamma: new Float64Array(C) }
    for (let r = 0; r < R; r++)
      for (let c = 0; c < C; c++) {
        const g = s.dout[r * C + c]
        want.bias[c] += g
        // n as the op forms it: in float, (x - mean) * rstd.
        want.gamma[c] += g * Math.fround(Math.fround(s.x[r * C + c] - s.mean[r]) * s.rstd[r])
      }
    let worst = { bias: 0, gamma: 0, beta: 0 }
    for (let c = 0; c < C; c++) {
      worst = {
        bias: Math.max(worst.bias, ulps(s.bias[c], want.bias[c])),
        gamma: Math.max(worst.gamma, ulps(s.gamma[c], want.gamma[c])),
        beta: Math.max(worst.beta, ulps(s.beta[c], want.bias[c])),
      }
    }
    // A double sum of R floats is off the exact sum by under R * 2^-53 of the terms' magnitudes: 1e-8 ulp here.
    for (const [what, u] of Object.entries(worst))
      t.ok(u <= 0.5 + 1e-6, `${R} x ${C}: ${what} within ${u.toFixed(3)} float ulp of the float64 sum`)
  }
})

t.test('1, 2 and 3 threads: the same bits', async (t) => {
  // The child runs the same sums with the compiled library (dist/) and prints their bits.
  const script = `
    import * as ops from './dist/ops.js'
    import { Tensor } from './dist/tensor.js'
    import { addon } from './dist/native.js'
    ${randomFloats.toString()}
    ${columnSums.toString()}
    const { bias, gamma, beta } = columnSums(1000, 300, true)
    const bits = (a) => Array.from(new Uint32Array(a.buffer))
    console.log(JSON.stringify({ threads: addon.numThreads(), bias: bits(bias), gamma: bits(gamma), beta: bits(beta) }))`
  type Sums = { threads: number; bias: number[]; gamma: number[]; beta: number[] }
  const [one, two, three] = ['1', '2', '3'].map((n) => runWithThreads<Sums>(script, n))
  t.same([one.threads, two.threads, three.threads], [1, 2, 3], 'the children ran 1, 2 and 3 threads')
  for (const other of [two, three]) {
    t.same(other.bias, one.bias, `${other.threads} threads: linear dbias bits as on 1`)
    t.same(other.gamma, one.gamma, `${other.threads} threads: LayerNorm dweight bits as on 1`)
    t.same(other.beta, one.beta, `${other.threads} threads: LayerNorm dbias bits as on 1`)
  }
  t.equal(one.bias.length, 300)
  // The spikes make the sums depend on the grouping: the rows after the first are not all lost, as they
  // are in one running sum from row 0.
  const here = columnSums(1000, 300, true)
  t.same(Array.from(new Uint32Array(here.bias.buffer)), one.bias, 'this process: the same bits')
  const rowOrder = new Float64Array(300)
  for (let r = 0; r < 1000; r++) for (let c = 0; c < 300; c++) rowOrder[c] += here.dout[r * 300 + c]
  t.not(Array.from(here.bias).join(), Array.from(Float32Array.from(rowOrder)).join(), 'not the running sum of all rows')
})

t.test('dinp written over dout: the same bits as into a separate tensor', async (t) => {
  // The backward adds each row's parameter terms and then writes the row's input gradient, which may be
  // dout's own row (lib/model/bert.ts passes one gradient buffer as both).
  const R = 300,
    C = 70,
    sentences = 3
  const dout = randomFloats(R * C, 11),
    res = Tensor.from(randomFloats(R * C, 12), [R, C]),
    w = Tensor.from(randomFloats(C, 13), [C]),
    mean = Tensor.from(
      randomFloats(R, 14).map((v) => 0.1 * v),
      [R],
    ),
    rstd = Tensor.from(randomFloats(R, 15, 2), [R])
  const site = { p: 0.2, seed: 5, offset: 3, keepRows: Uint8Array.from([1, 0, 1]), firstRow: 2 }
  const bits = (x: Tensor) => Array.from(new Uint32Array(x.toFloat32Array().buffer))
  for (const dropout of [false, true]) {
    const what = dropout ? 'layerNormDropoutBackward' : 'layerNormBackward'
    const run = (inPlace: boolean) => {
      const g = Tensor.from(dout, [R, C])
      const [dinp, dw, db] = [inPlace ? g : Tensor.zeros([R, C]), Tensor.zeros([C]), Tensor.zeros([C])]
      const dy = Tensor.zeros([R, C])
      if (dropout) ops.layerNormDropoutBackward(dinp, dy, dw, db, g, res, w, mean, rstd, sentences, site)
      else ops.layerNormBackward(dinp, dw, db, g, res, w, mean, rstd)
      return [dinp, dw, db, dy].map(bits)
    }
    const [apart, inPlace] = [run(false), run(true)]
    t.not(apart[0].join(), bits(Tensor.from(dout, [R, C])).join(), `${what}: the gradient differs from dout`)
    t.same(inPlace, apart, `${what}: dinp, dweight, dbias (and dy) as with a separate dinp`)
  }
})
