// `simcsepp bench step`: one SimCSE++ training step (the real TrainingStep: 3N-row encoder pass with the
// per-row dropout switch, CLS + MLP pooling, off-dropout + 0.1 DCL, backward, clipping, AdamW) of a
// random-initialised model on sentences of exactly T tokens, per device and batch size: steps/s,
// sentences/s, model FLOP/s and utilisation against the device's peak at the precision used, and memory. The PyTorch
// counterpart is scripts/bench/torch_step.py (the same step as the paper's released code computes it).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { addon, type Precision } from '../native.js'
import { benchModel } from './model-cache.js'
import { withoutCudaGraphs } from '../model/step-graphs.js'
import type { BertConfig, NamedConfig } from '../model/config.js'
import { AdamW } from '../optim/adamw.js'
import { effectivePrecision, type PrecisionRequest } from '../model/precision.js'
import { Tokenizer } from '../tokenizer.js'
import type { Device } from '../tensor.js'
import type { BatchStream } from '../data/sentences.js'
import { resolveTrainOptions } from '../train/options.js'
import { TrainingStep, type LaunchedStep } from '../train/step.js'
import { benchGemm, gemmStepShapes } from './gemm.js'
import { median } from './median.js'
import { OpProfile, processCpuMs, type KernelShare, type OpTime } from './op-profile.js'
import { stepBenchModel } from './step-model.js'

export interface StepBenchOptions {
  /** A named size, or a model folder whose config.json gives the architecture (random-initialised: step-model.ts). */
  size: NamedConfig | string
  batchSizes: number[]
  /** Tokens per sentence, [CLS] and [SEP] included. */
  seqLen: number
  devices: Device[]
  /** Timed steps per measurement (after the warm-up steps). Default 5. */
  steps?: number
  /**
   * Untimed steps before the timed ones. Default 2: on CUDA the encoder passes replay as CUDA graphs from the
   * third step on, and with fewer warm-up steps the timed ones include the eager steps that capture them
   * (gpu-check's dry run uses 0, where only the flow counts).
   */
  warmupSteps?: number
  /** Default 'auto': bf16 on CUDA, fp32 on the CPU. */
  precision?: PrecisionRequest
  /** Rows per encoder pass (--micro-batch); 0 (default) runs the whole batch at once. */
  microBatch?: number
  /** Also time the step per op category (OpProfile) over this many further steps. Default 0: no profile. */
  profileSteps?: number
  /**
   * CPU rows without micro-batches: also time the step's matrix products alone (bench gemm's measurement, ours
   * only) and give the time they take per step and their share of the step.
   */
  products?: boolean
  log: (line: string) => void
}

export interface StepBenchRow {
  model: string
  device: Device
  batchSize: number
  seqLen: number
  stepsPerSec: number
  sentencesPerSec: number
  /** Tokens per second: every sentence of the benchmark has exactly seqLen tokens. */
  tokensPerSec: number
  /** Model FLOPs of one step (dense matrix products of all three views, forward and backward). */
  flopsPerStep: number
  /** Achieved model TFLOP/s. */
  tflops: number
  /** Precision of the linear layers' products ('auto' resolved: bf16 on CUDA, fp32 on the CPU). */
  precision: Precision
  /** tflops / the device's dense peak at that precision, when known (null on the CPU and the emulator). */
  mfu: number | null
  /** The most tensor memory held (parameters, gradients, moments, activations), bytes. */
  peakTensorBytes: number
  /** Rows per encoder pass (0: the whole batch). */
  microBatch: number
  /** Activation memory of the encoder, bytes (the largest pass). */
  activationBytes: number
  /** The process's peak resident memory so far, bytes (one configuration per process to measure it). */
  peakRssBytes: number
  /** Time per op category in one step (with profileSteps), and the profiled steps' mean time. */
  /** On CUDA, stepGpuMs: the device's time from the profile's first op to its last, per step. */
  /** On CUDA, kernels: the device time per kernel and product, by op category (kernel_profile.cuh). */
  profile?: { stepMs: number; stepCpuMs: number; stepGpuMs?: number; ops: OpTime[]; kernels?: KernelShare[] }
  /**
   * With the products option: the seconds per step that the layers' 12 matrix products each (forward, input and
   * weight gradients of q/k/v, attention output, MLP up and down; 3BT rows) take at the GEMM's own rates, timed
   * alone right after the step, and that time over the step's.
   */
  products?: { seconds: number; share: number }
  note?: string
}

/**
 * Model FLOPs of one SimCSE++ step: every view (3N sentences of T tokens) goes forward (2 FLOPs per
 * multiply-add) and backward (twice the forward): 3 x 2 x [L (4H^2 + 2HI + 2TH) per token + pooler/MLP].
 */
export function stepFlops(c: BertConfig, batch: number, seqLen: number, views = 3): number {
  const tokens = views * batch * seqLen
  const H = c.hiddenSize
  const perToken = c.numHiddenLayers * (4 * H ** 2 + H * (mlpUpWidth(c) + c.intermediateSize) + 2 * seqLen * H)
  const heads = views * batch * 2 * c.hiddenSize ** 2 // pooler + MLP head, once per sentence
  return 3 * 2 * (tokens * perToken + heads)
}

/** Columns of the MLP's first product: the intermediate size, twice it for ModernBERT's GeGLU (gate and value). */
export function mlpUpWidth(c: BertConfig): number {
  return c.modelType === 'modernbert' ? 2 * c.intermediateSize : c.intermediateSize
}

/** Dense peak of known GPUs, TFLOP/s: fp32 without tensor cores, or bf16 tensor cores; null when unknown. */
export function peakTflops(device: string | undefined, precision: Precision = 'fp32'): number | null {
  if (!device) return null
  const table: [RegExp, number, number][] = [
    [/H100|H200|GH200/, 67, 989],
    [/A100/, 19.5, 312],
    [/L40S/, 91.6, 362],
    [/A10\b/, 31.2, 125],
  ]
  const row = table.find(([re]) => re.test(device))
  return row ? (precision === 'fp32' ? row[1] : row[2]) : null
}

/** The synthetic vocabulary's special tokens and at most this many words (fewer for a model with a smaller one). */
const SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
const MAX_WORDS = 200

/** A tokenizer whose `words` words are single tokens (ids below the model's vocabulary size). */
async function syntheticTokenizer(dir: string, words: string[]): Promise<Tokenizer> {
  writeFileSync(join(dir, 'vocab.txt'), [...SPECIALS, ...words].join('\n') + '\n')
  return Tokenizer.load(join(dir, 'vocab.txt'))
}

/** n sentences of exactly `length` of the words (seqLen - 2: with [CLS] and [SEP], seqLen tokens). */
function sentences(n: number, length: number, offset: number, words: string[]): string[] {
  return Array.from({ length: n }, (_, i) => Array.from({ length }, (_, j) => words[(i * 7 + j * 13 + offset) % words.length]).join(' '))
}

/**
 * Seconds per step of the encoder layers' matrix products (gemmStepShapes at `rows` rows, times the layers) at the
 * rates bench gemm measures for them alone on the CPU: the step's time if nothing but its GEMMs took any.
 */
function productSeconds(c: BertConfig, rows: number, precision: Precision): number {
  const bf16 = precision === 'bf16'
  const { rows: timed } = benchGemm({
    shapes: gemmStepShapes(c.hiddenSize, c.intermediateSize, rows, mlpUpWidth(c)),
    seconds: 0.3,
    bf16,
    blas: false,
    log: () => {},
  })
  const perLayer = timed.reduce((t, r) => t + (2 * r.m * r.n * r.k) / ((bf16 ? r.bf16Gflops! : r.oursGflops) * 1e9), 0)
  return c.numHiddenLayers * perLayer
}

export async function benchStep(o: StepBenchOptions): Promise<StepBenchRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'simcsepp-bench-step-'))
  const rows: StepBenchRow[] = []
  try {
    const { config, label } = await stepBenchModel(o.size, o.seqLen, SPECIALS.length + MAX_WORDS)
    const words = Array.from({ length: Math.min(MAX_WORDS, config.vocabSize - SPECIALS.length) }, (_, i) => `w${i}`)
    const tokenizer = await syntheticTokenizer(dir, words)
    const timed = o.steps ?? 5
    const warmup = o.warmupSteps ?? 2
    if (!Number.isSafeInteger(warmup) || warmup < 0) throw new Error(`benchStep: warmupSteps must be an integer >= 0, got ${warmup}`)
    for (const device of o.devices) {
      for (const batch of o.batchSizes) {
        const precision = effectivePrecision(o.precision ?? 'auto', device)
        const model = await benchModel(config, { device, mlp: true, seed: 1, precision })
        const microBatch = o.microBatch ?? 0
        const opts = resolveTrainOptions({ data: 'bench', out: 'bench', batchSize: batch, maxLen: o.seqLen, device, precision, microBatch })
        const opt = new AdamW(model.params, model.grads, model.layout.decayEnd, { lr: opts.lr })
        let k = 0
        const stream = { next: async () => ({ sentences: sentences(batch, o.seqLen - 2, k++, words), epoch: 0 }) } as unknown as BatchStream
        const shape = { batch, maxLen: o.seqLen, totalSteps: timed + warmup + 2 + (o.profileSteps ?? 0), microBatch }
        const step = new TrainingStep(model, opt, tokenizer, opts, shape, device)
        let peak = 0
        try {
          // As the training loop runs them: on CUDA, step s + 1 is launched before step s is read, and a
          // step's time is from the previous step's read to its own (StepInfo.sentencesPerSecond). One more
          // step is launched after the last timed one, so that each timed interval includes launching the
          // next step, as in a run's steady state; it is read untimed.
          const seconds: number[] = []
          const run = timed + warmup
          let launched: LaunchedStep | null = await step.launch(0, stream, () => 0, null)
          for (let s = 0; s < run; s++) {
            const next = step.launchesAhead ? await step.launch(s + 1, stream, () => 0, null) : null
            const info = launched!.result()
            if (s >= warmup) seconds.push(batch / info.sentencesPerSecond)
            peak = Math.max(peak, addon.tensorMemory().heldBytes)
            launched = next ?? (s + 1 < run ? await step.launch(s + 1, stream, () => 0, null) : null)
          }
          launched?.result()
          let profile: StepBenchRow['profile']
          if (o.profileSteps) {
            // On CUDA the ops must be called one by one to be timed: the profile runs a step without graphs
            // (the same ops; one eager step first, so that nothing is allocated while timing).
            const gpu = device === 'cuda'
            const profiled = gpu ? withoutCudaGraphs(() => new TrainingStep(model, opt, tokenizer, opts, shape, device)) : step
            const first = run + 1 + (gpu ? 1 : 0)
            let p: OpProfile, ms: number, cpuMs: number
            try {
              if (gpu) await profiled.run(run + 1, stream, () => 0, null)
              p = new OpProfile(gpu)
              const t0 = performance.now(),
                c0 = processCpuMs()
              try {
                for (let s = 0; s < o.profileSteps; s++) await profiled.run(first + s, stream, () => 0, null)
              } finally {
                p.stop()
              }
              ms = performance.now() - t0
              cpuMs = processCpuMs() - c0
            } finally {
              if (profiled !== step) profiled.dispose()
            }
            const gpuMs = p.gpuMs()
            profile = {
              stepMs: ms / o.profileSteps,
              stepCpuMs: cpuMs / o.profileSteps,
              ...(gpuMs !== null ? { stepGpuMs: gpuMs / o.profileSteps } : {}),
              ops: p.perStep(o.profileSteps, ms, cpuMs),
              ...(gpu ? { kernels: p.kernelsPerStep(o.profileSteps) } : {}),
            }
          }
          const sec = median(seconds)
          const products =
            o.products && device === 'cpu' && microBatch === 0 ? productSeconds(config, 3 * batch * o.seqLen, model.precision) : null
          const flops = stepFlops(config, batch, o.seqLen)
          const tflops = flops / sec / 1e12
          const peakT = device === 'cuda' ? peakTflops(addon.cudaStatus().device, model.precision) : null
          rows.push({
            model: label,
            device,
            batchSize: batch,
            seqLen: o.seqLen,
            stepsPerSec: 1 / sec,
            sentencesPerSec: batch / sec,
            tokensPerSec: (batch * o.seqLen) / sec,
            flopsPerStep: flops,
            tflops,
            precision: model.precision,
            mfu: peakT ? tflops / peakT : null,
            peakTensorBytes: peak,
            microBatch,
            activationBytes: model.activationBytes,
            peakRssBytes: process.resourceUsage().maxRSS * 1024,
            ...(profile ? { profile } : {}),
            ...(products !== null ? { products: { seconds: products, share: products / sec } } : {}),
          })
          o.log(`${label} ${device} B=${batch} T=${o.seqLen}: ${(1 / sec).toFixed(2)} steps/s, ${tflops.toFixed(3)} TFLOP/s`)
        } catch (e) {
          rows.push({
            model: label,
            device,
            batchSize: batch,
            seqLen: o.seqLen,
            stepsPerSec: 0,
            sentencesPerSec: 0,
            tokensPerSec: 0,
            flopsPerStep: stepFlops(config, batch, o.seqLen),
            tflops: 0,
            precision: model.precision,
            mfu: null,
            peakTensorBytes: peak,
            microBatch,
            activationBytes: model.activationBytes,
            peakRssBytes: process.resourceUsage().maxRSS * 1024,
            note: (e as Error).message.split('\n')[0],
          })
          o.log(`${label} ${device} B=${batch}: ${(e as Error).message.split('\n')[0]}`)
        } finally {
          step.dispose()
          opt.m.dispose()
          opt.v.dispose()
          model.dispose()
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  return rows
}
