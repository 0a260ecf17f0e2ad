// The step-time estimate from the emulator's byte counts (lib/bench/traffic-model.ts): each kernel's bytes and each
// product's flops fitted as a + b B through two batch sizes and extrapolated, then timed by bandwidth and rate.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { KernelShare } from '../lib/bench/op-profile.js'
import { trafficModel, type TrafficRun } from '../lib/bench/traffic-model.js'

// At batch size b: an attention kernel moving 1 + 2b MB (1 + b read, b written) in 2 launches; a product of
// 1e12 b flops (its label's shape changes with b) moving 0.1 MB; a kernel whose bytes shrink with b (noise).
function run(b: number): TrafficRun {
  const k = (category: string, kernel: string, extra: Partial<KernelShare>): KernelShare => ({
    category,
    kernel,
    launches: 1,
    gpuMilliseconds: 1,
    tflops: null,
    readMegabytes: 0,
    writtenMegabytes: 0,
    ...extra,
  })
  return {
    batchSize: b,
    flopsPerStep: 1e12 * b,
    kernels: [
      k('attention', 'softmax', { launches: 2, readMegabytes: 1 + b, writtenMegabytes: b }),
      k('QKV projection', `cuBLASLt bf16 operands, ${96 * b} x 2304 x 768: C = A B^T`, { tflops: 1000 * b, readMegabytes: 0.1 }),
      k('attention', 'shrinking', { readMegabytes: 4 / b }),
    ],
  }
}
const options = { batchSize: 512, bandwidthGBs: 1000, productTflops: 1000, peakTflops: 2000, launchMicroseconds: 1 }

t.test('trafficModel: bytes and flops extrapolated linearly, timed by bandwidth and rate, per category', async (t) => {
  const m = trafficModel([run(2), run(4)], options)
  t.equal(m.batchSize, 512)
  const byName = Object.fromEntries(m.categories.map((c) => [c.category, c]))
  // attention: 1 + 2 * 512 = 1025 MB at 1000 GB/s = 1.025 ms, + 2 launches of 1 us; the shrinking kernel clamps at 0
  // bytes and keeps its launch.
  t.equal(byName.attention.launches, 3)
  t.ok(Math.abs(byName.attention.gigabytes - 1.025) < 1e-12, `${byName.attention.gigabytes} GB`)
  t.ok(Math.abs(byName.attention.milliseconds - (1.025 + 0.003)) < 1e-9, `${byName.attention.milliseconds} ms`)
  // The product: 512 TFLOP at 1000 TFLOP/s (longer than its 0.1 MB), one launch; both shapes grouped as one.
  const qkv = byName['QKV projection']
  t.ok(Math.abs(qkv.productTflop - 512) < 1e-6, `${qkv.productTflop} TFLOP`)
  t.ok(Math.abs(qkv.milliseconds - (512 + 0.001)) < 1e-6, `${qkv.milliseconds} ms`)
  t.ok(Math.abs(m.milliseconds - (512.001 + 1.028)) < 1e-6)
  // MFU: 512 TFLOP of model flops in 513.029 ms, over a 2000 TFLOP/s peak.
  t.ok(Math.abs(m.mfu - 512 / 0.513029 / 2000) < 1e-9, `${m.mfu}`)
  t.same(trafficModel([run(4), run(2)], options).milliseconds.toFixed(9), m.milliseconds.toFixed(9), 'either order')
  // Per kernel, most bytes first: the product's label without its shape; the shrinking kernel at 0 bytes, 1 launch.
  t.same(
    m.kernels.map((k) => [k.category, k.kernel, k.launches, k.gigabytes.toFixed(6)]),
    [
      ['attention', 'softmax', 2, '1.025000'],
      ['QKV projection', 'cuBLASLt bf16 operands, M x N x K: C = A B^T', 1, '0.000100'],
      ['attention', 'shrinking', 1, '0.000000'],
    ],
  )
  t.ok(Math.abs(m.kernels[1].milliseconds - 512.001) < 1e-6, 'a product kernel timed by its flops')
})

t.test('trafficModel: refuses what it cannot fit', async (t) => {
  t.throws(() => trafficModel([run(2)], options), /two profiled runs at different batch sizes/)
  t.throws(() => trafficModel([run(2), run(2)], options), /two profiled runs at different batch sizes/)
  const gpu = run(4)
  gpu.kernels = gpu.kernels.map(({ readMegabytes: _r, writtenMegabytes: _w, ...k }) => k)
  t.throws(() => trafficModel([run(2), gpu], options), /the run at B = 4 has no byte counts/)
})

t.test('scripts/traffic-model.mjs: reads bench step JSON runs, prints the estimate', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'simcsepp-traffic-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const rows = [2, 4].map((b) => ({
    model: 'base',
    seqLen: 32,
    batchSize: b,
    flopsPerStep: 1e12 * b,
    profile: { kernels: run(b).kernels },
  }))
  writeFileSync(join(dir, 'runs.json'), JSON.stringify({ rows }))
  const script = join(import.meta.dirname, '..', 'scripts', 'traffic-model.mjs')
  const flags = ['--bandwidth', '1000', '--gemm-tflops', '1000', '--peak', '2000', '--launch-us', '1']
  const r = spawnSync(process.execPath, [script, join(dir, 'runs.json'), ...flags], { encoding: 'utf8' })
  t.equal(r.status, 0, r.stderr)
  t.match(r.stdout, /B = 512: 513\.0 ms of device time a step, 1\.0 GB moved, 49\.9% MFU/)
  t.match(r.stdout, /attention +3 +1\.02 +1\.03 +0\.2%/)
  const j = spawnSync(process.execPath, [script, join(dir, 'runs.json'), ...flags, '--json'], { encoding: 'utf8' })
  t.ok(Math.abs(JSON.parse(j.stdout).milliseconds - 513.029) < 1e-6)
  const bad = spawnSync(process.execPath, [script, join(dir, 'runs.json'), '--bandwidth', '0'], { encoding: 'utf8' })
  t.equal(bad.status, 2)
  t.match(bad.stderr, /--bandwidth must be a positive number, got 0/)
  // The kernels by bytes (--top), and against runs before a change (--before): the kernels it moved.
  t.match(r.stdout, /The 3 kernels moving the most bytes[^\n]*\n[^\n]*\n[^\n]*\nattention: softmax +2 +1\.02 +1\.03\n/)
  const halved = rows.map((row) => ({
    ...row,
    profile: { kernels: row.profile.kernels.map((k) => (k.kernel === 'softmax' ? { ...k, writtenMegabytes: 0 } : k)) },
  }))
  writeFileSync(join(dir, 'before.json'), JSON.stringify({ rows: halved }))
  const cmp = spawnSync(process.execPath, [script, join(dir, 'runs.json'), ...flags, '--top', '1', '--before', join(dir, 'before.json')], {
    encoding: 'utf8',
  })
  t.equal(cmp.status, 0, cmp.stderr)
  t.match(cmp.stdout, /The 1 kernels moving the most bytes/)
  t.match(cmp.stdout, /Before \(--before\): B = 512: 512\.5 ms of device time a step, 0\.5 GB moved/)
  t.match(cmp.stdout, /\nattention: softmax +0\.51 +1\.02 +0\.52 +1\.03\n/, 'the softmax moved: 0.513 -> 1.025 GB')
  t.notMatch(cmp.stdout, /QKV projection: cuBLASLt/, 'the product did not')
  const topBad = spawnSync(process.execPath, [script, join(dir, 'runs.json'), '--top', '-1'], { encoding: 'utf8' })
  t.equal(topBad.status, 2)
  t.match(topBad.stderr, /--top must be a whole number, got -1/)
  writeFileSync(join(dir, 'one.json'), JSON.stringify({ rows: rows.slice(0, 1) }))
  const one = spawnSync(process.execPath, [script, join(dir, 'one.json')], { encoding: 'utf8' })
  t.equal(one.status, 1)
  t.match(one.stderr, /needs two profiled runs/)
})
