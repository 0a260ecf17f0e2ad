// Embedding quantization (lib/embed/quantize.ts): the bytes sentence-transformers' quantize_embeddings gives (where
// the CI's Python has it) for every precision, with ranges from the vectors, from calibration vectors and given;
// independent checks that need no Python (each int8 value's bucket holds its float, packbits' bit order); refusals.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { quantizationRanges, quantizeEmbeddings } from '../lib/index.js'
import { randn } from './helpers/parity.mjs'
import { tempDir } from './helpers/train-corpus.js'

const dir = tempDir('simcsepp-quantize-')

/** rows x dim normal floats, as an array of vectors. */
function vectors(rows: number, dim: number, seed: number): Float32Array[] {
  const flat = randn(rows * dim, seed)
  return Array.from({ length: rows }, (_, r) => flat.slice(r * dim, (r + 1) * dim))
}

t.test('ubinary and binary: numpy packbits of x > 0, the first dimension in the high bit', async (t) => {
  const v = [Float32Array.from([1, -1, 0, 2, -0, 3, -3, 0.5, 7, -1]), Float32Array.from([-1, -1, -1, -1, -1, -1, -1, -1, 1, 1])]
  const u = quantizeEmbeddings(v, 'ubinary')
  t.ok(u[0] instanceof Uint8Array)
  // Row 0: bits 1 0 0 1 0 1 0 1 | 1 0 (then zero padding): 0b10010101 = 149, 0b10000000 = 128.
  t.same(
    u.map((r) => [...r]),
    [
      [149, 128],
      [0, 192],
    ],
  )
  const b = quantizeEmbeddings(v, 'binary')
  t.ok(b[0] instanceof Int8Array)
  t.same(
    b.map((r) => [...r]),
    [
      [21, 0],
      [-128, 64],
    ],
    'ubinary - 128',
  )
})

t.test('int8 and uint8: each value in its bucket of [min, max] cut in 256; ranges from calibration vectors', async (t) => {
  const v = vectors(300, 24, 3)
  const ranges = quantizationRanges(v)
  const u = quantizeEmbeddings(v, 'uint8')
  const s = quantizeEmbeddings(v, 'int8')
  let worst = 0
  for (let r = 0; r < v.length; r++)
    for (let j = 0; j < 24; j++) {
      const step = (ranges.max[j] - ranges.min[j]) / 255
      // float64: the bucket floor((x - min) / step), off by one only where float32 rounding sits on a boundary.
      const exact = Math.min(255, Math.floor((v[r][j] - ranges.min[j]) / step))
      worst = Math.max(worst, Math.abs(exact - u[r][j]))
      if (s[r][j] !== u[r][j] - 128) t.fail(`int8 = uint8 - 128 at ${r},${j}`)
    }
  t.ok(worst <= 1, `within one bucket of the float64 bucket (worst ${worst})`)
  t.same([Math.min(...u.map((r) => Math.min(...r))), Math.max(...u.map((r) => Math.max(...r)))], [0, 255], 'the extremes reach both ends')
  // Calibration on a sample: values beyond its range clip to 0 and 255.
  const sample = v.slice(0, 10)
  const cal = quantizeEmbeddings(v, 'uint8', { calibration: sample })
  t.same(
    cal.map((r) => [...r]),
    quantizeEmbeddings(v, 'uint8', { ranges: quantizationRanges(sample) }).map((r) => [...r]),
  )
  const sr = quantizationRanges(sample)
  const above = v.findIndex((x) => x[0] > sr.max[0])
  t.equal(cal[above][0], 255, 'above the calibration range: 255')
  // A dimension whose range is one value: step 1, so every value of the range is bucket 0 (the other dimension's
  // range [0, 255] has step 1 exactly).
  const flat = quantizeEmbeddings(new Float32Array([0.5, 0, 0.5, 255]), 'uint8', { dimension: 2 })
  t.same(
    flat.map((r) => [...r]),
    [
      [0, 0],
      [0, 255],
    ],
  )
  t.same(
    quantizeEmbeddings(v.slice(0, 2), 'float32').map((r) => [...r]),
    v.slice(0, 2).map((r) => [...r]),
    'float32: a copy',
  )
})

t.test("sentence-transformers' quantize_embeddings: the same bytes", async (t) => {
  const python = process.env.SIMCSEPP_PYTHON || 'python3'
  // 301 x 37: a dimension that packs into a part byte; 12 calibration vectors (so some values clip); given ranges.
  const v = vectors(301, 37, 11)
  const calibration = vectors(12, 37, 12)
  const ranges = {
    min: Float32Array.from({ length: 37 }, (_, j) => -1 - j / 37),
    max: Float32Array.from({ length: 37 }, (_, j) => 1 + j / 50),
  }
  const put = (name: string, rows: Float32Array[]) => {
    const flat = new Float32Array(rows.length * 37)
    rows.forEach((r, i) => flat.set(r, i * 37))
    writeFileSync(join(dir, name), flat)
  }
  put('v.f32', v)
  put('cal.f32', calibration)
  put('ranges.f32', [ranges.min, ranges.max])
  const script = [
    'import base64, json, sys',
    'import numpy as np',
    'from sentence_transformers.quantization import quantize_embeddings',
    'd = sys.argv[1]',
    "v, cal, rng = (np.fromfile(f'{d}/{n}.f32', dtype=np.float32).reshape(-1, 37) for n in ('v', 'cal', 'ranges'))",
    'out = {}',
    "for p in ('int8', 'uint8', 'binary', 'ubinary'):",
    '    out[p] = base64.b64encode(quantize_embeddings(v, precision=p).tobytes()).decode()',
    "for p in ('int8', 'uint8'):",
    "    out[p + ' calibration'] = base64.b64encode(quantize_embeddings(v, precision=p, calibration_embeddings=cal).tobytes()).decode()",
    "    out[p + ' ranges'] = base64.b64encode(quantize_embeddings(v, precision=p, ranges=rng).tobytes()).decode()",
    'print(json.dumps(out))',
  ].join('\n')
  const st = spawnSync(python, ['-c', script, dir], { encoding: 'utf8' })
  if (st.status !== 0) {
    t.comment(`sentence-transformers skipped: ${python} cannot run it (${st.stderr.trim().split('\n').at(-1)})`)
    return
  }
  const theirs = JSON.parse(st.stdout.trim().split('\n').at(-1)!) as Record<string, string>
  const ours = (rows: (Int8Array | Uint8Array)[]) =>
    Buffer.concat(rows.map((r) => Buffer.from(r.buffer, r.byteOffset, r.byteLength))).toString('base64')
  for (const p of ['int8', 'uint8', 'binary', 'ubinary'] as const) t.equal(ours(quantizeEmbeddings(v, p)), theirs[p], p)
  for (const p of ['int8', 'uint8'] as const) {
    t.equal(ours(quantizeEmbeddings(v, p, { calibration })), theirs[`${p} calibration`], `${p}, calibration vectors`)
    t.equal(ours(quantizeEmbeddings(v, p, { ranges })), theirs[`${p} ranges`], `${p}, given ranges`)
  }
})

t.test('refusals name what is wrong', async (t) => {
  const v = vectors(3, 4, 1)
  t.throws(() => quantizeEmbeddings(v, 'int4' as never), /precision must be one of float32, int8, uint8, binary, ubinary/)
  t.throws(() => quantizeEmbeddings([], 'int8'), /vectors is empty/)
  t.throws(() => quantizeEmbeddings([v[0], v[1].subarray(1)], 'int8'), /vectors\[1\] has 3 dimensions, expected 4/)
  t.throws(() => quantizeEmbeddings(new Float32Array(8), 'int8'), /flat Float32Array: give its dimension/)
  t.throws(() => quantizeEmbeddings([Float32Array.from([1, NaN])], 'ubinary'), /vectors\[0\]\[1\] is NaN/)
  t.throws(() => quantizeEmbeddings(v, 'binary', { calibration: v }), /ranges and calibration apply to int8 and uint8/)
  t.throws(() => quantizeEmbeddings(v, 'int8', { calibration: v, ranges: quantizationRanges(v) }), /ranges or calibration, not both/)
  t.throws(
    () => quantizeEmbeddings(v, 'int8', { ranges: { min: new Float32Array(3), max: new Float32Array(4) } }),
    /ranges.min has 3 values/,
  )
  t.throws(
    () => quantizeEmbeddings(v, 'int8', { ranges: { min: Float32Array.of(1, 0, 0, 0), max: new Float32Array(4) } }),
    /ranges.min\[0\] \(1\) is above ranges.max\[0\]/,
  )
  t.throws(() => quantizeEmbeddings(v, 'int8', { calibration: vectors(2, 5, 1) }), /calibration vectors have 5 dimensions/)
  t.throws(() => quantizeEmbeddings(v, 'int8', { rangez: 1 } as never), /unknown option "rangez"/)
})
