// The bf16 products (cpu::sgemm_bf16) give the bits of rounded copies passed to the fp32 GEMM however they run:
// rounding the operands while packing them (the default), or with the AVX512_BF16 kernel (native/cpu/gemm_bf16.cpp,
// opt-in by SIMCSEPP_GEMM_BF16=avx512bf16; skipped where the CPU lacks it), against SIMCSEPP_GEMM_BF16=copies, in
// the three products of a linear layer: forward inp·Wᵀ, input gradient dout·W, weight gradient doutᵀ·inp. Each
// mode runs in its own process (the choice is made once per process).
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { addon } from '../lib/native.js'
import { Tensor } from '../lib/tensor.js'
import * as ops from '../lib/ops.js'
import { randn } from './helpers/parity.mjs'

// Large enough for the packed path (above 64³ multiply-adds), with partial tiles, an odd depth and K blocks.
const shapes: [number, number, number][] = [
  [301, 257, 190],
  [97, 1025, 33],
  [640, 131, 400],
]

function products(): string[] {
  const bits: string[] = []
  const keep = (x: Tensor) => bits.push(Buffer.from(x.toFloat32Array().buffer).toString('base64'))
  shapes.forEach(([R, C, OC], i) => {
    const inp = Tensor.from(randn(R * C, 10 + i), [R, C])
    const w = Tensor.from(randn(OC * C, 20 + i), [OC, C])
    const dout = Tensor.from(randn(R * OC, 30 + i), [R, OC])
    const out = Tensor.zeros([R, OC])
    ops.linearForward(out, inp, w, null, 'bf16')
    const dinp = Tensor.zeros([R, C]),
      dw = Tensor.from(randn(OC * C, 40 + i), [OC, C])
    ops.linearBackward(dinp, dw, null, dout, inp, w, false, 'bf16')
    for (const x of [out, dinp, dw]) keep(x)
  })
  return bits
}

if (process.env.SIMCSEPP_GEMM_BF16_TEST_CHILD) {
  process.stdout.write(JSON.stringify({ kernel: addon.gemmInfo().bf16Kernel, bits: products() }))
} else {
  const self = fileURLToPath(import.meta.url)
  const run = (bf16: string | undefined) => {
    const env: NodeJS.ProcessEnv = { ...process.env, SIMCSEPP_GEMM_BF16_TEST_CHILD: '1', TAP: '0' }
    if (bf16 === undefined) delete env.SIMCSEPP_GEMM_BF16
    else env.SIMCSEPP_GEMM_BF16 = bf16
    const r = spawnSync(process.execPath, [...process.execArgv, self], { encoding: 'utf8', env, maxBuffer: 64 << 20 })
    if (r.status !== 0) throw new Error(r.stderr)
    return JSON.parse(r.stdout) as { kernel: string; bits: string[] }
  }
  const copies = run('copies')
  const compare = (t: Test, got: { bits: string[] }) => {
    t.equal(got.bits.length, 3 * shapes.length)
    got.bits.forEach((b, i) => {
      const [R, C, OC] = shapes[Math.floor(i / 3)]
      t.equal(b, copies.bits[i], `${['forward', 'input gradient', 'weight gradient'][i % 3]} ${R}x${C}x${OC}`)
    })
  }
  t.test('bf16 products: rounding while packing gives the rounded copies’ bits', async (t) => {
    t.equal(copies.kernel, 'rounded copies')
    const packed = run(undefined)
    t.equal(packed.kernel, 'rounded while packed', 'the default')
    compare(t, packed)
  })
  const fast = run('avx512bf16')
  t.test(
    'bf16 products: the AVX512_BF16 kernel gives the rounded copies’ bits',
    { skip: fast.kernel === 'avx512bf16' ? false : `no AVX512_BF16 kernel here (${fast.kernel})` },
    async (t) => compare(t, fast),
  )
}
