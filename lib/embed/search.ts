// Cosine search over sentence vectors held as unit vectors in native memory (a VectorIndex: normalised
// once, so repeated searches only pay the scoring), or dot-product search over them as they are
// (similarityFn 'dot': msmarco's and multi-qa's *-dot-* models rank by the raw dot product). On the CPU one
// fused native pass (native/cpu/search.h) streams the corpus once, dots each row with every query and keeps each query's top k; on CUDA the
// GEMM scores a block of corpus rows at a time and a small heap per query keeps the top k. searchAsync()
// hands the event loop back between chunks of rows.
import { addon } from '../native.js'
import { linearForward } from '../ops.js'
import { Tensor, nativeOf, type Device } from '../tensor.js'

/** Vectors: an array of equal-length vectors, or one flat row-major Float32Array (then a dimension is needed). */
export type VectorsInput = readonly ArrayLike<number>[] | Float32Array

export interface SearchOptions {
  /** Hits per query, best first (default 10); more than the corpus holds returns the whole corpus. */
  topK?: number
}

export interface AsyncSearchOptions extends SearchOptions {
  /** Milliseconds of blocks that may run before the event loop gets a turn (default 8; 0: after every block). */
  yieldAfterMs?: number
}

/** One query's hits, best first: corpus indices and their cosine similarities (ties: lower index first). */
export interface SearchResult {
  indices: number[]
  scores: number[]
}

/**
 * Corpus rows per GEMM block: 1024 rows (3 MB at 768 dimensions) stay in cache while the GEMM works on
 * them, measured 1.5-2x faster than 16k-row blocks; fewer when many queries would make the block's
 * scores exceed 4M floats (16 MB).
 */
const BLOCK_ROWS = 1024
const BLOCK_ELEMENTS = 1 << 22

/**
 * searchAsync() yields to the event loop once this many milliseconds of blocks have run: long enough that
 * the yields cost little (one block of 1024 × 768 is ~1 ms here), short enough that timers and I/O wait
 * at most about this long.
 */
const YIELD_AFTER_MS = 8

/**
 * Corpus rows per native call of an asynchronous CPU search, between which it may yield: 4096 rows of 768
 * dimensions (12 MB) take 1-3 ms to stream here, enough for every thread to take a share (the native op
 * splits a call's rows into parts of at least 256), while a call's fixed cost (merging each query's hits)
 * is a few microseconds. A synchronous search makes one call over the whole corpus.
 */
const CPU_CHUNK_ROWS = 4096

export interface VectorIndexOptions {
  /** Where the vectors live and are scored (default 'cpu': the fused native pass; 'cuda': the GEMM, needs a usable CUDA device). */
  device?: Device
  /**
   * The score: 'cosine' (default: the vectors normalised, here and the queries at each search) or 'dot' (the dot
   * product of the vectors as they are: a dot-product model's similarity, config_sentence_transformers.json's
   * similarity_fn_name 'dot').
   */
  similarityFn?: IndexSimilarity
}

/** The scores a VectorIndex ranks by. */
export type IndexSimilarity = 'cosine' | 'dot'

function fail(message: string): never {
  throw new Error(`search: ${message}`)
}

/** The shape of `input` ([rows, dim]: a flat Float32Array of `dimension`-long rows, or an array of vectors), checked. */
function rowsShape(name: string, input: VectorsInput, dimension?: number): { rows: number; dim: number } {
  let rows: number, dim: number
  if (input instanceof Float32Array) {
    if (dimension === undefined) fail(`${name} is a flat Float32Array: its dimension is needed`)
    dim = dimension
    if (input.length === 0) fail(`${name} is empty`)
    if (input.length % dim !== 0) fail(`${name} holds ${input.length} floats, not a multiple of the dimension ${dim}`)
    rows = input.length / dim
  } else if (Array.isArray(input)) {
    if (input.length === 0) fail(`${name} is empty`)
    dim = dimension ?? (input[0] as ArrayLike<number>)?.length
    for (let r = 0; r < input.length; r++) {
      const v = input[r] as ArrayLike<number>
      if (!v || typeof v !== 'object' || typeof v.length !== 'number') fail(`${name}[${r}] is not a vector`)
      if (v.length !== dim) fail(`${name}[${r}] has ${v.length} dimensions, expected ${dim}`)
    }
    rows = input.length
  } else fail(`${name} must be an array of vectors or a flat Float32Array`)
  if (!Number.isSafeInteger(dim) || dim < 1) fail(`${name}: the dimension must be a positive integer, got ${dim}`)
  return { rows, dim }
}

/** The vectors of `input` as one row-major Float32Array (`input` itself when it is one), checked for shape. */
function flatRows(name: string, input: VectorsInput, dimension?: number): { flat: Float32Array; rows: number; dim: number } {
  const { rows, dim } = rowsShape(name, input, dimension)
  if (input instanceof Float32Array) return { flat: input, rows, dim }
  const flat = new Float32Array(rows * dim)
  input.forEach((v, r) => flat.set(v, r * dim))
  return { flat, rows, dim }
}

/**
 * The vectors of `input` copied into a new [rows, dim] CPU tensor, and the float at a flat index (for errors). An
 * array of vectors goes through a reused buffer of 4 MB: a Float32Array of the whole corpus would pay the first
 * touch of each of its pages, about 1 s for 307 MB on the 2-vCPU VM (the copies themselves: ~30 ms).
 */
function nativeRows(name: string, input: VectorsInput, dimension?: number) {
  const { rows, dim } = rowsShape(name, input, dimension)
  if (input instanceof Float32Array) return { host: Tensor.from(input, [rows, dim]), rows, dim, at: (i: number) => input[i] }
  const host = Tensor.zeros([rows, dim])
  try {
    const chunkRows = Math.max(1, Math.min(rows, Math.floor((1 << 20) / dim)))
    const chunk = new Float32Array(chunkRows * dim)
    for (let r0 = 0; r0 < rows; r0 += chunkRows) {
      const n = Math.min(chunkRows, rows - r0)
      for (let k = 0; k < n; k++) chunk.set(input[r0 + k], k * dim)
      const view = host.view(r0 * dim, [n, dim])
      view.copyFrom(n === chunkRows ? chunk : chunk.subarray(0, n * dim))
      view.dispose()
    }
  } catch (e) {
    host.dispose()
    throw e
  }
  return { host, rows, dim, at: (i: number) => Math.fround(input[Math.floor(i / dim)][i % dim]) }
}

function notFinite(name: string, value: number, dim: number, at: number): never {
  fail(`${name}[${Math.floor(at / dim)}][${at % dim}] is ${value}, not a finite number`)
}

/** Fails on the first value of `input` that is not a finite number (what unitRows checks as it normalises). */
function checkFinite(name: string, input: VectorsInput, dimension?: number): void {
  const { dim } = rowsShape(name, input, dimension)
  if (input instanceof Float32Array) {
    for (let j = 0; j < input.length; j++) if (!Number.isFinite(input[j])) notFinite(name, input[j], dim, j)
    return
  }
  input.forEach((v, r) => {
    for (let j = 0; j < dim; j++) if (!Number.isFinite(v[j])) notFinite(name, v[j], dim, r * dim + j)
  })
}

/** flatRows, every value checked finite. */
export function checkedRows(name: string, input: VectorsInput, dimension?: number): { data: Float32Array; rows: number; dim: number } {
  checkFinite(name, input, dimension)
  const { flat, rows, dim } = flatRows(name, input, dimension)
  return { data: flat, rows, dim }
}

/**
 * The rows of `input` scaled to unit length (zero rows stay zero, so they score 0 against everything,
 * as cosineSimilarity does), row-major. `name` is the argument's name in errors. (native/cpu/unit_rows.h does the
 * same arithmetic for a corpus.)
 */
export function unitRows(name: string, input: VectorsInput, dimension?: number): { data: Float32Array; rows: number; dim: number } {
  const { flat: given, rows, dim } = flatRows(name, input, dimension)
  const flat = given === input ? given.slice() : given // a copy: normalised in place below
  for (let r = 0; r < rows; r++) {
    let s = 0
    for (let j = r * dim; j < (r + 1) * dim; j++) {
      if (!Number.isFinite(flat[j])) notFinite(name, flat[j], dim, j)
      s += flat[j] * flat[j] // float64 sum: the norm is exact to float32 rounding
    }
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0
    for (let j = r * dim; j < (r + 1) * dim; j++) flat[j] *= inv
  }
  return { data: flat, rows, dim }
}

function checkTopK(topK: unknown): number {
  if (!Number.isSafeInteger(topK) || (topK as number) < 1) fail(`topK must be a positive integer, got ${JSON.stringify(topK)}`)
  return topK as number
}

/** One block of scores: [rows, queries] (block · queriesᵀ) for corpus rows [start, start + rows). */
interface Block {
  scores: Float32Array
  queries: number
  start: number
  rows: number
}

/** A corpus of vectors in native memory, searched by cosine similarity (unit vectors) or dot product. dispose() frees it. */
export class VectorIndex {
  private constructor(
    private readonly corpus: Tensor,
    /** Vectors in the index. */
    readonly size: number,
    /** Length of each vector. */
    readonly dimension: number,
    /** What the scores are: cosine similarities or dot products. */
    readonly similarityFn: IndexSimilarity,
  ) {}

  /**
   * Copies `corpus` (vectors, or a flat Float32Array of `dimension`-long rows) to `options.device`, normalised unless
   * `options.similarityFn` is 'dot'.
   */
  static from(corpus: VectorsInput, dimension?: number, options: VectorIndexOptions = {}): VectorIndex {
    if (options === null || typeof options !== 'object') fail('VectorIndex.from: options must be an object')
    const device = options.device ?? 'cpu'
    if (device !== 'cpu' && device !== 'cuda') fail(`VectorIndex.from: device must be 'cpu' or 'cuda', got ${JSON.stringify(device)}`)
    const similarity = options.similarityFn ?? 'cosine'
    if (similarity !== 'cosine' && similarity !== 'dot')
      fail(`VectorIndex.from: similarityFn must be 'cosine' or 'dot', got ${JSON.stringify(similarity)}`)
    // Copied to native memory as given and normalised there (in JavaScript: 1.2 s for 100,000 x 768).
    if (similarity === 'dot') checkFinite('corpus', corpus, dimension)
    const { host, rows, dim, at } = nativeRows('corpus', corpus, dimension)
    let kept = false // the index holds host itself
    try {
      if (similarity === 'cosine') {
        const bad = addon.unitRows(nativeOf(host, 'corpus'))
        if (bad >= 0) notFinite('corpus', at(bad), dim, bad)
      }
      const index = new VectorIndex(device === 'cpu' ? host : host.to(device), rows, dim, similarity)
      kept = device === 'cpu'
      return index
    } finally {
      if (!kept) host.dispose()
    }
  }

  /** Where the vectors live and are scored. */
  get device(): Device {
    return this.corpus.device
  }

  /** Each query's topK corpus vectors by cosine similarity, best first (blocks the event loop until done). */
  search(queries: VectorsInput, options: SearchOptions = {}): SearchResult[] {
    if (this.device === 'cpu') {
      const fused = this.fusedSearch(queries, options)
      fused.step(this.size)
      return fused.results()
    }
    const top = this.topK(options)
    for (const block of this.blocks(queries)) top.add(block)
    return top.results()
  }

  /**
   * search(), handing the event loop back every few milliseconds between blocks of corpus rows, so that a
   * large corpus (100,000 vectors) does not hold up timers and I/O for the whole search. Same results.
   */
  async searchAsync(queries: VectorsInput, options: AsyncSearchOptions = {}): Promise<SearchResult[]> {
    const top = this.topK(options)
    const { yieldAfterMs = YIELD_AFTER_MS } = options
    if (typeof yieldAfterMs !== 'number' || !(yieldAfterMs >= 0))
      fail(`yieldAfterMs must be a number >= 0, got ${JSON.stringify(yieldAfterMs)}`)
    let since = performance.now()
    if (this.device === 'cpu') {
      const fused = this.fusedSearch(queries, options)
      while (fused.step(CPU_CHUNK_ROWS)) {
        if (performance.now() - since >= yieldAfterMs) {
          await new Promise((resolve) => setImmediate(resolve))
          since = performance.now()
        }
      }
      return fused.results()
    }
    for (const block of this.blocks(queries)) {
      top.add(block)
      if (performance.now() - since >= yieldAfterMs) {
        await new Promise((resolve) => setImmediate(resolve))
        since = performance.now()
      }
    }
    return top.results()
  }

  /** The scores (cosine similarities, or dot products with similarityFn 'dot'), queries × corpus: one Float32Array of `size` per query. */
  similarity(queries: VectorsInput): Float32Array[] {
    const out: Float32Array[] = []
    for (const { scores, queries: nq, start, rows } of this.blocks(queries)) {
      for (let q = 0; q < nq; q++) {
        const row = (out[q] ??= new Float32Array(this.size))
        for (let j = 0; j < rows; j++) row[start + j] = scores[j * nq + q]
      }
    }
    return out
  }

  dispose(): void {
    this.corpus.dispose()
  }

  /**
   * A CPU search by the fused native scorer: step(rows) searches the next `rows` corpus rows and says
   * whether any are left; each query's hits so far live in two typed arrays ([queries, k], best first)
   * that every step merges into. The index is checked before each step: it may be disposed between them.
   */
  private fusedSearch(queries: VectorsInput, options: SearchOptions): { step(rows: number): boolean; results(): SearchResult[] } {
    const k = this.checkedK(options)
    const qs = this.unitQueries(queries)
    const scores = new Float32Array(qs.rows * k)
    const indices = new Int32Array(qs.rows * k).fill(-1)
    let next = 0
    return {
      step: (rows) => {
        if (this.corpus.disposed) fail(next === 0 ? 'the index was disposed' : 'the index was disposed during the search')
        const end = Math.min(this.size, next + rows)
        addon.searchTopK(nativeOf(this.corpus, 'corpus'), qs.data, k, next, end, scores, indices)
        next = end
        return next < this.size
      },
      // k <= size, so after the last step every slot holds a hit.
      results: () =>
        Array.from({ length: qs.rows }, (_, q) => ({
          indices: Array.from(indices.subarray(q * k, (q + 1) * k)),
          scores: Array.from(scores.subarray(q * k, (q + 1) * k)),
        })),
    }
  }

  private checkedK(options: SearchOptions): number {
    if (options === null || typeof options !== 'object') fail('options must be an object')
    return Math.min(checkTopK(options.topK ?? 10), this.size)
  }

  /** The queries as the index scores them: unit vectors for cosine, as they are (checked) for dot. */
  private unitQueries(queries: VectorsInput): { data: Float32Array; rows: number; dim: number } {
    if (this.corpus.disposed) fail('the index was disposed')
    const qs =
      this.similarityFn === 'cosine' ? unitRows('queries', queries, this.dimension) : checkedRows('queries', queries, this.dimension)
    if (qs.dim !== this.dimension) fail(`queries have ${qs.dim} dimensions, the corpus ${this.dimension}`)
    return qs
  }

  /** One heap per query, filled block by block. */
  private topK(options: SearchOptions): { add(block: Block): void; results(): SearchResult[] } {
    const k = this.checkedK(options)
    const heaps: TopK[] = []
    return {
      add: ({ scores, queries, start, rows }) => {
        for (let q = 0; q < queries; q++) (heaps[q] ??= new TopK(k)).offer(scores, q, queries, rows, start)
      },
      results: () => heaps.map((h) => h.sorted()),
    }
  }

  /**
   * The scores block by block (the GEMM is 3x faster with the corpus rows as its M than as its N). A
   * generator, so that searchAsync can pause between blocks; the index is checked before each block,
   * since it may be disposed while a search waits.
   */
  private *blocks(queries: VectorsInput): Generator<Block> {
    const qs = this.unitQueries(queries)
    const blockRows = Math.max(1, Math.min(BLOCK_ROWS, Math.floor(BLOCK_ELEMENTS / qs.rows)))
    const device = this.corpus.device
    const q = Tensor.from(qs.data, [qs.rows, qs.dim], device)
    const out = Tensor.zeros([Math.min(blockRows, this.size), qs.rows], device)
    try {
      for (let start = 0; start < this.size; start += blockRows) {
        if (this.corpus.disposed) fail('the index was disposed during the search')
        const rows = Math.min(blockRows, this.size - start)
        const block = this.corpus.view(start * this.dimension, [rows, this.dimension])
        const o = rows === out.shape[0] ? out : out.view(0, [rows, qs.rows])
        linearForward(o, block, q, null) // o = block · qᵀ
        const scores = o.toFloat32Array()
        if (o !== out) o.dispose()
        block.dispose()
        yield { scores, queries: qs.rows, start, rows }
      }
    } finally {
      q.dispose()
      out.dispose()
    }
  }
}

/**
 * The k best (score, index) pairs seen: a min-heap whose root is the worst kept (lowest score; among
 * equal scores the highest index), so that a candidate is compared with one number in the common case.
 */
class TopK {
  private readonly s: Float64Array
  private readonly i: Int32Array
  private n = 0

  constructor(private readonly k: number) {
    this.s = new Float64Array(k)
    this.i = new Int32Array(k)
  }

  /** Offers scores[from + j·stride] for j < count, corpus index base + j (ascending across calls). */
  offer(scores: Float32Array, from: number, stride: number, count: number, base: number): void {
    for (let j = 0; j < count; j++) {
      const v = scores[from + j * stride]
      // Indices arrive in ascending order, so an equal score never beats a kept one (lower index wins ties).
      if (this.n < this.k) this.push(v, base + j)
      else if (v > this.s[0]) this.replaceRoot(v, base + j)
    }
  }

  sorted(): SearchResult {
    const order = Array.from({ length: this.n }, (_, j) => j).sort((a, b) => this.s[b] - this.s[a] || this.i[a] - this.i[b])
    return { indices: order.map((j) => this.i[j]), scores: order.map((j) => this.s[j]) }
  }

  /** Whether slot a is worse than slot b (a lower score, or an equal score and a higher index). */
  private worse(a: number, b: number): boolean {
    return this.s[a] < this.s[b] || (this.s[a] === this.s[b] && this.i[a] > this.i[b])
  }

  private swap(a: number, b: number): void {
    const s = this.s[a],
      i = this.i[a]
    this.s[a] = this.s[b]
    this.i[a] = this.i[b]
    this.s[b] = s
    this.i[b] = i
  }

  private push(score: number, index: number): void {
    let c = this.n++
    this.s[c] = score
    this.i[c] = index
    while (c > 0) {
      const p = (c - 1) >> 1
      if (!this.worse(c, p)) break
      this.swap(c, p)
      c = p
    }
  }

  private replaceRoot(score: number, index: number): void {
    this.s[0] = score
    this.i[0] = index
    for (let c = 0; ;) {
      const l = 2 * c + 1,
        r = l + 1
      let m = c
      if (l < this.n && this.worse(l, m)) m = l
      if (r < this.n && this.worse(r, m)) m = r
      if (m === c) break
      this.swap(c, m)
      c = m
    }
  }
}

/** Each query's topK corpus vectors by cosine similarity, best first (corpus normalised for this call only). */
export function searchVectors(
  queries: VectorsInput,
  corpus: VectorsInput | VectorIndex,
  options: SearchOptions & { dimension?: number } = {},
): SearchResult[] {
  const { dimension, ...rest } = options
  return withIndex(corpus, dimension, (index) => index.search(queries, rest))
}

/** Cosine similarities, queries × corpus, one Float32Array per query. */
export function cosineMatrix(queries: VectorsInput, corpus: VectorsInput | VectorIndex, dimension?: number): Float32Array[] {
  return withIndex(corpus, dimension, (index) => index.similarity(queries))
}

function withIndex<T>(corpus: VectorsInput | VectorIndex, dimension: number | undefined, f: (index: VectorIndex) => T): T {
  if (corpus instanceof VectorIndex) return f(corpus)
  const index = VectorIndex.from(corpus, dimension)
  try {
    return f(index)
  } finally {
    index.dispose()
  }
}
