#!/usr/bin/env node
// The simcsepp command line: a thin layer over the library.
import { parseArgs } from 'node:util'
import { cudaStatus, numThreads } from './index.js'
import { benchLosses, lossBenchTable } from './bench/losses.js'
import { benchGemm, gemmBenchTable } from './bench/gemm.js'
import type { Device } from './tensor.js'
import type { NamedConfig } from './bert-config.js'
import { trainCommand } from './cli/train-command.js'
import { encodeCommand, evalCommand } from './cli/encode-command.js'
import { benchEncode, encodeBenchTable } from './bench/encode.js'
import { UsageError } from './cli/args.js'

const usage = `simcsepp: SimCSE++ sentence-embedding training on CUDA and CPU

Usage:
  simcsepp train [options]  Train a sentence encoder (no options: a few-minute demo). --help for options.
  simcsepp eval --model DIR --sts FILE... [--json] [--pooling cls|mean] [--max-len N]
      STS Spearman (cosine of sentence vectors vs gold scores) for STS-B, SICK or STS12-16 files.
  simcsepp encode --model DIR [--file FILE] [sentences...] [--format json|f32] [--normalize]
      One JSON array per sentence and line, or raw little-endian float32 with --format f32.
  simcsepp bench losses [--sizes 64,512,4096,65536] [--dim 768] [--device auto|cpu|cuda|all]
                        [--seconds 3] [--json]
      Fused off-dropout InfoNCE (forward + backward) against an unfused path of separate ops.
  simcsepp bench gemm [--sizes 2048,6144] [--seconds 2] [--json]
      CPU SGEMM GFLOP/s at BERT shapes, next to the system BLAS when one is installed.
  simcsepp bench encode [--models mini,base] [--sentences 256] [--batch-size 32] [--json]
      SentenceEncoder sentences/s, length-sorted batching against input-order batching.
  simcsepp info         Build and device information.
  simcsepp --help
`

function fail(message: string): never {
  process.stderr.write(`simcsepp: ${message}\n\n${usage}`)
  process.exit(2)
}

function devicesFor(flag: string): Device[] {
  const cuda = cudaStatus()
  switch (flag) {
    case 'cpu': return ['cpu']
    case 'cuda':
      if (!cuda.available) fail(`--device cuda: CUDA unavailable (${cuda.reason})`)
      return ['cuda']
    case 'all':
    case 'auto': return cuda.available ? ['cpu', 'cuda'] : ['cpu']
    default: fail(`--device must be auto, cpu, cuda or all (got ${flag})`)
  }
}

function benchCommand(args: string[]) {
  const [what, ...rest] = args
  if (what === 'encode') return encodeBench(rest)
  const { values } = parseArgs({
    args: rest,
    options: {
      sizes: { type: 'string' },
      dim: { type: 'string', default: '768' },
      device: { type: 'string', default: 'auto' },
      seconds: { type: 'string', default: '3' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  })
  if (what === 'gemm') return gemmBench(values)
  if (what !== 'losses') fail(`unknown benchmark '${what ?? ''}' (available: losses, gemm, encode)`)
  const sizes = (values.sizes ?? '64,512,4096,65536').split(',').map((s) => Number(s.trim()))
  if (sizes.some((n) => !Number.isInteger(n) || n < 1)) fail(`--sizes must be positive integers (got ${values.sizes})`)
  const dim = Number(values.dim)
  if (!Number.isInteger(dim) || dim < 1) fail(`--dim must be a positive integer (got ${values.dim})`)
  const seconds = Number(values.seconds)
  if (!(seconds > 0)) fail(`--seconds must be > 0 (got ${values.seconds})`)
  const log = (line: string) => process.stderr.write(`  ${line}\n`)
  const rows = benchLosses({ sizes, dim, devices: devicesFor(values.device!), secondsPerCase: seconds, explicitSizes: values.sizes !== undefined, log })
  const meta = { cpuThreads: numThreads(), cuda: cudaStatus(), date: new Date().toISOString() }
  if (values.json) process.stdout.write(JSON.stringify({ benchmark: 'losses', ...meta, rows }, null, 2) + '\n')
  else {
    process.stdout.write(`\nOff-dropout InfoNCE, forward + backward (median ms), CPU threads: ${meta.cpuThreads}` +
      `, CUDA: ${meta.cuda.available ? meta.cuda.device : `unavailable (${meta.cuda.reason})`}\n\n`)
    process.stdout.write(lossBenchTable(rows) + '\n')
  }
}

async function encodeBench(argv: string[]) {
  const { values } = parseArgs({
    args: argv, strict: true,
    options: { models: { type: 'string', default: 'mini,base' }, sentences: { type: 'string', default: '256' },
      'batch-size': { type: 'string', default: '32' }, device: { type: 'string', default: 'auto' }, json: { type: 'boolean', default: false } },
  })
  const sizes = values.models!.split(',') as NamedConfig[]
  if (sizes.some((s) => !['tiny', 'mini', 'small', 'base'].includes(s))) fail(`--models must be a list of tiny, mini, small, base (got ${values.models})`)
  const sentences = Number(values.sentences), batchSize = Number(values['batch-size'])
  if (!Number.isInteger(sentences) || sentences < 1 || !Number.isInteger(batchSize) || batchSize < 1) fail('--sentences and --batch-size must be positive integers')
  const rows = await benchEncode({ sizes, sentences, batchSize, devices: devicesFor(values.device!), log: (l) => process.stderr.write(`  ${l}\n`) })
  if (values.json) process.stdout.write(JSON.stringify({ benchmark: 'encode', date: new Date().toISOString(), rows }, null, 2) + '\n')
  else process.stdout.write('\n' + encodeBenchTable(rows) + '\n')
}

function gemmBench(values: { sizes?: string; seconds?: string; json?: boolean }) {
  const ms = (values.sizes ?? '2048,6144').split(',').map(Number)
  if (ms.some((m) => !Number.isInteger(m) || m < 1)) fail(`--sizes (the M values) must be positive integers (got ${values.sizes})`)
  const seconds = Number(values.seconds ?? '2')
  const log = (line: string) => process.stderr.write(`  ${line}\n`)
  const { rows, info } = benchGemm({ ms, sizes: [768, 3072], seconds, log })
  if (values.json) process.stdout.write(JSON.stringify({ benchmark: 'gemm', ...info, date: new Date().toISOString(), rows }, null, 2) + '\n')
  else {
    process.stdout.write(`\nSGEMM (float32), median GFLOP/s, ${info.threads} threads, micro-kernel ${info.kernel}; ` +
      `system BLAS: ${info.systemBlas ?? 'none found (apt-get install libopenblas-dev to compare)'}\n\n`)
    process.stdout.write(gemmBenchTable(rows) + '\n')
  }
}

async function main(argv: string[]) {
  const [command, ...rest] = argv
  switch (command) {
    case 'bench': return benchCommand(rest)
    case 'train': return trainCommand(rest)
    case 'encode': return encodeCommand(rest)
    case 'eval': return evalCommand(rest)
    case 'info':
      process.stdout.write(JSON.stringify({ cpuThreads: numThreads(), cuda: cudaStatus() }, null, 2) + '\n')
      return
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(usage)
      return
    default:
      fail(`unknown command '${command}'`)
  }
}

main(process.argv.slice(2)).catch((e: Error) => {
  if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) fail(e.message)
  process.stderr.write(`simcsepp: ${e.message}\n`)
  process.exit(1)
})
