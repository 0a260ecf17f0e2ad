// `simcsepp bench step`: the FLOP count it divides by, and one real (tiny) measurement through the CLI.
// Speed itself is never asserted (shared, noisy machines): only that the rows are well formed.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { benchStep, peakTflops, stepFlops } from '../lib/bench/step.js'
import { cudaStatus } from '../lib/index.js'
import { productsLines } from '../lib/cli/tables.js'
import { namedConfig } from '../lib/model/config.js'
import { TrainingStep } from '../lib/train/step.js'

t.test('stepFlops counts 3 views x (forward + backward) of the dense products', async (t) => {
  const c = { ...namedConfig('base', 30522) }
  // base, B = 64, T = 32: 6144 tokens; per token 12 (4·768² + 2·768·3072 + 2·32·768) = 85,524,480;
  // heads 3·64·2·768² = 226,492,416; times 3 (fwd + bwd) times 2 (FLOPs per multiply-add).
  t.equal(stepFlops(c, 64, 32), 6 * (6144 * 85_524_480 + 226_492_416))
  t.equal(stepFlops(c, 64, 32, 2) < stepFlops(c, 64, 32), true, 'two views cost less than three')
  t.equal(peakTflops('NVIDIA H200 (sm_90)'), 67)
  t.equal(peakTflops('NVIDIA H200 (sm_90)', 'bf16'), 989)
  t.equal(peakTflops('simcsepp CUDA emulator (host CPU) (sm_90)'), null)
})

const cli = join(process.cwd(), 'dist', 'cli.js')
t.test(
  'bench step --json: one row per batch size, finite positive rates',
  { skip: existsSync(cli) ? false : 'dist/cli.js not built' },
  async (t) => {
    const r = spawnSync(
      process.execPath,
      [cli, 'bench', 'step', '--model', 'tiny', '--batch-sizes', '4,6', '--seq-len', '8', '--steps', '1', '--device', 'cpu', '--json'],
      { encoding: 'utf8' },
    )
    t.equal(r.status, 0, r.stderr)
    const out = JSON.parse(r.stdout) as {
      benchmark: string
      rows: {
        batchSize: number
        stepsPerSec: number
        sentencesPerSec: number
        tokensPerSec: number
        tflops: number
        mfu: null
        peakTensorBytes: number
      }[]
    }
    t.equal(out.benchmark, 'step')
    t.same(
      out.rows.map((x) => x.batchSize),
      [4, 6],
    )
    for (const row of out.rows) {
      t.ok(row.stepsPerSec > 0 && Number.isFinite(row.stepsPerSec), `steps/s ${row.stepsPerSec}`)
      t.ok(Math.abs(row.sentencesPerSec - row.batchSize * row.stepsPerSec) <= 1e-9 * row.sentencesPerSec, 'sent/s = B steps/s')
      t.ok(Math.abs(row.tokensPerSec - 8 * row.sentencesPerSec) <= 1e-9 * row.tokensPerSec, 'tokens/s = T sent/s')
      t.ok(row.tflops > 0 && row.peakTensorBytes > 0)
      t.equal(row.mfu, null, 'no MFU without a known peak')
    }
    const bad = spawnSync(process.execPath, [cli, 'bench', 'step', '--batch-sizes', '1'], { encoding: 'utf8' })
    t.equal(bad.status, 2)
    t.match(bad.stderr, /--batch-sizes must be integers of at least 2/)
  },
)

t.test('bench step --profile: every op category of a step, summing to the step; the addon restored', async (t) => {
  const { addon } = await import('../lib/native.js')
  const { OP_CATEGORIES } = await import('../lib/bench/op-profile.js')
  const before = addon.linearForward
  const rows = await benchStep({ size: 'tiny', batchSizes: [4], seqLen: 8, steps: 1, devices: ['cpu'], profileSteps: 2, log: () => {} })
  t.equal(addon.linearForward, before, "the op functions are the addon's again")
  const p = rows[0].profile!
  const layers = namedConfig('tiny', 100).numHiddenLayers
  const calls = Object.fromEntries(p.ops.map((o) => [o.category, o.calls]))
  t.equal(calls['QKV projection'], layers, 'one q/k/v product per layer')
  t.equal(calls['other projections'], 2 * layers + 2, "attention output and FFN down per layer, the MLP head, the metrics' Gram product")
  t.equal(calls['MLP up projection + GELU'], layers, 'FFN up with its GELU fused, per layer')
  t.equal(calls['MLP down projection + GELU (backward)'], layers, "FFN down's backward carried through the GELU, per layer")
  t.notOk('GELU' in calls || 'GELU (backward)' in calls, 'no GELU pass of its own')
  t.equal(calls.attention, layers)
  // Two fused sublayer outputs per layer, the embeddings' LayerNorm, and their dropout forward and backward
  // (one op both ways).
  t.equal(calls['LayerNorm, dropout, residual'], 2 * layers + 3)
  t.equal(
    calls['LayerNorm, dropout, residual (backward)'],
    2 * layers + 1,
    'the fused backward twice per layer (the products add the residual gradients), embeddings',
  )
  t.notOk(
    'LayerNorm outputs recomputed (backward)' in calls,
    "no pass recomputes h1 or a layer's input: the weight gradients read them recomputed (layerNormInput)",
  )
  t.equal(calls.AdamW, 2, 'the weight-decayed range and the rest')
  t.same(
    p.ops.map((o) => o.category),
    OP_CATEGORIES.filter((c) => p.ops.some((o) => o.category === c)),
    'in the table order',
  )
  const total = p.ops.reduce((s, o) => s + o.milliseconds, 0)
  t.ok(p.ops.every((o) => o.milliseconds >= 0))
  t.ok(Math.abs(total - p.stepMs) < 1e-6 * p.stepMs + 1e-9, `categories sum to the step: ${total} vs ${p.stepMs} ms`)
  const cpu = p.ops.reduce((s, o) => s + o.cpuMilliseconds, 0)
  t.ok(p.ops.every((o) => o.cpuMilliseconds >= 0))
  t.ok(p.stepCpuMs > 0, 'the step takes CPU time')
  t.ok(Math.abs(cpu - p.stepCpuMs) < 1e-6 * p.stepCpuMs + 1e-9, `CPU times sum to the step's: ${cpu} vs ${p.stepCpuMs} ms`)
})

t.test("bench step --products: the step's matrix products timed alone, their share of the step", async (t) => {
  const rows = await benchStep({ size: 'tiny', batchSizes: [4], seqLen: 8, steps: 1, devices: ['cpu'], products: true, log: () => {} })
  const p = rows[0].products!
  t.ok(p.seconds > 0 && Number.isFinite(p.seconds), `products ${p.seconds} s per step`)
  t.ok(Math.abs(p.share - p.seconds * rows[0].stepsPerSec) <= 1e-9 * p.share, 'share = products / step')
  t.match(productsLines(rows), /^tiny cpu fp32 B=4 T=8: products \d\.\d{3} s of the \d+\.\d{3} s step \(\d+\.\d%\) at bench gemm's rates$/)
  const micro = await benchStep({
    size: 'tiny',
    batchSizes: [4],
    seqLen: 8,
    steps: 1,
    devices: ['cpu'],
    products: true,
    microBatch: 4,
    log: () => {},
  })
  t.equal(micro[0].products, undefined, 'not with micro-batches (other shapes)')
  t.match(productsLines(micro), /not timed/)
})

t.test('bench step warmupSteps: the untimed steps before the timed ones (default 2), checked', async (t) => {
  // Counts the steps launched (on the CPU one per step: nothing is launched ahead).
  let launches = 0
  const launch = TrainingStep.prototype.launch
  TrainingStep.prototype.launch = function (...args: Parameters<typeof launch>) {
    launches++
    return launch.apply(this, args)
  }
  try {
    const run = async (warmupSteps?: number) => {
      launches = 0
      const rows = await benchStep({ size: 'tiny', batchSizes: [2], seqLen: 4, steps: 1, warmupSteps, devices: ['cpu'], log: () => {} })
      t.ok(rows[0].stepsPerSec > 0, `warmupSteps ${warmupSteps}: timed (${rows[0].note ?? 'no note'})`)
      return launches
    }
    t.equal(await run(), 3, 'default: 2 warm-up steps and the timed one')
    t.equal(await run(0), 1, 'warmupSteps 0: the timed step only')
    await t.rejects(run(-1), /benchStep: warmupSteps must be an integer >= 0, got -1/)
    await t.rejects(run(1.5), /warmupSteps must be an integer >= 0, got 1\.5/)
  } finally {
    TrainingStep.prototype.launch = launch
  }
})

const cuda = cudaStatus()
t.test(
  'benchStep on CUDA: bf16 by default, a well-formed row',
  { skip: cuda.available ? false : `CUDA unavailable: ${cuda.reason}` },
  async (t) => {
    const rows = await benchStep({ size: 'tiny', batchSizes: [2], seqLen: 4, steps: 1, devices: ['cuda'], log: () => {} })
    t.equal(rows.length, 1)
    t.equal(rows[0].note, undefined, rows[0].note ?? 'no note: the step ran')
    t.equal(rows[0].precision, 'bf16', "'auto' is bf16 on CUDA")
    t.ok(rows[0].stepsPerSec > 0 && rows[0].peakTensorBytes > 0)
  },
)

t.test(
  'bench step --profile on CUDA: device time per op category from events, the ops called one by one',
  { skip: cuda.available ? false : `CUDA unavailable: ${cuda.reason}` },
  async (t) => {
    const { addon } = await import('../lib/native.js')
    const rows = await benchStep({ size: 'tiny', batchSizes: [2], seqLen: 4, steps: 1, devices: ['cuda'], profileSteps: 2, log: () => {} })
    const p = rows[0].profile!
    const layers = namedConfig('tiny', 100).numHiddenLayers
    const calls = Object.fromEntries(p.ops.map((o) => [o.category, o.calls]))
    t.equal(calls['QKV projection'], layers, 'the profiled steps run without graphs: each op is seen')
    t.equal(calls['MLP down projection + GELU (backward)'], layers)
    t.equal(calls['grad norm, clipping'], 1, 'the clipping is an op of its own')
    t.ok(p.stepGpuMs! > 0, `device time per step: ${p.stepGpuMs} ms`)
    t.ok(
      p.ops.every((o) => o.gpuMilliseconds !== undefined && o.gpuMilliseconds >= 0),
      'every category has a device time',
    )
    const gpu = p.ops.reduce((s, o) => s + o.gpuMilliseconds!, 0)
    t.ok(Math.abs(gpu - p.stepGpuMs!) < 1e-6 * p.stepGpuMs! + 1e-9, `device times sum to the span: ${gpu} vs ${p.stepGpuMs} ms`)
    t.ok(p.ops.find((o) => o.category === 'QKV projection')!.gpuMilliseconds! > 0, 'a product takes device time')
    t.throws(() => addon.cudaTimerElapsed(0, 1e6), { name: 'RangeError', message: /^b: marker 1000000 was not recorded/ })
    t.throws(() => addon.cudaTimerElapsed(-1, 0), /Expected a to be/)
  },
)

t.test(
  'bench batch --json --plot: whole and micro-batched rows per batch size, an SVG plot',
  { skip: existsSync(cli) ? false : 'dist/cli.js not built' },
  async (t) => {
    const { mkdtempSync, readFileSync, rmSync } = await import('node:fs')
    const { tmpdir } = await import('node:os')
    const dir = mkdtempSync(join(tmpdir(), 'simcsepp-bench-batch-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const plot = join(dir, 'memory.svg')
    const r = spawnSync(
      process.execPath,
      [cli, 'bench', 'batch', '--batch-sizes', '4,8', '--micro-batch', '6', '--seq-len', '6', '--json', '--plot', plot],
      { encoding: 'utf8' },
    )
    t.equal(r.status, 0, r.stderr)
    const out = JSON.parse(r.stdout) as { rows: { batchSize: number; microBatch: number; activationBytes: number; peakRssBytes: number }[] }
    t.same(
      out.rows.map((x) => [x.batchSize, x.microBatch]),
      [
        [4, 0],
        [4, 6],
        [8, 0],
        [8, 6],
      ],
    )
    t.ok(out.rows.every((x) => x.peakRssBytes > 0 && x.activationBytes > 0))
    const big = out.rows.filter((x) => x.batchSize === 8)
    t.ok(big[1].activationBytes < big[0].activationBytes, 'micro-batches hold fewer activations')
    t.match(readFileSync(plot, 'utf8'), /^<svg[^>]*>[\s\S]*micro-batches of 6 rows[\s\S]*<\/svg>\n$/)
  },
)
