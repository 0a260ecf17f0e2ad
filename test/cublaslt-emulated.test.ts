// kernels/cublaslt.cu on the host emulator: the emulated build loads emulator/fake_cublaslt.cpp (a stand-in
// libcublasLt with the documented semantics, computing on the host, refusing layouts that do not fit and
// pointers less aligned than an algorithm was chosen for) through SIMCSEPP_CUBLASLT. So the code that picks,
// plans, self-checks and calls cuBLASLt runs in CI, not only on a GPU: the self-check must pass for every
// kind of product, the GEMM op table and 3 training steps must agree with the CPU with the products on
// cuBLASLt, and a library that drops the bias must be caught by the self-check and left unused.
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

const CHILD = 'SIMCSEPP_CUBLASLT_TEST_CHILD'
const fake = process.env.SIMCSEPP_ADDON ? join(dirname(process.env.SIMCSEPP_ADDON), 'libcublasLt-emulated.so') : ''

interface ChildResult {
  gemm: string
  checks: number
  failed: string[]
}

if (process.env[CHILD]) {
  const failed: string[] = []
  let checks = 0
  for (const c of GEMM_CASES)
    for (const check of c.run(opLib, 'cuda')) {
      checks++
      if (!check.ok) failed.push(check.message)
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
  process.stdout.write(JSON.stringify({ gemm: cudaStatus().gemm ?? '', checks, failed } satisfies ChildResult))
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
    t.ok(matmuls('table') > 24, `the op table's products went through cuBLASLt (${matmuls('table')} matmuls; the self-check makes 24)`)
    t.ok(matmuls('train') > matmuls('table'), `so did the training steps' (${matmuls('train') - matmuls('table')} matmuls)`)
    rmSync(logs, { recursive: true, force: true })
  })

  t.test('a cuBLASLt that gets the bias wrong fails the self-check and is left unused', { skip }, async (t) => {
    const r = run('table', { CUEMU_FAKE_CUBLASLT_BUG: 'bias' })
    t.match(r.gemm, /^simcsepp kernels \(cuBLASLt 999999 .* not used: fp32: cuBLASLt and the kernels disagree \(fp32, bias\)/)
    t.match(r.gemm, /bf16 operands: cuBLASLt and the kernels disagree \(bf16 operands, bias\)/)
    t.same(r.failed, [], `the kernels serve the GEMM op table (${r.checks} checks)`)
  })
}
