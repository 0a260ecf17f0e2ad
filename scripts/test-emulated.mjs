#!/usr/bin/env node
// npm run test:emulated: builds the emulated CUDA flavour into build-emulate/ (the real addon in build/ is
// left alone), runs the emulator's own tests (emulator/selftest), then the test files that exercise the
// 'cuda' device against the emulated addon: CPU vs emulated CUDA with the same tolerances as on a GPU,
// then the op tables again with CUEMU_GLOBAL_RACES=1 (no block touching what another block writes). Ends with "N passed, N failed"; exits non-zero on any failure.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const buildDir = join(root, 'build-emulate')
const files = [
  'test/cuda.test.ts',
  'test/validation.test.ts',
  'test/ops.test.ts',
  'test/addon-exports.test.ts',
  'test/cuda-ops-gemm.test.ts',
  'test/cuda-attention-path.test.ts',
  'test/cuda-ops-rowwise.test.ts',
  'test/cuda-encoder.test.ts',
  'test/dense-module.test.ts',
  'test/relative-attention.test.ts',
  'test/mpnet.test.ts',
  'test/modernbert.test.ts',
  'test/matryoshka.test.ts',
  'test/n-tuples.test.ts',
  'test/symmetric.test.ts',
  'test/cosent-training.test.ts',
  'test/multi-dataset.test.ts',
  'test/distill.test.ts',
  'test/long-sequences.test.ts',
  'test/precision.test.ts',
  'test/bench-step.test.ts',
  'test/bench-attention.test.ts',
  'test/micro-batch-masks.test.ts',
  'test/cuda-micro-batch.test.ts',
  'test/cuda-distributed.test.ts',
  'test/cuda-graphs.test.ts',
  'test/bf16-operands.test.ts',
  'test/attention-bf16-storage.test.ts',
  'test/cuda-search.test.ts',
  'test/gpu-check.test.ts',
  'test/block-order.test.ts',
  'test/cublaslt-emulated.test.ts',
  'test/addon-fuzz.test.ts',
].filter((f) => existsSync(join(root, f)))

let passed = 0
let failed = 0
function finish() {
  console.log(`${passed} passed, ${failed} failed`)
  process.exit(failed === 0 ? 0 : 1)
}

console.log('== build the emulated flavour (build-emulate/)')
const build = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.mjs')], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, SIMCSEPP_CUDA: 'emulate', SIMCSEPP_BUILD_DIR: buildDir },
})
const addon = join(buildDir, 'Release', 'simcsepp.node')
const selftest = join(buildDir, 'Release', 'emulator_selftest')
if (build.status !== 0 || !existsSync(addon) || !existsSync(selftest)) {
  console.log('building the emulated flavour failed')
  failed += 1
  finish()
}

console.log('== emulator self-test (deliberately broken kernels must be caught)')
const self = spawnSync(selftest, [], { encoding: 'utf8' })
process.stdout.write(self.stdout ?? '')
process.stderr.write(self.stderr ?? '')
const selfCounts = /(\d+) passed, (\d+) failed\s*$/.exec(self.stdout ?? '')
if (selfCounts) {
  passed += Number(selfCounts[1])
  failed += Number(selfCounts[2])
}
if (!selfCounts || self.status !== 0) failed += selfCounts && Number(selfCounts[2]) > 0 ? 0 : 1

// Test files run side by side, one per core (at most 8): the emulator runs a launch's blocks one after another
// on one thread, so a file keeps about one core busy, and CI's 90 minutes hold the emulated stage only this way.
const jobs = Math.max(1, Math.min(8, availableParallelism()))

// Runs tap over `testFiles` against the emulated addon (with `env` added) and counts its results.
function runTap(testFiles, env, what) {
  console.log(`== ${testFiles.join(' ')} ${what} (${jobs} at a time)`)
  const r = spawnSync(process.execPath, [join(root, 'node_modules', '.bin', 'tap'), `--jobs=${jobs}`, ...testFiles], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, SIMCSEPP_ADDON: addon, SIMCSEPP_EXPECT_EMULATED: '1', ...env },
    maxBuffer: 256 * 1024 * 1024,
  })
  process.stdout.write(r.stdout ?? '')
  process.stderr.write(r.stderr ?? '')
  const summary = /^# \{ total: (\d+)(?:, pass: (\d+))?(?:, fail: (\d+))?/m.exec(r.stdout ?? '')
  if (summary) {
    passed += Number(summary[2] ?? 0)
    failed += Number(summary[3] ?? 0)
  }
  if (!summary || (r.status !== 0 && Number(summary?.[3] ?? 0) === 0)) failed += 1
}

runTap(files, {}, "against the emulated 'cuda' device")
// The op tables again with CUEMU_GLOBAL_RACES=1 (emulator/checks.cpp): no block may read or write device
// memory that another block of the same launch writes (a GPU runs them concurrently, unordered).
runTap(
  [
    'test/cuda.test.ts',
    'test/cuda-ops-gemm.test.ts',
    'test/cuda-ops-rowwise.test.ts',
    'test/cuda-encoder.test.ts',
    'test/relative-attention.test.ts',
    'test/attention-bf16-storage.test.ts',
  ],
  { CUEMU_GLOBAL_RACES: '1' },
  'with CUEMU_GLOBAL_RACES=1 (races between blocks)',
)
finish()
