#!/usr/bin/env node
// The device time of a CUDA training step at B = 512 estimated from the bytes the emulator counts
// (lib/bench/traffic-model.ts says how, and what it is not): no GPU needed, so a change to the kernels can be
// weighed between GPU sessions. Runs `bench step --profile --device cuda --json` on the emulated addon
// (build-emulate/, with the stand-in cuBLASLt) at two small batch sizes, or reads such runs from JSON files.
// Usage: node scripts/traffic-model.mjs [RUNS.json ...] [--model base] [--seq-len 32] [--batch-sizes 2,4]
//          [--batch 512] [--bandwidth 4000] [--gemm-tflops 600] [--peak 989] [--launch-us 1.5] [--top 8]
//          [--before OLD.json,OLD.json] [--json]
// Prints the estimate, its op categories, the --top kernels by bytes and, with --before (runs of the kernels before a
// change), that estimate and each kernel whose bytes or time the change moved.
// Defaults: an H200 (4.8 TB/s, of which 4,000 GB/s taken as reachable; cuBLASLt's 580-680 TFLOP/s on these
// shapes, measured 2026-12-04; 989 TFLOP/s dense bf16 peak). BERT-base, 12 layers, at B = 2 and 4: about half
// an hour on one core (the emulator runs every thread of every kernel, with each access counted).
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { trafficModel } from '../dist/bench/traffic-model.js'
import { formatTable } from '../dist/cli/tables.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const args = process.argv.slice(2)
const files = []
const opt = {
  model: 'base',
  'seq-len': '32',
  'batch-sizes': '2,4',
  batch: '512',
  bandwidth: '4000',
  'gemm-tflops': '600',
  peak: '989',
  'launch-us': '1.5',
  top: '8',
  before: '',
}
let json = false
for (let i = 0; i < args.length; i++) {
  const a = args[i]
  if (a === '--json') json = true
  else if (a.startsWith('--') && a.slice(2) in opt && i + 1 < args.length) opt[a.slice(2)] = args[++i]
  else if (!a.startsWith('--')) files.push(a)
  else {
    console.error(`traffic-model: unknown option ${a} (see the usage at the top of scripts/traffic-model.mjs)`)
    process.exit(2)
  }
}
const number = (name) => {
  const v = Number(opt[name])
  if (!(v > 0)) {
    console.error(`traffic-model: --${name} must be a positive number, got ${opt[name]}`)
    process.exit(2)
  }
  return v
}

let rows = []
if (files.length) {
  for (const f of files) rows.push(...JSON.parse(readFileSync(f, 'utf8')).rows)
} else {
  const addon = join(root, 'build-emulate', 'Release', 'simcsepp.node')
  const cublas = join(root, 'build-emulate', 'Release', 'libcublasLt-emulated.so')
  const run = spawnSync(
    process.execPath,
    [
      join(root, 'dist', 'cli.js'),
      'bench',
      'step',
      '--model',
      opt.model,
      '--batch-sizes',
      opt['batch-sizes'],
      '--seq-len',
      opt['seq-len'],
      '--steps',
      '1',
      '--device',
      'cuda',
      '--profile',
      '--json',
    ],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      maxBuffer: 1 << 28,
      // Without graphs: the stand-in cuBLASLt computes when called, so a captured step's products would run on the
      // emulated tensor-core kernels, many times slower.
      env: { ...process.env, SIMCSEPP_ADDON: addon, SIMCSEPP_CUBLASLT: cublas, SIMCSEPP_EXPECT_EMULATED: '1', SIMCSEPP_CUDA_GRAPHS: '0' },
    },
  )
  if (run.status !== 0) {
    console.error(`traffic-model: bench step failed (exit ${run.status}); build the emulated addon first (npm run test:emulated)`)
    process.exit(1)
  }
  rows = JSON.parse(run.stdout).rows
}
const profiled = (list) =>
  list
    .filter((r) => r.profile?.kernels?.length)
    .map((r) => ({ batchSize: r.batchSize, flopsPerStep: r.flopsPerStep, kernels: r.profile.kernels, label: `${r.model} T=${r.seqLen}` }))
const runs = profiled(rows)
const options = {
  batchSize: number('batch'),
  bandwidthGBs: number('bandwidth'),
  productTflops: number('gemm-tflops'),
  peakTflops: number('peak'),
  launchMicroseconds: Number(opt['launch-us']) >= 0 ? Number(opt['launch-us']) : number('launch-us'),
}
const top = Number(opt.top)
if (!Number.isInteger(top) || top < 0) {
  console.error(`traffic-model: --top must be a whole number, got ${opt.top}`)
  process.exit(2)
}
// The estimate from `list`'s runs; `what` names them in an error.
const estimate = (list, what) => {
  try {
    return trafficModel(list, options)
  } catch (e) {
    console.error(`traffic-model: ${what}${e.message}`)
    process.exit(1)
  }
}
const model = estimate(runs, '')
const before = opt.before
  ? estimate(profiled(opt.before.split(',').flatMap((f) => JSON.parse(readFileSync(f, 'utf8')).rows)), '--before: ')
  : null
const headline = (m) =>
  `B = ${m.batchSize}: ${m.milliseconds.toFixed(1)} ms of device time a step, ${m.gigabytes.toFixed(1)} GB moved, ` +
  `${(100 * m.mfu).toFixed(1)}% MFU`
// [now, before] for each kernel whose estimated bytes or time differ by more than 5 MB or 1 us a step.
const changes = (was, now) => {
  const key = (k) => `${k.category}\u0000${k.kernel}`
  const zero = { launches: 0, gigabytes: 0, milliseconds: 0 }
  const old = new Map(was.kernels.map((k) => [key(k), k]))
  const pairs = now.kernels.map((k) => [k, old.get(key(k)) ?? zero])
  const seen = new Set(now.kernels.map(key))
  for (const k of was.kernels) if (!seen.has(key(k))) pairs.push([{ ...k, ...zero }, k])
  return pairs.filter(([n, o]) => Math.abs(n.gigabytes - o.gigabytes) > 0.005 || Math.abs(n.milliseconds - o.milliseconds) > 0.001)
}
if (json) {
  const compared = before ? { before: { ...before, changed: changes(before, model).map(([n]) => n.kernel) } } : {}
  console.log(JSON.stringify({ options: opt, runs: runs.map((r) => r.batchSize), ...model, ...compared }, null, 2))
} else {
  console.log(
    `${runs[0].label}, estimated from the emulator's bytes at B = ${runs.map((r) => r.batchSize).join(' and ')}: ` +
      `${headline(model)} (${opt.bandwidth} GB/s, products at ${opt['gemm-tflops']} TFLOP/s, ` +
      `${opt['launch-us']} us a launch, peak ${opt.peak} TFLOP/s)`,
  )
  console.log(
    formatTable(
      ['op category', 'launches', 'GB/step', 'product TFLOP', 'est. ms/step', 'share'],
      model.categories.map((c) => [
        c.category,
        c.launches.toFixed(0),
        c.gigabytes.toFixed(2),
        c.productTflop ? c.productTflop.toFixed(2) : '',
        c.milliseconds.toFixed(2),
        `${((100 * c.milliseconds) / model.milliseconds).toFixed(1)}%`,
      ]),
    ),
  )
  if (top > 0) {
    console.log(`\nThe ${Math.min(top, model.kernels.length)} kernels moving the most bytes (products: their shape as M x N x K):`)
    const rows = model.kernels.slice(0, top)
    console.log(
      formatTable(
        ['kernel', 'launches', 'GB/step', 'est. ms/step'],
        rows.map((k) => [`${k.category}: ${k.kernel}`, k.launches.toFixed(0), k.gigabytes.toFixed(2), k.milliseconds.toFixed(2)]),
      ),
    )
  }
  if (before) {
    console.log(`\nBefore (--before): ${headline(before)}; the kernels the change moved:`)
    const moved = changes(before, model).map(([n, o]) => [
      `${n.category}: ${n.kernel}`,
      o.gigabytes.toFixed(2),
      n.gigabytes.toFixed(2),
      o.milliseconds.toFixed(2),
      n.milliseconds.toFixed(2),
    ])
    console.log(formatTable(['kernel', 'GB/step before', 'after', 'est. ms before', 'after'], moved))
  }
}
