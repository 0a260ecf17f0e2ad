// `simcsepp bench step`: the FLOP count it divides by, and one real (tiny) measurement through the CLI.
// Speed itself is never asserted (shared, noisy machines): only that the rows are well formed.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { benchStep, peakTflops, stepFlops } from '../lib/bench/step.js'
import { isStepModel, stepBenchModel } from '../lib/bench/step-model.js'
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

t.test('kernelShares: launches charged to the op whose markers enclose them, per step, by label', async (t) => {
  const { kernelShares } = await import('../lib/bench/op-profile.js')
  const { kernelTable } = await import('../lib/cli/tables.js')
  // Markers 0 (span), 1-2 QKV, 3-4 attention, 5-6 QKV again, 7 (span): mark = markers recorded before the launch.
  const ops = [
    { category: 'QKV projection', before: 1, after: 2 },
    { category: 'attention', before: 3, after: 4 },
    { category: 'QKV projection', before: 5, after: 6 },
  ]
  const k = (name: string, ms: number, mark: number, flops = 0) => ({ name, ms, mark, flops })
  const launches = [
    k('fill (cudaMemsetAsync)', 0.5, 1), // before the first op: the framework's
    k('gemm', 2, 2, 4e9),
    k('convert', 1, 2),
    k('softmax', 3, 4),
    k('fill (cudaMemsetAsync)', 0.25, 5), // between ops
    k('gemm', 4, 6, 4e9),
  ]
  const rows = kernelShares(ops, launches, 2)
  t.same(
    rows.map((r) => [r.category, r.kernel, r.launches, r.gpuMilliseconds, r.tflops]),
    [
      ['QKV projection', 'gemm', 1, 3, 8e9 / 6 / 1e9],
      ['QKV projection', 'convert', 0.5, 0.5, null],
      ['attention', 'softmax', 0.5, 1.5, null],
      ['framework (tokenising, JS, copies)', 'fill (cudaMemsetAsync)', 1, 0.375, null],
    ],
  )
  // Rows under 0.05% of the step are summed per category.
  const table = kernelTable([...rows, { category: 'attention', kernel: 'tiny', launches: 3, gpuMilliseconds: 0.001, tflops: null }], 10)
  t.match(table, /QKV projection +gemm +1 +3\.000 +30\.0% +1\.3/)
  t.match(table, /attention +\(1 more, each < 0\.05%\) +3 +0\.001 +0\.0%/)
  t.notMatch(table, /tiny/)
  t.notMatch(table, /MB read/, 'no byte columns where the device counted none')
  // The emulator's bytes: summed per label, per step, in megabytes (1e6).
  const counted = launches.map((l, i) => ({ ...l, readBytes: 1e6 * (i + 1), writtenBytes: 5e5 }))
  const withBytes = kernelShares(ops, counted, 2)
  t.same(
    withBytes.map((r) => [r.kernel, r.readMegabytes, r.writtenMegabytes]),
    [
      ['gemm', 4, 0.5],
      ['convert', 1.5, 0.25],
      ['softmax', 2, 0.25],
      ['fill (cudaMemsetAsync)', 3, 0.5],
    ],
  )
  const tiny = {
    category: 'attention',
    kernel: 'tiny',
    launches: 3,
    gpuMilliseconds: 0.001,
    tflops: null,
    readMegabytes: 0.5,
    writtenMegabytes: 0.25,
  }
  const byteTable = kernelTable([...withBytes, tiny], 10)
  t.match(byteTable, /TFLOP\/s +MB read\/step +MB written\/step/)
  t.match(byteTable, /QKV projection +gemm +1 +3\.000 +30\.0% +1\.3 +4\.00 +0\.50/)
  t.match(byteTable, /attention +\(1 more, each < 0\.05%\) +3 +0\.001 +0\.0% +0\.50 +0\.25/)
})

const cuda = cudaStatus()
t.test('cudaKernelProfileStart needs CUDA; Stop without a profile open returns no launches', async (t) => {
  const { addon } = await import('../lib/native.js')
  t.same(addon.cudaKernelProfileStop(), [])
  if (cuda.available) {
    addon.cudaKernelProfileStart()
    t.same(addon.cudaKernelProfileStop(), [], 'nothing launched')
  } else t.throws(() => addon.cudaKernelProfileStart(), /CUDA/, `refused: ${cuda.reason}`) // not compiled, or no driver or GPU
})

t.test(
  'cudaKernelProfile on CUDA: each launch in order with its label, device time and the markers before it',
  { skip: cuda.available ? false : `CUDA unavailable: ${cuda.reason}` },
  async (t) => {
    const { addon } = await import('../lib/native.js')
    const { Tensor } = await import('../lib/tensor.js')
    const ops = await import('../lib/ops.js')
    const x = Tensor.from(new Float32Array(4096).fill(0.5), [64, 64], 'cuda')
    const y = Tensor.from(new Float32Array(4096), [64, 64], 'cuda')
    addon.cudaTimerReset()
    addon.cudaKernelProfileStart()
    ops.geluForward(y, x)
    addon.cudaTimerMark()
    addon.cudaTimerMark()
    ops.geluForward(y, x)
    ops.linearForward(y, x, x, null) // y = x x^T
    const launches = addon.cudaKernelProfileStop()
    t.same(addon.cudaKernelProfileStop(), [], 'closed')
    ops.geluForward(y, x)
    t.same(addon.cudaKernelProfileStop(), [], 'nothing recorded once closed')
    t.same(
      launches.slice(0, 2).map((l) => [l.name, l.mark, l.flops]),
      [
        ['gelu_forward', 0, 0],
        ['gelu_forward', 2, 0],
      ],
    )
    const product = launches.slice(2)
    t.ok(product.length >= 1 && product.every((l) => l.mark === 2), 'the product, after both markers')
    const total = product.reduce((s, l) => s + l.flops, 0)
    t.equal(total, 2 * 64 * 64 * 64, "the product's 2 M N K, on one of its launches (cuBLASLt's or the tile kernel's)")
    const name = product.find((l) => l.flops > 0)!.name
    if (name.startsWith('cuBLASLt')) t.equal(name, 'cuBLASLt fp32, 64 x 64 x 64: C = A B^T')
    t.ok(launches.every((l) => Number.isFinite(l.ms) && l.ms >= 0))
    if (cuda.emulated) {
      // The emulator counts each launch's distinct 32-byte sectors: GELU reads x's 16 KB and writes y's.
      t.same([launches[0].readBytes, launches[0].writtenBytes], [16384, 16384], "gelu's device-memory bytes")
      const sum = (key: 'readBytes' | 'writtenBytes') => product.reduce((s, l) => s + l[key]!, 0)
      // x is both operands: a kernel reads it once; the stand-in cuBLASLt's product counts each operand.
      t.same([sum('readBytes'), sum('writtenBytes')], [name.startsWith('cuBLASLt') ? 32768 : 16384, 16384], name)
    } else
      t.ok(
        launches.every((l) => l.readBytes === undefined && l.writtenBytes === undefined),
        'a GPU counts no bytes',
      )
    x.dispose()
    y.dispose()
  },
)
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
    // The kernel profile: each category's launches, inside its ops' device time.
    const kernels = p.kernels!
    for (const o of p.ops) {
      const inside = kernels.filter((k) => k.category === o.category).reduce((s, k) => s + k.gpuMilliseconds, 0)
      t.ok(inside <= o.gpuMilliseconds! * (1 + 1e-6) + 1e-6, `${o.category}: launches ${inside} ms within ${o.gpuMilliseconds} ms`)
      if (o.calls > 0 && !o.category.startsWith('framework'))
        t.ok(
          kernels.some((k) => k.category === o.category),
          `${o.category}: launches seen`,
        )
    }
    const qkv = kernels.filter((k) => k.category === 'QKV projection' && k.tflops !== null)
    t.ok(qkv.length > 0 && qkv.every((k) => k.tflops! > 0), 'the q/k/v product has its rate')
    t.equal(
      qkv.reduce((s, k) => s + k.launches, 0),
      layers,
      "the q/k/v product: one launch a layer (a product's flops are on one launch)",
    )
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

t.test('bench step --model DIR: the architecture of a model folder, random-initialised', async (t) => {
  const [{ microModel }, { BertModel }, { buildVocab, writeVocab }, { readHfConfig }] = await Promise.all([
    import('./helpers/encoder-e2e.mjs'),
    import('../lib/model/bert.js'),
    import('../lib/train/vocab.js'),
    import('../lib/model/config.js'),
  ])
  const dir = mkdtempSync(join(tmpdir(), 'simcsepp-bench-step-model-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const lib = { BertModel, namedConfig, buildVocab, writeVocab } as Parameters<typeof microModel>[0]
  // ModernBERT's MLP takes 2I columns in (GeGLU): 4H² + 3HI + 2TH multiply-adds a token and layer.
  const modern = { ...namedConfig('tiny', 100), modelType: 'modernbert' as const }
  const H = modern.hiddenSize,
    I = modern.intermediateSize
  const perToken = modern.numHiddenLayers * (4 * H * H + 3 * H * I + 2 * 8 * H)
  t.equal(stepFlops(modern, 4, 8), 6 * (3 * 4 * 8 * perToken + 3 * 4 * 2 * H * H), 'ModernBERT: the GeGLU product counted at 2I')
  for (const type of ['bert', 'modernbert'] as const) {
    const folder = await microModel(lib, dir, `my-${type}`, type)
    const config = await readHfConfig(folder)
    const rows = await benchStep({ size: folder, batchSizes: [2], seqLen: 6, steps: 1, warmupSteps: 0, devices: ['cpu'], log: () => {} })
    t.equal(rows.length, 1)
    t.equal(rows[0].model, `my-${type}`, `${type}: the row names the folder`)
    t.notOk(rows[0].note, `${type}: measured (${rows[0].note ?? 'no note'})`)
    t.ok(rows[0].stepsPerSec > 0, `${type}: ${rows[0].stepsPerSec} steps/s`)
    t.equal(
      rows[0].flopsPerStep,
      stepFlops(config, 2, 6),
      `${type}: the folder's architecture (${config.numHiddenLayers} layers of ${config.hiddenSize})`,
    )
  }
  const bert = join(dir, 'my-bert')
  t.equal(isStepModel(bert), true)
  t.equal(isStepModel(dir), false, 'a folder without config.json is not a model')
  t.equal(isStepModel('huge'), false)
  const positions = (await readHfConfig(bert)).maxPositionEmbeddings
  await t.rejects(
    stepBenchModel(bert, positions + 1, 205),
    new RegExp(`${positions + 1} tokens a sentence, but the model in .* takes at most ${positions}`),
  )
  await t.rejects(stepBenchModel(dir, 8, 205), /must be tiny, mini, small, base or a model folder with a config.json/)
  if (existsSync(cli)) {
    const r = spawnSync(process.execPath, [cli, 'bench', 'step', '--model', dir, '--device', 'cpu'], { encoding: 'utf8' })
    t.equal(r.status, 2)
    t.match(r.stderr, /--model must be tiny, mini, small, base or a model folder with a config.json/)
  }
})
