// The encoding loop the SentenceEncoder's worker runs: tokenize, order by length, pad per batch,
// forward, pool, (normalise). It is plain synchronous-per-batch code and knows nothing of threads.
import { positionOffset } from '../model/config.js'
import { BertModel, type BatchInput, type Pooling } from '../model/bert.js'
import { Tokenizer } from '../tokenizer.js'
import { addon } from '../native.js'
import { effectivePrecision, type EncoderPrecision, type EncoderPrecisionRequest } from '../model/precision.js'
import { encoderCudaBlocker } from '../model/cuda-support.js'
import { resolveDevice, type DeviceRequest } from '../device.js'
import { normalizeRows, truncateRows } from '../util/vectors.js'
import { passFloats } from '../model/pass-floats.js'
import { largestPassWithin, stepMemory } from '../model/memory-budget.js'
import type { RunOptions } from './protocol.js'
import { DenseLayer, type DenseConfig } from './dense.js'

/** Sentences tokenized per call to the tokenizer (bounds the padded temporary it returns). */
const TOKENIZE_CHUNK = 1024

export interface Tokenized {
  /** Real tokens of every sentence, back to back. */
  ids: Int32Array
  types: Int32Array
  /** Sentence i's tokens are [offsets[i], offsets[i + 1]). */
  offsets: Int32Array
}

/** Token ids of each sentence, truncated to maxLength, packed without padding (what SentenceEncoder encodes). */
export async function tokenizePacked(tokenizer: Tokenizer, sentences: readonly string[], maxLength: number): Promise<Tokenized> {
  const rows: { ids: Int32Array; types: Int32Array }[] = []
  let total = 0
  for (let s = 0; s < sentences.length; s += TOKENIZE_CHUNK) {
    const enc = await tokenizer.encodeBatch(sentences.slice(s, s + TOKENIZE_CHUNK), { maxLength })
    const [B, T] = enc.shape
    for (let b = 0; b < B; b++) {
      let n = 0
      while (n < T && enc.attentionMask[b * T + n]) n++
      rows.push({ ids: enc.inputIds.slice(b * T, b * T + n), types: enc.tokenTypeIds.slice(b * T, b * T + n) })
      total += n
    }
  }
  const ids = new Int32Array(total),
    types = new Int32Array(total),
    offsets = new Int32Array(rows.length + 1)
  for (let i = 0, o = 0; i < rows.length; i++) {
    ids.set(rows[i].ids, o)
    types.set(rows[i].types, o)
    o += rows[i].ids.length
    offsets[i + 1] = o
  }
  return { ids, types, offsets }
}

/** The batch of the given sentences of `tok`, each padded to T tokens with `padId` (T at least the longest). */
export function paddedBatch(tok: Tokenized, indices: Int32Array, T: number, padId: number): Required<Omit<BatchInput, 'positionIds'>> {
  const B = indices.length
  const inputIds = new Int32Array(B * T).fill(padId)
  const attentionMask = new Int32Array(B * T)
  const tokenTypeIds = new Int32Array(B * T)
  for (let b = 0; b < B; b++) {
    const i = indices[b],
      from = tok.offsets[i],
      to = tok.offsets[i + 1]
    inputIds.set(tok.ids.subarray(from, to), b * T)
    tokenTypeIds.set(tok.types.subarray(from, to), b * T)
    attentionMask.fill(1, b * T, b * T + (to - from))
  }
  return { inputIds, attentionMask, tokenTypeIds, shape: [B, T] }
}

/** The longest of the given sentences of `tok`, in tokens (at least 1). */
export function longestOf(tok: Tokenized, indices: Int32Array): number {
  let T = 1
  for (const i of indices) T = Math.max(T, tok.offsets[i + 1] - tok.offsets[i])
  return T
}

export class EmbeddingEngine {
  private constructor(
    readonly model: BertModel,
    readonly tokenizer: Tokenizer,
    readonly device: 'cpu' | 'cuda',
    readonly note: string | undefined,
    /** Activation bytes one forward pass may use (memory-budget.ts); a larger batch runs in several passes. */
    readonly passBudget: number,
    /** sentence-transformers Dense modules after the pooling (dense.ts), in order. */
    readonly dense: readonly DenseLayer[] = [],
  ) {}

  /**
   * On CUDA, each batch shape's forward runs as a CUDA graph from its second batch on (BertModel.embed's
   * graph option; length-sorted batches repeat shapes). SIMCSEPP_CUDA_GRAPHS=0 (read at each batch) turns
   * them off.
   */
  get graphs(): boolean {
    return this.device === 'cuda' && process.env.SIMCSEPP_CUDA_GRAPHS !== '0'
  }

  /** What the precision costs here that the caller may not expect (int8 without VNNI), if anything. */
  get precisionNote(): string | undefined {
    if (!this.model.int8 || addon.int8Kernel() !== 'generic') return undefined
    return "precision 'int8': this CPU has no int8 dot-product instructions (x86's AVX512-VNNI or AVX-VNNI, aarch64's SDOT), so the int8 products run on the portable kernel, several times slower than fp32's"
  }

  /** The products' precision: the model's, or 'int8' (BertModel.quantizeInt8). */
  get precision(): EncoderPrecision {
    return this.model.int8 ? 'int8' : this.model.precision
  }

  /** Width of the vectors: the last Dense module's output, else the encoder's. */
  get dimension(): number {
    return this.dense.at(-1)?.config.outFeatures ?? this.model.config.hiddenSize
  }

  /** Positions a sentence may use ([CLS] and [SEP] included). */
  get maxPositions(): number {
    const c = this.model.config
    return c.maxPositionEmbeddings - positionOffset(c)
  }

  /**
   * `passBudget`: activation bytes per forward pass (default: the device's, memory-budget.ts); `dense`: the
   * sentence-transformers Dense modules to apply after the pooling (their weights are loaded here).
   */
  static async load(
    dir: string,
    request: DeviceRequest,
    precision: EncoderPrecisionRequest = 'auto',
    passBudget?: number,
    dense: readonly DenseConfig[] = [],
  ): Promise<EmbeddingEngine> {
    const tokenizer = await Tokenizer.load(dir)
    const policy = { who: 'SentenceEncoder', needs: { what: 'the encoder', cudaBlocker: () => encoderCudaBlocker() } }
    // int8 runs on the CPU only: 'auto' then means the CPU.
    if (precision === 'int8' && request === 'cuda')
      throw new Error("SentenceEncoder: precision 'int8' runs on the CPU (device 'cpu' or 'auto'); on CUDA, 'bf16' is the fast one")
    const int8 = precision === 'int8'
    const { device, note } = resolveDevice(int8 ? 'cpu' : request, policy, addon.cudaStatus())
    const model = await BertModel.load(dir, { device, precision: int8 ? 'fp32' : effectivePrecision(precision, device) })
    const layers: DenseLayer[] = []
    try {
      if (int8) model.quantizeInt8()
      for (const d of dense) layers.push(await DenseLayer.load(d, device))
    } catch (e) {
      for (const l of layers) l.dispose()
      model.dispose()
      throw e
    }
    return new EmbeddingEngine(model, tokenizer, device, note, passBudget ?? stepMemory(device).autoBudget, layers)
  }

  /** The sentence indices of each batch: longest first when sorting, else input order. */
  static batches(tok: Tokenized, batchSize: number, sortByLength: boolean): Int32Array[] {
    const n = tok.offsets.length - 1
    const order = Int32Array.from({ length: n }, (_, i) => i)
    if (sortByLength) {
      const len = (i: number) => tok.offsets[i + 1] - tok.offsets[i]
      order.sort((a, b) => len(b) - len(a) || a - b)
    }
    const out: Int32Array[] = []
    for (let s = 0; s < n; s += batchSize) out.push(order.subarray(s, Math.min(n, s + batchSize)))
    return out
  }

  /**
   * Vectors [indices.length, H] of the given sentences, padded to the longest of them. A batch whose
   * activations exceed passBudget runs in passes of the most sentences that fit (each sentence's vector
   * does not depend on the others in its batch but for float32 rounding: ~1e-6 apart).
   */
  embedBatch(tok: Tokenized, indices: Int32Array, pooling: Pooling, normalize: boolean, skip = 0): Float32Array {
    const T = longestOf(tok, indices)
    const bytes = (m: number) => passFloats(this.model.config, m, T, false) * 4
    if (indices.length > 1 && bytes(indices.length) > this.passBudget) {
      const pass = largestPassWithin(bytes, indices.length, this.passBudget)
      const out = new Float32Array(indices.length * this.dimension)
      for (let s = 0; s < indices.length; s += pass)
        out.set(this.embedBatch(tok, indices.subarray(s, s + pass), pooling, normalize, skip), s * this.dimension)
      return out
    }
    return this.embedPass(tok, indices, T, pooling, normalize, skip)
  }

  /**
   * One forward pass over the given sentences, padded to T tokens. skip > 0: the pooling (but CLS's) leaves each
   * sentence's first `skip` tokens out (a prompt's, include_prompt false).
   */
  private embedPass(tok: Tokenized, indices: Int32Array, T: number, pooling: Pooling, normalize: boolean, skip = 0): Float32Array {
    const B = indices.length
    const { inputIds, attentionMask, tokenTypeIds } = paddedBatch(tok, indices, T, this.tokenizer.padTokenId)
    let poolMask: Int32Array | undefined
    if (skip > 0 && pooling !== 'cls') {
      poolMask = attentionMask.slice()
      for (let b = 0; b < B; b++) poolMask.fill(0, b * T, b * T + Math.min(skip, T))
    }
    let out = this.model.embed({ inputIds, attentionMask, tokenTypeIds, shape: [B, T] }, pooling, { graph: this.graphs, poolMask })
    for (const layer of this.dense) {
      const x = out
      try {
        out = layer.forward(x, this.model.precision)
      } finally {
        x.dispose()
      }
    }
    let vectors: Float32Array
    try {
      vectors = out.toFloat32Array()
    } finally {
      out.dispose()
    }
    if (normalize) normalizeRows(vectors, this.dimension)
    return vectors
  }

  /** Encodes all sentences, handing each batch's vectors to `onBatch` (between batches it awaits `yieldFn`). */
  async run(
    sentences: readonly string[],
    o: RunOptions,
    onBatch: (indices: Int32Array, vectors: Float32Array) => void,
    yieldFn: () => Promise<void> = () => Promise.resolve(),
  ): Promise<void> {
    const maxLength = Math.min(o.maxLength, this.maxPositions)
    // As sentence-transformers' Transformer.tokenize: str.lower() before the tokenizer, whatever its normalizer does.
    const lower = (s: string) => (o.lowercase ? s.toLowerCase() : s)
    const tok = await tokenizePacked(this.tokenizer, sentences.map(lower), maxLength)
    // include_prompt false: sentence-transformers' prompt_length, the prompt tokenized alone less its [SEP].
    const skip = o.excludePrompt ? (await tokenizePacked(this.tokenizer, [lower(o.excludePrompt)], maxLength)).ids.length - 1 : 0
    for (const indices of EmbeddingEngine.batches(tok, o.batchSize, o.sortByLength)) {
      await yieldFn()
      const k = o.truncateDim
      if (k === null || k >= this.dimension) onBatch(indices.slice(), this.embedBatch(tok, indices, o.pooling, o.normalize, skip))
      else {
        // Matryoshka: the first k values of each vector, normalised after the cut (so that they are unit vectors).
        const vectors = truncateRows(this.embedBatch(tok, indices, o.pooling, false, skip), this.dimension, k)
        if (o.normalize) normalizeRows(vectors, k)
        onBatch(indices.slice(), vectors)
      }
    }
  }

  dispose(): void {
    for (const l of this.dense) l.dispose()
    this.model.dispose()
  }
}
