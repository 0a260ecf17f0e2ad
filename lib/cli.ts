#!/usr/bin/env node
// The simcsepp command line: a thin layer over the library.
import { cudaStatus, numThreads } from './index.js'
import { trainCommand } from './cli/train-command.js'
import { encodeCommand, evalCommand } from './cli/encode-command.js'
import { benchCommand } from './cli/bench-command.js'
import { UsageError } from './cli/args.js'

const usage = `simcsepp: SimCSE++ sentence-embedding training on CUDA and CPU

Usage:
  simcsepp train [options]  Train a sentence encoder (no options: a few-minute demo). --help for options.
  simcsepp eval --model DIR --sts FILE... [--json] [--pooling cls|mean] [--max-len N]
      STS Spearman (cosine of sentence vectors vs gold scores) for STS-B, SICK or STS12-16 files.
  simcsepp encode --model DIR [--file FILE] [sentences...] [--format json|f32] [--normalize]
      One JSON array per sentence and line, or raw little-endian float32 with --format f32.
      eval and encode: files are UTF-8, lines ending in \\n or \\r\\n; --pooling, --normalize and --max-len
      default to the model's sentence-transformers settings (max_seq_length, else 128);
      --device auto|cpu|cuda, --precision auto|fp32|bf16 (auto: bf16 products on CUDA, fp32 on the CPU).
  simcsepp bench losses [--sizes 64,512,4096,65536] [--dim 768] [--device auto|cpu|cuda|all]
                        [--seconds 3] [--json]
      Fused off-dropout InfoNCE (forward + backward) against an unfused path of separate ops.
  simcsepp bench gemm [--sizes 2048,6144] [--seconds 2] [--json]
      CPU SGEMM GFLOP/s at BERT shapes, next to the system BLAS when one is installed.
  simcsepp bench encode [--models mini,base] [--sentences 256] [--batch-size 32] [--json]
      SentenceEncoder sentences/s, length-sorted batching against input-order batching.
  simcsepp bench step [--model base] [--batch-sizes 64,512] [--seq-len 32] [--steps 5]
                      [--device auto|cpu|cuda|all] [--json]
      One SimCSE++ training step: steps/s, sentences/s, model TFLOP/s and utilisation, memory
                      ([--precision auto|fp32|bf16] [--micro-batch M]); --profile [--plot FILE.svg]:
                      milliseconds per op category (on CUDA with SIMCSEPP_CUDA_SYNC=1).
  simcsepp bench batch [--model tiny] [--batch-sizes 64,256,1024,4096] [--micro-batch 128]
                       [--seq-len 32] [--device cpu] [--plot FILE.svg] [--json]
      The step whole and in micro-batches per batch size (one process each): sentences/s, peak memory.
  simcsepp info         Build and device information.
  simcsepp --help
`

function fail(message: string): never {
  process.stderr.write(`simcsepp: ${message}\n\n${usage}`)
  process.exit(2)
}

async function main(argv: string[]) {
  const [command, ...rest] = argv
  switch (command) {
    case 'bench':
      return benchCommand(rest)
    case 'train':
      return trainCommand(rest)
    case 'encode':
      return encodeCommand(rest)
    case 'eval':
      return evalCommand(rest)
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
