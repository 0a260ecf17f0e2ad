// The bf16 products (cpu::sgemm_bf16) in the three products of a linear layer (forward inp·Wᵀ, input gradient
// dout·W, weight gradient doutᵀ·inp), each mode in its own process (the choice is made once per process), against
// SIMCSEPP_GEMM_BF16=copies (rounded copies passed to the fp32 GEMM): rounding the operands while packing them
// (SIMCSEPP_GEMM_BF16=packed) and the AVX512_BF16 kernel (native/cpu/gemm_bf16.cpp; the default without AMX where
// VDPBF16PS issues at the FMA's rate, else asked for by SIMCSEPP_GEMM_BF16=avx512bf16; skipped where the CPU lacks
// it) give the copies' bits; the AMX kernel (the default where the CPU and the OS allow it) sums differently, and is
// held to float64 products of the rounded operands instead. The bias gradient, summed from the unrounded output
// gradient: the kernels that sum it while packing (AMX, AVX512_BF16) give the fp32 product's bits, the others are
// within a float rounding of them.
import t, { type Test } from 'tap'
import { addon } from '../lib/native.js'
import { runSelfAsChild } from './helpers/self-child.js'
import { Tensor } from '../lib/tensor.js'
import * as ops from '../lib/ops.js'
import { randn, relErr } from './helpers/parity.mjs'

// Large enough for the packed path (above 64³ multiply-adds), with partial tiles, an odd depth and K blocks.
const shapes: [number, number, number][] = [
  [301, 257, 190],
  [97, 1025, 33],
  [640, 131, 400],
]

// x rounded to the nearest bfloat16, ties to even (common/bf16.h; finite x only).
const word = new Uint32Array(1),
  single = new Float32Array(word.buffer)
function roundBf16(x: number): number {
  single[0] = x
  const u = word[0]
  word[0] = ((Math.floor((u + 0x7fff + ((u >>> 16) & 1)) / 65536) & 0xffff) << 16) >>> 0
  return single[0]
}

const base64 = (x: Tensor) => Buffer.from(x.toFloat32Array().buffer).toString('base64')
const floats = (b: string) => new Float32Array(new Uint8Array(Buffer.from(b, 'base64')).buffer)

interface Products {
  kernel: string
  bits: string[] // per shape: forward, input gradient, weight gradient
  // Per shape, the bias gradient of the bf16 backward and of the fp32 one; then both again for an output gradient
  // whose first row is 2^55 and last -2^55: a double holding 2^55 drops every later term below 4, so the
  // grouping of the terms decides the result.
  bias: [string, string, string, string][]
}

function products(): Products {
  const bits: string[] = [],
    bias: Products['bias'] = []
  shapes.forEach(([R, C, OC], i) => {
    const inp = Tensor.from(randn(R * C, 10 + i), [R, C])
    const w = Tensor.from(randn(OC * C, 20 + i), [OC, C])
    const dout = Tensor.from(randn(R * OC, 30 + i), [R, OC])
    const out = Tensor.zeros([R, OC])
    ops.linearForward(out, inp, w, null, 'bf16')
    const dinp = Tensor.zeros([R, C]),
      dw = Tensor.from(randn(OC * C, 40 + i), [OC, C])
    ops.linearBackward(dinp, dw, null, dout, inp, w, false, 'bf16')
    for (const x of [out, dinp, dw]) bits.push(base64(x))
    const spiked = randn(R * OC, 30 + i)
    spiked.fill(2 ** 55, 0, OC)
    spiked.fill(-(2 ** 55), (R - 1) * OC)
    const db = (precision: 'bf16' | 'fp32', g: Tensor) => {
      const b = Tensor.from(randn(OC, 50 + i), [OC])
      ops.linearBackward(null, Tensor.zeros([OC, C]), b, g, inp, w, false, precision)
      return base64(b)
    }
    const dspiked = Tensor.from(spiked, [R, OC])
    bias.push([db('bf16', dout), db('fp32', dout), db('bf16', dspiked), db('fp32', dspiked)])
  })
  return { kernel: addon.gemmInfo().bf16Kernel, bits, bias }
}

if (process.env.SIMCSEPP_GEMM_BF16_TEST_CHILD) {
  process.stdout.write(JSON.stringify(products()))
} else {
  const run = (bf16: string | undefined) =>
    runSelfAsChild<Products>(import.meta.url, 'SIMCSEPP_GEMM_BF16_TEST_CHILD', {
      SIMCSEPP_GEMM_BF16: bf16,
    })
  const copies = run('copies')
  const compare = (t: Test, got: Products) => {
    t.equal(got.bits.length, 3 * shapes.length)
    got.bits.forEach((b, i) => {
      const [R, C, OC] = shapes[Math.floor(i / 3)]
      t.equal(b, copies.bits[i], `${['forward', 'input gradient', 'weight gradient'][i % 3]} ${R}x${C}x${OC}`)
    })
  }
  // The bias gradient of the bf16 backward against the fp32 one's: the same bits where the kernel sums while packing.
  const compareBias = (t: Test, got: Products) => {
    const sums = ['amx', 'avx512bf16'].includes(got.kernel)
    got.bias.forEach(([bf16, fp32, bf16Spiked, fp32Spiked], i) => {
      const what = `bias gradient ${shapes[i].join('x')} (${got.kernel})`
      if (sums) {
        t.equal(bf16, fp32, `${what}: the fp32 backward's bits`)
        t.equal(bf16Spiked, fp32Spiked, `${what}, order-sensitive: the fp32 backward's bits`)
      }
      const err = relErr(floats(bf16), Float64Array.from(floats(fp32)))
      t.ok(err < 1e-6, `${what}: ${err.toExponential(2)} from the fp32 backward's`)
    })
  }
  t.test('bf16 products: rounding while packing gives the rounded copies’ bits', async (t) => {
    t.equal(copies.kernel, 'rounded copies')
    const packed = run('packed')
    t.equal(packed.kernel, 'rounded while packed')
    compare(t, packed)
    compareBias(t, packed)
    compareBias(t, copies)
  })
  const fast = run('avx512bf16')
  t.test(
    'bf16 products: the AVX512_BF16 kernel gives the rounded copies’ bits',
    { skip: fast.kernel === 'avx512bf16' ? false : `no AVX512_BF16 kernel here (${fast.kernel})` },
    async (t) => {
      compare(t, fast)
      compareBias(t, fast)
    },
  )
  // AMX's TDPBF16PS sums pairs of products its own way: not the copies' bits, but as close to the exact sums of
  // the rounded operands as the copies are.
  const byDefault = run(undefined)
  t.test(
    'bf16 products: the default kernel is AMX where the CPU and the OS allow it, else AVX512_BF16 where it is fast, else the fp32 one',
    async (t) => {
      t.ok(['amx', 'avx512bf16', 'rounded while packed'].includes(byDefault.kernel), byDefault.kernel)
      if (byDefault.kernel === 'avx512bf16') t.equal(fast.kernel, 'avx512bf16', 'the kernel SIMCSEPP_GEMM_BF16 names')
      if (byDefault.kernel !== 'amx') compare(t, byDefault)
      compareBias(t, byDefault)
    },
  )
  t.test(
    'bf16 products on AMX: within fp32 summation error of the exact products of the rounded operands',
    { skip: byDefault.kernel === 'amx' ? false : `no AMX here (${byDefault.kernel})` },
    async (t) => {
      shapes.forEach(([R, C, OC], i) => {
        const rb = (a: Float32Array) => Float64Array.from(a, roundBf16)
        const inp = rb(randn(R * C, 10 + i)),
          w = rb(randn(OC * C, 20 + i)),
          dout = rb(randn(R * OC, 30 + i)),
          dw0 = randn(OC * C, 40 + i)
        // float64 references: forward inp·Wᵀ, input gradient dout·W, weight gradient dw0 + doutᵀ·inp
        const fwd = new Float64Array(R * OC),
          dinp = new Float64Array(R * C),
          dw = Float64Array.from(dw0)
        for (let r = 0; r < R; r++)
          for (let o = 0; o < OC; o++) {
            let s = 0
            for (let c = 0; c < C; c++) s += inp[r * C + c] * w[o * C + c]
            fwd[r * OC + o] = s
            const g = dout[r * OC + o]
            for (let c = 0; c < C; c++) {
              dinp[r * C + c] += g * w[o * C + c]
              dw[o * C + c] += g * inp[r * C + c]
            }
          }
        ;[fwd, dinp, dw].forEach((ref, j) => {
          const what = `${['forward', 'input gradient', 'weight gradient'][j]} ${R}x${C}x${OC}`
          const amx = relErr(floats(byDefault.bits[3 * i + j]), ref),
            fp32 = relErr(floats(copies.bits[3 * i + j]), ref)
          t.ok(amx < 1e-6 && amx < 4 * fp32, `${what}: AMX error ${amx.toExponential(2)}, the copies' ${fp32.toExponential(2)}`)
        })
      })
    },
  )
}
