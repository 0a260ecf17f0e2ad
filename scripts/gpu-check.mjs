#!/usr/bin/env node
// Standalone CUDA checks for a GPU machine that has only `node`, the built addon
// (build/Release/simcsepp.node, CUDA build) and dist/: no tap, no TypeScript, no network.
//
//   node scripts/gpu-check.mjs [--budget-seconds 420] [--large] [--no-bench] [--no-checks] [--dry-run] [--dist DIR]
//                              [--only SECTIONS] [--loss-n-max N] [--torch-modes eager,compile]
//
// --only: a comma-separated list of the sections to run, to spend a short second lease on what the first one left
// open: losses (2: the loss, unfused, dropout and tensor checks), ops (3), e2e (4), bench-losses (5),
// bench-attention, bench-step, bench-variants (the B = 64 step without graphs, with per-op rounding, with fp32
// operands; B = 512 with scalar LayerNorm rows; the micro-batched B = 4096), bench-torch, bench-profile (6), bench-encode (7). Default: all.
// --loss-n-max: the loss checks of 2 only up to this N (N = 65,536 takes minutes of CPU reference).
// --torch-modes: the PyTorch baseline's modes (default eager,compile).
//
// --dry-run: the benchmarks of 5-7 run on tiny shapes (the tiny model, B = 2 and 4, T = 6, one timed step),
// also on the host emulator, where they are otherwise skipped: a rehearsal of this script's benchmark code
// for CI (test/gpu-check.test.ts, with --no-checks, which skips 2-4), so that a GPU session is not lost to a
// bug in it. Its numbers mean nothing.
//
// 1. prints cudaStatus();
// 2. the CUDA-vs-CPU parity checks of test/cuda.test.ts with the same tolerances (test/helpers/parity.mjs):
//    the losses simcse, simcse+hard, offDropout, dcl, simcse++ for N in {1, 7, 64, 1000, 4096} x
//    D in {1, 128, 768} plus N = 65,536 at D = 1 (and D = 128, 768 with --large), each run twice on the
//    device (the second run must give the same bits: no sum depends on the blocks' order); the unfused benchmark
//    baseline for N in {1, 7, 64, 1000} x D in {1, 128, 768}; dropout bit-equality; tensor round trips.
//    On the host emulator (an addon built with SIMCSEPP_CUDA=emulate) the EMULATED_SHAPES instead;
// 3. every encoder op against the CPU, the tables of test/cuda-ops-gemm.test.ts and
//    test/cuda-ops-rowwise.test.ts (test/helpers/encoder-parity.mjs, same shapes, inputs and tolerances):
//    sgemm (every transpose, alpha, beta), linear forward/backward, attention forward/backward with masks
//    and dropout (its mask element for element), embedding, layer norm, GELU, tanh, add, CLS/mean pooling
//    forward/backward, AdamW, gradSumSquares, scale, and bit-identical reruns of the reductions; then the
//    worst error per op; then the attention's arrays kept in bf16 against fp32 arrays on the GPU, bit for bit
//    (test/helpers/attention-bf16.mjs: the q | k | v product, the attention both ways, the linear layer after it);
// 4. the encoder end to end, as test/cuda-encoder.test.ts (test/helpers/encoder-e2e.mjs): SentenceEncoder
//    vectors of a small random model on CUDA within 1e-4 of the CPU's, and 3 fp32 training steps on CUDA
//    ending with the CPU's weights within 1e-4 (the attention key biases, whose exact gradient is 0,
//    within 2·steps·lr); skipped, saying why, when the CUDA backend lacks an encoder op or dist/ cannot
//    load the tokenizer (the `tokenizers` package);
//    Sections 2-4 print one PASS/FAIL/SKIP line per check (per case of a table), then the failures again
//    and `N passed, N failed` at the end;
// 5. the loss benchmark (dist/bench/losses.js, its table from dist/cli/tables.js) for N in {64, 512, 4096, 65536} at D = 768 on cuda (and
//    cpu for N <= 4096); the JSON goes to $OUT/bench-losses.json when OUT is set (the full log to
//    $OUT/gpu-check.log);
// 6. attention forward + backward at B*3 = 192, T = 32, NH = 12, HS = 64 with SIMCSEPP_ATTENTION=tiled and
//    =fused (ms each, the ratio) and at precision bf16 (the tensor-core kernels), and at B*3 = 48, T = 512 (tiled) with probs kept or formed again in the
//    backward (JSON to $OUT/bench-attention.json); then one SimCSE++ training step of BERT-base at B = 64 and 512, T = 32 on CUDA (bench step) once every
//    encoder op has a CUDA kernel, B = 4096 in micro-batches of 1536 rows when time allows, and the PyTorch step of scripts/bench/torch_step.py when torch is
//    importable, with the ratios; the B = 64 step without CUDA graphs and the B = 64 and 512 steps with
//    SIMCSEPP_BF16_OPERANDS=fp32 (bf16 products on fp32 operands instead of bf16 copies) and the B = 64 step with
//    SIMCSEPP_BF16_WEIGHT_MIRROR=0 and SIMCSEPP_BF16_HANDOFF=0 (both operands rounded at every product instead of
//    read from the weight mirror and the producers' handoffs) and the B = 512 step with
//    SIMCSEPP_LAYERNORM_ROWS=scalar (the LayerNorm kernels without the rows in registers) and with
//    SIMCSEPP_L2_SLABS=off (the LayerNorm backwards' two passes each over all rows, not a slab fitting the L2) and with
//    SIMCSEPP_BIAS_SUMS=products (the bias gradients summed in passes of their own) and with SIMCSEPP_BF16_OUTPUT=0
//    (the MLP backward's first product written in fp32, not stored in bf16) and with SIMCSEPP_ATTENTION_STORAGE=fp32
//    (the attention's q | k | v, ctx and its gradient kept in fp32, not in bf16) and with SIMCSEPP_ATTENTION_PROBS=keep
//    (the attention probabilities kept, not formed in the backward) and with SIMCSEPP_LAYERNORM_COPIES=recompute (the
//    weight gradients' LayerNorm outputs recomputed and rounded, not read from kept bf16 copies) and with
//    SIMCSEPP_SUBLAYER_OUTPUT=fp32 (the sublayers' outputs written in fp32, not stored in bf16) and with
//    SIMCSEPP_GELU_COPIES=recompute (output.dense's weight gradient reading GELU(inter) recomputed and rounded, not the
//    forward's kept bf16 GELU) when time allows, and
//    the device time per op category at B = 64 and 512 (bench step --profile: CUDA events around each op of a
//    step run without graphs), and within each category per kernel, cuBLASLt product (with its TFLOP/s), copy and
//    fill (kernels/kernel_profile.cuh: events around each launch); then the issue's targets (at B = 64, >= 2x PyTorch eager and >= 1.2x
//    torch.compile in steps/s at our precision; at B = 512, >= 40% model FLOP utilisation), each met or not
//    or why it was not measured; JSON to $OUT/bench-step.json. The Python with torch is SIMCSEPP_PYTHON
//    (default python3);
// 7. SentenceEncoder on CUDA (bench encode): BERT-base, 4,096 Wikipedia sentences (generated ones without
//    ../shared/data) in batches of 128, length-sorted and in input order, and sorted with CUDA graphs off;
//    JSON to $OUT/bench-encode.json.
// Everything runs under --budget-seconds (default 420, so it ends inside a 10-minute device call): a
// check whose estimated time exceeds what is left is reported as SKIP; the benchmark keeps a reserve, and
// the loss checks leave min(30 s, 10% of the budget) to the encoder checks.
// Exit code: 0 when nothing failed (also when CUDA is unavailable: it says so and runs only the CPU
// benchmark), 1 when a check failed, 2 when dist/ or the addon could not be loaded.
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import {
  DROPOUT_SHAPES,
  EMULATED_SHAPES,
  GRAD_TOLERANCE,
  HARD_NEGATIVE_SHAPES,
  LOSS_CASES,
  UNFUSED_SHAPES,
  bitEqual,
  compareLossResults,
  dropoutOptions,
  hardNegativeViews,
  lossClose,
  lossShapes,
  lossViews,
  gradFloor,
  randn,
  relErr,
  runUnfused,
  sameBits,
} from '../test/helpers/parity.mjs'
import { GEMM_CASES, ROWWISE_CASES, WorstErrors } from '../test/helpers/encoder-parity.mjs'
import { ATTENTION_BF16_SHAPES, attentionBf16Checks } from '../test/helpers/attention-bf16.mjs'
import { encodeChecks, mixtureChecks, trainChecks } from '../test/helpers/encoder-e2e.mjs'

const t0 = performance.now()
const argv = process.argv.slice(2)
const flag = (name) => argv.includes(name)
const option = (name, fallback) => {
  const i = argv.indexOf(name)
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : fallback
}
const budget = Number(option('--budget-seconds', '420'))
if (!(budget > 0)) {
  console.error(`--budget-seconds must be > 0 (got ${option('--budget-seconds')})`)
  process.exit(2)
}
const large = flag('--large')
const SECTIONS = [
  'losses',
  'ops',
  'e2e',
  'bench-losses',
  'bench-attention',
  'bench-step',
  'bench-variants',
  'bench-torch',
  'bench-profile',
  'bench-encode',
]
const only = option('--only', null)?.split(',')
const unknownSection = only?.find((x) => !SECTIONS.includes(x))
if (unknownSection !== undefined) {
  console.error(`--only: unknown section ${JSON.stringify(unknownSection)} (sections: ${SECTIONS.join(', ')})`)
  process.exit(2)
}
/** Whether --only (or its absence) lets this section run. */
const want = (section) => !only || only.includes(section)
const lossNMax = Number(option('--loss-n-max', 'Infinity'))
if (!(lossNMax >= 1)) {
  console.error(`--loss-n-max must be >= 1 (got ${option('--loss-n-max')})`)
  process.exit(2)
}
const torchModes = option('--torch-modes', 'eager,compile')
let runBench = !flag('--no-bench')
const runChecks = !flag('--no-checks')
const dryRun = flag('--dry-run')
// The benchmarks' shapes: the issue's, or tiny ones for --dry-run.
const shapes = dryRun
  ? {
      lossSizes: [8, 64],
      lossDim: 16,
      lossSeconds: 0.02,
      attention: [6, 8, 2, 8, 2],
      attentionLong: [3, 9, 2, 8, 2],
      attention128: [3, 70, 2, 8, 2],
      model: 'tiny',
      batches: [2, 4],
      seqLen: 6,
      steps: 1,
      // The comparison rows, micro-batches and profile without warm-up steps and one profiled step: the dry run
      // checks the flow (the main rows keep their warm-up, so CUDA graphs are captured and replayed there).
      variantWarmup: 0,
      profileSteps: 1,
      huge: [8, 9],
      encode: [12, 4], // sentences, batch
    }
  : {
      lossSizes: [64, 512, 4096, 65536],
      lossDim: 768,
      lossSeconds: 0.5,
      attention: [192, 32, 12, 64, 20], // B*3, T, NH, HS, repetitions
      attentionLong: [48, 512, 12, 64, 5], // the same at T = 512 (the tiled path): probs kept or formed again
      attention128: [96, 128, 12, 64, 10], // T = 128: the fused fp32 kernels against the long tensor-core ones
      model: 'base',
      batches: [64, 512],
      seqLen: 32,
      steps: 5,
      variantWarmup: 2,
      profileSteps: 2,
      huge: [4096, 1536], // sentences, rows per micro-batch
      encode: [4096, 128], // sentences, batch
    }
const [small, big] = shapes.batches
const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const distDir = resolve(option('--dist', process.env.SIMCSEPP_DIST ?? join(root, 'dist')))
const outDir = process.env.OUT
const logFile = outDir ? join(outDir, 'gpu-check.log') : null
if (outDir) {
  mkdirSync(outDir, { recursive: true })
  writeFileSync(logFile, '')
}
const elapsed = () => (performance.now() - t0) / 1000
const left = () => budget - elapsed()
function log(line) {
  console.log(line)
  if (logFile) appendFileSync(logFile, line + '\n')
}

// The Python that has torch (the PyTorch baseline) and maybe nvidia-cublas: SIMCSEPP_PYTHON, else python3.
const python = process.env.SIMCSEPP_PYTHON || 'python3'

// cuBLASLt: the addon finds Python's nvidia-cublas wheels in the usual site-packages (kernels/cublaslt.cu);
// python3 itself knows where its packages are, wherever it was installed. Asked before the first
// cudaStatus(), which loads the library.
if (!process.env.SIMCSEPP_CUBLASLT) {
  const find = [
    'import glob, os, sys',
    'found = [f for p in sys.path for f in sorted(glob.glob(os.path.join(p, "nvidia", "*", "lib", "libcublasLt.so.*")), reverse=True)]',
    'print(found[0] if found else "")',
  ].join('\n')
  const r = spawnSync(python, ['-c', find], { encoding: 'utf8', timeout: 30_000 })
  const path = r.status === 0 ? r.stdout.trim() : ''
  if (path) {
    process.env.SIMCSEPP_CUBLASLT = path
    log(`cuBLASLt in python3's packages: ${path} (SIMCSEPP_CUBLASLT)`)
  }
}

// ---------------------------------------------------------------------------------------------
// Loading: dist/index.js imports the tokenizer module (and with it the `tokenizers` package) eagerly;
// when that package is not carried, fall back to the modules the checks need.

const mod = async (rel) => import(pathToFileURL(join(distDir, rel)).href)
let api
try {
  if (!existsSync(join(distDir, 'index.js'))) throw new Error(`${distDir}/index.js not found (run npm run build:ts)`)
  let index = null
  try {
    index = await mod('index.js')
  } catch (e) {
    log(
      `note: dist/index.js could not be loaded (${e.message.split('\n')[0]}); using dist/tensor.js, losses.js, dropout.js, ops.js, native.js`,
    )
  }
  const native = await mod('native.js')
  api = {
    Tensor: index?.Tensor ?? (await mod('tensor.js')).Tensor,
    losses: index?.losses ?? (await mod('losses.js')),
    dropout: index?.dropout ?? (await mod('dropout.js')).dropout,
    cudaStatus: index?.cudaStatus ?? (() => native.addon.cudaStatus()),
    addon: native.addon,
    nativeOf: (await mod('tensor.js')).nativeOf,
    ops: await mod('ops.js'),
    Bf16Values: (await mod('bf16-values.js')).Bf16Values,
  }
} catch (e) {
  log(`FAIL loading simcsepp from ${distDir}: ${e.message}`)
  log('0 passed, 1 failed')
  process.exit(2)
}
const { Tensor, losses, dropout, cudaStatus, addon, nativeOf, ops, Bf16Values } = api

// SIMCSEPP_GPU_CHECK_FAKE=cpu: exercise this script's CUDA code paths on a CPU-only machine (every
// 'cuda' tensor is a CPU tensor, so the checks compare CPU with CPU). For testing the script only.
const fake = process.env.SIMCSEPP_GPU_CHECK_FAKE === 'cpu'
const GPU = fake ? 'cpu' : 'cuda'
const status = fake ? { ...cudaStatus(), available: true, fake: true } : cudaStatus()
log(`cudaStatus: ${JSON.stringify(status)}`)
log(`node ${process.version}, budget ${budget} s${large ? ', --large' : ''}, dist ${distDir}`)
if (dryRun) log('--dry-run: the benchmarks run once on tiny shapes; their numbers mean nothing')
else if (runBench && status.emulated) {
  runBench = false
  log('the CUDA device is the host emulator: the benchmarks are skipped (emulated timings mean nothing)')
}

let passed = 0,
  failed = 0,
  skipped = 0
const failures = []
function report(ok, line) {
  const text = `${ok ? 'PASS' : 'FAIL'} ${line}`
  if (ok) passed++
  else {
    failed++
    failures.push(text)
  }
  log(text)
}
function skip(line) {
  skipped++
  log(`SKIP ${line}`)
}
// Runs one check, fn returning [ok, detail] (or a promise of it, which check then returns); an exception
// is a failure with its message.
function check(name, fn) {
  const s = performance.now()
  const done = ([ok, detail]) => report(ok, `${name}: ${detail} (${((performance.now() - s) / 1000).toFixed(2)} s)`)
  const threw = (e) => report(false, `${name}: threw ${e.message.split('\n')[0]}`)
  try {
    const r = fn()
    if (r instanceof Promise) return r.then(done, threw)
    done(r)
  } catch (e) {
    threw(e)
  }
}
// [ok, detail] of a list of { ok, message } checks (test/helpers/encoder-*.mjs): the failing messages, or
// how many passed and the largest error measured.
function summarize(checks) {
  const bad = checks.filter((c) => !c.ok)
  if (bad.length) return [false, bad.map((c) => c.message).join('; ')]
  const measured = checks.map((c) => c.measure).filter((m) => m && Number.isFinite(m.value))
  const top = measured.reduce((a, m) => (a && a.value >= m.value ? a : m), null)
  const count = `${checks.length} check${checks.length === 1 ? '' : 's'}`
  return [checks.length > 0, `${count}${top ? `, largest ${fmt(top.value)} ${top.unit}` : ''}`]
}
const fmt = (x) => (Number.isFinite(x) ? x.toExponential(2) : String(x))

// Time estimates for skipping. The CPU reference dominates: about N^2 (D + 64) work (the exps weigh like
// 64 multiply-adds). Seconds per N^2 are learned per D from the last shape run at that D (so N = 65,536
// at D = 1 is extrapolated from N = 4096 at D = 1); other D use the last rate per unit of N^2 (D + 64).
const cost = (n, d) => n * n * (d + 64)
function estimator() {
  const byD = new Map()
  let generic = 2e-9
  return {
    estimate: (n, d) => (byD.has(d) ? byD.get(d) * n * n : generic * cost(n, d)),
    learn(n, d, seconds) {
      if (cost(n, d) < 1e7) return // fixed overheads dominate small shapes
      byD.set(d, seconds / (n * n))
      generic = seconds / cost(n, d)
    },
  }
}
const rate = { parity: estimator(), unfused: estimator() }
const benchReserve = runBench && SECTIONS.some((x) => x.startsWith('bench-') && want(x)) ? Math.min(120, budget * 0.3) : 0
const parityLeft = () => left() - benchReserve
// The loss checks leave time for the encoder checks after them (seconds on a GPU: their CPU references are small).
const encoderReserve = want('e2e') ? Math.min(30, budget * 0.1) : 0
const lossLeft = () => parityLeft() - encoderReserve

// ---------------------------------------------------------------------------------------------
// Parity checks.

if (!status.available) {
  log(
    `CUDA is unavailable on this machine (${status.reason ?? 'no reason given'}): the CUDA-vs-CPU checks are skipped; running only the CPU benchmark.`,
  )
} else if (!runChecks) {
  log('--no-checks: the CUDA-vs-CPU checks are skipped')
} else {
  // The host emulator runs every thread as a fiber: the tests' emulator shapes, not the GPU's.
  const emulated = status.emulated === true
  if (emulated) log('the CUDA device is the host emulator: the loss, unfused and dropout checks run at EMULATED_SHAPES')
  if (only) log(`--only ${only.join(',')}`)
  const lossShapesHere = want('losses') ? (emulated ? EMULATED_SHAPES.loss : lossShapes(large)).filter(([n]) => n <= lossNMax) : []
  for (const [n, d] of lossShapesHere) {
    const est = rate.parity.estimate(n, d)
    if (est > lossLeft()) {
      for (const c of LOSS_CASES)
        skip(`${c.name} N=${n} D=${d}: estimated ${est.toFixed(0)} s, ${Math.max(0, lossLeft()).toFixed(0)} s left`)
      continue
    }
    const s = performance.now()
    const v = lossViews(n, d)
    const cpu = v.map((x) => Tensor.from(x, [n, d]))
    const gpu = cpu.map((x) => x.to(GPU))
    for (const c of LOSS_CASES) {
      const floor = gradFloor(c.floor, n, d, c.temperature, c.floor === 'cos' ? v : v[0])
      check(`${c.name} N=${n} D=${d}`, () => {
        const a = c.run(losses, gpu),
          b = c.run(losses, cpu)
        const r = compareLossResults(a, b, GPU, floor)
        // A second run on the device: the same bits (no cross-block sum depends on the blocks' order).
        const again = c.run(losses, gpu)
        const same = sameBits(a, again)
        for (const g of [...Object.values(a.grads), ...Object.values(b.grads), ...Object.values(again.grads)]) g?.dispose?.()
        return [r.ok && same.ok, same.ok ? r.detail : `${r.detail}; ${same.detail}`]
      })
    }
    for (const x of [...cpu, ...gpu]) x.dispose()
    const took = (performance.now() - s) / 1000
    rate.parity.learn(n, d, took)
  }

  // Hard negatives of another count than the batch (the n-tuple format: k per example).
  const hardShapes = want('losses') ? (emulated ? HARD_NEGATIVE_SHAPES.emulated : HARD_NEGATIVE_SHAPES.gpu) : []
  for (const [n, m, d] of hardShapes.filter(([n]) => n <= lossNMax)) {
    if (lossLeft() < 30) {
      skip(`simcse N=${n} M=${m} D=${d}: ${Math.max(0, lossLeft()).toFixed(0)} s left`)
      continue
    }
    check(`simcse N=${n} M=${m} D=${d}`, () => {
      const v = hardNegativeViews(n, m, d)
      const cpu = v.map((x, k) => Tensor.from(x, [k === 2 ? m : n, d]))
      const gpu = cpu.map((x) => x.to(GPU))
      const run = (/** @type {any[]} */ z) => losses.simcse(z[0], z[1], { hardNegatives: z[2] })
      const a = run(gpu),
        b = run(cpu)
      const r = compareLossResults(a, b, GPU, gradFloor('cos', n, d, 0.05, v.slice(0, 2)))
      const again = run(gpu)
      const same = sameBits(a, again)
      for (const g of [...Object.values(a.grads), ...Object.values(b.grads), ...Object.values(again.grads), ...cpu, ...gpu]) g?.dispose?.()
      return [r.ok && same.ok, same.ok ? r.detail : `${r.detail}; ${same.detail}`]
    })
  }

  // The benchmark's unfused baseline: CUDA (kernels/infonce_unfused.cu) against CPU.
  const unfusedShapes = want('losses') ? (emulated ? EMULATED_SHAPES.unfused : UNFUSED_SHAPES) : []
  for (const [n, d] of unfusedShapes.filter(([n]) => n <= lossNMax)) {
    const est = rate.unfused.estimate(n, d)
    if (est > lossLeft()) {
      skip(`unfused N=${n} D=${d}: estimated ${est.toFixed(0)} s, ${Math.max(0, lossLeft()).toFixed(0)} s left`)
      continue
    }
    const s = performance.now()
    check(`unfused N=${n} D=${d}`, () => {
      const v = lossViews(n, d)
      const lib = { Tensor, nativeOf, addon }
      const a = runUnfused(lib, v, n, d, GPU),
        b = runUnfused(lib, v, n, d, 'cpu')
      let ok = lossClose(a.loss, b.loss) && a.workspaceBytes >= n * n * 4
      const parts = [`loss ${a.loss} vs ${b.loss}`]
      for (let k = 0; k < 3; k++) {
        const err = relErr(a.grads[k], b.grads[k], gradFloor('cos', n, d, 0.05, v))
        ok &&= err < GRAD_TOLERANCE && a.grads[k].every(Number.isFinite)
        parts.push(`dz${[1, 2, 0][k]} ${fmt(err)}`)
      }
      parts.push(`workspace ${a.workspaceBytes} B (cpu ${b.workspaceBytes} B)`)
      return [ok, parts.join(', ')]
    })
    rate.unfused.learn(n, d, (performance.now() - s) / 1000)
  }

  for (const [rows, cols] of want('losses') ? (emulated ? EMULATED_SHAPES.dropout : DROPOUT_SHAPES) : []) {
    check(`dropout [${rows}, ${cols}] bit-equal`, () => {
      const x = randn(rows * cols, rows)
      const opts = dropoutOptions(rows)
      const a = dropout(Tensor.from(x, [rows, cols], GPU), opts).toFloat32Array()
      const b = dropout(Tensor.from(x, [rows, cols]), opts).toFloat32Array()
      const r = bitEqual(a, b)
      return [r.equal, `${r.diff} of ${r.total} elements differ`]
    })
  }

  if (want('losses'))
    check('tensor round trip cpu -> cuda -> cpu', () => {
      const x = randn(1000, 1)
      const r = bitEqual(Tensor.from(x, [10, 100]).to(GPU).to('cpu').toFloat32Array(), x)
      return [r.equal, `${r.diff} of ${r.total} elements differ`]
    })
  if (!want('losses')) {
    // (--only)
  } else if (fake) skip('mixed devices are rejected: SIMCSEPP_GPU_CHECK_FAKE=cpu has one device only')
  else
    check('mixed devices are rejected', () => {
      const x = randn(1000, 1)
      try {
        losses.simcse(Tensor.from(x, [10, 100]), Tensor.from(x, [10, 100], GPU))
      } catch (e) {
        return [/z2.*device/.test(e.message), `threw: ${e.message.split('\n')[0]}`]
      }
      return [false, 'did not throw']
    })

  // Encoder ops: every case of the tables, one line each. A case's CPU reference is small (at most a few
  // 1e7 multiply-adds); its time is estimated as 0.05 s plus its work at the slowest rate seen so far
  // (seconds per unit of work, learned from cases of at least 1e5 units; 1e-8 before the first).
  const opLib = { Tensor, ops, addon, nativeOf, Bf16Values }
  const worst = new WorstErrors()
  let opRate = 0
  for (const c of want('ops') ? [...GEMM_CASES, ...ROWWISE_CASES] : []) {
    const est = 0.05 + (opRate || 1e-8) * c.work
    if (est > parityLeft()) {
      skip(`${c.name}: estimated ${est.toFixed(1)} s, ${Math.max(0, parityLeft()).toFixed(0)} s left`)
      continue
    }
    const s = performance.now()
    check(c.name, () => {
      const checks = c.run(opLib, GPU)
      for (const k of checks) worst.record(k)
      return summarize(checks)
    })
    if (c.work >= 1e5) opRate = Math.max(opRate, (performance.now() - s) / 1000 / c.work)
  }
  for (const line of worst.lines()) log(`  worst ${line}`)
  // The attention's arrays kept in bf16 (bf16 training's default on CUDA) against fp32 arrays on the device, bit for bit:
  // with the real cuBLASLt's bf16 outputs (test/helpers/attention-bf16.mjs).
  for (const shape of want('ops') ? ATTENTION_BF16_SHAPES : []) {
    if (parityLeft() < 5) {
      skip(`attention arrays in bf16 [${shape.join(', ')}]: ${Math.max(0, parityLeft()).toFixed(0)} s left`)
      continue
    }
    check(`attention arrays in bf16 give the fp32 arrays' bits, [B, T, NH, HS] = [${shape.join(', ')}]`, () =>
      summarize(attentionBf16Checks({ Tensor, ops, Bf16Values }, GPU, shape)),
    )
  }

  // The encoder end to end, on a small random model in a scratch directory (SentenceEncoder and train()
  // need the tokenizer, so dist/index.js's modules must load here). For skipping: encoding takes at most
  // ~10 s; training, which runs both devices' steps, ~10 times what encoding took (30 s if it did not run).
  let encodeSeconds = null
  const e2e = [
    { name: 'encoder end to end: SentenceEncoder vectors', estimate: () => 10, training: false, run: encodeChecks },
    ...['fp32', 'bf16'].map((precision) => ({
      name: `encoder end to end: 3 ${precision} training steps`,
      estimate: () => (encodeSeconds === null ? 30 : 5 + 10 * encodeSeconds),
      training: true,
      run: (lib, dir, device) => trainChecks(lib, dir, device, /** @type {'fp32' | 'bf16'} */ (precision)),
    })),
    // Three datasets in turn (SimCSE++, CoSENT, distillation): each one's step graphs, the scores and the teacher's
    // vectors bound arrays of the replays.
    {
      name: 'training end to end: 9 fp32 steps over three datasets (simcse++, cosent, distill)',
      estimate: () => (encodeSeconds === null ? 40 : 5 + 12 * encodeSeconds),
      training: true,
      run: (lib, dir, device) => mixtureChecks(lib, dir, device),
    },
    // The other layer structures' kernels in their own order: MPNet's relative bias, ModernBERT's rotary
    // embedding, GeGLU and window (fp32: the CPU's weights within 1e-4).
    ...['mpnet', 'modernbert'].map((modelType) => ({
      name: `encoder end to end: ${modelType} vectors and 3 fp32 training steps`,
      estimate: () => (encodeSeconds === null ? 40 : 5 + 11 * encodeSeconds),
      training: true,
      run: async (lib, dir, device) => [
        ...(await encodeChecks(lib, dir, device, /** @type {'mpnet' | 'modernbert'} */ (modelType))),
        ...(await trainChecks(lib, dir, device, 'fp32', /** @type {'mpnet' | 'modernbert'} */ (modelType))),
      ],
    })),
  ]
  let e2eLib = null
  let e2eBlocker = null
  let cudaSupport = null
  try {
    const [vocab, index] = [await mod('train/vocab.js'), await mod('index.js')]
    e2eLib = { ...index, buildVocab: vocab.buildVocab, writeVocab: vocab.writeVocab }
    cudaSupport = await mod('model/cuda-support.js')
  } catch (e) {
    const why = e.message.split('\n')[0]
    // Without the tokenizers package (not carried) the end-to-end checks cannot run; anything else is a fault.
    if (/tokenizers/.test(why)) e2eBlocker = `dist/index.js cannot load the tokenizers package (${why})`
    else {
      report(false, `encoder end to end: loading dist/index.js, train/vocab.js, model/cuda-support.js: ${why}`)
      e2eBlocker = 'dist/ did not load'
    }
  }
  for (const { name, estimate, training, run } of want('e2e') ? e2e : []) {
    const blocker = e2eBlocker ?? (fake ? null : cudaSupport.encoderCudaBlocker(training))
    const est = estimate()
    if (blocker) skip(`${name}: ${blocker}`)
    else if (est > parityLeft()) skip(`${name}: estimated ${est.toFixed(0)} s, ${Math.max(0, parityLeft()).toFixed(0)} s left`)
    else {
      const dir = mkdtempSync(join(tmpdir(), 'simcsepp-gpu-check-'))
      const s = performance.now()
      await check(name, async () => summarize(await run(e2eLib, dir, GPU)))
      if (!training) encodeSeconds = (performance.now() - s) / 1000
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Loss benchmark.

if (runBench && want('bench-losses')) {
  let bench, tables
  try {
    bench = await mod('bench/losses.js')
    tables = await mod('cli/tables.js') // lossBenchTable: the CLI owns presentation
  } catch (e) {
    report(false, `loading dist/bench/losses.js and dist/cli/tables.js: ${e.message}`)
    bench = undefined
  }
  if (bench) {
    const rows = []
    const devices = fake ? ['cpu'] : status.available ? ['cuda', 'cpu'] : ['cpu']
    const dim = shapes.lossDim
    // Rough seconds per case (warm-up + 3 runs of fused and unfused at ~0.5 s minimum each) for skipping.
    // A table row without measurements, saying why.
    const emptyRow = (device, n, note) => ({
      device,
      n,
      d: dim,
      fusedMs: null,
      unfusedMs: null,
      speedup: null,
      fusedWorkspaceBytes: null,
      unfusedWorkspaceBytes: null,
      note,
    })
    const estimate = (device, n) => (device === 'cuda' ? 3 + 4e-13 * n * n * dim * 12 : 3 + 2e-11 * n * n * dim * 8)
    for (const device of devices)
      for (const n of shapes.lossSizes) {
        if (device === 'cpu' && n > 4096) continue
        const est = estimate(device, n)
        if (est > left()) {
          skip(`bench ${device} N=${n} D=${dim}: estimated ${est.toFixed(0)} s, ${Math.max(0, left()).toFixed(0)} s left`)
          rows.push(emptyRow(device, n, 'skipped: time budget'))
          continue
        }
        try {
          rows.push(
            ...bench.benchLosses({
              sizes: [n],
              dim,
              devices: [device],
              secondsPerCase: shapes.lossSeconds,
              explicitSizes: true,
              log: (l) => log(`  bench ${l}`),
            }),
          )
        } catch (e) {
          report(false, `bench ${device} N=${n} D=${dim}: threw ${e.message.split('\n')[0]}`)
          rows.push(emptyRow(device, n, `error: ${e.message.split('\n')[0]}`))
        }
      }
    log(tables.lossBenchTable(rows))
    if (outDir) {
      const json = { benchmark: 'losses', date: new Date().toISOString(), node: process.version, cudaStatus: status, rows }
      writeFileSync(join(outDir, 'bench-losses.json'), JSON.stringify(json, null, 2) + '\n')
      log(`wrote ${join(outDir, 'bench-losses.json')}`)
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Attention paths: forward + backward of the benchmark's attention (B*3 = 192 sentences, T = 32, BERT-base
// heads NH = 12, HS = 64, dropout 0.1) with the fused kernels (SIMCSEPP_ATTENTION=fused,
// kernels/attention_small.cu) and the tiled SGEMMs (=tiled, kernels/attention.cu), both fp32, and at precision
// bf16 with the tensor-core kernels (mma, kernels/attention_mma.cu: what bf16 training runs); ms per pair and the
// ratios.
// Then at T = 128 (32 sentences x 3 views), the fused fp32 kernels against the tensor-core ones at bf16
// (kernels/attention_mma_long.cu: what bf16 training runs from 65 to 128 tokens).
// Then at T = 512 (16 sentences x 3 views), the tiled path as training runs it there: the forward keeping
// probs and the backward reading them, against neither keeping them and the backward forming them again
// (KEEP_PROBS_MAX_T in lib/model/activations.ts: what the memory it saves costs in time on a GPU).
// The ops only launch: a host read of a 1-float tensor after the repetitions waits for them.

if (runBench && !fake && status.available && want('bench-attention')) {
  if (left() < 30) skip(`bench attention: ${left().toFixed(0)} s left`)
  else
    try {
      const sync = Tensor.zeros([1], GPU)
      // Forward + backward pairs on one shape: run(keep) times it with probs kept (or not, null), in ms.
      const attentionPair = ([B, T, NH, HS, reps]) => {
        const H = NH * HS
        let s = 1
        const rand = () => Float32Array.from({ length: B * T * H }, () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5)
        const [q, k, v, dctx] = [rand(), rand(), rand(), rand()].map((a) => Tensor.from(a, [B, T, H], GPU))
        const [ctx, dq, dk, dv] = [0, 1, 2, 3].map(() => Tensor.zeros([B, T, H], GPU))
        const probs = Tensor.zeros([B, NH, T, T], GPU)
        const mask = Int32Array.from({ length: B * T }, (_, i) => (i % T < T - (Math.floor(i / T) % 9) ? 1 : 0))
        const site = { p: 0.1, seed: 5, offset: 0, keepRows: null }
        const pair = (kept, precision) => {
          ops.attentionForward(ctx, kept ? probs : null, q, k, v, mask, NH, site, false, null, precision)
          ops.attentionBackward(dq, dk, dv, dctx, q, k, v, kept ? probs : null, mask, NH, site, false, null, null, precision)
        }
        const run = (kept, precision = 'fp32') => {
          pair(kept, precision) // warm: the workspace and the device copies of mask and keepRows
          sync.toFloat32Array()
          const start = performance.now()
          for (let r = 0; r < reps; r++) pair(kept, precision)
          sync.toFloat32Array()
          return (performance.now() - start) / reps
        }
        return { shape: { B, T, NH, HS, reps }, run, dispose: () => [q, k, v, dctx, ctx, dq, dk, dv, probs].forEach((x) => x.dispose()) }
      }
      const before = process.env.SIMCSEPP_ATTENTION
      const short = attentionPair(shapes.attention)
      const ms = {}
      for (const path of ['tiled', 'fused', 'mma', 'tiled', 'fused', 'mma']) {
        process.env.SIMCSEPP_ATTENTION = path === 'mma' ? 'fused' : path
        ms[path] = short.run(true, path === 'mma' ? 'bf16' : 'fp32') // the second round (warm clocks) is the one kept
      }
      short.dispose()
      const { B, T, NH, HS, reps } = short.shape
      log(
        `bench attention B=${B} T=${T} NH=${NH} HS=${HS}, forward + backward: tiled ${ms.tiled.toFixed(3)} ms, ` +
          `fused ${ms.fused.toFixed(3)} ms, mma (bf16) ${ms.mma.toFixed(3)} ms; tiled / fused = ` +
          `${(ms.tiled / ms.fused).toFixed(2)}, fused / mma = ${(ms.fused / ms.mma).toFixed(2)}`,
      )
      const mid = attentionPair(shapes.attention128)
      const midMs = {}
      for (const path of ['fused', 'mma', 'fused', 'mma']) {
        process.env.SIMCSEPP_ATTENTION = 'fused'
        midMs[path] = mid.run(true, path === 'mma' ? 'bf16' : 'fp32')
      }
      mid.dispose()
      const M = mid.shape
      log(
        `bench attention B=${M.B} T=${M.T} NH=${M.NH} HS=${M.HS}, forward + backward: fused ${midMs.fused.toFixed(3)} ms, ` +
          `mma (bf16, 64 query rows at a time) ${midMs.mma.toFixed(3)} ms; fused / mma = ${(midMs.fused / midMs.mma).toFixed(2)}`,
      )
      process.env.SIMCSEPP_ATTENTION = 'tiled'
      const long = attentionPair(shapes.attentionLong)
      const longMs = {}
      for (const kept of [true, false, true, false]) longMs[kept ? 'kept' : 'formedAgain'] = long.run(kept)
      long.dispose()
      if (before === undefined) delete process.env.SIMCSEPP_ATTENTION
      else process.env.SIMCSEPP_ATTENTION = before
      const L = long.shape
      log(
        `bench attention B=${L.B} T=${L.T} NH=${L.NH} HS=${L.HS} (tiled), forward + backward: probs kept ` +
          `${longMs.kept.toFixed(3)} ms, formed again ${longMs.formedAgain.toFixed(3)} ms, ratio ${(longMs.formedAgain / longMs.kept).toFixed(2)}`,
      )
      if (outDir)
        writeFileSync(
          join(outDir, 'bench-attention.json'),
          JSON.stringify({ B, T, NH, HS, reps, ms, t128: { ...M, ms: midMs }, long: { ...L, ms: longMs } }, null, 2),
        )
    } catch (e) {
      report(false, `bench attention: threw ${e.message.split('\n')[0]}`)
    }
}

// ---------------------------------------------------------------------------------------------
// Training-step benchmark: one SimCSE++ step of BERT-base (random init) at B = 64 and 512, T = 32, on
// CUDA (dist/bench/step.js), and the same step in PyTorch (scripts/bench/torch_step.py, eager and
// torch.compile) when python3 can import torch and transformers; side by side, with the issue's targets.

if (runBench && !fake && ['bench-step', 'bench-variants', 'bench-torch', 'bench-profile'].some(want)) {
  const stepRows = []
  const torchRows = []
  const comparisons = [] // steps run with a non-default setting, for the ratios in the log
  const profiles = [] // bench step --profile rows: device time per op category
  let blocker
  try {
    blocker = status.available ? (await mod('model/cuda-support.js')).encoderCudaBlocker(true) : 'CUDA unavailable'
  } catch (e) {
    blocker = `dist/model/cuda-support.js: ${e.message.split('\n')[0]}`
  }
  if (!want('bench-step')) {
    // (--only)
  } else if (blocker) {
    skip(`bench step: ${blocker}`)
  } else if (left() < 60) {
    skip(`bench step: ${left().toFixed(0)} s left`)
  } else {
    try {
      const { benchStep } = await mod('bench/step.js')
      stepRows.push(
        ...(await benchStep({
          size: shapes.model,
          batchSizes: shapes.batches,
          seqLen: shapes.seqLen,
          devices: ['cuda'],
          steps: shapes.steps,
          log: (l) => log(`  step ${l}`),
        })),
      )
      // One step at batch size B with the environment variables of `env` set (restored after): a row to compare
      // with the default settings' of the same B.
      const stepWith = async (env, B) => {
        Object.assign(process.env, env)
        try {
          const [row] = await benchStep({
            size: shapes.model,
            batchSizes: [B],
            seqLen: shapes.seqLen,
            devices: ['cuda'],
            steps: shapes.steps,
            warmupSteps: shapes.variantWarmup,
            log: () => {},
          })
          return [row, stepRows.find((r) => r.batchSize === B)]
        } finally {
          for (const name of Object.keys(env)) delete process.env[name]
        }
      }
      // "<a> steps/s; <label>: <b> (<b/a>x)"
      const ratio = (a, label, b) =>
        `${a.stepsPerSec.toFixed(2)} steps/s; ${label}: ${b.stepsPerSec.toFixed(2)} (${(b.stepsPerSec / a.stepsPerSec).toFixed(2)}x)`
      // The same B = 64 step without CUDA graphs (the rows above replay the encoder passes as graphs from
      // the third step on): what the graphs save in launch and JavaScript overhead.
      if (want('bench-variants') && left() > 120) {
        const [eager, graphs] = await stepWith({ SIMCSEPP_CUDA_GRAPHS: '0' }, small)
        if (eager && graphs) log(`  step B=${small} without CUDA graphs: ${ratio(eager, 'with', graphs)}`)
      }
      // The B = 64 step with the products rounding both operands at every op (SIMCSEPP_BF16_WEIGHT_MIRROR=0,
      // SIMCSEPP_BF16_HANDOFF=0) against the defaults: weights from the bf16 mirror AdamW keeps
      // (kernels/bf16_mirror.cuh), inputs handed off by the LayerNorms and the GELU (kernels/bf16_handoff.cuh).
      if (want('bench-variants') && left() > 150) {
        const [perOp, fed] = await stepWith({ SIMCSEPP_BF16_WEIGHT_MIRROR: '0', SIMCSEPP_BF16_HANDOFF: '0' }, small)
        if (perOp) comparisons.push({ ...perOp, bf16Copies: 'per op' })
        if (perOp && fed) log(`  step B=${small} operands rounded per op: ${ratio(perOp, 'from the mirror and handoffs', fed)}`)
      }
      // The B = 512 step with the scalar LayerNorm kernels (SIMCSEPP_LAYERNORM_ROWS=scalar: one column per lane,
      // the row read once per pass) against the default rows in registers (kernels/layernorm.cu, *_vec).
      if (want('bench-variants') && left() > 150) {
        const [scalar, vec] = await stepWith({ SIMCSEPP_LAYERNORM_ROWS: 'scalar' }, big)
        if (scalar) comparisons.push({ ...scalar, layerNormRows: 'scalar' })
        if (scalar && vec) log(`  step B=${big} scalar LayerNorm rows: ${ratio(scalar, 'rows in registers', vec)}`)
      }
      // The B = 512 step with the LayerNorm backwards' two passes over all rows at once (SIMCSEPP_L2_SLABS=off) against
      // the default, a slab of rows that fits half the L2 at a time (kernels/l2_slab.cuh: the second pass reads L2).
      if (want('bench-variants') && left() > 150) {
        const [whole, slabs] = await stepWith({ SIMCSEPP_L2_SLABS: 'off' }, big)
        if (whole) comparisons.push({ ...whole, l2Slabs: 'off' })
        if (whole && slabs) log(`  step B=${big} LayerNorm backward over all rows at once: ${ratio(whole, 'in L2 slabs', slabs)}`)
      }
      // The B = 512 step with the fused losses' column tiles in one run per row tile (SIMCSEPP_LOSS_SPLITS=off: 8 blocks
      // at N = 512) against the default, runs over blocks merged in a fixed order (kernels/infonce.cu).
      if (want('bench-variants') && left() > 150) {
        const [oneRun, runs] = await stepWith({ SIMCSEPP_LOSS_SPLITS: 'off' }, big)
        if (oneRun) comparisons.push({ ...oneRun, lossSplits: 'off' })
        if (oneRun && runs) log(`  step B=${big} fused losses in one run per row tile: ${ratio(oneRun, 'in runs over blocks', runs)}`)
      }
      // The B = 512 step with the bias gradients summed by the linear layers' backward ops (SIMCSEPP_BIAS_SUMS=products:
      // passes over the gradients, written in fp32) against the default, the ops that make the gradients summing them.
      if (want('bench-variants') && left() > 150) {
        const [products, producers] = await stepWith({ SIMCSEPP_BIAS_SUMS: 'products' }, big)
        if (products) comparisons.push({ ...products, biasSums: 'products' })
        if (products && producers) log(`  step B=${big} bias sums in the products: ${ratio(products, 'in the producers', producers)}`)
      }
      // The B = 512 step with the MLP backward's first product written in fp32 (SIMCSEPP_BF16_OUTPUT=0) against the
      // default, cuBLASLt storing it in bf16 for the pass that rounds it anyway (the same bits).
      if (want('bench-variants') && left() > 150) {
        const [fp32Out, bf16Out] = await stepWith({ SIMCSEPP_BF16_OUTPUT: '0' }, big)
        if (fp32Out) comparisons.push({ ...fp32Out, bf16Output: 'off' })
        if (fp32Out && bf16Out) log(`  step B=${big} products written in fp32: ${ratio(fp32Out, 'stored in bf16', bf16Out)}`)
      }
      // The B = 512 step with the attention's q | k | v, ctx and ctx's gradient kept in fp32 (SIMCSEPP_ATTENTION_STORAGE=fp32)
      // against the default, kept in bf16 (the values the attention and the products round them to anyway).
      if (want('bench-variants') && left() > 150) {
        const [fp32Attn, bf16Attn] = await stepWith({ SIMCSEPP_ATTENTION_STORAGE: 'fp32' }, big)
        if (fp32Attn) comparisons.push({ ...fp32Attn, attentionStorage: 'fp32' })
        if (fp32Attn && bf16Attn) log(`  step B=${big} attention arrays in fp32: ${ratio(fp32Attn, 'in bf16', bf16Attn)}`)
      }
      // The B = 512 step keeping the attention probabilities (SIMCSEPP_ATTENTION_PROBS=keep) against the default at
      // T <= 32, the tensor-core backward forming them in its blocks (kernels/attention_mma.cu).
      if (want('bench-variants') && left() > 150) {
        const [kept, formed] = await stepWith({ SIMCSEPP_ATTENTION_PROBS: 'keep' }, big)
        if (kept) comparisons.push({ ...kept, attentionProbs: 'keep' })
        if (kept && formed) log(`  step B=${big} attention probabilities kept: ${ratio(kept, 'formed in the backward', formed)}`)
      }
      // The B = 512 step with the weight gradients' LayerNorm outputs recomputed and rounded in the backward
      // (SIMCSEPP_LAYERNORM_COPIES=recompute) against the default, bf16 copies kept by the residual LayerNorms.
      if (want('bench-variants') && left() > 150) {
        const [recomputed, keptCopies] = await stepWith({ SIMCSEPP_LAYERNORM_COPIES: 'recompute' }, big)
        if (recomputed) comparisons.push({ ...recomputed, layerNormCopies: 'recompute' })
        if (recomputed && keptCopies)
          log(`  step B=${big} LayerNorm outputs recomputed in the backward: ${ratio(recomputed, 'kept in bf16', keptCopies)}`)
      }
      // The B = 512 step with each sublayer's output y written in fp32 (SIMCSEPP_SUBLAYER_OUTPUT=fp32) against the
      // default, its product storing it in bf16 for the residual LayerNorm (as autocast's linear layers return it).
      if (want('bench-variants') && left() > 150) {
        const [fp32Y, bf16Y] = await stepWith({ SIMCSEPP_SUBLAYER_OUTPUT: 'fp32' }, big)
        if (fp32Y) comparisons.push({ ...fp32Y, sublayerOutput: 'fp32' })
        if (fp32Y && bf16Y) log(`  step B=${big} sublayer outputs in fp32: ${ratio(fp32Y, 'in bf16', bf16Y)}`)
      }
      // The B = 512 step with output.dense's weight gradient reading GELU(inter) recomputed and rounded in the GELU'
      // pass (SIMCSEPP_GELU_COPIES=recompute) against the default, the forward's bf16 GELU kept in each layer.
      if (want('bench-variants') && left() > 150) {
        const [recomputedGelu, keptGelu] = await stepWith({ SIMCSEPP_GELU_COPIES: 'recompute' }, big)
        if (recomputedGelu) comparisons.push({ ...recomputedGelu, geluCopies: 'recompute' })
        if (recomputedGelu && keptGelu)
          log(`  step B=${big} GELU outputs recomputed in the backward: ${ratio(recomputedGelu, 'kept in bf16', keptGelu)}`)
      }
      // The bf16 products on fp32 operands rounded inside the GEMM (SIMCSEPP_BF16_OPERANDS=fp32) against the
      // default bf16 copies (kernels/bf16_copy.cuh): whether the copies pay for their conversion passes.
      for (const B of want('bench-variants') && left() > 150 ? shapes.batches : []) {
        if (left() < 120) break
        const [fp32Operands, copies] = await stepWith({ SIMCSEPP_BF16_OPERANDS: 'fp32' }, B)
        if (fp32Operands) comparisons.push({ ...fp32Operands, bf16Operands: 'fp32' })
        if (fp32Operands && copies) log(`  step B=${B} bf16 products on fp32 operands: ${ratio(fp32Operands, 'on bf16 copies', copies)}`)
      }
      // Issue 12 on the GPU: 4,096 sentences in micro-batches of 1,536 rows (run whole, BERT-base's
      // activations at T = 32 would need ~250 GB), when the B = 512 step says it fits in the time left.
      const [huge, rowsPerPass] = shapes.huge
      const bigRow = stepRows.find((r) => r.batchSize === big && r.stepsPerSec > 0)
      const estimate = bigRow ? (3 * (huge / big) * 1.4) / bigRow.stepsPerSec + 30 : Infinity
      if (!want('bench-variants')) {
        // (--only)
      } else if (estimate < left() - 150)
        stepRows.push(
          ...(await benchStep({
            size: shapes.model,
            batchSizes: [huge],
            seqLen: shapes.seqLen,
            devices: ['cuda'],
            steps: 1,
            warmupSteps: shapes.variantWarmup,
            microBatch: rowsPerPass,
            log: (l) => log(`  step ${l}`),
          })),
        )
      else skip(`bench step B=${huge} in micro-batches: estimated ${estimate.toFixed(0)} s, ${left().toFixed(0)} s left`)
      const tables = await mod('cli/tables.js')
      log(tables.stepBenchTable(stepRows))
    } catch (e) {
      report(false, `bench step: threw ${e.message.split('\n')[0]}`)
    }
  }
  const hasTorch = want('bench-torch') && spawnSync(python, ['-c', 'import torch, transformers'], { stdio: 'ignore' }).status === 0
  if (!want('bench-torch')) {
    // (--only)
  } else if (!hasTorch) skip(`PyTorch baseline: ${python} cannot import torch and transformers`)
  else if (left() < 90) skip(`PyTorch baseline: ${left().toFixed(0)} s left`)
  else {
    // Our precision first (the targets compare with it), then the other: a timeout cuts the last rows.
    const ours = stepRows.find((r) => r.stepsPerSec > 0)?.precision ?? 'bf16'
    const precisions = [ours, ours === 'bf16' ? 'fp32' : 'bf16'].join(',')
    try {
      const r = spawnSync(
        python,
        [
          join(root, 'scripts', 'bench', 'torch_step.py'),
          ...['--batch-sizes', shapes.batches.join(','), '--seq-len', String(shapes.seqLen), '--steps', String(shapes.steps)],
          ...['--model', shapes.model, '--precisions', precisions, '--modes', torchModes],
          ...(status.emulated ? ['--device', 'cpu'] : []),
        ],
        // (an integer: spawnSync throws on a fractional timeout) 50 s more for the profile below
        { encoding: 'utf8', timeout: Math.round(Math.max(30, left() - 70) * 1000) },
      )
      for (const line of (r.stdout ?? '').split('\n')) {
        if (!line.trim()) continue
        try {
          torchRows.push(JSON.parse(line))
          log(`  torch ${line}`)
        } catch {
          log(`  torch (not JSON) ${line}`)
        }
      }
      if (r.status !== 0)
        log(`  torch_step.py exited ${r.status}${r.error ? ` (${r.error.message})` : ''}: ${(r.stderr ?? '').slice(-400)}`)
    } catch (e) {
      report(false, `PyTorch baseline: threw ${e.message.split('\n')[0]}`)
    }
  }
  // Where the device time of a step goes: CUDA events around every op of a step run without graphs
  // (bench step --profile), at B = 64 and 512, after the PyTorch baseline (which the targets need more).
  // Its own try: a failure here keeps the rows above.
  if (!want('bench-profile')) {
    // (--only)
  } else if (!blocker && left() > 60) {
    try {
      const { benchStep } = await mod('bench/step.js')
      const tables = await mod('cli/tables.js')
      const rows = await benchStep({
        size: shapes.model,
        batchSizes: shapes.batches,
        seqLen: shapes.seqLen,
        devices: ['cuda'],
        steps: 1,
        warmupSteps: shapes.variantWarmup,
        profileSteps: shapes.profileSteps,
        log: () => {},
      })
      profiles.push(...rows.filter((r) => r.profile))
      log(tables.profileTable(rows))
    } catch (e) {
      report(false, `bench step --profile: threw ${e.message.split('\n')[0]}`)
    }
  } else skip(`bench step --profile: ${blocker ?? `${left().toFixed(0)} s left`}`)
  // Ratios against PyTorch at the same batch size (our fp32 path against torch fp32 and bf16).
  for (const row of stepRows) {
    for (const tr of torchRows.filter((x) => x.batchSize === row.batchSize && x.stepsPerSec > 0)) {
      log(`  simcsepp/pytorch ${tr.mode} ${tr.precision} B=${row.batchSize}: ${(row.stepsPerSec / tr.stepsPerSec).toFixed(2)}x`)
    }
  }
  // The issue's targets, each met or not (speed is reported, never counted as a failed check).
  const targets = stepTargets(stepRows, torchRows)
  for (const x of targets)
    log(
      `  target ${x.name}: ${x.value === null ? `not measured (${x.why})` : `${x.value.toFixed(2)} against ${x.goal}: ${x.met ? 'met' : 'NOT met'}`}${dryRun ? ' (dry run: meaningless)' : ''}`,
    )
  if (outDir) {
    const json = {
      benchmark: 'step',
      date: new Date().toISOString(),
      cudaStatus: status,
      simcsepp: stepRows,
      comparisons,
      pytorch: torchRows,
      targets,
      ...(dryRun ? { dryRun: true } : {}),
    }
    writeFileSync(join(outDir, 'bench-step.json'), JSON.stringify(json, null, 2) + '\n')
    log(`wrote ${join(outDir, 'bench-step.json')}`)
  }
}

/**
 * The issue's speed targets from the step rows: at the small batch, steps/s at least 2x PyTorch eager and
 * 1.2x torch.compile (against PyTorch at our precision); at the large batch, model FLOP utilisation of at
 * least 40%. Each: { name, value (null: not measured, with why), goal, met }.
 */
function stepTargets(rows, torchRows) {
  const whole = (B) => rows.find((r) => r.batchSize === B && !r.microBatch && r.stepsPerSec > 0)
  const out = []
  const ours = whole(small)
  for (const [mode, goal] of [
    ['eager', 2],
    ['compile', 1.2],
  ]) {
    const name = `B=${small} steps/s over PyTorch ${mode}`
    const theirs =
      ours && torchRows.find((t) => t.batchSize === small && t.mode === mode && t.precision === ours.precision && t.stepsPerSec > 0)
    if (!ours) out.push({ name, value: null, why: `no simcsepp step at B=${small}`, goal })
    else if (!theirs) out.push({ name, value: null, why: `no PyTorch ${mode} ${ours.precision} step at B=${small}`, goal })
    else {
      const value = ours.stepsPerSec / theirs.stepsPerSec
      out.push({ name, value, goal, met: value >= goal })
    }
  }
  const large = whole(big)
  const name = `B=${big} model FLOP utilisation`
  if (!large) out.push({ name, value: null, why: `no simcsepp step at B=${big}`, goal: 0.4 })
  else if (large.mfu === null || large.mfu === undefined)
    out.push({ name, value: null, why: `no peak known for ${status.device ?? 'this device'}`, goal: 0.4 })
  else out.push({ name, value: large.mfu, goal: 0.4, met: large.mfu >= 0.4 })
  return out
}

// ---------------------------------------------------------------------------------------------
// Encoding benchmark: SentenceEncoder on CUDA (dist/bench/encode.js), what a Node tool that embeds on a GPU
// gets: BERT-base, length-sorted and input-order batches. Last: a short budget gives it up first.

if (runBench && !fake && want('bench-encode')) {
  const blocker = status.available ? null : 'CUDA unavailable'
  if (blocker) skip(`bench encode: ${blocker}`)
  else if (left() < 40) skip(`bench encode: ${left().toFixed(0)} s left`)
  else
    try {
      const { benchEncode } = await mod('bench/encode.js')
      const tables = await mod('cli/tables.js')
      const rows = await benchEncode({
        sizes: [shapes.model],
        sentences: shapes.encode[0],
        batchSize: shapes.encode[1],
        devices: ['cuda'],
        onnxruntime: false,
        repeatBelowSeconds: dryRun ? 0 : 1,
        log: (l) => log(`  encode ${l}`),
      })
      log(tables.encodeBenchTable(rows))
      if (outDir) {
        const json = { benchmark: 'encode', date: new Date().toISOString(), rows, ...(dryRun ? { dryRun: true } : {}) }
        writeFileSync(join(outDir, 'bench-encode.json'), JSON.stringify(json, null, 2) + '\n')
      }
    } catch (e) {
      report(false, `bench encode: threw ${e.message.split('\n')[0]}`)
    }
}

if (failures.length) {
  log('failures:')
  for (const f of failures) log(`  ${f}`)
}
log(`elapsed ${elapsed().toFixed(1)} s of ${budget} s; ${skipped} skipped`)
if (!status.available) log('CUDA unavailable: only the CPU benchmark ran (no CUDA checks).')
log(`${passed} passed, ${failed} failed`)
process.exit(failed > 0 ? 1 : 0)
