// A corpus held as the signs of its vectors (ubinary: one bit per dimension, 32x smaller than float32) and searched
// by Hamming distance in one native pass (native/cpu/hamming_search.cpp), then rescored, as sentence-transformers'
// semantic_search_faiss / semantic_search_usearch with a binary corpus:
//   1. each float query's signs are packed as the corpus's, and the topK · rescore corpus rows at the smallest
//      Hamming distance d are found (equal distances: the lower row first);
//   2. rescoring (rescore >= 1): those candidates are ranked by the float query against each candidate's signs,
//      q · s / (|q| √D) with s = ±1 per dimension: the cosine of the query with the sign vector (sentence-transformers
//      ranks by q · b with b = 0/1, which is the same order: q · s = 2 q · b - Σq). Equal scores keep the Hamming order.
//   Without rescoring (rescore: 0) the topK nearest by Hamming distance, scored 1 - 2d / D: the cosine of the two sign
//   vectors.
// The candidates' rescoring reads their bits, so no float copy of the corpus is needed. With rescoreWith it reads their
// full vectors instead (kept on disk or in a database, say: a function fetches the candidates' rows) and scores the
// cosine: the "binary index, rescored from storage" recipe, which recovers more of exact search than the signs can.
import { addon } from '../native.js'
import { floatRows, packSigns } from './quantize.js'
import { type SearchResult, type VectorsInput } from './search.js'

export interface BinarySearchOptions {
  /** Hits per query, best first (default 10); more than the corpus holds returns the whole corpus. */
  topK?: number
  /**
   * Oversampling for rescoring: topK · rescore candidates by Hamming distance, reranked by the float query against
   * their signs (default 4); 0: no rescoring (Hamming order and scores).
   */
  rescore?: number
  /**
   * Rescore by the full vectors instead of the signs: the corpus vectors (row i: vector i; float32, or int8 as stored),
   * or a function from the candidates' rows (ascending, every query's at once) to their vectors in that order (read
   * from disk or a database: searchAsync also awaits a Promise). The score is then the cosine of query and vector.
   */
  rescoreWith?: readonly ArrayLike<number>[] | ((rows: number[]) => readonly ArrayLike<number>[] | Promise<readonly ArrayLike<number>[]>)
}

export interface AsyncBinarySearchOptions extends BinarySearchOptions {
  /** Milliseconds of native calls that may run before the event loop gets a turn (default 8; 0: after every call). */
  yieldAfterMs?: number
}

/** The default oversampling: rescoring 4x the hits recovers most of what the signs lose (README: measured). */
export const DEFAULT_RESCORE = 4

/** Corpus rows per native call of searchAsync: 65,536 rows of 768 bits are 6 MB, a few milliseconds. */
const CHUNK_ROWS = 1 << 16
const YIELD_AFTER_MS = 8

function fail(message: string): never {
  throw new Error(`search: ${message}`)
}

/** A corpus of vectors' signs in memory, searched by Hamming distance and rescored with float queries. */
export class BinaryIndex {
  /** Bytes per corpus row: ceil(dimension / 8). */
  readonly bytesPerRow: number

  private constructor(
    /** The rows' sign bits (ubinary), `bytesPerRow` bytes each. */
    private readonly bits: Uint8Array,
    /** Vectors in the index. */
    readonly size: number,
    /** Dimensions of each vector (bits per row). */
    readonly dimension: number,
  ) {
    this.bytesPerRow = Math.ceil(dimension / 8)
  }

  /** The signs of `corpus` (vectors, or a flat Float32Array of `dimension`-long rows). */
  static from(corpus: VectorsInput, dimension?: number): BinaryIndex {
    const { flat, rows, dim } = floatRows('corpus', corpus, dimension, fail)
    return new BinaryIndex(packSigns(flat, rows, dim), rows, dim)
  }

  /**
   * An index of rows already quantized by quantizeEmbeddings (or read back from storage): 'ubinary' rows (Uint8Array)
   * or 'binary' rows (Int8Array), as an array of rows or one flat array, of vectors of `dimension` dimensions.
   */
  static fromQuantized(rows: readonly (Uint8Array | Int8Array)[] | Uint8Array | Int8Array, dimension: number): BinaryIndex {
    if (!Number.isSafeInteger(dimension) || dimension < 1)
      fail(`BinaryIndex.fromQuantized: dimension must be a positive integer, got ${dimension}`)
    const width = Math.ceil(dimension / 8)
    const list = Array.isArray(rows) ? rows : [rows]
    let total = 0
    for (const [r, row] of list.entries()) {
      if (!(row instanceof Uint8Array) && !(row instanceof Int8Array))
        fail(`BinaryIndex.fromQuantized: rows[${r}] is not a Uint8Array or Int8Array`)
      if (Array.isArray(rows) && row.length !== width)
        fail(`BinaryIndex.fromQuantized: rows[${r}] has ${row.length} bytes, ${dimension} dimensions pack into ${width}`)
      total += row.length
    }
    if (total === 0) fail('BinaryIndex.fromQuantized: rows is empty')
    if (total % width !== 0)
      fail(`BinaryIndex.fromQuantized: ${total} bytes are not whole rows of ${width} bytes (${dimension} dimensions)`)
    const bits = new Uint8Array(total)
    let at = 0
    for (const row of list) {
      // binary (int8) bytes are ubinary's minus 128: the high bit flipped back.
      if (row instanceof Int8Array) for (let i = 0; i < row.length; i++) bits[at + i] = (row[i] + 128) & 0xff
      else bits.set(row, at)
      at += row.length
    }
    return new BinaryIndex(bits, total / width, dimension)
  }

  /** The rows' sign bits as ubinary bytes (a copy), `bytesPerRow` per row: what fromQuantized reads back. */
  toUbinary(): Uint8Array {
    return this.bits.slice()
  }

  /** Each query's topK corpus rows, best first (blocks the event loop until done). */
  search(queries: VectorsInput, options: BinarySearchOptions = {}): SearchResult[] {
    const s = this.start(queries, options)
    s.step(this.size)
    const vectors = s.fetch()
    if (vectors instanceof Promise) fail('rescoreWith returned a Promise: use searchAsync')
    return s.results(vectors)
  }

  /** search(), handing the event loop back every few milliseconds between chunks of corpus rows. Same results. */
  async searchAsync(queries: VectorsInput, options: AsyncBinarySearchOptions = {}): Promise<SearchResult[]> {
    const { yieldAfterMs = YIELD_AFTER_MS } = options ?? {}
    if (typeof yieldAfterMs !== 'number' || !(yieldAfterMs >= 0))
      fail(`yieldAfterMs must be a number >= 0, got ${JSON.stringify(yieldAfterMs)}`)
    const s = this.start(queries, options)
    let since = performance.now()
    while (s.step(CHUNK_ROWS)) {
      if (performance.now() - since >= yieldAfterMs) {
        await new Promise((resolve) => setImmediate(resolve))
        since = performance.now()
      }
    }
    return s.results(await s.fetch())
  }

  /**
   * A search in steps of corpus rows: step(rows) says whether rows are left; fetch() gets the candidates' vectors when
   * rescoreWith asks for them (a map from row to vector, else null); results() ranks and rescores.
   */
  private start(
    queries: VectorsInput,
    options: BinarySearchOptions,
  ): {
    step(rows: number): boolean
    fetch(): Map<number, ArrayLike<number>> | null | Promise<Map<number, ArrayLike<number>> | null>
    results(vectors: Map<number, ArrayLike<number>> | null): SearchResult[]
  } {
    if (options === null || typeof options !== 'object') fail('options must be an object')
    for (const key of Object.keys(options))
      if (!['topK', 'rescore', 'rescoreWith', 'yieldAfterMs'].includes(key)) fail(`unknown option ${JSON.stringify(key)}`)
    const { topK = 10, rescore = DEFAULT_RESCORE, rescoreWith } = options
    if (rescoreWith !== undefined && typeof rescoreWith !== 'function' && !Array.isArray(rescoreWith))
      fail('rescoreWith must be an array of the corpus vectors or a function from rows to their vectors')
    if (Array.isArray(rescoreWith) && rescoreWith.length !== this.size)
      fail(`rescoreWith holds ${rescoreWith.length} vectors, the index ${this.size}`)
    if (rescoreWith !== undefined && rescore === 0) fail('rescoreWith rescores: give a rescore of 1 or more')
    if (!Number.isSafeInteger(topK) || topK < 1) fail(`topK must be a positive integer, got ${JSON.stringify(topK)}`)
    if (!Number.isSafeInteger(rescore) || rescore < 0)
      fail(`rescore must be a non-negative integer (0: no rescoring), got ${JSON.stringify(rescore)}`)
    const q = floatRows('queries', queries, Array.isArray(queries) ? undefined : this.dimension, fail)
    if (q.dim !== this.dimension) fail(`queries have ${q.dim} dimensions, the corpus ${this.dimension}`)
    const k = Math.min(topK, this.size)
    const candidates = Math.min(this.size, k * Math.max(1, rescore))
    const packed = packSigns(q.flat, q.rows, q.dim)
    const scores = new Float32Array(q.rows * candidates)
    const indices = new Int32Array(q.rows * candidates).fill(-1)
    let next = 0
    return {
      step: (rows) => {
        const end = Math.min(this.size, next + rows)
        addon.hammingTopK(this.bits, this.bytesPerRow, packed, candidates, next, end, scores, indices)
        next = end
        return next < this.size
      },
      fetch: () => {
        if (rescoreWith === undefined) return null
        const rows = [...new Set(indices)].sort((a, b) => a - b)
        const got = typeof rescoreWith === 'function' ? rescoreWith(rows) : rows.map((r) => rescoreWith[r])
        const check = (vectors: readonly ArrayLike<number>[]) => {
          if (!Array.isArray(vectors) || vectors.length !== rows.length)
            fail(`rescoreWith gave ${Array.isArray(vectors) ? vectors.length : 'no array of'} vectors for ${rows.length} rows`)
          return new Map(rows.map((row, i) => [row, this.checkedVector(vectors[i], row)]))
        }
        return got instanceof Promise ? got.then(check) : check(got)
      },
      results: (vectors) =>
        Array.from({ length: q.rows }, (_, r) => {
          const found = Array.from(indices.subarray(r * candidates, (r + 1) * candidates))
          if (rescore === 0) {
            const d = this.dimension
            return { indices: found, scores: Array.from(scores.subarray(r * candidates, (r + 1) * candidates), (s) => 1 + (2 * s) / d) }
          }
          const query = q.flat.subarray(r * q.dim, (r + 1) * q.dim)
          return vectors ? rescoredByVectors(query, found, k, vectors) : this.rescored(query, found, k)
        }),
    }
  }

  /** rescoreWith's vector of `row`, checked: the index's dimension, finite values. */
  private checkedVector(v: ArrayLike<number>, row: number): ArrayLike<number> {
    if (!v || typeof v !== 'object' || v.length !== this.dimension)
      fail(`rescoreWith's vector of row ${row} has ${v?.length} values, the index ${this.dimension} dimensions`)
    for (let j = 0; j < v.length; j++) if (!Number.isFinite(v[j])) fail(`rescoreWith's vector of row ${row}: [${j}] is ${v[j]}`)
    return v
  }

  /** The k best of `found` (in Hamming order) by the cosine of `query` with each one's sign vector. */
  private rescored(query: Float32Array, found: number[], k: number): SearchResult {
    const d = this.dimension,
      w = this.bytesPerRow
    // q · s = 2 q · b - Σq (b: the 0/1 bits). q · b by byte: table[p · 256 + v] = the sum of q over the set bits of
    // byte value v at byte p (the high bit is dimension 8p), built one bit at a time, so a candidate costs w lookups
    // instead of d multiply-adds (6x faster for 768 dimensions and 40 candidates).
    const table = new Float64Array(w * 256)
    let norm = 0,
      sum = 0
    for (let j = 0; j < d; j++) [norm, sum] = [norm + query[j] * query[j], sum + query[j]]
    for (let p = 0; p < w; p++)
      for (let v = 1; v < 256; v++) {
        const j = 8 * p + 7 - (31 - Math.clz32(v & -v)) // the dimension of v's lowest set bit
        table[p * 256 + v] = table[p * 256 + (v & (v - 1))] + (j < d ? query[j] : 0)
      }
    const scale = norm > 0 ? 1 / Math.sqrt(norm * d) : 0
    const bits = this.bits
    const scored = found.map((row, order) => {
      let dot = 0
      for (let p = 0, o = row * w; p < w; p++) dot += table[p * 256 + bits[o + p]]
      return { row, order, score: (2 * dot - sum) * scale }
    })
    scored.sort((a, b) => b.score - a.score || a.order - b.order)
    const kept = scored.slice(0, k)
    return { indices: kept.map((h) => h.row), scores: kept.map((h) => h.score) }
  }
}

/** The k best of `found` (in Hamming order) by the cosine of `query` with each one's vector (float64; ties: that order). */
function rescoredByVectors(query: Float32Array, found: number[], k: number, vectors: Map<number, ArrayLike<number>>): SearchResult {
  let qq = 0
  for (let j = 0; j < query.length; j++) qq += query[j] * query[j]
  const scored = found.map((row, order) => {
    const v = vectors.get(row)!
    let dot = 0,
      vv = 0
    for (let j = 0; j < query.length; j++) {
      dot += query[j] * v[j]
      vv += v[j] * v[j]
    }
    return { row, order, score: qq > 0 && vv > 0 ? dot / Math.sqrt(qq * vv) : 0 }
  })
  scored.sort((a, b) => b.score - a.score || a.order - b.order)
  const kept = scored.slice(0, k)
  return { indices: kept.map((h) => h.row), scores: kept.map((h) => h.score) }
}
