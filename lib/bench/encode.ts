// `simcsepp bench encode`: SentenceEncoder throughput (sentences/s) with length-sorted batching
// against input-order batching, per model size and device, on a realistic mix of sentence lengths; on the CPU,
// next to onnxruntime-node on the same model exported to ONNX (encode-onnxruntime.ts), where it is installed.
// Models are random-initialised (speed does not depend on the weights) and saved to a temp dir with
// a tokenizer: bert-base-uncased's from ../shared/data when present, else a vocab.txt of the words.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { namedConfig, type NamedConfig } from '../model/config.js'
import { BertModel } from '../model/bert.js'
import { withoutCudaGraphs } from '../model/step-graphs.js'
import { Tokenizer } from '../tokenizer.js'
import type { Device } from '../tensor.js'
import { EmbeddingEngine, tokenizePacked, type Tokenized } from '../embed/engine.js'
import { SentenceEncoder } from '../embed/sentence-encoder.js'
import { median } from './median.js'
import { onnxruntimeRate } from './encode-onnxruntime.js'
import { addon } from '../native.js'
import { cosineSimilarity } from '../util/vectors.js'

export interface EncodeBenchOptions {
  /** Model sizes ('mini', 'base'; any named size works). */
  sizes: NamedConfig[]
  /** Sentences encoded per measurement. */
  sentences: number
  batchSize: number
  devices: Device[]
  log: (line: string) => void
  /** Tokens per sentence (default 128). */
  maxLength?: number
  /** Repeat a measurement (up to 3 times, median) while one run takes less than this. Default 2 s. */
  repeatBelowSeconds?: number
  /** Where sentences and the tokenizer come from (default: ../shared/data next to the package or the cwd). */
  dataDir?: string
  /** CPU rows: also time onnxruntime-node on the model exported to ONNX, where it is installed (default true). */
  onnxruntime?: boolean
  /**
   * CPU rows: also time the encoder with `precision: 'bf16'` (AMX or VDPBF16PS where the CPU runs them fast, see
   * native/cpu/gemm.h) and compare its vectors with fp32's (default false).
   */
  bf16?: boolean
  /**
   * CPU rows: also time the encoder with `precision: 'int8'` (the int8 products, native/cpu/linear_int8.h) and
   * compare its vectors with fp32's (default false).
   */
  int8?: boolean
  /**
   * CPU rows: also time onnxruntime-node on the model exported with int8 weights (`simcsepp export --weights
   * q8`) and compare its vectors with ours (default false).
   */
  q8?: boolean
}

export interface EncodeBenchRow {
  model: string
  device: Device
  sentences: number
  batchSize: number
  /** Mean real tokens per sentence ([CLS] and [SEP] included). */
  meanTokens: number
  /** Sentences per second with length-sorted batches (the default). */
  sortedPerSec: number | null
  /** Sentences per second with batches in input order. */
  inputOrderPerSec: number | null
  /** sortedPerSec / inputOrderPerSec. */
  speedup: number | null
  /** Share of the computed positions that are padding, sorted and in input order. */
  paddingSorted: number
  paddingInputOrder: number
  /** Where the text came from. */
  source: string
  /**
   * CPU rows: onnxruntime-node's sentences/s on the same model exported to ONNX, same sorted batches
   * (encode-onnxruntime.ts), and the largest |difference| of its vectors from ours; null where it did not run.
   */
  onnxruntimePerSec: number | null
  onnxruntimeMaxAbsDiff?: number
  /**
   * CUDA rows: sentences per second with length-sorted batches and CUDA graphs off (SIMCSEPP_CUDA_GRAPHS=0:
   * every batch a few hundred launches), against sortedPerSec's graphs; null elsewhere.
   */
  noGraphsSortedPerSec: number | null
  /**
   * CPU rows with the bf16 option: sorted sentences/s with `precision: 'bf16'`, the bf16 products' kernel
   * (gemmInfo().bf16Kernel), and the largest 1 - cos between a sentence's bf16 and fp32 vectors.
   */
  bf16SortedPerSec?: number
  bf16Kernel?: string
  bf16MaxCosineDistance?: number
  /** CPU rows with the int8 option: as the bf16 fields, for `precision: 'int8'` (int8Kernel: ops.int8Kernel()). */
  int8SortedPerSec?: number
  int8Kernel?: string
  int8MaxCosineDistance?: number
  /** CPU rows with the q8 option: onnxruntime's sorted sentences/s on the q8 export, its largest 1 - cos from ours. */
  q8PerSec?: number
  q8MaxCosineDistance?: number
  note?: string
}

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

function findDataDir(explicit?: string): string | null {
  const candidates = explicit ? [explicit] : [join(packageRoot, '..', 'shared', 'data'), join(process.cwd(), '..', 'shared', 'data')]
  return candidates.find((d) => existsSync(d)) ?? null
}

const FILLER = (
  'the of and to in a is was for on as with by he that at from his it an were are which this be or has had ' +
  'first also new their after one its who but two been they not her have she year all other city time may into during ' +
  'would more over world between later only under most some national university team season film school war states ' +
  'known such named river company series several album north south built played released population village county'
).split(' ')

/** Sentences with wiki-like lengths (1 to ~100 words, median ~16) when no corpus is at hand. */
function generatedSentences(n: number): string[] {
  let s = 12345
  const rnd = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 4294967296
  }
  return Array.from({ length: n }, () => {
    // Log-normal word count around 16 words.
    const g = Math.sqrt(-2 * Math.log(rnd() + 1e-12)) * Math.cos(2 * Math.PI * rnd())
    const words = Math.max(1, Math.min(100, Math.round(Math.exp(Math.log(16) + 0.6 * g))))
    return Array.from({ length: words }, () => FILLER[Math.floor(rnd() * FILLER.length)]).join(' ')
  })
}

function loadSentences(n: number, dataDir: string | null): { sentences: string[]; source: string } {
  const file = dataDir ? join(dataDir, 'wiki1m-head.txt') : null
  if (file && existsSync(file)) {
    const lines = readFileSync(file, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.length > 0)
    if (lines.length) return { sentences: Array.from({ length: n }, (_, i) => lines[i % lines.length]), source: 'wiki1m-head.txt' }
  }
  return { sentences: generatedSentences(n), source: 'generated words' }
}

async function benchTokenizer(dir: string, dataDir: string | null, sentences: string[]): Promise<Tokenizer> {
  const bert = dataDir ? join(dataDir, 'bert-base-uncased') : null
  if (bert && existsSync(bert)) {
    const tok = await Tokenizer.load(bert)
    await tok.save(dir)
    return Tokenizer.load(dir)
  }
  const words = new Set<string>()
  for (const s of sentences) for (const w of s.toLowerCase().split(/[^a-z0-9]+/)) if (w) words.add(w)
  const letters = 'abcdefghijklmnopqrstuvwxyz0123456789'.split('')
  const vocab = [
    '[PAD]',
    '[UNK]',
    '[CLS]',
    '[SEP]',
    '[MASK]',
    ...letters,
    ...letters.map((l) => `##${l}`),
    ...[...words].filter((w) => w.length > 1),
  ]
  writeFileSync(join(dir, 'vocab.txt'), vocab.join('\n') + '\n')
  return Tokenizer.load(dir)
}

/** Share of computed positions that are padding when batching `tok` this way. */
function paddingShare(tok: Tokenized, batchSize: number, sorted: boolean): number {
  let computed = 0
  for (const b of EmbeddingEngine.batches(tok, batchSize, sorted)) {
    let T = 0
    for (const i of b) T = Math.max(T, tok.offsets[i + 1] - tok.offsets[i])
    computed += T * b.length
  }
  return computed ? 1 - tok.ids.length / computed : 0
}

async function timeEncode(
  enc: SentenceEncoder,
  sentences: string[],
  batchSize: number,
  sortByLength: boolean,
  repeatBelow: number,
): Promise<number> {
  const times: number[] = []
  while (times.length < 3) {
    const t0 = performance.now()
    await enc.encode(sentences, { batchSize, sortByLength })
    times.push((performance.now() - t0) / 1000)
    if (times[times.length - 1] >= repeatBelow) break
  }
  return sentences.length / median(times)
}

/** The largest 1 - cos(a[i], b[i]) over the sentences. */
function maxCosineDistance(a: Float32Array[], b: Float32Array[]): number {
  return a.reduce((worst, x, i) => Math.max(worst, 1 - cosineSimilarity(x, b[i])), 0)
}

/** Sorted sentences/s with `precision` on the CPU, and its vectors against fp32's (`ours`). */
async function precisionRate(
  precision: 'bf16' | 'int8',
  dir: string,
  maxLength: number,
  batchSize: number,
  sentences: string[],
  ours: Float32Array[],
  repeatBelow: number,
) {
  const enc = await SentenceEncoder.load(dir, { device: 'cpu', precision, maxLength, batchSize })
  try {
    const vectors = (await enc.encode(sentences, { batchSize, sortByLength: true })) as Float32Array[] // also the warm-up
    return { perSec: await timeEncode(enc, sentences, batchSize, true, repeatBelow), maxCosineDistance: maxCosineDistance(ours, vectors) }
  } finally {
    await enc.close()
  }
}

/** Sorted sentences/s of an encoder whose worker starts with SIMCSEPP_CUDA_GRAPHS=0 (its copy of the environment). */
async function withoutGraphs(dir: string, maxLength: number, batchSize: number, sentences: string[], repeatBelow: number): Promise<number> {
  const enc = await withoutCudaGraphs(() => SentenceEncoder.load(dir, { device: 'cuda', maxLength, batchSize }))
  try {
    await enc.encode(sentences.slice(0, Math.min(sentences.length, 2 * batchSize))) // warm-up
    return await timeEncode(enc, sentences, batchSize, true, repeatBelow)
  } finally {
    await enc.close()
  }
}

export async function benchEncode(o: EncodeBenchOptions): Promise<EncodeBenchRow[]> {
  if (!Number.isSafeInteger(o.sentences) || o.sentences < 1)
    throw new Error(`benchEncode: sentences must be a positive integer, got ${o.sentences}`)
  if (!Number.isSafeInteger(o.batchSize) || o.batchSize < 1)
    throw new Error(`benchEncode: batchSize must be a positive integer, got ${o.batchSize}`)
  const maxLength = o.maxLength ?? 128
  const repeatBelow = o.repeatBelowSeconds ?? 2
  const dataDir = findDataDir(o.dataDir)
  const { sentences, source } = loadSentences(o.sentences, dataDir)
  const rows: EncodeBenchRow[] = []
  for (const size of o.sizes) {
    const dir = mkdtempSync(join(tmpdir(), `simcsepp-bench-encode-${size}-`))
    try {
      const tokenizer = await benchTokenizer(dir, dataDir, sentences)
      const model = await BertModel.createAsync(namedConfig(size, tokenizer.vocabSize), { seed: 1 })
      await model.save(dir)
      model.dispose()
      const tok = await tokenizePacked(tokenizer, sentences, Math.min(maxLength, 512))
      const stats = {
        meanTokens: tok.ids.length / sentences.length,
        paddingSorted: paddingShare(tok, o.batchSize, true),
        paddingInputOrder: paddingShare(tok, o.batchSize, false),
      }
      for (const device of o.devices) {
        const row: EncodeBenchRow = {
          model: size,
          device,
          sentences: sentences.length,
          batchSize: o.batchSize,
          ...stats,
          sortedPerSec: null,
          inputOrderPerSec: null,
          speedup: null,
          source,
          onnxruntimePerSec: null,
          noGraphsSortedPerSec: null,
        }
        let enc: SentenceEncoder | null = null
        try {
          enc = await SentenceEncoder.load(dir, { device, maxLength, batchSize: o.batchSize })
          await enc.encode(sentences.slice(0, Math.min(sentences.length, 2 * o.batchSize))) // warm-up
          row.inputOrderPerSec = await timeEncode(enc, sentences, o.batchSize, false, repeatBelow)
          row.sortedPerSec = await timeEncode(enc, sentences, o.batchSize, true, repeatBelow)
          row.speedup = row.sortedPerSec / row.inputOrderPerSec
          o.log(`${size} ${device}: sorted ${row.sortedPerSec.toFixed(1)}/s, input order ${row.inputOrderPerSec.toFixed(1)}/s`)
          if (device === 'cuda') {
            row.noGraphsSortedPerSec = await withoutGraphs(dir, maxLength, o.batchSize, sentences, repeatBelow)
            o.log(`${size} ${device}: sorted, CUDA graphs off ${row.noGraphsSortedPerSec.toFixed(1)}/s`)
          }
          const ours =
            device === 'cpu' && (o.onnxruntime !== false || o.bf16 || o.int8 || o.q8)
              ? ((await enc.encode(sentences, { batchSize: o.batchSize, sortByLength: true })) as Float32Array[])
              : []
          if (device === 'cpu' && o.bf16) {
            const bf16 = await precisionRate('bf16', dir, maxLength, o.batchSize, sentences, ours, repeatBelow)
            row.bf16SortedPerSec = bf16.perSec
            row.bf16Kernel = addon.gemmInfo().bf16Kernel
            row.bf16MaxCosineDistance = bf16.maxCosineDistance
            o.log(
              `${size} ${device}: bf16 products (${row.bf16Kernel}) sorted ${bf16.perSec.toFixed(1)}/s, 1 - cos up to ${bf16.maxCosineDistance.toExponential(1)}`,
            )
          }
          if (device === 'cpu' && o.int8) {
            const int8 = await precisionRate('int8', dir, maxLength, o.batchSize, sentences, ours, repeatBelow)
            row.int8SortedPerSec = int8.perSec
            row.int8Kernel = addon.int8Kernel()
            row.int8MaxCosineDistance = int8.maxCosineDistance
            o.log(
              `${size} ${device}: int8 products (${row.int8Kernel}) sorted ${int8.perSec.toFixed(1)}/s, 1 - cos up to ${int8.maxCosineDistance.toExponential(1)}`,
            )
          }
          if (device === 'cpu' && o.q8) {
            const q8 = await onnxruntimeRate(dir, tok, o.batchSize, ours, repeatBelow, 'q8')
            if (typeof q8 === 'string') row.note = q8
            else {
              row.q8PerSec = q8.perSec
              row.q8MaxCosineDistance = q8.maxCosineDistance
              o.log(
                `${size} ${device}: onnxruntime-node, q8 export ${q8.perSec.toFixed(1)}/s, 1 - cos up to ${q8.maxCosineDistance.toExponential(1)}`,
              )
            }
          }
          if (device === 'cpu' && o.onnxruntime !== false) {
            const ort = await onnxruntimeRate(dir, tok, o.batchSize, ours, repeatBelow)
            if (typeof ort === 'string') row.note = ort
            else {
              row.onnxruntimePerSec = ort.perSec
              row.onnxruntimeMaxAbsDiff = ort.maxAbsDiff
              o.log(
                `${size} ${device}: onnxruntime-node ${ort.version} ${ort.perSec.toFixed(1)}/s (vectors within ${ort.maxAbsDiff.toExponential(1)})`,
              )
            }
          }
        } catch (e) {
          row.note = (e as Error).message.replace(/^SentenceEncoder: /, '')
          o.log(`${size} ${device}: ${row.note}`)
        } finally {
          await enc?.close()
        }
        rows.push(row)
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }
  return rows
}
