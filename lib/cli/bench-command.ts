// `simcsepp bench losses|gemm|encode|step|batch|dist|search`: flags -> the benchmarks of lib/bench/, their rows printed as a
// table (or JSON). Both device lists come from the one device policy (lib/device.ts).
import { cudaStatus, numThreads } from '../index.js'
import { resolveDevice } from '../device.js'
import type { Device } from '../tensor.js'
import { namedConfig, type NamedConfig } from '../model/config.js'
import { benchLosses } from '../bench/losses.js'
import { benchGemm, gemmSquareShapes, gemmStepShapes } from '../bench/gemm.js'
import { benchEncode } from '../bench/encode.js'
import { benchStep, type StepBenchRow } from '../bench/step.js'
import { isStepModel } from '../bench/step-model.js'
import { benchDist, distWorker } from '../bench/dist.js'
import { benchSearch } from '../bench/search.js'
import { benchAttention } from '../bench/attention.js'
import { memoryPlotSvg } from '../bench/memory-plot.js'
import { PRECISION_REQUESTS, type PrecisionRequest } from '../model/precision.js'
import { HelpRequest, parseFlags, UsageError } from './args.js'
import { benchUsage } from './help.js'
import {
  batchBenchTable,
  distBenchTable,
  encodeBenchTable,
  gemmBenchTable,
  lossBenchTable,
  profileTable,
  productsLines,
  searchBenchTable,
  attentionBenchTable,
  stepBenchTable,
} from './tables.js'
import { profilePlotSvg } from '../bench/profile-plot.js'

function usage(message: string): never {
  throw new UsageError(message)
}

/** --device: one device, or with auto and all the CPU and, when it can be used, CUDA, to compare them. */
function devicesFor(flag: string): Device[] {
  switch (flag) {
    case 'cpu':
      return ['cpu']
    case 'cuda':
      try {
        return [resolveDevice('cuda', { who: '--device cuda' }).device]
      } catch (e) {
        return usage((e as Error).message)
      }
    case 'all':
    case 'auto':
      return resolveDevice('auto', { who: 'bench' }).device === 'cuda' ? ['cpu', 'cuda'] : ['cpu']
    default:
      usage(`--device must be auto, cpu, cuda or all (got ${flag})`)
  }
}

export function benchCommand(args: string[]) {
  const [what, ...rest] = args
  if (what === '--help' || what === '-h') throw new HelpRequest(benchUsage)
  if (what === 'encode') return encodeBench(rest)
  if (what === 'step') return stepBench(rest)
  if (what === 'batch') return batchBench(rest)
  if (what === 'dist') return distBench(rest)
  if (what === 'search') return searchBench(rest)
  if (what === 'attention') return attentionBench(rest)
  const { values } = parseFlags(benchUsage, {
    args: rest,
    options: {
      sizes: { type: 'string' },
      dim: { type: 'string', default: '768' },
      device: { type: 'string', default: 'auto' },
      seconds: { type: 'string', default: '3' },
      model: { type: 'string' },
      bf16: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  })
  if (what === 'gemm') return gemmBench(values)
  if (what !== 'losses') usage(`unknown benchmark '${what ?? ''}' (available: losses, gemm, encode, step, batch, dist, search, attention)`)
  const sizes = (values.sizes ?? '64,512,4096,65536').split(',').map((s) => Number(s.trim()))
  if (sizes.some((n) => !Number.isInteger(n) || n < 1)) usage(`--sizes must be positive integers (got ${values.sizes})`)
  const dim = Number(values.dim)
  if (!Number.isInteger(dim) || dim < 1) usage(`--dim must be a positive integer (got ${values.dim})`)
  const seconds = Number(values.seconds)
  if (!(seconds > 0)) usage(`--seconds must be > 0 (got ${values.seconds})`)
  const log = (line: string) => process.stderr.write(`  ${line}\n`)
  const rows = benchLosses({
    sizes,
    dim,
    devices: devicesFor(values.device!),
    secondsPerCase: seconds,
    explicitSizes: values.sizes !== undefined,
    log,
  })
  const meta = { cpuThreads: numThreads(), cuda: cudaStatus(), date: new Date().toISOString() }
  if (values.json) process.stdout.write(JSON.stringify({ benchmark: 'losses', ...meta, rows }, null, 2) + '\n')
  else {
    process.stdout.write(
      `\nOff-dropout InfoNCE, forward + backward (median ms), CPU threads: ${meta.cpuThreads}` +
        `, CUDA: ${meta.cuda.available ? meta.cuda.device : `unavailable (${meta.cuda.reason})`}\n\n`,
    )
    process.stdout.write(lossBenchTable(rows) + '\n')
  }
}

function attentionBench(argv: string[]) {
  const { values } = parseFlags(benchUsage, {
    args: argv,
    options: {
      batch: { type: 'string', default: '192' },
      'seq-lens': { type: 'string', default: '32,128' },
      heads: { type: 'string', default: '12' },
      'head-size': { type: 'string', default: '64' },
      device: { type: 'string', default: 'auto' },
      seconds: { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
    },
  })
  const int = (flag: 'batch' | 'heads' | 'head-size', max: number) => {
    const v = Number(values[flag])
    if (!Number.isSafeInteger(v) || v < 1 || v > max) usage(`--${flag} must be an integer in [1, ${max}] (got ${values[flag]})`)
    return v
  }
  const seqLens = values['seq-lens']!.split(',').map((s) => Number(s.trim()))
  if (seqLens.some((T) => !Number.isSafeInteger(T) || T < 1 || T > 4096))
    usage(`--seq-lens must be integers in [1, 4096] (got ${values['seq-lens']})`)
  const seconds = Number(values.seconds)
  if (!(seconds > 0)) usage(`--seconds must be > 0 (got ${values.seconds})`)
  const rows = benchAttention({
    batch: int('batch', 1 << 16),
    seqLens,
    heads: int('heads', 256),
    headSize: int('head-size', 1024),
    devices: devicesFor(values.device!),
    seconds,
    log: (l) => process.stderr.write(`  ${l}\n`),
  })
  const meta = { cpuThreads: numThreads(), cuda: cudaStatus(), date: new Date().toISOString() }
  if (values.json) process.stdout.write(JSON.stringify({ benchmark: 'attention', ...meta, rows }, null, 2) + '\n')
  else {
    process.stdout.write(
      `\nAttention forward + backward (padding mask, dropout 0.1; median ms a pair), CPU threads: ${meta.cpuThreads}` +
        `, CUDA: ${meta.cuda.available ? meta.cuda.device : `unavailable (${meta.cuda.reason})`}\n\n`,
    )
    process.stdout.write(attentionBenchTable(rows) + '\n')
  }
}

function searchBench(argv: string[]) {
  const { values } = parseFlags(benchUsage, {
    args: argv,
    options: {
      corpus: { type: 'string', default: '100000' },
      dim: { type: 'string', default: '768' },
      queries: { type: 'string', default: '16' },
      'top-k': { type: 'string', default: '10' },
      rescore: { type: 'string', default: '4' },
      repeats: { type: 'string', default: '15' },
      json: { type: 'boolean', default: false },
    },
  })
  const int = (flag: string, min: number) => {
    const v = Number(values[flag as keyof typeof values])
    if (!Number.isSafeInteger(v) || v < min)
      usage(`--${flag} must be an integer of at least ${min} (got ${String(values[flag as keyof typeof values])})`)
    return v
  }
  const o = {
    corpus: int('corpus', 1),
    dim: int('dim', 1),
    queries: int('queries', 1),
    topK: int('top-k', 1),
    rescore: int('rescore', 1),
    repeats: int('repeats', 1),
  }
  process.stderr.write(`  ${o.corpus} random vectors of ${o.dim} dimensions, batches of ${o.queries} queries, top ${o.topK}\n`)
  const result = benchSearch(o)
  const meta = { cpuThreads: numThreads(), date: new Date().toISOString() }
  if (values.json) process.stdout.write(JSON.stringify({ benchmark: 'search', ...meta, ...o, ...result }, null, 2) + '\n')
  else
    process.stdout.write(
      `\nSearch, median ms per batch of ${o.queries} queries (${o.corpus} x ${o.dim}, top ${o.topK}), CPU threads: ` +
        `${meta.cpuThreads}, kernels: cosine ${result.searchKernel}, Hamming ${result.hammingKernel}\n\n` +
        searchBenchTable(result.rows) +
        '\n',
    )
}

async function encodeBench(argv: string[]) {
  const { values } = parseFlags(benchUsage, {
    args: argv,
    options: {
      models: { type: 'string', default: 'mini,base' },
      sentences: { type: 'string', default: '256' },
      'batch-size': { type: 'string', default: '32' },
      device: { type: 'string', default: 'auto' },
      'no-onnxruntime': { type: 'boolean', default: false },
      bf16: { type: 'boolean', default: false },
      int8: { type: 'boolean', default: false },
      q8: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  })
  const sizes = values.models!.split(',') as NamedConfig[]
  if (sizes.some((s) => !['tiny', 'mini', 'small', 'base'].includes(s)))
    usage(`--models must be a list of tiny, mini, small, base (got ${values.models})`)
  const sentences = Number(values.sentences),
    batchSize = Number(values['batch-size'])
  if (!Number.isInteger(sentences) || sentences < 1 || !Number.isInteger(batchSize) || batchSize < 1)
    usage('--sentences and --batch-size must be positive integers')
  const rows = await benchEncode({
    sizes,
    sentences,
    batchSize,
    devices: devicesFor(values.device!),
    onnxruntime: !values['no-onnxruntime'],
    bf16: values.bf16,
    int8: values.int8,
    q8: values.q8,
    log: (l) => process.stderr.write(`  ${l}\n`),
  })
  if (values.json) process.stdout.write(JSON.stringify({ benchmark: 'encode', date: new Date().toISOString(), rows }, null, 2) + '\n')
  else process.stdout.write('\n' + encodeBenchTable(rows) + '\n')
}

async function stepBench(argv: string[]) {
  const { values } = parseFlags(benchUsage, {
    args: argv,
    options: {
      model: { type: 'string', default: 'base' },
      'batch-sizes': { type: 'string', default: '64,512' },
      'seq-len': { type: 'string', default: '32' },
      steps: { type: 'string', default: '5' },
      device: { type: 'string', default: 'auto' },
      precision: { type: 'string', default: 'auto' },
      'micro-batch': { type: 'string', default: '0' },
      profile: { type: 'boolean', default: false },
      products: { type: 'boolean', default: false },
      plot: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  })
  const size = values.model!
  const microBatch = Number(values['micro-batch'])
  if (!Number.isInteger(microBatch) || microBatch < 0) usage(`--micro-batch must be a non-negative integer (got ${values['micro-batch']})`)
  const precision = values.precision as PrecisionRequest
  if (!PRECISION_REQUESTS.includes(precision)) usage(`--precision must be auto, fp32 or bf16 (got ${values.precision})`)
  if (!isStepModel(size)) usage(`--model must be tiny, mini, small, base or a model folder with a config.json (got ${values.model})`)
  const batchSizes = values['batch-sizes']!.split(',').map((s) => Number(s.trim()))
  if (batchSizes.some((b) => !Number.isInteger(b) || b < 2))
    usage(`--batch-sizes must be integers of at least 2 (got ${values['batch-sizes']})`)
  const seqLen = Number(values['seq-len']),
    steps = Number(values.steps)
  if (!Number.isInteger(seqLen) || seqLen < 3 || seqLen > 512) usage(`--seq-len must be an integer in [3, 512] (got ${values['seq-len']})`)
  if (!Number.isInteger(steps) || steps < 1) usage(`--steps must be a positive integer (got ${values.steps})`)
  const rows = await benchStep({
    size,
    batchSizes,
    seqLen,
    steps,
    precision,
    microBatch,
    profileSteps: values.profile ? steps : 0,
    products: values.products,
    devices: devicesFor(values.device!),
    log: (l) => process.stderr.write(`  ${l}\n`),
  })
  if (values.plot) {
    if (!values.profile) usage('--plot draws the op profile: add --profile')
    const { writeFileSync } = await import('node:fs')
    const series = rows
      .filter((r) => r.profile)
      .map((r) => ({ label: `${r.model} ${r.device} B=${r.batchSize} T=${r.seqLen}`, stepMs: r.profile!.stepMs, ops: r.profile!.ops }))
    writeFileSync(values.plot, profilePlotSvg(series, 'Training step: milliseconds per op category'))
  }
  if (values.json) process.stdout.write(JSON.stringify({ benchmark: 'step', date: new Date().toISOString(), rows }, null, 2) + '\n')
  else {
    process.stdout.write('\n' + stepBenchTable(rows) + '\n')
    if (values.products) process.stdout.write('\n' + productsLines(rows) + '\n')
    if (values.profile) process.stdout.write('\n' + profileTable(rows) + '\n' + (values.plot ? `plot: ${values.plot}\n` : ''))
  }
}

// `bench batch`: the training step at growing batch sizes, whole and in micro-batches, each configuration
// in its own process (`bench step --json`) so that its peak resident memory is its own; a table, and an
// SVG plot of peak memory against batch size.
async function batchBench(argv: string[]) {
  const { values } = parseFlags(benchUsage, {
    args: argv,
    options: {
      model: { type: 'string', default: 'tiny' },
      'batch-sizes': { type: 'string', default: '64,256,1024,4096' },
      'micro-batch': { type: 'string', default: '128' },
      'seq-len': { type: 'string', default: '32' },
      steps: { type: 'string', default: '1' },
      device: { type: 'string', default: 'cpu' },
      plot: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  })
  const batchSizes = values['batch-sizes']!.split(',').map((s) => Number(s.trim()))
  if (batchSizes.some((b) => !Number.isInteger(b) || b < 2))
    usage(`--batch-sizes must be integers of at least 2 (got ${values['batch-sizes']})`)
  const micro = Number(values['micro-batch'])
  if (!Number.isInteger(micro) || micro < 1) usage(`--micro-batch must be a positive integer (got ${values['micro-batch']})`)
  const { spawnSync } = await import('node:child_process')
  const { writeFileSync } = await import('node:fs')
  const cli = process.argv[1]
  const rows: (StepBenchRow & { setting: string })[] = []
  for (const batch of batchSizes)
    for (const m of [0, micro]) {
      const setting = m === 0 ? 'whole batch' : `micro-batches of ${m} rows`
      const args = [cli, 'bench', 'step', '--json', '--model', values.model!, '--batch-sizes', String(batch)]
      args.push('--seq-len', values['seq-len']!, '--steps', values.steps!, '--device', values.device!, '--micro-batch', String(m))
      process.stderr.write(`  batch ${batch}, ${setting}\n`)
      const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 })
      if (r.status !== 0) usage(`bench step failed for batch ${batch} (${setting}): ${r.stderr.trim().split('\n').pop()}`)
      for (const row of (JSON.parse(r.stdout) as { rows: StepBenchRow[] }).rows) rows.push({ ...row, setting })
    }
  // On the CPU the process's peak resident memory; on CUDA the peak of the tensors (device memory).
  const cuda = values.device !== 'cpu'
  const memory = (r: StepBenchRow) => (cuda ? r.peakTensorBytes : r.peakRssBytes)
  const ok = rows.filter((r) => r.stepsPerSec > 0)
  const plot = memoryPlotSvg(
    [
      { label: 'whole batch', points: ok.filter((r) => r.microBatch === 0).map((r) => [r.batchSize, memory(r)]) },
      { label: `micro-batches of ${micro} rows`, points: ok.filter((r) => r.microBatch !== 0).map((r) => [r.batchSize, memory(r)]) },
    ],
    `${values.model} on ${values.device}, T = ${values['seq-len']}: ${cuda ? 'peak tensor (GPU) memory' : 'peak resident memory'} of a training step`,
  )
  if (values.plot) writeFileSync(values.plot, plot)
  if (values.json) process.stdout.write(JSON.stringify({ benchmark: 'batch', date: new Date().toISOString(), rows }, null, 2) + '\n')
  else process.stdout.write('\n' + batchBenchTable(rows) + (values.plot ? `\nplot: ${values.plot}\n` : '\n'))
}

// `bench dist`: one process, then R ranks under mpirun (each a `bench dist --worker` of this CLI).
async function distBench(argv: string[]) {
  const { values } = parseFlags(benchUsage, {
    args: argv,
    options: {
      ranks: { type: 'string', default: '2' },
      model: { type: 'string', default: 'tiny' },
      'batch-size': { type: 'string', default: '64' },
      'seq-len': { type: 'string', default: '32' },
      steps: { type: 'string', default: '5' },
      device: { type: 'string', default: 'cpu' },
      worker: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  })
  const int = (flag: string, v: string | undefined, min: number) => {
    const n = Number(v)
    if (!Number.isInteger(n) || n < min) usage(`--${flag} must be an integer of at least ${min} (got ${v})`)
    return n
  }
  const size = values.model as NamedConfig
  if (!['tiny', 'mini', 'small', 'base'].includes(size)) usage(`--model must be tiny, mini, small or base (got ${values.model})`)
  const device = values.device as 'cpu' | 'cuda'
  if (device !== 'cpu' && device !== 'cuda') usage(`--device must be cpu or cuda (got ${values.device})`)
  const ranks = int('ranks', values.ranks, values.worker ? 1 : 2)
  const o = {
    size,
    ranks,
    device,
    batchSize: int('batch-size', values['batch-size'], ranks),
    seqLen: int('seq-len', values['seq-len'], 3),
    steps: int('steps', values.steps, 1),
    log: (l: string) => process.stderr.write(`  ${l}\n`),
  }
  if (values.worker) return distWorker(values.worker, o)
  const rows = benchDist({ ...o, cli: process.argv[1] })
  if (values.json) process.stdout.write(JSON.stringify({ benchmark: 'dist', date: new Date().toISOString(), ...o, rows }, null, 2) + '\n')
  else {
    process.stdout.write(
      `\nSimCSE++ training step, ${size}, global batch ${o.batchSize}, T = ${o.seqLen}, ${device}: one process against ` +
        `${ranks} ranks on this machine (median of ${o.steps} steps)\n\n`,
    )
    process.stdout.write(distBenchTable(rows) + '\n')
  }
}

function gemmBench(values: { sizes?: string; seconds?: string; model?: string; bf16?: boolean; json?: boolean }) {
  const seconds = Number(values.seconds ?? '2')
  if (!(seconds > 0)) usage(`--seconds must be > 0 (got ${values.seconds})`)
  let shapes
  let what: string
  if (values.model !== undefined) {
    const size = values.model as NamedConfig
    if (!['tiny', 'mini', 'small', 'base'].includes(size)) usage(`--model must be tiny, mini, small or base (got ${values.model})`)
    if (values.sizes !== undefined) usage('--sizes and --model exclude each other (--model benchmarks the step shapes of that model)')
    const c = namedConfig(size)
    const rows = 3 * 64 * 32
    shapes = gemmStepShapes(c.hiddenSize, c.intermediateSize, rows)
    what = `the products of one ${size} training step (B = 64, T = 32, three views: ${rows} rows)`
  } else {
    const ms = (values.sizes ?? '2048,6144').split(',').map(Number)
    if (ms.some((m) => !Number.isInteger(m) || m < 1)) usage(`--sizes (the M values) must be positive integers (got ${values.sizes})`)
    shapes = gemmSquareShapes(ms, [768, 3072])
    what = 'BERT-base shapes'
  }
  const log = (line: string) => process.stderr.write(`  ${line}\n`)
  const { rows, info } = benchGemm({ shapes, seconds, bf16: values.bf16 === true, log })
  if (values.json)
    process.stdout.write(JSON.stringify({ benchmark: 'gemm', ...info, date: new Date().toISOString(), rows }, null, 2) + '\n')
  else {
    const blas = info.systemBlas
      ? `${info.systemBlas}${info.systemBlasCore ? ` (${info.systemBlasCore} kernels)` : ''}` +
        (info.coreTypeUnset !== undefined ? `, OPENBLAS_CORETYPE=${info.coreTypeUnset} unset for it` : '')
      : 'none found (apt-get install libopenblas-dev to compare)'
    process.stdout.write(
      `\nSGEMM (float32) at ${what}, median GFLOP/s, ${info.threads} threads, micro-kernel ${info.kernel}; ` +
        `system BLAS: ${blas}` +
        (values.bf16 ? `; bf16 products (--precision bf16): ${info.bf16Kernel}` : '') +
        '\n\n',
    )
    process.stdout.write(gemmBenchTable(rows) + '\n')
  }
}
