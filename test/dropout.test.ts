// Philox4x32-10 and selective dropout: known-answer vectors, an independent TypeScript Philox,
// mask statistics, the per-row switch and the backward pass.
import t from 'tap'
import { Tensor, dropout, dropoutBackward } from 'simcsepp'
import { addon } from '../lib/native.js'
import { randn } from './helpers/reference.js'

// Random123's kat_vectors for philox4x32_10.
const kat: [number[], number[], number[]][] = [
  [
    [0, 0, 0, 0],
    [0, 0],
    [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
  ],
  [
    [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
    [0xffffffff, 0xffffffff],
    [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
  ],
  [
    [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
    [0xa4093822, 0x299f31d0],
    [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
  ],
]

t.test('philox4x32-10 reproduces the Random123 known-answer vectors', async (t) => {
  for (const [c, k, want] of kat) {
    t.same(addon.philox4x32(c[0], c[1], c[2], c[3], k[0], k[1]), want, `ctr ${c.map((v) => v.toString(16))}`)
  }
})

// An independent Philox in TypeScript (BigInt products), and the dropout uniform of the spec.
function philoxTs(c: (number | bigint)[], k: (number | bigint)[]): number[] {
  let [c0, c1, c2, c3] = c.map(BigInt)
  let [k0, k1] = k.map(BigInt)
  const M = 0xffffffffn
  for (let r = 0; r < 10; r++) {
    const p0 = 0xd2511f53n * c0,
      p1 = 0xcd9e8d57n * c2
    ;[c0, c1, c2, c3] = [((p1 >> 32n) ^ c1 ^ k0) & M, p1 & M, ((p0 >> 32n) ^ c3 ^ k1) & M, p0 & M]
    k0 = (k0 + 0x9e3779b9n) & M
    k1 = (k1 + 0xbb67ae85n) & M
  }
  return [c0, c1, c2, c3].map(Number)
}

function uniformTs(seed: bigint, offset: bigint, index: number): number {
  const block = BigInt(Math.floor(index / 4))
  const M = 0xffffffffn
  const w = philoxTs([block & M, block >> 32n, offset & M, offset >> 32n], [Number(seed & M), Number(seed >> 32n)].map(Number))
  return (w[index % 4] >>> 8) / 16777216
}

t.test('dropout draws its mask from Philox(seed, offset, element index) exactly', async (t) => {
  const rows = 5,
    cols = 37,
    p = 0.3
  const x = randn(rows * cols, 1)
  const seed = 0x1234_5678_9abcn,
    offset = 77n
  const y = dropout(Tensor.from(x, [rows, cols]), { p, seed, offset }).toFloat32Array()
  let mismatches = 0
  const scale = Math.fround(1 / Math.fround(1 - p))
  for (let e = 0; e < rows * cols; e++) {
    const keep = uniformTs(seed, offset, e) >= Math.fround(p)
    const want = keep ? Math.fround(x[e] * scale) : 0
    if (y[e] !== want) mismatches++
  }
  t.equal(mismatches, 0, 'every element equals the TypeScript Philox mask applied to x')
})

t.test('the bulk uniforms at unaligned starts and beyond 2^32 groups: the TypeScript Philox exactly', async (t) => {
  const { dropout: dropoutOp } = await import('../lib/ops.js')
  const { Tensor } = await import('../lib/tensor.js')
  const rows = 3,
    p = 0.5
  const seed = 0xfedc_ba98_7654n,
    offset = 5n
  // Row r draws elements (firstRow + r)*cols + c: firstRow = 2^32 + 1 puts them past 2^34 (the counter's
  // high word in use) and starts every row at a different remainder mod 4 (cols = 37). Rows of 1000 run
  // the 16-group vector path (AVX-512); with firstRow = 17179868, row 1's groups go from 2^32 - 46 to
  // 2^32 + 204, so the counter's low word wraps inside a vector of 16 groups.
  const cases: [number, number][] = [
    [37, 0],
    [37, 1],
    [37, 3],
    [37, 2 ** 32 + 1],
    [1000, 5],
    [1000, 17179868],
  ]
  for (const [cols, firstRow] of cases) {
    const x = Tensor.from(new Float32Array(rows * cols).fill(1), [rows, cols])
    const y = Tensor.zeros([rows, cols])
    dropoutOp(x, y, { p, seed, offset, firstRow })
    const got = y.toFloat32Array()
    let mismatches = 0
    for (let e = 0; e < rows * cols; e++) {
      const index = (firstRow + Math.floor(e / cols)) * cols + (e % cols)
      if ((got[e] !== 0) !== uniformTs(seed, offset, index) >= p) mismatches++
    }
    t.equal(mismatches, 0, `${cols} columns, firstRow ${firstRow}: the TypeScript mask`)
  }
})

t.test('mask statistics, determinism and stream separation', async (t) => {
  const n = 200,
    d = 500,
    p = 0.1
  const x = Tensor.from(new Float32Array(n * d).fill(1), [n, d])
  const a = dropout(x, { p, seed: 42, offset: 0 }).toFloat32Array()
  const b = dropout(x, { p, seed: 42, offset: 0 }).toFloat32Array()
  const c = dropout(x, { p, seed: 42, offset: 1 }).toFloat32Array()
  const dropped = a.filter((v) => v === 0).length / a.length
  t.ok(Math.abs(dropped - p) < 4 * Math.sqrt((p * (1 - p)) / a.length), `dropped fraction ${dropped.toFixed(4)} ≈ ${p}`)
  t.ok(
    a.every((v) => v === 0 || Math.abs(v - 1 / (1 - p)) < 1e-6),
    'kept elements are scaled by 1/(1-p)',
  )
  t.same(a, b, 'same seed and offset: same mask')
  const differ = a.filter((v, i) => (v === 0) !== (c[i] === 0)).length / a.length
  t.ok(differ > 0.15, `another offset gives another mask (${(differ * 100).toFixed(1)}% of elements differ)`)
})

t.test('keepRows: rows switched off pass unchanged; backward regenerates the mask', async (t) => {
  const rows = 6,
    cols = 3,
    inner = 4 // a [rows, cols, inner] tensor: rows are the first dimension
  const x = randn(rows * cols * inner, 3)
  const keepRows = [1, 0, 1, 1, 0, 1]
  const opts = { p: 0.5, seed: 9, offset: 3, keepRows }
  const y = dropout(Tensor.from(x, [rows, cols, inner]), opts).toFloat32Array()
  const per = cols * inner
  for (let r = 0; r < rows; r++) {
    const seg = Array.from(y.subarray(r * per, (r + 1) * per))
    const src = Array.from(x.subarray(r * per, (r + 1) * per))
    if (!keepRows[r]) t.same(seg, src, `row ${r} (keepRows 0) passes unchanged`)
    else t.ok(seg.some((v) => v === 0) && seg.some((v) => v !== 0), `row ${r} gets dropout`)
  }
  const g = randn(rows * cols * inner, 4)
  const dx = dropoutBackward(Tensor.from(g, [rows, cols, inner]), opts).toFloat32Array()
  for (let e = 0; e < x.length; e++) {
    if (y[e] === 0 && x[e] !== 0) t.equal(dx[e], 0, `element ${e}: dropped forward, no gradient`)
    else if (y[e] !== x[e]) t.ok(Math.abs(dx[e] - g[e] * 2) < 1e-6, `element ${e}: kept, gradient scaled`)
  }
})

t.test('p = 0 is the identity, p = 1 drops every element, in place with out = x', async (t) => {
  const x = randn(40, 5)
  t.same(dropout(Tensor.from(x, [8, 5]), { p: 0, seed: 1 }).toFloat32Array(), x)
  t.ok(
    dropout(Tensor.from(x, [8, 5]), { p: 1, seed: 1 })
      .toFloat32Array()
      .every((v) => v === 0),
  )
  const inplace = Tensor.from(x, [8, 5])
  const expected = dropout(inplace, { p: 0.4, seed: 5, offset: 2 }).toFloat32Array()
  const same = dropout(inplace, { p: 0.4, seed: 5, offset: 2, out: inplace })
  t.equal(same, inplace)
  t.same(inplace.toFloat32Array(), expected, 'in-place result equals the out-of-place one')
})
