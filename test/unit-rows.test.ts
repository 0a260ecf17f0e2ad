// The corpus's normalisation in native memory (native/cpu/unit_rows.h, addon.unitRows; VectorIndex.from): the
// same bits as lib/embed/search.ts's unitRows in JavaScript (which still normalises the queries) at every shape,
// zero rows left zero, unit norms, the same bits with 1 and 3 threads, the first element that is not finite
// named in the error (whichever thread finds it), and the argument errors.
import t from 'tap'
import { VectorIndex, unitRows } from '../lib/embed/search.js'
import { addon } from '../lib/native.js'
import { Tensor, nativeOf } from '../lib/tensor.js'
import { runWithThreads } from './helpers/threads-child.js'

/** Deterministic floats in [-1, 1) (a linear congruential generator), times `scale`. */
function randomFloats(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0
  return Float32Array.from({ length: n }, () => (((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1) * scale)
}

/** addon.unitRows over a copy of `data` ([rows, dim]): the normalised rows and its return value. */
function nativeUnitRows(data: Float32Array, dim: number): { rows: Float32Array; bad: number } {
  const x = Tensor.from(data, [data.length / dim, dim], 'cpu')
  try {
    const bad = addon.unitRows(nativeOf(x, 't'))
    return { rows: x.toFloat32Array(), bad }
  } finally {
    x.dispose()
  }
}

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length))

t.test('the JavaScript unitRows bits, zero rows zero, unit norms', async (t) => {
  const cases: [number, number, number][] = [
    // rows, dim, scale
    [1, 1, 1],
    [5, 3, 1e-20],
    [7, 768, 1],
    [1001, 17, 1e18],
    [4099, 64, 3],
  ]
  cases.forEach(([rows, dim, scale], c) => {
    const data = randomFloats(rows * dim, 10 + c, scale)
    if (rows > 2) data.fill(0, dim, 2 * dim) // row 1: zeros
    if (rows > 3) data[3 * dim] = -0
    const js = unitRows('corpus', data, dim).data
    const got = nativeUnitRows(data, dim)
    t.equal(got.bad, -1, `${rows}x${dim}: all finite`)
    t.same(bits(got.rows), bits(js), `${rows}x${dim} (values up to ${scale}): the JavaScript's bits`)
    let worst = 0
    for (let r = 0; r < rows; r++) {
      let s = 0
      for (let j = 0; j < dim; j++) s += got.rows[r * dim + j] ** 2
      if (rows > 2 && r === 1) t.equal(s, 0, 'a zero row stays zero')
      else worst = Math.max(worst, Math.abs(Math.sqrt(s) - 1))
    }
    t.ok(worst < 1e-6, `${rows}x${dim}: norms within ${worst.toExponential(1)} of 1`)
  })
})

t.test('the first element that is not finite, whichever thread meets it first', async (t) => {
  const dim = 8,
    rows = 5000
  const data = randomFloats(rows * dim, 3)
  data[4000 * dim + 1] = Infinity
  data[2500 * dim + 6] = -Infinity
  data[700 * dim + 5] = NaN
  t.equal(nativeUnitRows(data, dim).bad, 700 * dim + 5)
  t.throws(() => VectorIndex.from(data, dim), /corpus\[700\]\[5\] is NaN, not a finite number/)
  t.throws(() => unitRows('corpus', data, dim), /corpus\[700\]\[5\] is NaN, not a finite number/, 'as in JavaScript')
  const script = `
    import { addon } from './dist/native.js'
    import { Tensor, nativeOf } from './dist/tensor.js'
    ${randomFloats.toString()}
    const data = randomFloats(${rows * dim}, 3)
    data[${4000 * dim + 1}] = Infinity
    data[${2500 * dim + 6}] = -Infinity
    const x = Tensor.from(data, [${rows}, ${dim}], 'cpu')
    const bad = addon.unitRows(nativeOf(x, 't'))
    const y = Tensor.from(randomFloats(${rows * dim}, 4, 7), [${rows}, ${dim}], 'cpu')
    addon.unitRows(nativeOf(y, 't'))
    console.log(JSON.stringify({ threads: addon.numThreads(), bad, bits: Array.from(new Uint32Array(y.toFloat32Array().buffer)) }))`
  const run = (threads: string) => runWithThreads<{ threads: number; bad: number; bits: number[] }>(script, threads)
  const one = run('1'),
    three = run('3')
  t.equal(one.threads, 1)
  t.equal(three.threads, 3)
  t.equal(one.bad, 2500 * dim + 6, '1 thread: the first')
  t.equal(three.bad, 2500 * dim + 6, '3 threads: the first, not the one a thread met first')
  t.same(three.bits, one.bits, 'the same bits with 1 and 3 threads')
  t.same(one.bits, bits(unitRows('y', randomFloats(rows * dim, 4, 7), dim).data), '... and the JavaScript')
})

t.test('VectorIndex.from: an array of vectors, copied through its buffer, gives the flat array’s index', async (t) => {
  // 4096 dimensions: 256 rows per 4 MB buffer, so 600 rows take three fills, the last one partial.
  const dim = 4096,
    rows = 600
  const flat = randomFloats(rows * dim, 21)
  const queries = randomFloats(3 * dim, 22)
  const fromFlat = VectorIndex.from(flat, dim)
  const fromRows = VectorIndex.from(Array.from({ length: rows }, (_, r) => flat.subarray(r * dim, (r + 1) * dim)))
  const fromNumbers = VectorIndex.from(Array.from({ length: rows }, (_, r) => Array.from(flat.subarray(r * dim, (r + 1) * dim))))
  t.teardown(() => [fromFlat, fromRows, fromNumbers].forEach((i) => i.dispose()))
  const scores = (i: VectorIndex) => i.similarity(queries).map(bits)
  t.same(scores(fromRows), scores(fromFlat), 'Float32Array rows: the same scores, bit for bit')
  t.same(scores(fromNumbers), scores(fromFlat), 'number[] rows: the same')
  // The first element that is not finite, as float32 sees it (1e39 overflows to Infinity).
  const bad = Array.from({ length: rows }, (_, r) => Array.from(flat.subarray(r * dim, (r + 1) * dim)))
  bad[590][7] = 1e39
  bad[300][4000] = NaN
  t.throws(() => VectorIndex.from(bad.slice(301)), /corpus\[289\]\[7\] is Infinity, not a finite number/)
  t.throws(() => VectorIndex.from(bad), /corpus\[300\]\[4000\] is NaN, not a finite number/)
})

t.test('bad arguments: an Error naming the argument', async (t) => {
  const call = (v: unknown) => () => (addon.unitRows as (v: unknown) => number)(v)
  t.throws(call({}), /t/)
  t.throws(call(undefined), /Expected t/)
  const flat = Tensor.from(randomFloats(6, 1), [6], 'cpu')
  t.throws(call(nativeOf(flat, 't')), /Expected t/)
  flat.dispose()
  t.throws(() => VectorIndex.from(new Float32Array(0), 4), /corpus is empty/)
  const x = Tensor.from(randomFloats(6, 1), [2, 3], 'cpu')
  const handle = nativeOf(x, 't')
  x.dispose()
  t.throws(call(handle), /disposed/)
})
