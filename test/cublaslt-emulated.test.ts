// kernels/cublaslt.cu on the host emulator: the emulated build loads emulator/fake_cublaslt.cpp (a stand-in
// libcublasLt with the documented semantics, computing on the host, refusing layouts that do not fit and
// pointers less aligned than an algorithm was chosen for) through SIMCSEPP_CUBLASLT. So the code that picks,
// plans, self-checks and calls cuBLASLt runs in CI, not only on a GPU: the self-check must pass for every
// kind of product, the GEMM op table and 3 training steps must agree with the CPU with the products on
// cuBLASLt, and a library that drops the bias must be caught by the self-check and left unused. The bf16 output (the
// MLP backward's product with bf16Next 'only') must be stored by the library, and a library that gets it wrong loses
// that kind only, the product then written in fp32 with the same results.
import t from 'tap'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { cudaStatus, SentenceEncoder } from '../lib/index.js'
import { BertModel } from '../lib/model/bert.js'
import { namedConfig } from '../lib/model/config.js'
import { readSafetensors } from '../lib/safetensors.js'
import { train } from '../lib/train/train.js'
import { buildVocab, writeVocab } from '../lib/train/vocab.js'
import { GEMM_CASES } from './helpers/encoder-parity.mjs'
import { trainChecks } from './helpers/encoder-e2e.mjs'
import { lib as opLib } from './helpers/op-parity-tap.js'
import { runSelfAsChild } from './helpers/self-child.js'
import { roundBf16Array } from './helpers/bf16.js'
import { Tensor } from '../lib/tensor.js'
import * as ops from '../lib/ops.js'
import { Bf16Values } from '../lib/bf16-values.js'

const CHILD = 'SIMCSEPP_CUBLASLT_TEST_CHILD'
const fake = process.env.SIMCSEPP_ADDON ? join(dirname(process.env.SIMCSEPP_ADDON), 'libcublasLt-emulated.so') : ''

interface ChildResult {
  gemm: string
  checks: number
  failed: string[]
  bf16Stored?: boolean // mode 'mlp': the product behind gI2 was stored as bf16 in gI2's memory
}

/** The MLP's backward at bf16 on CUDA (output.dense's through the GELU, then intermediate.dense's, which takes gI2's
 * handoff), with gI2 written or 'only' handed off: the results bit for bit either way, and whether 'only' stored the
 * product as bf16 in gI2's memory (the bf16-output kind). */
function mlpChecks(): { failed: string[]; checks: number; bf16Stored: boolean } {
  const [R, H, I] = [70, 24, 40]
  const cuda = (shape: number[], seed: number, scale = 1) =>
    Tensor.from(
      Float32Array.from({ length: shape[0] * (shape[1] ?? 1) }, (_, i) => scale * Math.sin(seed * 3.3 + i * 0.41)),
      shape,
      'cuda',
    )
  const [inter, dout, wOut, wIn, h1] = [cuda([R, I], 1, 2), cuda([R, H], 2), cuda([H, I], 3, 0.2), cuda([I, H], 4, 0.2), cuda([R, H], 5)]
  const run = (bf16Next: true | 'only') => {
    const gI2 = cuda([R, I], 6),
      gRes = cuda([R, H], 0, 0)
    ops.linearBackward(gI2, cuda([H, I], 0, 0), null, dout, null, wOut, false, 'bf16', inter, bf16Next)
    ops.linearBackward(gRes, cuda([I, H], 0, 0), null, gI2, h1, wIn, false, 'bf16')
    return { gI2: gI2.toFloat32Array(), gRes: gRes.toFloat32Array() }
  }
  const [written, only] = [run(true), run('only')]
  const failed: string[] = []
  if (written.gRes.some((v, i) => !Object.is(v, only.gRes[i]))) failed.push("'only' changed the input gradient")
  const product = cuda([R, I], 0, 0)
  ops.linearBackward(product, cuda([H, I], 0, 0), null, dout, inter, wOut, false, 'bf16')
  // The forward with the pre-activation kept in bf16 (the bias kind): the fp32 product with its bias, rounded.
  const bias = cuda([I], 7)
  const plain = cuda([R, I], 0, 0),
    kept = new Bf16Values(cuda([(R * I) / 2], 0, 0), [R, I])
  ops.linearForward(plain, h1, wIn, bias, 'bf16')
  ops.linearForward(kept, h1, wIn, bias, 'bf16', cuda([R, I], 0, 0))
  const want = roundBf16Array(plain.toFloat32Array())
  if (kept.toFloat32Array().some((v, i) => !Object.is(v, want[i]))) failed.push('the kept pre-activation is not bf16(product)')
  // The attention's arrays in bf16 (test/attention-bf16-storage.test.ts): q | k | v stored by the bias kind, ctx's
  // gradient by the bf16-output kind (or written in fp32 and rounded, without it): bf16 of the fp32 product either way.
  const [wQkv, bQkv, wSq] = [cuda([3 * H, H], 8, 0.3), cuda([3 * H], 9), cuda([H, H], 10, 0.3)]
  const qkv32 = cuda([R, 3 * H], 0, 0),
    qkv16 = new Bf16Values(cuda([(R * 3 * H) / 2], 0, 0), [R, 3 * H])
  ops.linearForward(qkv32, h1, wQkv, bQkv, 'bf16')
  ops.linearForward(qkv16, h1, wQkv, bQkv, 'bf16')
  const wantQkv = roundBf16Array(qkv32.toFloat32Array())
  if (qkv16.toFloat32Array().some((v, i) => !Object.is(v, wantQkv[i]))) failed.push('q | k | v in bf16 is not bf16(product)')
  const g32 = cuda([R, H], 0, 0),
    g16 = new Bf16Values(cuda([(R * H) / 2], 0, 0), [R, H])
  ops.linearBackward(g32, cuda([H, H], 0, 0), null, dout, h1, wSq, false, 'bf16')
  ops.linearBackward(g16, cuda([H, H], 0, 0), null, dout, h1, wSq, false, 'bf16')
  const wantG = roundBf16Array(g32.toFloat32Array())
  if (g16.toFloat32Array().some((v, i) => !Object.is(v, wantG[i]))) failed.push("ctx's gradient in bf16 is not bf16(product)")
  const high = new Uint16Array(roundBf16Array(product.toFloat32Array()).buffer).filter((_, i) => i % 2 === 1)
  const stored = new Uint16Array(only.gI2.buffer, 0, R * I)
  return { failed, checks: 4, bf16Stored: stored.every((v, i) => v === high[i]) }
}

if (process.env[CHILD]) {
  const failed: string[] = []
  let checks = 0
  for (const c of GEMM_CASES)
    for (const check of c.run(opLib, 'cuda')) {
      checks++
      if (!check.ok) failed.push(check.message)
    }
  let bf16Stored: boolean | undefined
  if (process.env[CHILD] === 'mlp') {
    const r = mlpChecks()
    checks += r.checks
    failed.push(...r.failed)
    bf16Stored = r.bf16Stored
  }
  if (process.env[CHILD] === 'train') {
    const dir = mkdtempSync(join(tmpdir(), 'simcsepp-cublaslt-'))
    const lib = { BertModel, namedConfig, buildVocab, writeVocab, SentenceEncoder, train, readSafetensors }
    for (const check of await trainChecks(lib, dir, 'cuda', 'fp32')) {
      checks++
      if (!check.ok) failed.push(check.message)
    }
    rmSync(dir, { recursive: true, force: true })
  }
  process.stdout.write(JSON.stringify({ gemm: cudaStatus().gemm ?? '', checks, failed, bf16Stored } satisfies ChildResult))
} else {
  const status = cudaStatus()
  const skip = !status.emulated ? 'the stand-in cuBLASLt runs on the emulator only' : existsSync(fake) ? false : `${fake} not built`
  const run = (mode: string, env: Record<string, string | undefined>) =>
    runSelfAsChild<ChildResult>(import.meta.url, CHILD, { SIMCSEPP_CUBLASLT: fake, SIMCSEPP_GEMM: undefined, ...env, [CHILD]: mode })

  t.test('cuBLASLt passes its self-check for every kind and serves the linear layers', { skip }, async (t) => {
    const logs = mkdtempSync(join(tmpdir(), 'simcsepp-cublaslt-log-'))
    const matmuls = (name: string) => Number(readFileSync(join(logs, name), 'utf8').trim())
    // Without step graphs: the stand-in cannot be captured (the kernels serve a capture's products).
    const r = run('train', { CUEMU_FAKE_CUBLASLT_LOG: join(logs, 'train'), SIMCSEPP_CUDA_GRAPHS: '0' })
    t.equal(r.gemm, `cuBLASLt 999999 (${fake})`, 'cudaStatus().gemm: cuBLASLt, every kind active')
    t.same(r.failed, [], `the GEMM op table and 3 fp32 training steps agree with the CPU (${r.checks} checks)`)
    t.ok(r.checks > 100, 'the checks ran')
    const table = run('table', { CUEMU_FAKE_CUBLASLT_LOG: join(logs, 'table') })
    t.same(table.failed, [], `the GEMM op table alone (${table.checks} checks)`)
    t.ok(matmuls('table') > 32, `the op table's products went through cuBLASLt (${matmuls('table')} matmuls; the self-check makes 32)`)
    t.ok(matmuls('train') > matmuls('table'), `so did the training steps' (${matmuls('train') - matmuls('table')} matmuls)`)
    rmSync(logs, { recursive: true, force: true })
  })

  t.test('a cuBLASLt that gets the bias wrong fails the self-check and is left unused', { skip }, async (t) => {
    const r = run('table', { CUEMU_FAKE_CUBLASLT_BUG: 'bias' })
    // The bf16 output, which takes no bias, stays in use.
    t.match(r.gemm, /^cuBLASLt 999999 .*, simcsepp kernels for what it got wrong \(fp32: cuBLASLt and the kernels disagree \(fp32, bias\)/)
    t.match(r.gemm, /; bf16 operands: cuBLASLt and the kernels disagree \(bf16 operands, bias\)/)
    t.notMatch(r.gemm, /bf16 operands and output:/)
    t.same(r.failed, [], `the kernels serve the GEMM op table (${r.checks} checks)`)
  })

  t.test("the MLP backward's product stored as bf16 by cuBLASLt, or in fp32 by one that gets that wrong", { skip }, async (t) => {
    const r = run('mlp', { SIMCSEPP_CUDA_GRAPHS: '0' })
    t.equal(r.gemm, `cuBLASLt 999999 (${fake})`, 'every kind active')
    t.same(r.failed, [], "'only' gives the input gradient of gI2 written, bit for bit")
    t.equal(r.bf16Stored, true, "'only': cuBLASLt stored the product as bf16 in gI2's memory")
    const bad = run('mlp', { SIMCSEPP_CUDA_GRAPHS: '0', CUEMU_FAKE_CUBLASLT_BUG: 'bf16out' })
    t.match(
      bad.gemm,
      /^cuBLASLt 999999 .*, simcsepp kernels for what it got wrong \(bf16 operands and output: cuBLASLt and the kernels disagree \(bf16 operands and output\)/,
    )
    t.same(bad.failed, [], "without that kind: the same results, bit for bit, with gI2 written or 'only'")
    t.equal(bad.bf16Stored, false, "the product written in fp32 (cuBLASLt's bf16 operands), the pass rounding it")
  })
}
