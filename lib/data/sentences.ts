// The training data source: a text file with one sentence per line (wiki1m: 10^6 lines, ~120 MB).
// The file's text is never held in memory. One streaming pass validates it and records where every
// non-blank line starts and how long it is (12 bytes a line: ~12 MB for wiki1m); batches are then read
// back by offset. The shuffling is a seeded Fisher–Yates per epoch, so a run is reproducible on any
// machine and resumable from a small JSON cursor.
import { createHash } from 'node:crypto'
import { createReadStream, promises as fsp } from 'node:fs'
import { decodeLine } from './text-lines.js'
import { noDuplicateBatches } from './no-duplicates.js'
import { jsonObjectOf } from './json-object.js'

/** Where a BatchStream stands: the next sentence is `order(epoch)[index]`. Plain JSON. */
export interface DataPosition {
  epoch: number
  index: number
}

/**
 * What identifies a data file's contents: a resumed run checks it, so that another file of the same
 * name, or the same file edited, cannot silently change the data order of a run.
 */
export interface DataFingerprint {
  bytes: number
  /** Non-blank lines (the sentences). */
  lines: number
  /** SHA-256 of the whole file, hex. */
  sha256: string
}

export interface SentenceFileOptions {
  /**
   * 'skip' (default, training): blank lines are not sentences and are left out. 'error' (encode, which
   * writes one vector per input line): a blank line is an error naming it.
   */
  blankLines?: 'skip' | 'error'
  /**
   * JSON Lines: each line an object whose `field` holds the sentence (a corpus exported with `datasets`' to_json, C4's
   * "text"). A line that is not an object, or whose field is missing or not text, is an error naming the line; an
   * empty field counts as a blank line.
   */
  field?: string
}

/** The sentence of a JSON Lines record (`field` of the object on line `lineNo`), or '' for a blank line. */
function fieldOf(path: string, text: string, lineNo: number, field: string): string {
  if (text.trim() === '') return ''
  const x = jsonObjectOf(text, `${path}: line ${lineNo}`)[field]
  if (typeof x !== 'string')
    throw new Error(
      `${path}: line ${lineNo}: ${x === undefined ? `no field ${field}` : `field ${field} holds ${JSON.stringify(x)?.slice(0, 40)}, not text`}`,
    )
  return x
}

const utf8Lenient = new TextDecoder('utf-8')

export class SentenceFile {
  private fd: Promise<fsp.FileHandle> | null = null

  private constructor(
    readonly path: string,
    /** Byte offset of each non-blank line (Float64Array: files may exceed 4 GiB). */
    private readonly offsets: Float64Array,
    /** Byte length of each line, without its \n or \r\n. */
    private readonly lengths: Uint32Array,
    private readonly size: number,
    /** Size, sentence count and SHA-256 of the file as it was read by open(). */
    readonly fingerprint: DataFingerprint,
    /** JSON Lines: the field holding each line's sentence (SentenceFileOptions.field). */
    readonly field?: string,
  ) {}

  /** Number of non-blank lines. */
  get count(): number {
    return this.offsets.length
  }

  /**
   * Validates the file in one streaming pass and indexes its non-blank lines.
   * Throws, naming the file, when it is missing, a directory, has no non-blank line, is not UTF-8
   * (with the 1-based line number and the byte offset of the first bad byte), or separates lines with
   * a bare carriage return (old Mac line endings, which would otherwise read as one long sentence).
   */
  static async open(path: string, options: SentenceFileOptions = {}): Promise<SentenceFile> {
    const blankLines = options.blankLines ?? 'skip'
    const field = options.field
    let stat
    try {
      stat = await fsp.stat(path)
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      throw new Error(code === 'ENOENT' ? `${path}: no such file` : `${path}: cannot open: ${(e as Error).message}`)
    }
    if (stat.isDirectory()) throw new Error(`${path}: is a directory, expected a text file with one sentence per line`)

    const index = new LineIndex()
    let pieces: Buffer[] = [] // the current line's bytes when it spans chunks (one line, never the file)
    let lineStart = 0 // file offset of the current line
    let pos = 0 // file offset of the current chunk
    let lineNo = 1
    const endLine = (raw: Buffer) => {
      const { text, start, bytes } = decodeLine(path, raw, lineStart, lineNo)
      const sentence = field === undefined ? text : fieldOf(path, text, lineNo, field)
      if (sentence.trim() !== '') index.push(start, bytes)
      else if (blankLines === 'error') throw new Error(`${path}: line ${lineNo} is blank (one sentence per line is expected)`)
    }

    const hash = createHash('sha256')
    const stream = createReadStream(path, { highWaterMark: 1 << 20 })
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      hash.update(chunk)
      let from = 0
      for (let nl = chunk.indexOf(0x0a, from); nl !== -1; nl = chunk.indexOf(0x0a, from)) {
        const part = chunk.subarray(from, nl)
        endLine(pieces.length ? Buffer.concat([...pieces, part]) : part)
        pieces = []
        lineNo++
        lineStart = pos + nl + 1
        from = nl + 1
      }
      // Copy the unfinished line: a slice would pin the whole 1 MB chunk.
      if (from < chunk.length) pieces.push(Buffer.from(chunk.subarray(from)))
      pos += chunk.length
    }
    if (pieces.length) endLine(Buffer.concat(pieces))
    if (index.length === 0) throw new Error(pos === 0 ? `${path}: the file is empty` : `${path}: the file holds only blank lines`)
    const fingerprint = { bytes: pos, lines: index.length, sha256: hash.digest('hex') }
    return new SentenceFile(path, index.offsets(), index.lengths(), pos, fingerprint, field)
  }

  /**
   * A permutation of 0..count-1 for this epoch: Fisher–Yates driven by xoshiro128** seeded from
   * (seed, epoch). 32-bit integer arithmetic only, so identical on every machine and Node version.
   */
  epochOrder(epoch: number, seed: number): Uint32Array {
    return permutation(this.count, seed, epoch)
  }

  /** The lines at these indices (0-based among non-blank lines), in the order asked. */
  async readLines(indices: ArrayLike<number>): Promise<string[]> {
    const n = indices.length
    const order = Array.from({ length: n }, (_, i) => i)
    for (let i = 0; i < n; i++) {
      const k = indices[i]
      if (!Number.isInteger(k) || k < 0 || k >= this.count)
        throw new RangeError(`${this.path}: line index ${k} out of range [0, ${this.count})`)
    }
    // Read in file order and merge neighbours into one read: sequential for the disk, and far fewer
    // syscalls when the indices are close together.
    order.sort((a, b) => this.offsets[indices[a]] - this.offsets[indices[b]])
    const fd = await this.handle()
    const out = new Array<string>(n)
    const gap = 4096 // merge reads separated by less than a page
    const maxSpan = 1 << 20 // but keep each read buffer small
    for (let i = 0; i < n;) {
      const first = indices[order[i]]
      const spanStart = this.offsets[first]
      let spanEnd = spanStart + this.lengths[first]
      let j = i + 1
      while (j < n) {
        const k = indices[order[j]]
        if (this.offsets[k] - spanEnd > gap || spanEnd - spanStart > maxSpan) break
        spanEnd = Math.max(spanEnd, this.offsets[k] + this.lengths[k])
        j++
      }
      const buf = Buffer.allocUnsafe(spanEnd - spanStart)
      const { bytesRead } = await fd.read(buf, 0, buf.length, spanStart)
      if (bytesRead !== buf.length) throw new Error(`${this.path}: the file changed since it was opened (short read)`)
      for (; i < j; i++) {
        const k = indices[order[i]]
        const at = this.offsets[k] - spanStart
        const line = utf8Lenient.decode(buf.subarray(at, at + this.lengths[k]))
        out[order[i]] = this.field === undefined ? line : fieldOf(this.path, line, k + 1, this.field)
      }
    }
    return out
  }

  /** Closes the file descriptor readLines keeps open (a later readLines reopens it). */
  async close(): Promise<void> {
    const fd = this.fd
    this.fd = null
    if (fd) await (await fd).close()
  }

  private handle(): Promise<fsp.FileHandle> {
    if (!this.fd) {
      const size = this.size
      const path = this.path
      this.fd = fsp.open(path, 'r').then(async (fd) => {
        // A file rewritten since open() would give garbage at the recorded offsets.
        if ((await fd.stat()).size !== size) {
          await fd.close()
          throw new Error(`${path}: the file changed since it was opened (size differs)`)
        }
        return fd
      })
      this.fd.catch(() => (this.fd = null))
    }
    return this.fd
  }
}

/** Growable typed arrays of (offset, length): a plain number[] of 10^6 lines would cost ~16 MB more. */
class LineIndex {
  private off = new Float64Array(1024)
  private len = new Uint32Array(1024)
  length = 0
  push(offset: number, length: number) {
    if (this.length === this.off.length) {
      const off = new Float64Array(this.length * 2)
      off.set(this.off)
      this.off = off
      const len = new Uint32Array(this.length * 2)
      len.set(this.len)
      this.len = len
    }
    this.off[this.length] = offset
    this.len[this.length] = length
    this.length++
  }
  offsets() {
    return this.off.slice(0, this.length)
  }
  lengths() {
    return this.len.slice(0, this.length)
  }
}

// ---- seeded permutation ----

/** splitmix32: turns any 32-bit input into a well-mixed 32-bit value (used to seed xoshiro). */
function mix32(x: number): number {
  x = (x + 0x9e3779b9) | 0
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b)
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35)
  return (x ^ (x >>> 16)) >>> 0
}

/** xoshiro128**: a small, fast, well-tested 32-bit generator. */
export function xoshiro128(seed: number, stream: number): () => number {
  // Seeds may be any safe integer: fold in the high 32 bits too.
  const lo = seed >>> 0
  const hi = Math.floor(seed / 0x100000000) >>> 0
  let s0 = mix32(lo ^ mix32(hi))
  let s1 = mix32(s0 ^ (stream >>> 0))
  let s2 = mix32(s1 ^ 0x6a09e667)
  let s3 = mix32(s2 ^ 0xbb67ae85)
  if ((s0 | s1 | s2 | s3) === 0) s0 = 1 // the all-zero state is a fixed point
  return () => {
    const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0
    const t = s1 << 9
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = rotl(s3, 11)
    return r
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k))
}

/** Fisher–Yates permutation of 0..n-1; unbiased (rejection sampling, no modulo bias). */
export function permutation(n: number, seed: number, epoch: number): Uint32Array {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`)
  if (!Number.isInteger(epoch) || epoch < 0) throw new RangeError(`epoch must be a non-negative integer, got ${epoch}`)
  const next = xoshiro128(seed, epoch)
  const p = new Uint32Array(n)
  for (let i = 0; i < n; i++) p[i] = i
  for (let i = n - 1; i > 0; i--) {
    const m = i + 1
    const limit = 0x100000000 - (0x100000000 % m) // largest multiple of m that fits in 32 bits
    let r = next()
    while (r >= limit) r = next()
    const j = r % m
    const t = p[i]
    p[i] = p[j]
    p[j] = t
  }
  return p
}

// ---- batches ----

/** What BatchStream reads from: a SentenceFile, or anything shaped like one (tests, in-memory data). */
export interface SentenceSource {
  readonly count: number
  epochOrder(epoch: number, seed: number): Uint32Array
  readLines(indices: ArrayLike<number>): Promise<string[]>
  /**
   * Supervised data (pairs/triplets): the examples' columns, anchors first; batches then carry them. `epoch`: the
   * epoch they are read for (grouped data draws each example's tuple anew every epoch).
   */
  readColumns?(indices: ArrayLike<number>, epoch: number): Promise<string[][]>
  /** Example i's sentences, every column (what batches without repeats compare); sources held in memory. */
  textsOf?(i: number): readonly string[]
  /** Scored pairs: the examples' gold scores, in the order asked (undefined when the source has none). */
  scoresOf?(indices: ArrayLike<number>): Float32Array | undefined
}

export interface Batch {
  /** The sentences (supervised data: the anchors). */
  sentences: string[]
  /** Supervised data: anchors, positives[, hard negatives], each in the order of `sentences`. */
  columns?: string[][]
  /** Scored pairs: each example's gold score, in the order of `sentences`. */
  scores?: Float32Array
  /** Line indices (among non-blank lines) of the sentences. */
  indices: Uint32Array
  /** Where this batch started. */
  epoch: number
  index: number
}

export interface BatchStreamOptions {
  batchSize: number
  seed: number
  /** Resume here (a `position` saved from an earlier stream with the same file, batch size and seed). */
  start?: DataPosition
  /** Read the next batch while the caller trains on this one (default true). */
  prefetch?: boolean
  /**
   * Arrange each epoch so that no batch holds a sentence twice (no-duplicates.ts; the source must have
   * textsOf). Default false: batches are plain slices of the shuffled order.
   */
  noDuplicates?: boolean
  /** Called when an epoch's order is made without repeats, with the batches that still hold one. */
  onRepeats?: (epoch: number, batchesWithRepeats: number) => void
}

/**
 * Endless batches in epoch order, reshuffled each epoch from the seed. A batch never spans two epochs.
 *
 * End of an epoch: SimCSE trains with the HF Trainer (drop_last false), so a final short batch is kept,
 * but a batch of one sentence has no in-batch negatives and gives no contrastive signal, so a final
 * remainder of exactly one sentence is skipped (that sentence is simply not seen in that epoch).
 * So batches hold between 2 and batchSize sentences, and batchSize must be at least 2.
 */
export class BatchStream implements AsyncIterable<Batch> {
  readonly batchSize: number
  readonly seed: number
  private pos: DataPosition
  private order: Uint32Array | null = null
  private orderEpoch = -1
  private ahead: { plan: Plan; lines: Promise<string[][]> } | null = null
  private readonly prefetch: boolean
  private readonly noDuplicates: boolean
  private readonly onRepeats?: (epoch: number, batchesWithRepeats: number) => void

  constructor(
    private readonly source: SentenceSource,
    options: BatchStreamOptions,
  ) {
    const { batchSize, seed, start = { epoch: 0, index: 0 }, prefetch = true } = options
    if (!Number.isInteger(batchSize) || batchSize < 2)
      throw new RangeError(`batchSize must be an integer >= 2 (contrastive learning needs in-batch negatives), got ${batchSize}`)
    if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`)
    if (source.count < 2) throw new Error(`need at least 2 sentences to make a batch, the data has ${source.count}`)
    if (!isPosition(start) || start.index > source.count)
      throw new RangeError(`invalid start position ${JSON.stringify(start)} for ${source.count} sentences`)
    if (options.noDuplicates && !source.textsOf)
      throw new TypeError("noDuplicates needs a source that can give each example's sentences (textsOf)")
    this.batchSize = batchSize
    this.seed = seed
    this.prefetch = prefetch
    this.noDuplicates = options.noDuplicates ?? false
    this.onRepeats = options.onRepeats
    this.pos = this.normalise({ epoch: start.epoch, index: start.index })
  }

  /** Where the next batch starts: save it with a checkpoint and pass it back as `start` to resume. */
  get position(): DataPosition {
    return { ...this.pos }
  }

  /** Optimizer steps in one epoch with this batch size and end-of-epoch rule. */
  static batchesPerEpoch(count: number, batchSize: number): number {
    const full = Math.floor(count / batchSize)
    return full + (count % batchSize >= 2 ? 1 : 0)
  }

  async next(): Promise<Batch> {
    const cur = this.ahead ?? this.startRead(this.plan(this.pos))
    this.pos = cur.plan.after
    this.ahead = this.prefetch ? this.startRead(this.plan(this.pos)) : null
    const columns = await cur.lines
    const batch = { sentences: columns[0], indices: cur.plan.indices, epoch: cur.plan.epoch, index: cur.plan.index }
    if (!this.source.readColumns) return batch
    const scores = this.source.scoresOf?.(cur.plan.indices)
    return scores ? { ...batch, columns, scores } : { ...batch, columns }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Batch> {
    for (;;) yield await this.next()
  }

  private startRead(plan: Plan) {
    const lines = this.source.readColumns?.(plan.indices, plan.epoch) ?? this.source.readLines(plan.indices).then((s) => [s])
    lines.catch(() => {}) // a prefetch nobody awaits must not become an unhandled rejection
    return { plan, lines }
  }

  /** The batch starting at `pos` and the position after it (pure: no reads). */
  private plan(pos: DataPosition): Plan {
    const order = this.epochOrder(pos.epoch)
    const end = Math.min(pos.index + this.batchSize, order.length)
    const indices = order.slice(pos.index, end)
    return { epoch: pos.epoch, index: pos.index, indices, after: this.normalise({ epoch: pos.epoch, index: end }) }
  }

  /** Moves a position past the end of an epoch (or onto a lone last sentence) to the next epoch. */
  private normalise(p: DataPosition): DataPosition {
    return this.source.count - p.index < 2 ? { epoch: p.epoch + 1, index: 0 } : p
  }

  private epochOrder(epoch: number): Uint32Array {
    if (this.orderEpoch !== epoch) {
      this.order = this.source.epochOrder(epoch, this.seed)
      if (this.noDuplicates) {
        const source = this.source
        const arranged = noDuplicateBatches(this.order, this.batchSize, (i) => source.textsOf!(i))
        this.order = arranged.order
        this.onRepeats?.(epoch, arranged.batchesWithRepeats)
      }
      this.orderEpoch = epoch
    }
    return this.order!
  }
}

interface Plan {
  epoch: number
  index: number
  indices: Uint32Array
  after: DataPosition
}

function isPosition(p: unknown): p is DataPosition {
  const q = p as DataPosition
  return (
    typeof q === 'object' && q !== null && Number.isSafeInteger(q.epoch) && q.epoch >= 0 && Number.isSafeInteger(q.index) && q.index >= 0
  )
}
